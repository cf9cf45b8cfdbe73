"""The option primitives: one :class:`Option` describes one user-facing option in every place it
appears: the Spark ``Param`` (``name``, ``type``, ``default``, ``doc``), the engine options
dataclass field it sets (``field``), its allowed values (``choices``, ``minimum``/``maximum``),
the ``sparkasr transcribe`` flag (``flag``) and the job-file key (``key``).

Engine option dataclasses declare their user-facing fields with :func:`option`; the stage tables
(:mod:`sparkasr.params`) collect them with :func:`options_of`. Everything else (the Params and
their setters/getters, the defaults, the CLI flags, ``conf/job.yaml``, the README tables and the
JSON table the Scala stages are tested against) is derived from those declarations.

Plain Python: no pyspark here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

STRING, INT, FLOAT, BOOL = "string", "int", "float", "bool"
LIST_STRING, LIST_FLOAT, LIST_INT = "list<string>", "list<float>", "list<int>"
MAP_STRING = "map<string,string>"  # job options only (spark_conf)
TYPES = (STRING, INT, FLOAT, BOOL, LIST_STRING, LIST_FLOAT, LIST_INT, MAP_STRING)

_META = "sparkasr.option"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def shown_value(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a request's value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text)} chars)"


def _reason(what: str, value: Any) -> str:
    return f"must be {what} (got {shown_value(value)})"


@dataclass(frozen=True)
class Option:
    """One user-facing option. ``default`` is the Param's default (a JSON value; ``None``: the
    param has no default). ``null``: the param value that stands for the engine's ``None``
    (``""`` for "detect the language", ``0`` for "the model's maximum", ...). ``flag``/``key``:
    ``""`` derives them from ``field`` (``beam_size`` → ``--beam-size``/``beam_size``), ``None``
    keeps the option off the command line / out of the job file. ``convert``: a custom
    param-value → engine-value conversion (after ``null``). ``runtime``: the option changes where
    or how fast a stage runs, not what it writes (left out of the job's config id). ``comma``: a
    list of strings may be given as one comma-separated string (lists of numbers always may).
    ``aliases``, ``required``, ``example``: for the command line and ``conf/job.yaml``.
    ``max_items``: the most values a list holds; ``max_length``: the longest string (characters).
    ``jvm_default``: the JVM stage's default where it must differ from ``default`` (the JVM engine
    decodes fewer values: the generated Scala params and the exported table carry it).
    Floats are always finite. The engines' options are all bounded (a test checks it): numbers by
    ``minimum`` and ``maximum``, lists by ``max_items``, strings by ``choices`` or ``max_length``,
    so no value, from a request, a job file or a stage param, makes an engine call unbounded."""

    name: str
    type: str
    default: Any
    doc: str
    field: Optional[str] = None
    choices: Optional[Tuple[Any, ...]] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    null: Any = UNSET
    flag: Optional[str] = ""
    key: Optional[str] = ""
    convert: Optional[Callable[[Any], Any]] = None
    runtime: bool = False
    comma: bool = False
    aliases: Tuple[str, ...] = ()
    required: bool = False
    example: Any = None
    max_items: Optional[int] = None
    max_length: Optional[int] = None
    jvm_default: Any = UNSET

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")
        if self.jvm_default is not UNSET:
            self.check(self.jvm_default)

    @property
    def scala_default(self) -> Any:
        """The default of the JVM stage's param: ``jvm_default`` where set, else ``default``."""
        return self.default if self.jvm_default is UNSET else self.jvm_default

    # -- where it appears -----------------------------------------------------------------------
    @property
    def config_key(self) -> Optional[str]:
        return (self.key or self.field) if self.key is not None else None

    @property
    def cli_flag(self) -> Optional[str]:
        if self.flag is None:
            return None
        if self.flag:
            return self.flag
        return "--" + self.config_key.replace("_", "-") if self.config_key else None

    @property
    def is_list(self) -> bool:
        return self.type.startswith("list<")

    @property
    def element_type(self) -> str:
        return self.type[5:-1] if self.is_list else self.type

    # -- values ---------------------------------------------------------------------------------
    def check(self, value: Any, strict: bool = False) -> Any:
        """``value`` as this option's type, checked against its allowed values; ``ValueError``
        with the reason (the caller names the option: param, flag or key). ``strict`` (values from
        JSON requests): no conversion at all: no number given as a string, no float for an integer,
        no comma-separated or single value for a list."""
        if self.type == MAP_STRING:
            if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
                raise ValueError(_reason("a mapping of names to values", value))
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        if self.is_list:
            if strict:
                pass
            elif isinstance(value, str) and (self.type != LIST_STRING or self.comma):
                value = [x.strip() for x in value.split(",") if x.strip()]
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ValueError(_reason(f"a list of {self.type[5:-1]} values", value))
            if self.max_items is not None and len(value) > self.max_items:
                raise ValueError(_reason(f"a list of at most {self.max_items} values", value))
            return [self._scalar(v, self.element_type, strict) for v in value]
        return self._scalar(value, self.type, strict)

    def _scalar(self, value: Any, kind: str, strict: bool = False) -> Any:
        if kind == BOOL:
            if not isinstance(value, bool):
                raise ValueError(_reason("true or false", value))
        elif kind == INT:
            if isinstance(value, str) and not strict:
                try:
                    value = int(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer() and not strict:
                    value = int(value)
                else:
                    raise ValueError(_reason("an integer" + self._range(), value))
        elif kind == FLOAT:
            if isinstance(value, str) and not strict:
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(_reason("a number" + self._range(), value))
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(_reason("a finite number" + self._range(), value))
        elif kind == STRING:
            if not isinstance(value, str):
                raise ValueError(_reason("a string", value))
            if self.max_length is not None and len(value) > self.max_length:
                raise ValueError(_reason(f"a string of at most {self.max_length} characters", value))
        if self.choices is not None and value not in self.choices:
            raise ValueError(_reason("one of " + ", ".join(map(str, self.choices)), value))
        if kind in (INT, FLOAT) and (
            (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum)
        ):
            raise ValueError(_reason(("an integer" if kind == INT else "a number") + self._range(), value))
        return value

    def _range(self) -> str:
        lo, hi = self.minimum, self.maximum
        fmt = lambda x: str(int(x)) if float(x).is_integer() else str(x)  # noqa: E731
        if lo is not None and hi is not None:
            return f" in {fmt(lo)}..{fmt(hi)}"
        if lo is not None:
            return f" >= {fmt(lo)}"
        if hi is not None:
            return f" <= {fmt(hi)}"
        return ""

    def allowed(self) -> str:
        """The allowed values in words (docs and ``--help``)."""
        if self.choices is not None:
            return ", ".join(map(str, self.choices))
        words = [self._range().strip()] if self._range() else []
        if self.max_items is not None:
            words.append(f"at most {self.max_items} values")
        if self.max_length is not None:
            words.append(f"at most {self.max_length} characters")
        return ", ".join(words)

    def to_engine(self, value: Any) -> Any:
        """A param value → the engine field's value."""
        if self.null is not UNSET and value == self.null:
            return None
        if self.convert is not None:
            return self.convert(value)
        return tuple(value) if self.is_list else value

    def from_engine(self, value: Any) -> Any:
        """An engine field's value → the param value."""
        if value is None and self.null is not UNSET:
            return self.null
        return list(value) if self.is_list and value is not None else value


def option(name: str, type: str, default: Any, doc: str, **kw: Any):
    """A dataclass field for a user-facing option: the field's default is the engine value of the
    param default ``default``."""
    opt = Option(name, type, default, doc, **kw)
    return dataclasses.field(default=opt.to_engine(default), metadata={_META: opt})


@functools.cache
def options_of(cls) -> Tuple[Option, ...]:
    """The options declared on the fields of the dataclass ``cls``, in field order, each with its
    ``field`` set."""
    return tuple(
        dataclasses.replace(f.metadata[_META], field=f.name) for f in dataclasses.fields(cls) if _META in f.metadata
    )


def engine_only_fields(cls) -> List[str]:
    """The fields of ``cls`` that are not user-facing options (tuned in code, not by users)."""
    return [f.name for f in dataclasses.fields(cls) if _META not in f.metadata]


def validate(instance) -> None:
    """Check every option field of a frozen options dataclass (call from ``__post_init__``);
    ``ValueError("<param> must be ... (got ...)")`` for the first bad one."""
    for opt in options_of(type(instance)):
        value = opt.from_engine(getattr(instance, opt.field))
        if value is None and opt.null is UNSET:
            continue
        try:
            opt.check(value)
        except ValueError as exc:
            raise ValueError(f"{opt.name} {exc}") from None


def engine_kwargs(cls, values: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword arguments for the options dataclass ``cls`` from param values by param name (only
    the options present in ``values``)."""
    out = {}
    for opt in options_of(cls):
        if opt.name in values:
            out[opt.field] = opt.to_engine(values[opt.name])
    return out


def by_name(options: Iterable[Option]) -> Dict[str, Option]:
    out: Dict[str, Option] = {}
    for opt in options:
        if opt.name in out:
            raise ValueError(f"option {opt.name} declared twice")
        out[opt.name] = opt
    return out


def first_line(doc: str) -> str:
    return doc.split("\n", 1)[0]


def describe(options: Sequence[Option]) -> List[Dict[str, Any]]:
    """The options as JSON-ready records (the exported table)."""
    return [
        {
            "name": o.name,
            "type": o.type,
            "default": o.default,
            "doc": o.doc,
            "choices": list(o.choices) if o.choices is not None else None,
        }
        for o in options
    ]
