"""The files derived from the option table (:mod:`sparkasr.params`): the README's and docs' option
tables, ``conf/job.yaml``, the JSON table the Scala stages are tested against, the Scala stages'
Params traits (``scala/src/main/scala/sparkasr/spark/params/``) and the constants the Scala port
shares with the Python engines (``sparkasr/Constants.scala``).

``python -m sparkasr.generated --json`` prints the table; ``--write`` regenerates the derived files
and ``--check`` fails when one of them disagrees with the table (``scripts/test.sh`` and
``tests/test_params.py`` run it).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .options import BOOL, FLOAT, INT, LIST_FLOAT, LIST_INT, LIST_STRING, MAP_STRING, STRING, Option, describe
from .params import finetune_options, stage_table, stage_tables, transcribe_options

ROOT = Path(__file__).resolve().parents[2]  # the repository (for --write/--check)
JSON_SNAPSHOT = "scala/src/test/resources/sparkasr/params.json"


def to_json() -> Dict[str, Any]:
    return {
        "format": 1,
        "stages": {
            t.name: {
                "python_class": t.python_class,
                "params": [_with_bounds(d, o) for d, o in zip(describe(t.options), t.options)],
            }
            for t in stage_tables().values()
            if t.jvm
        },
    }


def _with_bounds(record: Dict[str, Any], o: Option) -> Dict[str, Any]:
    """An exported option with its bounds (``None``: unbounded), which the Scala validators follow,
    and ``jvm_default`` where the JVM stage's default differs from the Python stage's."""
    out = {**record, "minimum": o.minimum, "maximum": o.maximum, "max_items": o.max_items, "max_length": o.max_length}
    if o.scala_default != o.default:
        out["jvm_default"] = o.scala_default
    return out


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


# ---------------------------------------------------------------------------------------------
# The Scala side: the stages' Params traits and the constants both languages share
# ---------------------------------------------------------------------------------------------

SCALA_ROOT = "scala/src/main/scala"
SCALA_PARAMS_PACKAGE = "sparkasr.spark.params"
SCALA_PARAMS_DIR = f"{SCALA_ROOT}/sparkasr/spark/params"  # every .scala file here is generated
SCALA_CONSTANTS = f"{SCALA_ROOT}/sparkasr/Constants.scala"
_SCALA_HEADER = (
    "// Generated from {source} by `python -m sparkasr.generated --write`: do not edit.\n"
    "// Change the Python side and regenerate; `python -m sparkasr.generated --check` fails on a stale copy.\n"
)


@dataclass(frozen=True)
class ScalaParamGroup:
    """A Scala trait declaring the options every one of ``stages`` declares alike (same name,
    type, doc and allowed values; defaults may differ), less those an earlier group declares, so
    that code shared by those stages (a base class) can use them."""

    trait: str
    stages: Tuple[str, ...]
    doc: str


SCALA_PARAM_GROUPS: Tuple[ScalaParamGroup, ...] = (
    ScalaParamGroup(
        "HasReaderCols",
        ("AudioAssembler", "WhisperForCTC", "Wav2Vec2ForCTC", "HubertForCTC"),
        "What `read_audio` says about each row besides its samples (see `sparkasr.spark.ReaderCols`).",
    ),
    ScalaParamGroup(
        "SpeechAnnotatorParams",
        ("WhisperForCTC", "Wav2Vec2ForCTC", "HubertForCTC"),
        "The params every speech annotator has (`sparkasr.spark.SpeechAnnotatorModel`).",
    ),
    ScalaParamGroup(
        "CTCAnnotatorParams",
        ("Wav2Vec2ForCTC", "HubertForCTC"),
        "The params the CTC annotators share (`sparkasr.spark.ctc.CTCAnnotator`).",
    ),
)


# Stages whose generated traits would be identical (the same groups, no option of their own, the same
# defaults) share one trait, named here; the generator refuses stages that stop being alike.
SCALA_SHARED_STAGE_TRAITS: Dict[Tuple[str, ...], str] = {("Wav2Vec2ForCTC", "HubertForCTC"): "CTCModelParams"}


def scala_stage_trait(stage: str) -> str:
    """The name of the generated trait that holds ``stage``'s own params and its defaults."""
    return next((t for names, t in SCALA_SHARED_STAGE_TRAITS.items() if stage in names), f"{stage}Params")


@dataclass(frozen=True)
class SharedConstant:
    """A Python constant the Scala port uses: ``Constants.<name>`` is ``<module>.<attr>`` (``attr``
    may be ``Class.field`` for a dataclass field's default). ``scala_type``: ``Float`` where the
    Python side compares in float32 (numpy arrays against a Python float). ``doc``: for a constant
    without a comment beside it in its module."""

    name: str
    module: str
    attr: str
    scala_type: Optional[str] = None
    doc: str = ""


# The one list to repoint when a constant moves (the Whisper engine's passes gather theirs in one module).
SHARED_CONSTANTS: Tuple[SharedConstant, ...] = (
    SharedConstant("SampleRate", "sparkasr.audio", "SAMPLE_RATE", doc="the sample rate every engine reads (Hz)"),
    SharedConstant("SilencePeak", "sparkasr.audio", "SILENCE_PEAK", "Float"),
    SharedConstant(
        "WindowS", "sparkasr.whisper.rules", "WINDOW_S", doc="Whisper's window: longer rows are cut into pieces"
    ),
    SharedConstant("PieceSearchS", "sparkasr.whisper.rules", "PIECE_SEARCH_S"),
    SharedConstant("WordS", "sparkasr.whisper.rules", "WORD_S"),
    SharedConstant("MinRestS", "sparkasr.whisper.rules", "MIN_REST_S"),
    SharedConstant("UnheardS", "sparkasr.whisper.rules", "UNHEARD_S"),
    SharedConstant("VadBlockS", "sparkasr.whisper.rules", "VAD_BLOCK_S"),
    SharedConstant("VadPadS", "sparkasr.whisper.rules", "VAD_PAD_S"),
    SharedConstant(
        "CompressionRatioThreshold",
        "sparkasr.whisper.options",
        "WhisperOptions.compression_ratio_threshold",
        doc="a decode more compressible than this (gzip ratio of its text) failed: try the next temperature",
    ),
    SharedConstant(
        "LogProbThreshold",
        "sparkasr.whisper.options",
        "WhisperOptions.log_prob_threshold",
        doc="a decode whose average log-probability is under this failed: try the next temperature",
    ),
    SharedConstant(
        "NoSpeechThreshold",
        "sparkasr.whisper.options",
        "WhisperOptions.no_speech_threshold",
        doc="a window over this no-speech probability (and under the log-probability threshold) is silence",
    ),
    SharedConstant("VadCheckNoSpeech", "sparkasr.whisper.options", "WhisperOptions.vad_check_no_speech"),
    SharedConstant("VadThreshold", "sparkasr.whisper.options", "WhisperOptions.vad_threshold"),
    SharedConstant("VadGates", "sparkasr.whisper.options", "VAD_GATES", doc="the values of vadGate"),
    SharedConstant(
        "CTCTimestampModes", "sparkasr.ctc.engine", "TIMESTAMP_MODES", doc="the CTC stages' timestamps values"
    ),
)

_SCALA_TYPES = {
    STRING: ("Param[String]", "String"),
    INT: ("IntParam", "Int"),
    FLOAT: ("DoubleParam", "Double"),
    BOOL: ("BooleanParam", "Boolean"),
    LIST_STRING: ("StringArrayParam", "Array[String]"),
    LIST_FLOAT: ("DoubleArrayParam", "Array[Double]"),
    LIST_INT: ("IntArrayParam", "Array[Int]"),
}
_SCALA_ELEMENT = {STRING: "String", INT: "Int", FLOAT: "Double", BOOL: "Boolean"}


def _scala_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _scala_literal(value: Any, kind: str) -> str:
    """A Python value of option type ``kind`` (or element type) as a Scala expression."""
    if kind.startswith("list<"):
        elem = kind[5:-1]
        if not value:
            return {STRING: "Array.empty[String]", FLOAT: "Array.emptyDoubleArray", INT: "Array.emptyIntArray"}[elem]
        return "Array(" + ", ".join(_scala_literal(v, elem) for v in value) + ")"
    if kind == BOOL:
        return "true" if value else "false"
    if kind == INT:
        return str(int(value))
    if kind == FLOAT:
        return repr(float(value))
    return _scala_string(str(value))


def _scala_doc_lines(text: str, indent: str, width: int = 110) -> List[str]:
    """A string literal split at spaces into ``"..." +`` lines of at most about ``width`` columns."""
    words, lines, cur = text.split(" "), [], ""
    for w in words:
        if cur and len(indent) + len(cur) + len(w) + 6 > width:
            lines.append(cur + " ")
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return [indent + _scala_string(part) + (" +" if i < len(lines) - 1 else "") for i, part in enumerate(lines)]


def _scaladoc(text: str, indent: str, width: int = 118) -> List[str]:
    """``text`` as a Scaladoc comment wrapped at ``width`` columns."""
    body = textwrap.wrap(text, width - len(indent) - 4, break_long_words=False, break_on_hyphens=False)
    if len(body) == 1:
        return [f"{indent}/** {body[0]} */"]
    return [f"{indent}/** {body[0]}"] + [f"{indent}  * {ln}" for ln in body[1:-1]] + [f"{indent}  * {body[-1]} */"]


def _scala_validator(o: Option) -> Optional[str]:
    """The Scala ``isValid`` function of an option's allowed values, as :meth:`Option.check` allows
    them (None: any value of its type)."""
    elem = o.element_type
    t = _SCALA_ELEMENT.get(elem, "String")
    checks = []  # Scala expressions over x
    if o.choices is not None:
        checks.append(f"Array({', '.join(_scala_literal(c, elem) for c in o.choices)}).contains(x)")

    def bound(x: float) -> str:
        if elem != INT:
            return repr(float(x))
        return str(int(x)) + ("L" if abs(int(x)) > 2**31 - 1 else "")  # beyond Int: a Long literal

    if o.minimum is not None:
        checks.append(f"x >= {bound(o.minimum)}")
    if o.maximum is not None:
        checks.append(f"x <= {bound(o.maximum)}")
    if elem == FLOAT and (o.minimum is None or o.maximum is None):  # floats are always finite
        checks.append("!x.isNaN && !x.isInfinite")
    if elem == STRING and o.max_length is not None:  # characters, as Python's len() counts them
        checks.append(f"x.codePointCount(0, x.length) <= {o.max_length}")
    one = f"(x: {t}) => " + " && ".join(checks) if checks else None
    if not o.is_list:
        return one
    items = [] if o.max_items is None else [f"v.length <= {o.max_items}"]
    every = [f"v.forall({one})"] if one else []
    return f"(v: Array[{t}]) => " + " && ".join(items + every) if items or every else None


def _scala_param(o: Option, indent: str = "  ") -> List[str]:
    """The ``final val``, setter(s) and getter of one option."""
    param_type, value_type = _SCALA_TYPES[o.type]
    ctor = f"new {param_type}(this, {_scala_string(o.name)},"
    validator = _scala_validator(o)
    cap = o.name[0].upper() + o.name[1:]
    allowed = f" ({o.allowed()})" if o.allowed() and o.allowed() not in o.doc else ""
    lines = _scaladoc(o.doc + allowed, indent)
    lines.append(f"{indent}final val {o.name}: {param_type} = {ctor}")
    doc = _scala_doc_lines(o.doc, indent + "  ")
    if validator:
        doc[-1] += ","
        doc.append(f"{indent}  {validator})")
    else:
        doc[-1] += ")"
    lines.extend(doc)
    lines.append(
        f"{indent}def set{cap}(value: {value_type}): this.type = {{ set({o.name}, value); validateParams(); this }}"
    )
    if o.type == LIST_STRING:
        lines.append(f"{indent}def set{cap}(value: String*): this.type = set{cap}(value.toArray)")
    elif o.type == LIST_FLOAT:
        lines.append(f"{indent}def set{cap}(value: Double): this.type = set{cap}(Array(value))")
    lines.append(f"{indent}def get{cap}: {value_type} = $({o.name})")
    return lines


def _alike(o: Option) -> Tuple[Any, ...]:
    return (o.name, o.type, o.doc, o.choices, o.minimum, o.maximum, o.max_items, o.max_length)


def scala_param_layout() -> Tuple[Dict[str, List[Option]], Dict[str, Tuple[List[str], List[Option]]]]:
    """Group trait -> its options, and stage -> (the group traits it mixes in, its own options)."""
    tables = {name: t for name, t in stage_tables().items() if t.jvm}
    taken: Dict[str, set] = {name: set() for name in tables}
    groups: Dict[str, List[Option]] = {}
    for g in SCALA_PARAM_GROUPS:
        first = tables[g.stages[0]]
        common = [
            o
            for o in first.options
            if all(
                o.name not in taken[s] and o.name in tables[s].names and _alike(tables[s].option(o.name)) == _alike(o)
                for s in g.stages
            )
        ]
        groups[g.trait] = common
        for s in g.stages:
            taken[s] |= {o.name for o in common}
    stages = {
        name: (
            [g.trait for g in SCALA_PARAM_GROUPS if name in g.stages],
            [o for o in t.options if o.name not in taken[name]],
        )
        for name, t in tables.items()
    }
    return groups, stages


def _scala_trait(name: str, parents: Sequence[str], doc: str, body: List[str]) -> str:
    out = [
        _SCALA_HEADER.format(source="the option table (python/sparkasr/params.py)"),
        f"package {SCALA_PARAMS_PACKAGE}",
        "",
        *(["import org.apache.spark.ml.param._", ""] if any("final val" in line for line in body) else []),
        *_scaladoc(doc, ""),
        f"trait {name} extends {' with '.join(parents)} {{",
    ]
    return "\n".join(out + body + ["}", ""])


def scala_params_files() -> Dict[str, str]:
    """Repository-relative path -> content of each generated Scala Params trait."""
    groups, stages = scala_param_layout()
    tables = {name: t for name, t in stage_tables().items() if t.jvm}
    files = {
        f"{SCALA_PARAMS_DIR}/StageParams.scala": "\n".join(
            [
                _SCALA_HEADER.format(source="python/sparkasr/generated.py"),
                f"package {SCALA_PARAMS_PACKAGE}",
                "",
                "import org.apache.spark.ml.param.Params",
                "",
                "/** The base of the generated params traits: every setter calls [[validateParams]] after setting its value,",
                "  * where a stage checks its options together and refuses, naming the param, a value it cannot honour",
                "  * (Python: `declare_params`' `_validate` hook). */",
                "trait StageParams extends Params {",
                "  protected def validateParams(): Unit = ()",
                "",
                "  /** Put back the defaults in which this JVM stage differs from the Python stage, over those a stage saved",
                "    * by pyspark carries (`SpeechModelReader` calls it after loading the params; Python: `Option.jvm_default`). */",
                "  protected[sparkasr] def restoreJvmDefaults(): Unit = ()",
                "}",
                "",
            ]
        )
    }
    for g in SCALA_PARAM_GROUPS:
        body = []
        for o in groups[g.trait]:
            body += _scala_param(o) + [""]
        files[f"{SCALA_PARAMS_DIR}/{g.trait}.scala"] = _scala_trait(g.trait, ["StageParams"], g.doc, body[:-1])
    bodies: Dict[str, Tuple[List[str], List[str]]] = {}
    for name, (parents, own) in stages.items():
        body = []
        for o in own:
            body += _scala_param(o) + [""]
        defaults = [o for o in tables[name].options if o.scala_default is not None]
        body.append("  setDefault(")
        body += [
            f"    {o.name} -> {_scala_literal(o.scala_default, o.type)}" + ("," if i < len(defaults) - 1 else "")
            for i, o in enumerate(defaults)
        ]
        body.append("  )")
        own_defaults = [o for o in tables[name].options if o.scala_default != o.default]
        if own_defaults:
            pairs = ", ".join(f"{o.name} -> {_scala_literal(o.scala_default, o.type)}" for o in own_defaults)
            body += [
                "",
                *_scaladoc(
                    "The defaults of this JVM stage that differ from the Python stage's ("
                    + ", ".join(f"`{o.name}`" for o in own_defaults)
                    + "): a stage saved by pyspark carries the Python defaults, and the reader puts these back "
                    "after loading them (a value the pipeline set stays).",
                    "  ",
                ),
                f"  override protected[sparkasr] def restoreJvmDefaults(): Unit = setDefault({pairs})",
            ]
        bodies[name] = (parents, body)
    for trait in dict.fromkeys(scala_stage_trait(name) for name in stages):
        names = [n for n in stages if scala_stage_trait(n) == trait]
        parents, body = bodies[names[0]]
        if any(bodies[n] != bodies[names[0]] for n in names[1:]):
            raise ValueError(f"{' and '.join(names)} are no longer alike: take them out of SCALA_SHARED_STAGE_TRAITS")
        via = f"; with {', '.join(f'[[{p}]]' for p in parents)}" if parents else ""
        of = " and ".join(f"`{n}`" for n in names)
        python = ", ".join(f"`{tables[n].python_class}`" for n in names)
        doc = f"The params of {of} and their defaults (Python: {python}){via}."
        files[f"{SCALA_PARAMS_DIR}/{trait}.scala"] = _scala_trait(trait, parents or ["StageParams"], doc, body)
    return files


def _constant_value(c: SharedConstant) -> Any:
    value: Any = importlib.import_module(c.module)
    for part in c.attr.split("."):
        value = getattr(value, part)
    return value


def _constant_comment(c: SharedConstant) -> str:
    """The comment beside (or right above) the constant in its module's source."""
    source = inspect.getsource(importlib.import_module(c.module)).splitlines()
    name = c.attr.split(".")[-1]
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*(:[^=]*)?=")
    for i, line in enumerate(source):
        if pattern.match(line):
            parts = []
            if "#" in line:
                parts.append(line.split("#", 1)[1].strip())
                j = i + 1
                while j < len(source) and source[j].strip().startswith("#"):
                    j += 1
                # the comment lines below continue it, unless they head the next statement
                if j >= len(source) or not source[j].strip():
                    parts += [source[k].strip()[1:].strip() for k in range(i + 1, j)]
            else:
                j = i - 1
                while j >= 0 and source[j].strip().startswith("#"):
                    parts.insert(0, source[j].strip()[1:].removeprefix(":").strip())  # "#:": a doc comment
                    j -= 1
            return " ".join(parts)
    return ""


def scala_constants() -> str:
    """``Constants.scala``: :data:`SHARED_CONSTANTS` with their Python values and comments."""
    lines = [
        _SCALA_HEADER.format(source="SHARED_CONSTANTS in python/sparkasr/generated.py"),
        "package sparkasr",
        "",
        "/** The constants and thresholds the Scala port shares with the Python engines, each with its Python name. */",
        "object Constants {",
    ]
    for c in SHARED_CONSTANTS:
        value = _constant_value(c)
        if isinstance(value, tuple):
            scala_type, literal = "Seq[String]", "Seq(" + ", ".join(_scala_string(v) for v in value) + ")"
        elif isinstance(value, bool):
            raise TypeError(f"{c.module}.{c.attr}: bool constants are not shared")
        elif isinstance(value, int):
            scala_type, literal = c.scala_type or "Int", str(value)
        elif isinstance(value, float):
            scala_type = c.scala_type or "Double"
            literal = repr(value) + ("f" if scala_type == "Float" else "")
        else:
            raise TypeError(f"{c.module}.{c.attr}: cannot share a {type(value).__name__}")
        comment = _constant_comment(c) or c.doc
        lines += _scaladoc(f"{comment + ' ' if comment else ''}(Python: `{c.module}.{c.attr}`)", "  ")
        lines.append(f"  val {c.name}: {scala_type} = {literal}")
    lines += ["}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The formats the decoders read (sparkasr.formats): the Scala decoder's tables, and the cases its
# sniffer is tested against (the Python sniffer's answers: the contract both sides pass)
# ---------------------------------------------------------------------------------------------

SCALA_FORMATS = f"{SCALA_ROOT}/sparkasr/audio/FormatTable.scala"
SNIFF_CASES = "scala/src/test/resources/sparkasr/sniff_cases.json"


def _scala_template(text: str, holes: Dict[str, str]) -> str:
    """``text`` with each placeholder of ``holes`` replaced by its Scala expression, as a Scala
    string concatenation."""
    parts = [_scala_string(text)]
    for hole, expr in holes.items():
        parts = [q for p in parts for q in _split_literal(p, _scala_string(hole)[1:-1], expr)]
    return " + ".join(p for p in parts if p != '""')


def _split_literal(part: str, hole: str, expr: str) -> List[str]:
    if not part.startswith('"') or hole not in part:
        return [part]
    pieces = part[1:-1].split(hole)
    out = [f'"{pieces[0]}"']
    for piece in pieces[1:]:
        out += [expr, f'"{piece}"']
    return out


def scala_formats() -> str:
    """``FormatTable.scala``: :mod:`sparkasr.formats`' allow-lists, signatures and messages."""
    from . import formats as F

    codec_message = ""
    try:
        F.check_codec("CODEC@", "CONTAINER@")
    except ValueError as exc:
        codec_message = str(exc)
    refusal = F.refusal(F.Detected("DETECTED@"))

    def seq(rows: List[str], indent: str = "    ") -> List[str]:
        return [indent + r + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows)]

    codec_lines = textwrap.wrap(", ".join(_scala_string(c) for c in sorted(F.AUDIO_CODECS)), 110)
    codec_lines = [line.rstrip(",") for line in codec_lines]
    lines = [
        _SCALA_HEADER.format(source="python/sparkasr/formats.py"),
        "package sparkasr.audio",
        "",
        "/** Which formats the decoder reads and the words it refuses the rest with, as the Python reader",
        "  * (`sparkasr.formats`): [[Sniff]] names a file's container from its first bytes with these signatures. */",
        "object FormatTable {",
        *_scaladoc("bytes of a file's start that the sniffer looks at (Python: `HEAD_BYTES`)", "  "),
        f"  val HeadBytes: Int = {F.HEAD_BYTES}",
        *_scaladoc("FFmpeg's protocol_whitelist value that allows no protocol (Python: `NO_PROTOCOL`)", "  "),
        f"  val NoProtocol: String = {_scala_string(F.NO_PROTOCOL)}",
        *_scaladoc("the audio containers read: FFmpeg demuxer -> the container's name (Python: `CONTAINERS`)", "  "),
        "  val Containers: Map[String, String] = Map(",
        *seq([f"{_scala_string(k)} -> {_scala_string(v)}" for k, v in F.CONTAINERS.items()]),
        "  )",
        *_scaladoc(
            "the audio decoders allowed (FFmpeg decoder names), besides every one of [[CodecFamilies]] "
            "(Python: `AUDIO_CODECS`)",
            "  ",
        ),
        "  val AudioCodecs: Set[String] = Set(",
        *seq(codec_lines),
        "  )",
        f"  val CodecFamilies: Seq[String] = Seq({', '.join(_scala_string(f) for f in F._CODEC_FAMILIES)})",
        "",
        "  def audioCodecAllowed(name: String): Boolean = AudioCodecs(name) || CodecFamilies.exists(name.startsWith)",
        "",
        *_scaladoc(
            "text formats FFmpeg would act on: a regex matched at the start of the lower-cased text after "
            "blank space -> its name, the first match wins (Python: `_TEXT_SIGNATURES`)",
            "  ",
        ),
        "  val TextSignatures: Seq[(String, String)] = Seq(",
        *seq([f"({_scala_string(p.pattern.decode('latin-1'))}, {_scala_string(n)})" for p, n in F._TEXT_SIGNATURES]),
        "  )",
        *_scaladoc(
            "binary formats by their magic bytes (hex) -> name; an empty name: BMP, whose header is checked "
            "(Python: `_BINARY_SIGNATURES`)",
            "  ",
        ),
        "  val BinarySignatures: Seq[(String, String)] = Seq(",
        *seq([f"({_scala_string(m.hex())}, {_scala_string(n or '')})" for m, n in F._BINARY_SIGNATURES]),
        "  )",
        "",
        *_scaladoc("the error for a file that is not an audio format we read (Python: `refusal`)", "  "),
        "  def refusal(detected: String): String = " + _scala_template(refusal, {"DETECTED@": "detected"}),
        *_scaladoc("the error for an audio codec outside the list (Python: `check_codec`)", "  "),
        "  def codecRefusal(codec: String, container: String): String =",
        "    " + _scala_template(codec_message, {"CODEC@": "codec", "CONTAINER@": "container"}),
        "}",
        "",
    ]
    return "\n".join(lines)


def _sniff_samples() -> List[Tuple[str, bytes]]:
    """Heads of files of every kind :func:`sparkasr.formats.sniff` tells apart (audio containers,
    images and other binary formats, the texts FFmpeg would act on)."""
    import struct

    def mp3_frames(n: int) -> bytes:  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417-byte frames
        return (b"\xff\xfb\x90\x00" + bytes(413)) * n

    def adts_frames(n: int) -> bytes:  # AAC LC, 44.1 kHz, stereo, 100-byte frames
        size = 100
        header = bytes([0xFF, 0xF1, 0x50, 0x80 | (size >> 11), (size >> 3) & 0xFF, ((size & 7) << 5) | 0x1F, 0xFC])
        return (header + bytes(size - 7)) * n

    def id3(size: int) -> bytes:
        return b"ID3\x04\x00\x00" + bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])

    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 64)
    return [
        ("wav", b"RIFF" + struct.pack("<I", 100) + b"WAVE" + fmt + bytes(64)),
        ("rf64", b"RF64" + b"\xff" * 4 + b"WAVEds64" + bytes(40)),
        ("webp", b"RIFF" + struct.pack("<I", 100) + b"WEBPVP8 " + bytes(40)),
        ("avi", b"RIFF" + struct.pack("<I", 100) + b"AVI LIST" + bytes(40)),
        ("w64", b"riff" + bytes.fromhex("2e91cf11a5d628db04c10000") + bytes(40)),
        ("flac", b"fLaC\x00\x00\x00\x22" + bytes(40)),
        ("ogg", b"OggS\x00\x02" + bytes(40)),
        ("aiff", b"FORM\x00\x00\x01\x00AIFFCOMM" + bytes(40)),
        ("aifc", b"FORM\x00\x00\x01\x00AIFCFVER" + bytes(40)),
        ("caf", b"caff\x00\x01\x00\x00" + bytes(40)),
        ("au", b".snd\x00\x00\x00\x18" + bytes(40)),
        ("mka", b"\x1aE\xdf\xa3\x9fB\x86\x81\x01" + bytes(40)),
        ("m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(40)),
        ("mov-moov", b"\x00\x00\x01\x00moov" + bytes(40)),
        ("wma", bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(40)),
        ("amr", b"#!AMR\n" + bytes(40)),
        ("amr-wb", b"#!AMR-WB\n" + bytes(40)),
        ("mp3", mp3_frames(3)),
        ("mp3-one-frame-then-noise", b"\xff\xfb\x90\x00" + bytes(413) + b"\x01\x02\x03\x04\x05\x06\x07\x08"),
        ("mp3-short", b"\xff\xfb\x90\x00" + bytes(100)),
        ("mp3-bad-bitrate", b"\xff\xfb\xf0\x00" + bytes(100)),
        ("mpeg2-layer2", (b"\xff\xf5\x80\x00" + bytes(284)) * 2),
        ("adts", adts_frames(3)),
        ("id3-mp3", id3(20) + bytes(20) + mp3_frames(2)),
        ("id3-flac", id3(20) + bytes(20) + b"fLaC" + bytes(40)),
        ("id3-adts", id3(20) + bytes(20) + adts_frames(2)),
        ("id3-footer", b"ID3\x04\x00\x10\x00\x00\x00\x0a" + bytes(20) + b"fLaC" + bytes(40)),
        ("id3-beyond-head", id3(8000) + bytes(100)),
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40)),
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(40)),
        ("gif", b"GIF89a" + bytes(40)),
        ("bmp", b"BM" + bytes(12) + struct.pack("<I", 40) + bytes(40)),
        ("bm-text", b"BM is not a bitmap header, just text\n"),
        ("tiff", b"II*\x00" + bytes(40)),
        ("ico", b"\x00\x00\x01\x00\x01\x00" + bytes(40)),
        ("pdf", b"%PDF-1.7\n" + bytes(40)),
        ("zip", b"PK\x03\x04" + bytes(40)),
        ("gzip", b"\x1f\x8b\x08" + bytes(40)),
        ("elf", b"\x7fELF\x02\x01" + bytes(40)),
        ("mpeg-ps", b"\x00\x00\x01\xba" + bytes(40)),
        ("flv", b"FLV\x01\x05" + bytes(40)),
        ("mpeg-ts", (b"\x47" + bytes(187)) * 2),
        ("concat", b"ffconcat version 1.0\nfile 'secret.wav'\n"),
        ("concat-indented", b"\n  FFCONCAT Version 1.0\nfile secret.wav\n"),
        ("concat-bare", b"file 'secret.wav'\n"),
        ("hls", b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10.0,\nsecret.wav\n"),
        ("hls-media", b"#EXT-X-TARGETDURATION:10\n"),
        ("ffmetadata", b";FFMETADATA1\ntitle=secret\n"),
        ("sdp", b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"),
        ("xml", b"<?xml version='1.0'?><MPD/>\n"),
        ("dash", b"<MPD xmlns='urn:mpeg:dash'>\n"),
        ("html", b"<!DOCTYPE html><html></html>\n"),
        ("webvtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"),
        ("srt", b"1\n00:00:01,000 --> 00:00:02,000\nhi\n"),
        ("ass", b"[Script Info]\nTitle: x\n"),
        ("json", b'{"inputs": "x"}\n'),
        ("subfile-url", b"subfile,,start,0,end,0,,:/etc/passwd\n"),
        ("file-url", b"file:/etc/passwd\n"),
        ("http-url", b"https://example.com/a.wav\n"),
        ("concat-url", b"concat:/a.wav|/b.wav\n"),
        ("text", b"just some text, not audio\n"),
        ("empty-ish", b" "),
        ("noise", bytes((i * 7919) % 251 for i in range(4096))),
        ("all-bytes", bytes(range(256))),
    ]


def sniff_cases() -> str:
    """The contract of the Scala sniffer: each sample head with what the Python one says it is."""
    from .formats import sniff

    cases = []
    for name, head in _sniff_samples():
        d = sniff(head)
        cases.append({"case": name, "head": head.hex(), "name": d.name, "demuxer": d.demuxer, "audio": d.audio})
    return (
        json.dumps(
            {"source": "python -m sparkasr.generated --write (sparkasr.formats.sniff)", "cases": cases}, indent=1
        )
        + "\n"
    )


def scala_files() -> Dict[str, str]:
    out = scala_params_files()
    out[SCALA_CONSTANTS] = scala_constants()
    out[SCALA_FORMATS] = scala_formats()
    out[SNIFF_CASES] = sniff_cases()
    return out


def generated_files() -> Dict[str, str]:
    """Repository-relative path -> the content the option table gives it."""
    out = {JSON_SNAPSHOT: json.dumps(to_json(), indent=2) + "\n", "conf/job.yaml": job_yaml()}
    out.update(scala_files())
    for doc in ("README.md", "docs/ctc.md", "docs/evaluation.md", "docs/diarization.md", "docs/finetune.md"):
        path = ROOT / doc
        if path.is_file():
            out[doc] = render_doc(path.read_text(encoding="utf-8"))
    return out


def _leftovers(root: Path, wanted: Dict[str, str]) -> List[str]:
    """Files in the generated Scala params directory that the table no longer gives."""
    folder = root / SCALA_PARAMS_DIR
    found = sorted(f"{SCALA_PARAMS_DIR}/{p.name}" for p in folder.glob("*.scala")) if folder.is_dir() else []
    return [rel for rel in found if rel not in wanted]


def stale_files(root: Path = ROOT) -> List[str]:
    """The generated files under ``root`` that disagree with the option table (or that it no
    longer gives)."""
    wanted = generated_files()
    stale = []
    for rel, want in wanted.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != want:
            stale.append(rel)
    return stale + _leftovers(root, wanted)


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
        wanted = generated_files()
        for rel, content in wanted.items():
            path = ROOT / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text(encoding="utf-8") != content:
                path.write_text(content, encoding="utf-8")
                print(f"wrote {rel}")
        for rel in _leftovers(ROOT, wanted):
            (ROOT / rel).unlink()
            print(f"removed {rel}")
        return 0
    stale = stale_files()
    for rel in stale:
        print(f"{rel} disagrees with the option table: run python -m sparkasr.generated --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
