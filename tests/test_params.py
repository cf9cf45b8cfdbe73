"""The option table is the one source of truth: the stages' Params, the engine options, the CLI
flags, the job file, the docs and the JSON table for the Scala stages all agree with it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparkasr import generated as G
from sparkasr import params as P
from sparkasr.ctc.engine import CTCOptions
from sparkasr.ctc.lm import BeamOptions
from sparkasr.diarize.options import DiarizationOptions, IdentityOptions
from sparkasr.options import engine_only_fields, options_of
from sparkasr.train.options import TrainOptions
from sparkasr.whisper import RuntimeOptions, WhisperOptions

REPO = Path(__file__).resolve().parents[1]

# Engine fields tuned in code, not by users. A new field must be declared an option (with
# sparkasr.options.option) or added here, on purpose.
ENGINE_ONLY = {
    WhisperOptions: {
        "compression_ratio_threshold",
        "log_prob_threshold",
        "no_speech_threshold",
        "vad_check_no_speech",
        "vad_threshold",
    },
    RuntimeOptions: {"device_index"},
    CTCOptions: {"auto_chunk_length_s", "max_batch_samples", "max_padding_ratio", "beam"},
    BeamOptions: {"kenlm_model_path", "unigrams", "beam_prune_logp", "token_min_logp", "unk_score_offset"},
    DiarizationOptions: {
        "window_s",
        "step_s",
        "min_window_s",
        "vad_threshold",
        "min_speech_s",
        "min_silence_s",
        "speech_pad_s",
        "change_threshold",
        "min_turn_s",
        "min_speaker_s",
        "min_speaker_share",
    },
    IdentityOptions: {"gallery_threshold"},
    TrainOptions: {"timestamp_fraction", "max_grad_norm", "bucket_rows", "max_words_per_s", "validation_batch"},
}


def _stage_classes():
    from sparkasr import (
        AudioAssembler,
        HubertForCTC,
        SpeakerDiarizer,
        SpeakerIdentity,
        Wav2Vec2ForCTC,
        WerEvaluator,
        WhisperFineTuner,
        WhisperForCTC,
    )

    classes = (
        AudioAssembler,
        WhisperForCTC,
        Wav2Vec2ForCTC,
        HubertForCTC,
        WerEvaluator,
        SpeakerDiarizer,
        SpeakerIdentity,
        WhisperFineTuner,
    )
    return {c.__name__: c for c in classes}


def test_generated_files_agree_with_the_table():
    """README/docs tables, conf/job.yaml and the Scala JSON snapshot are what the table gives."""
    assert G.stale_files() == []
    proc = subprocess.run(
        [sys.executable, "-m", "sparkasr.generated", "--check"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch):
    for rel, content in G.generated_files().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    assert G.stale_files(tmp_path) == []
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("| `beamSize` | `5` |", "| `beamSize` | `4` |"))
    assert G.stale_files(tmp_path) == ["README.md"]
    # a generated Scala file edited by hand, or left over after its trait went away
    whisper = tmp_path / G.SCALA_PARAMS_DIR / "WhisperForCTCParams.scala"
    whisper.write_text(whisper.read_text().replace("beamSize -> 5,", "beamSize -> 4,"))
    (tmp_path / G.SCALA_PARAMS_DIR / "HasBatchSize.scala").write_text("package sparkasr.spark.params\n")
    assert sorted(G.stale_files(tmp_path)) == [
        "README.md",
        f"{G.SCALA_PARAMS_DIR}/HasBatchSize.scala",
        f"{G.SCALA_PARAMS_DIR}/WhisperForCTCParams.scala",
    ]


def test_a_changed_python_constant_makes_the_scala_constants_stale(tmp_path, monkeypatch):
    from sparkasr.whisper import rules

    rel = G.SCALA_CONSTANTS
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(G.scala_constants())
    assert "  val UnheardS: Double = 2.0\n" in G.scala_constants()
    monkeypatch.setattr(rules, "UNHEARD_S", 2.5)
    assert "  val UnheardS: Double = 2.5\n" in G.scala_constants()
    assert rel in G.stale_files(tmp_path)


def test_every_shared_constant_is_found_with_its_python_value():
    text = G.scala_constants()
    assert text.startswith("// Generated from SHARED_CONSTANTS in python/sparkasr/generated.py")
    for c in G.SHARED_CONSTANTS:
        value = G._constant_value(c)
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  val {c.name}: "))
        if isinstance(value, tuple):
            assert line.endswith("Seq(" + ", ".join(f'"{v}"' for v in value) + ")"), line
        else:
            assert float(line.split(" = ")[1].rstrip("f")) == value, line
        assert f"(Python: `{c.module}.{c.attr}`)" in text.replace("\n    * ", " ")
    assert "  val SilencePeak: Float = 3e-05f\n" in text  # compared in float32, as numpy does


def test_the_scala_format_table_is_sparkasr_formats(tmp_path, monkeypatch):
    """The JVM decoder's allow-lists, signatures and messages are generated from sparkasr.formats;
    a changed list makes the Scala copy stale."""
    from sparkasr import formats as F

    text = G.scala_formats()
    assert text.startswith("// Generated from python/sparkasr/formats.py")
    for demuxer, name in F.CONTAINERS.items():
        assert f"    {G._scala_string(demuxer)} -> {G._scala_string(name)}" in text
    for codec in F.AUDIO_CODECS:
        assert G._scala_string(codec) in text
    assert 'def refusal(detected: String): String = "not an audio format we read (detected: " + detected + ")"' in text
    assert '"the " + container + " file\'s audio codec \'" + codec + "\' is not one we decode"' in text
    assert G.SCALA_FORMATS in G.generated_files() and G.SNIFF_CASES in G.generated_files()
    (tmp_path / G.SCALA_FORMATS).parent.mkdir(parents=True)
    (tmp_path / G.SCALA_FORMATS).write_text(text)
    monkeypatch.setattr(F, "CONTAINERS", {**F.CONTAINERS, "nistsphere": "NIST SPHERE"})
    assert G.SCALA_FORMATS in G.stale_files(tmp_path)


def test_the_sniff_cases_are_the_python_sniffers_answers():
    from sparkasr.formats import sniff

    cases = json.loads(G.sniff_cases())["cases"]
    kinds = {c["case"]: c for c in cases}
    for kind in ("concat", "sdp", "hls", "ffmetadata", "png", "subfile-url", "file-url"):  # issue 30's list
        assert not kinds[kind]["audio"] and kinds[kind]["demuxer"] is None, kind
    assert {c["demuxer"] for c in cases if c["audio"]} >= {"wav", "flac", "ogg", "mp3", "aac", "mov", "matroska"}
    for c in cases:
        d = sniff(bytes.fromhex(c["head"]))
        assert (d.name, d.demuxer, d.audio) == (c["name"], c["demuxer"], c["audio"]), c["case"]


def _scala_vals(text):
    """``final val`` name -> its declaration (up to the setter) in generated Scala."""
    out = {}
    for block in text.split("final val ")[1:]:
        out[block.split(":", 1)[0]] = block.split("\n  def set", 1)[0]
    return out


def test_the_scala_params_traits_are_the_table():
    """Each stage's generated trait, with the group traits it extends, declares each of its options
    once, with the table's type, doc and allowed values, and sets every default."""
    files = G.scala_params_files()
    assert all(rel.startswith(G.SCALA_PARAMS_DIR + "/") for rel in files)
    assert all(text.startswith("// Generated from ") and "do not edit" in text for text in files.values())
    traits = {rel.rsplit("/", 1)[1][: -len(".scala")]: text for rel, text in files.items()}
    assert sorted(traits) == sorted(
        ["StageParams"]
        + [g.trait for g in G.SCALA_PARAM_GROUPS]
        + list(dict.fromkeys(G.scala_stage_trait(n) for n, t in P.stage_tables().items() if t.jvm))
    )
    for name, table in P.stage_tables().items():
        if not table.jvm:
            continue
        own = G.scala_stage_trait(name)
        text = traits[own]
        parents = re.search(rf"trait {own} extends (.*) {{", text).group(1).split(" with ")
        declared = {}
        for trait in [own] + parents:
            for val, decl in _scala_vals(traits[trait]).items():
                assert val not in declared, (name, val)
                declared[val] = decl
        assert sorted(declared) == sorted(table.names), name
        defaults = text.split("setDefault(", 1)[1]
        for opt in table.options:
            decl = declared[opt.name]
            scala_type = G._SCALA_TYPES[opt.type][0]
            assert decl.startswith(f'{opt.name}: {scala_type} = new {scala_type}(this, "{opt.name}",'), decl
            assert re.sub(r'" \+\n\s*"', "", decl).count(G._scala_string(opt.doc)) == 1, opt.name
            assert f"    {opt.name} -> {G._scala_literal(opt.scala_default, opt.type)}" in defaults, (name, opt.name)
    whisper = _scala_vals(traits["WhisperForCTCParams"])
    # the validators allow what Option.check allows: bounds, list sizes, string lengths, finite floats
    assert whisper["beamSize"].endswith("(x: Int) => x >= 1 && x <= 16)")
    assert whisper["maxNewTokens"].endswith("(x: Int) => x >= 0 && x <= 440)")
    assert whisper["temperature"].endswith(
        "(v: Array[Double]) => v.length <= 10 && v.forall((x: Double) => x >= 0.0 && x <= 2.0))"
    )
    assert whisper["task"].endswith('(x: String) => Array("transcribe", "translate").contains(x))')
    # the JVM stage decodes strategy=batch only: its default is batch, also over a pyspark-saved stage's
    strategy = P.stage_table("WhisperForCTC").option("strategy")
    assert (strategy.default, strategy.scala_default) == ("pack", "batch")
    assert 'strategy -> "batch",' in traits["WhisperForCTCParams"].split("setDefault(", 1)[1]
    assert 'def restoreJvmDefaults(): Unit = setDefault(strategy -> "batch")' in traits["WhisperForCTCParams"]
    assert (
        next(r for r in G.to_json()["stages"]["WhisperForCTC"]["params"] if r["name"] == "strategy")["jvm_default"]
        == "batch"
    )
    assert all(
        "jvm_default" not in r for t in G.to_json()["stages"].values() for r in t["params"] if r["name"] != "strategy"
    )
    assert whisper["initialPrompt"].endswith("(x: String) => x.codePointCount(0, x.length) <= 2000)")
    assert whisper["seed"].endswith("x <= 4294967295L)")  # beyond Int: a Long literal
    from sparkasr.options import Option

    unbounded = Option("gain", "float", 1.0, "a gain", minimum=0.0)
    assert G._scala_validator(unbounded) == "(x: Double) => x >= 0.0 && !x.isNaN && !x.isInfinite"
    assert G._scala_validator(Option("name", "string", "", "a name")) is None
    assert G._scala_literal([], "list<float>") == "Array.emptyDoubleArray"
    assert G._scala_literal('say "hi" \\ bye', "string") == '"say \\"hi\\" \\\\ bye"'


@pytest.mark.parametrize("cls", list(ENGINE_ONLY), ids=lambda c: c.__name__)
def test_every_engine_field_is_an_option_or_declared_engine_only(cls):
    assert set(engine_only_fields(cls)) == ENGINE_ONLY[cls]
    for opt in options_of(cls):
        # the dataclass default is the engine value of the param default
        assert getattr(cls(), opt.field) == opt.to_engine(opt.default), opt.name
        if opt.convert is None:  # beamWidth's 0 is the engine's 100 (one way)
            assert opt.from_engine(opt.to_engine(opt.default)) == opt.default, opt.name


def test_stage_params_are_exactly_the_table():
    from pyspark.ml.param import TypeConverters

    converters = {
        "string": TypeConverters.toString,
        "int": TypeConverters.toInt,
        "float": TypeConverters.toFloat,
        "bool": TypeConverters.toBoolean,
        "list<string>": TypeConverters.toListString,
    }
    classes = _stage_classes()
    assert set(classes) == set(P.stage_tables())
    for name, table in P.stage_tables().items():
        cls = classes[name]
        assert table.python_class == f"{cls.__module__}.{cls.__name__}"
        stage = cls()
        assert sorted(p.name for p in stage.params) == sorted(table.names), name
        sig = inspect.signature(cls.__init__)
        assert [p for p in sig.parameters if p != "self"] == table.names
        assert [p for p in inspect.signature(cls.setParams).parameters if p != "self"] == table.names
        for opt in table.options:
            param = getattr(stage, opt.name)
            assert param.doc == opt.doc
            if opt.type in converters:
                assert param.typeConverter is converters[opt.type], opt.name
            cap = opt.name[0].upper() + opt.name[1:]
            assert callable(getattr(stage, "set" + cap)) and callable(getattr(stage, "get" + cap)), opt.name
            if opt.default is not None:
                assert stage.getOrDefault(opt.name) == opt.default, opt.name


def _a_value(opt):
    """A valid value other than the default."""
    if opt.choices:
        return next(c for c in opt.choices if c != opt.default)
    return {
        "int": lambda d: (d or 0) + 2 if opt.maximum is None else min(opt.maximum, (d or 0) + 2),
        "float": lambda d: (d or 0.0) + 61.5 if opt.maximum is None else opt.maximum - 0.5,
        "bool": lambda d: not d,
        "string": lambda d: (d or "") + "x",
        "list<float>": lambda d: [0.0, 0.5],
        "list<string>": lambda d: ["alpha", "beta"],
        "list<int>": lambda d: [-1, 50],
    }[opt.type](opt.default)


@pytest.mark.parametrize(
    "cls,stage",
    [
        (WhisperOptions, "WhisperForCTC"),
        (RuntimeOptions, "WhisperForCTC"),
        (CTCOptions, "Wav2Vec2ForCTC"),
        (BeamOptions, "Wav2Vec2ForCTC"),
    ],
    ids=["whisper", "runtime", "ctc", "beam"],
)
def test_a_param_reaches_its_engine_field_through_keyword_and_setter(cls, stage):
    """Every engine option set on the stage (keyword or setter) arrives in the engine options."""
    stage_cls = _stage_classes()[stage]
    for opt in options_of(cls):
        if opt.name == "topP":  # 1.0 is its only valid value (CTranslate2 has no nucleus sampling)
            continue
        value = _a_value(opt)
        if opt.name == "strideLengthS":
            value = [1.0, 2.0]
            extra = {"chunkLengthS": 10.0}
        else:
            extra = {"beamWidth": 4} if cls is BeamOptions and opt.name != "beamWidth" else {}  # the beam on
        by_kw = stage_cls(**{opt.name: value}, **extra)
        by_setter = stage_cls(**extra)
        getattr(by_setter, "set" + opt.name[0].upper() + opt.name[1:])(value)
        for st in (by_kw, by_setter):
            engine = st._runtime() if cls is RuntimeOptions else st._options()
            if cls is BeamOptions:
                engine = engine.beam
            assert getattr(engine, opt.field) == opt.to_engine(value), (opt.name, value)


def test_bad_values_fail_naming_the_param_and_the_allowed_values():
    from sparkasr import AudioAssembler, WerEvaluator, WhisperForCTC

    with pytest.raises(
        ValueError, match=r"^WhisperForCTC: computeType must be one of default, auto, int8, .* \(got 'int3'\)$"
    ):
        WhisperForCTC(computeType="int3")
    with pytest.raises(ValueError, match=r"^WhisperForCTC: beamSize must be an integer in 1..16 \(got 0\)$"):
        WhisperForCTC().setBeamSize(0)
    with pytest.raises(ValueError, match=r"^WerEvaluator: metricName must be one of wer, cer, mer, wil \(got 'acc'\)$"):
        WerEvaluator(metricName="acc")
    with pytest.raises(ValueError, match=r"^AudioAssembler: channels must be an integer >= 1 \(got 0\)$"):
        AudioAssembler(channels=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'beamsize'"):
        WhisperForCTC(beamsize=2)
    with pytest.raises(TypeError):
        WhisperForCTC("positional")


def test_model_specific_options_are_checked_on_the_driver():
    from sparkasr import WhisperForCTC

    with pytest.raises(ValueError, match="language 'de' is not possible with tiny.en, an English-only model"):
        WhisperForCTC.pretrained().setLanguage("de").validateModel()
    with pytest.raises(ValueError, match="task 'translate' needs a multilingual model"):
        WhisperForCTC.pretrained().setTask("translate").validateModel()
    with pytest.raises(ValueError, match=r"language 'klingon' is not a language of base \(choices: en, zh, de"):
        WhisperForCTC.pretrained("base").setLanguage("klingon").validateModel()
    WhisperForCTC.pretrained("base").setLanguage("de").setTask("translate").validateModel()


def _transcribe_parser():
    import argparse

    from sparkasr import cli

    parser = argparse.ArgumentParser()
    cli._add_transcribe(parser.add_subparsers(dest="command"))
    return parser._subparsers._group_actions[0].choices["transcribe"]


def test_cli_flags_are_the_tables():
    sub = _transcribe_parser()
    flags = {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
    by_table = set()
    for opt in P.transcribe_options():
        if opt.cli_flag:
            by_table.add(opt.cli_flag)
            if opt.type == "bool":
                by_table.add("--no-" + opt.cli_flag[2:])
    assert flags - {"--help", "--config", "--print"} == by_table
    dests = {a.dest for a in sub._actions}
    assert {o.config_key for o in P.transcribe_options() if o.cli_flag} <= dests


def test_job_file_keys_are_the_tables():
    from sparkasr.job.config import KEYS, load_config

    text = (REPO / "conf" / "job.yaml").read_text()
    blocks = [b.splitlines() for b in text.split("\n\n")[1:]]  # after the header: doc lines, then the key
    keyed = []
    for block in blocks:
        line = next(ln for ln in block if not ln.startswith("# ") or ":" in ln and ln[2:].split(":")[0] in KEYS)
        commented = line.startswith("# ")
        key, _, value = line[2 if commented else 0 :].partition(":")
        keyed.append((commented, key, value))
    assert [k for _, k, _ in keyed] == list(KEYS)  # every key, once, in the table's order
    assert load_config(str(REPO / "conf" / "job.yaml")) == {
        "inputs": ["tests/data/librivox", "tests/data/cards"],
        "output": "out/job",
    }
    for commented, key, value in keyed:  # each commented default, uncommented, is the table's default
        if commented and value.strip():
            assert KEYS[key].check(yaml.safe_load(value)) == KEYS[key].default, key


def test_the_exported_json_is_the_table():
    proc = subprocess.run(
        [sys.executable, "-m", "sparkasr.generated", "--json"], capture_output=True, text=True, cwd=REPO, check=True
    )
    data = json.loads(proc.stdout)
    assert data == json.loads((REPO / G.JSON_SNAPSHOT).read_text())
    whisper = {p["name"]: p for p in data["stages"]["WhisperForCTC"]["params"]}
    assert whisper["beamSize"] == {
        "name": "beamSize",
        "type": "int",
        "default": 5,
        "doc": whisper["beamSize"]["doc"],
        "choices": None,
        "minimum": 1,
        "maximum": 16,
        "max_items": None,
        "max_length": None,
    }
    assert whisper["temperature"]["max_items"] == 10 and whisper["initialPrompt"]["max_length"] == 2000
    assert whisper["computeType"]["choices"][:3] == ["default", "auto", "int8"]
    assert whisper["temperature"]["default"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    for stage in data["stages"].values():
        for p in stage["params"]:
            assert p["type"] in ("string", "int", "float", "bool", "list<string>", "list<float>", "list<int>"), p


def test_engine_options_dataclasses_are_frozen_and_hashable():
    for cls in ENGINE_ONLY:
        assert dataclasses.fields(cls) and hash(cls()) == hash(cls())
