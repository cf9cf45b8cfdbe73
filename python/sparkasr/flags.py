"""Command-line flags from the option table: one flag per option (``--x``/``--no-x`` for booleans),
each value checked by the table, and usage errors as one line with exit status 2. Used by
``sparkasr transcribe`` (:mod:`sparkasr.cli`) and ``sparkasr serve``/``demo`` (:mod:`sparkasr.serve.cli`).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from .options import BOOL, FLOAT, INT, Option


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (the option and what it allows) and
    exit status 2, as the job's other setup errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag_type(opt: Option):
    """argparse ``type=``: the flag's text as the option's value, checked against the table, so a
    bad value ends as ``error: argument --flag: must be ... (got ...)`` with exit status 2."""

    def convert(text: str):
        value: Any = text
        try:
            if opt.type == INT:
                value = int(text)
            elif opt.type == FLOAT:
                value = float(text)
        except ValueError:
            pass  # opt.check words the error
        try:
            return opt.check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} [job-file key: {opt.config_key}]") from None

    convert.__name__ = opt.type  # argparse names the type in some messages
    return convert


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def add_option_flags(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per option of the table that has one (``dest`` = its job-file key, default None:
    not given). Booleans get ``--x``/``--no-x``."""
    for opt in options:
        flag = opt.cli_flag
        if not flag:
            continue
        help_ = opt.doc + (f" [{opt.allowed()}]" if opt.allowed() and opt.allowed() not in opt.doc else "")
        if opt.required:
            help_ += " (required: here or in --config)"
        elif opt.default not in (None, "", [], {}):
            help_ += f" (default: {shown(opt.default)})"
        if opt.type == BOOL:
            parser.add_argument(
                flag, *opt.aliases, dest=opt.config_key, default=None, action=argparse.BooleanOptionalAction, help=help_
            )
        else:
            metavar = (
                "|".join(map(str, opt.choices))
                if opt.choices and not opt.is_list and len(opt.choices) <= 4
                else opt.config_key.upper()
            )
            parser.add_argument(
                flag, *opt.aliases, dest=opt.config_key, default=None, type=_flag_type(opt), metavar=metavar, help=help_
            )
