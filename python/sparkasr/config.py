"""Job configuration: a YAML file (``--config``), validated before Spark starts; flags override it.

Every key is documented in :data:`KEYS` (and in ``conf/job.yaml``). An unknown key or a bad value
raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict


class ConfigError(ValueError):
    pass


def _str(v):
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty string")
    return v


def _pos_int(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("must be an integer >= 1")
    return v


def _nonneg_int(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("must be an integer >= 0")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _choice(*options):
    def check(v):
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v

    return check


def _str_list(v):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ValueError("must be a path or a list of paths")
    return v


def _temps(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if isinstance(v, str):
        v = [float(x) for x in v.split(",") if x.strip()]
    if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and x >= 0 for x in v):
        raise ValueError("must be a number >= 0 or a list of them")
    return [float(x) for x in v]


def _subs(v):
    if isinstance(v, str):
        v = [x.strip() for x in v.split(",") if x.strip()]
    if not isinstance(v, list) or not all(x in ("srt", "vtt") for x in v):
        raise ValueError("must be srt, vtt or both (list or comma-separated)")
    return v


def _spark_conf(v):
    if not isinstance(v, dict) or not all(isinstance(k, str) and k.startswith("spark.") for k in v):
        raise ValueError("must be a mapping of spark.* keys to values")
    return {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}


@dataclass(frozen=True)
class Key:
    check: Callable[[Any], Any]
    doc: str
    default: Any = None


KEYS: Dict[str, Key] = {
    "inputs": Key(_str_list, "audio files, directories, globs, URIs or manifests"),
    "output": Key(_str, "output directory"),
    "model": Key(_str, "tiny.en (embedded default), base, a local CTranslate2/HF Whisper dir, or a hub id", None),
    "format": Key(_choice("jsonl", "parquet"), "output record format", "jsonl"),
    "language": Key(_str, "language code; unset = detect", None),
    "task": Key(_choice("transcribe", "translate"), "transcribe or translate to English", None),
    "beam_size": Key(_pos_int, "beam size", None),
    "temperature": Key(_temps, "fallback temperatures", None),
    "initial_prompt": Key(_str, "decoder prompt", None),
    "max_new_tokens": Key(_pos_int, "max tokens per 30-s window", None),
    "timestamps": Key(_choice("none", "segment", "word"), "chunk timestamps", None),
    "batch_size": Key(_pos_int, "short rows decoded per model call", None),
    "compute_type": Key(_str, "CTranslate2 compute type (int8, float16, float32, ...)", None),
    "device": Key(_choice("cpu", "cuda", "auto"), "inference device", None),
    "threads": Key(_nonneg_int, "model threads per task (0 = spark.task.cpus)", None),
    "strategy": Key(_choice("batch", "sequential", "pack"), "batch (default; long files in <=30-s pieces decoded batched), sequential (faster-whisper's long-form algorithm) or pack (short utterances packed into shared windows)", None),
    "partitions": Key(_nonneg_int, "partitions to spread inputs over (0 = automatic)", 0),
    "master": Key(_str, "Spark master URL (ignored under spark-submit)", None),
    "subtitles": Key(_subs, "per-file subtitles to write: srt, vtt", []),
    "resume": Key(_bool, "skip inputs already transcribed with the same model and options", True),
    "quiet": Key(_bool, "no live progress (for schedulers)", False),
    "report": Key(_bool, "write the WER report when inputs have references", True),
    "spark_conf": Key(_spark_conf, "extra Spark settings (spark.* keys)", {}),
}


def validate(raw: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in raw.items():
        key = KEYS.get(k)
        if key is None:
            close = [n for n in KEYS if n.replace("_", "") == str(k).replace("_", "").replace("-", "")]
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{k}'{hint}; valid keys: {', '.join(KEYS)}")
        if v is None:
            continue
        try:
            out[k] = key.check(v)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: bad value for '{k}': {v!r} {exc}") from None
    return out


def load_config(path: str) -> Dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys to values")
    return validate(raw, source=path)


def merge(file_values: Dict[str, Any], flag_values: Dict[str, Any]) -> Dict[str, Any]:
    """Defaults < config file < command-line flags (flags that were not given are None)."""
    merged = {k: key.default for k, key in KEYS.items()}
    merged.update(file_values)
    merged.update({k: v for k, v in validate({k: v for k, v in flag_values.items() if v is not None}, "command line").items()})
    return merged
