"""The files derived from the option table (:mod:`sparkasr.params`): the README's and docs' option
tables, ``conf/job.yaml``, and the JSON table the Scala stages are tested against.

``python -m sparkasr.generated --json`` prints the table; ``--write`` regenerates the derived files
and ``--check`` fails when one of them disagrees with the table (``scripts/test.sh`` and
``tests/test_params.py`` run it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .options import MAP_STRING, describe
from .params import finetune_options, stage_table, stage_tables, transcribe_options

ROOT = Path(__file__).resolve().parents[2]  # the repository (for --write/--check)
JSON_SNAPSHOT = "scala/src/test/resources/sparkasr/params.json"


def to_json() -> Dict[str, Any]:
    return {
        "format": 1,
        "stages": {
            t.name: {"python_class": t.python_class, "params": describe(t.options)}
            for t in stage_tables().values()
            if t.jvm
        },
    }


def _md(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    if isinstance(value, list):
        return "`[" + ", ".join(_plain(v) for v in value) + "]`"
    return f"`{value}`"


def _plain(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else (str(v).lower() if isinstance(v, bool) else str(v))


def markdown_table(stage: str, names: Optional[Sequence[str]] = None, skip: Sequence[str] = ()) -> str:
    """A markdown table (param, default, meaning) of a stage's options."""
    table = stage_table(stage)
    rows = ["| param | default | meaning |", "| --- | --- | --- |"]
    for o in table.options:
        if (names is not None and o.name not in names) or o.name in skip:
            continue
        rows.append(f"| `{o.name}` | {_md(o.default)} | {o.doc.replace('|', '/')} |")
    return "\n".join(rows)


def cli_table() -> str:
    rows = ["| flag | job.yaml key | default | meaning |", "| --- | --- | --- | --- |"]
    for o in transcribe_options():
        flag = f"`{o.cli_flag}`" if o.cli_flag else "(positional)" if o.name == "inputs" else "—"
        rows.append(
            f"| {flag} | `{o.config_key}` | {'—' if o.default is None else _md(o.default)} | {o.doc.replace('|', '/')} |"
        )
    return "\n".join(rows)


def finetune_cli_table() -> str:
    """``sparkasr finetune``'s flags from the option table (the fine-tuner's params they set)."""
    rows = ["| flag | param | default | meaning |", "| --- | --- | --- | --- |"]
    for o in finetune_options():
        rows.append(f"| `{o.cli_flag}` | `{o.name}` | {_md(o.default)} | {o.doc.replace('|', '/')} |")
    return "\n".join(rows)


_SPARK_COLS = (
    "inputCols",
    "outputCol",
    "modelSource",
    "shipModel",
    "chunksCol",
    "pathCol",
    "offsetCol",
    "durationCol",
    "errorCol",
)


def _sections() -> Dict[str, str]:
    """Generated sections of the docs: marker name -> body."""
    return {
        "whisper-options": markdown_table("WhisperForCTC", skip=_SPARK_COLS),
        "ctc-options": markdown_table("Wav2Vec2ForCTC", skip=_SPARK_COLS),
        "speech-columns": markdown_table("WhisperForCTC", names=_SPARK_COLS),
        "assembler-options": markdown_table("AudioAssembler"),
        "evaluator-options": markdown_table("WerEvaluator"),
        "diarizer-options": markdown_table("SpeakerDiarizer"),
        "identity-options": markdown_table("SpeakerIdentity"),
        "transcribe-options": cli_table(),
        "finetune-options": markdown_table("WhisperFineTuner"),
        "finetune-flags": finetune_cli_table(),
    }


_SECTION = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) .*?-->\n)(?P<body>.*?)(<!-- END GENERATED -->)", re.S)


def render_doc(text: str) -> str:
    """``text`` with every generated section replaced by its current body."""
    sections = _sections()

    def sub(m):
        return m.group(1) + sections[m.group("name")] + "\n" + m.group(4)

    return _SECTION.sub(sub, text)


def job_yaml() -> str:
    """``conf/job.yaml``: every key the job file accepts, with its doc and default."""
    out = [
        "# sparkasr transcribe --config conf/job.yaml",
        "# Every key the job file accepts (unknown keys and bad values stop the job before Spark starts,",
        "# naming the key). Command-line flags override these values. Commented keys show defaults.",
        "# Generated from the option table (python -m sparkasr.generated --write): edit the table, not this file.",
        "",
    ]
    examples = {"inputs": ["tests/data/librivox", "tests/data/cards"], "output": "out/job"}
    for o in transcribe_options():
        out.append(f"# {o.doc}" + (f" ({o.allowed()})" if o.allowed() and o.allowed() not in o.doc else ""))
        key = o.config_key
        if key in examples:
            out.append(f"{key}: {_yaml(examples[key])}")
        elif o.type == MAP_STRING:
            out.append(f"# {key}:")
            out.extend(f"#   {k}: {v}" for k, v in (o.example or {}).items())
        else:
            out.append(f"# {key}:" + ("" if o.default is None else f" {_yaml(o.default)}"))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v) if v == "" or ":" in v or v.strip() != v else v
    return str(v)


def generated_files() -> Dict[str, str]:
    """Repository-relative path -> the content the option table gives it."""
    out = {JSON_SNAPSHOT: json.dumps(to_json(), indent=2) + "\n", "conf/job.yaml": job_yaml()}
    for doc in ("README.md", "docs/ctc.md", "docs/evaluation.md", "docs/diarization.md", "docs/finetune.md"):
        path = ROOT / doc
        if path.is_file():
            out[doc] = render_doc(path.read_text(encoding="utf-8"))
    return out


def stale_files(root: Path = ROOT) -> List[str]:
    """The generated files under ``root`` that disagree with the option table."""
    stale = []
    for rel, want in generated_files().items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != want:
            stale.append(rel)
    return stale


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sparkasr.generated", description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--json", action="store_true", help="print every stage's option table as JSON")
    g.add_argument("--write", action="store_true", help="regenerate the files derived from the table")
    g.add_argument("--check", action="store_true", help="exit 1 when a derived file disagrees with the table")
    args = p.parse_args(argv)
    if args.json:
        json.dump(to_json(), sys.stdout, indent=2)
        print()
        return 0
    if args.write:
        for rel, content in generated_files().items():
            path = ROOT / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text(encoding="utf-8") != content:
                path.write_text(content, encoding="utf-8")
                print(f"wrote {rel}")
        return 0
    stale = stale_files()
    for rel in stale:
        print(f"{rel} disagrees with the option table: run python -m sparkasr.generated --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
