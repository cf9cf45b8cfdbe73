"""Job configuration: a YAML file (``--config``), validated before Spark starts; flags override it.

The keys are the option table's (:func:`sparkasr.params.transcribe_options`: the job's own options
and every Whisper option, documented in ``conf/job.yaml``, which is generated from the table). An
unknown key or a bad value raises :class:`ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

from typing import Any, Dict

from ..options import Option
from ..params import JOB, diarizer_job_options, stage_table, transcribe_options, whisper_job_options


class ConfigError(ValueError):
    pass


#: job-file key -> option
KEYS: Dict[str, Option] = {o.config_key: o for o in transcribe_options()}
_JOB_KEYS = {o.config_key for o in JOB}


def validate(raw: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in raw.items():
        opt = KEYS.get(k)
        if opt is None:
            close = [n for n in KEYS if n.replace("_", "") == str(k).replace("_", "").replace("-", "")]
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{k}'{hint}; valid keys: {', '.join(KEYS)}")
        if v is None:
            continue
        try:
            out[k] = opt.check(v)
        except ValueError as exc:
            raise ConfigError(f"{source}: '{k}' {exc}") from None
        if k == "spark_conf" and not all(name.startswith("spark.") for name in out[k]):
            raise ConfigError(f"{source}: 'spark_conf' must map spark.* keys to values (got {v!r})")
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
    """Defaults < config file < command-line flags (flags that were not given are None). Stage
    options default to None here: unset, the stage's own default applies."""
    merged = {k: (opt.default if k in _JOB_KEYS else None) for k, opt in KEYS.items()}
    merged.update(file_values)
    merged.update(validate({k: v for k, v in flag_values.items() if v is not None}, "command line"))
    return merged


def _params(cfg: Dict[str, Any], options) -> Dict[str, Any]:
    return {o.name: cfg[o.config_key] for o in options if cfg.get(o.config_key) is not None}


def stage_params(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The WhisperForCTC params a merged job config sets (by param name)."""
    return _params(cfg, whisper_job_options())


def diarizer_params(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The SpeakerDiarizer params a merged job config sets (by param name)."""
    return _params(cfg, [o for o in diarizer_job_options() if o.name in stage_table("SpeakerDiarizer").names])


def identity_params(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The SpeakerIdentity params a merged job config sets (by param name)."""
    return _params(cfg, [o for o in diarizer_job_options() if o.name in stage_table("SpeakerIdentity").names])
