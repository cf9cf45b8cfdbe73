"""The Hugging Face Inference API's automatic-speech-recognition request, read into our options.

A request is raw audio bytes, or JSON ``{"inputs": "<base64 audio>", "parameters":
{"return_timestamps": bool, "generation_parameters": {...}}}``. :func:`parse_body` turns it into
the audio bytes and :func:`request_options` turns its parameters into option values of the option
table (:mod:`sparkasr.params`) by param name, on top of the server's own; the engine options are
then built from them as a Spark stage builds them (:func:`sparkasr.options.engine_kwargs`).

Every generation parameter of the spec is honoured or refused (:class:`RequestError`, 422, naming
it): those that map onto an option of the table are :data:`WHISPER_MAPPING` and ``temperature`` /
``do_sample``; those whose one value is what the engine always does (``use_cache=true``, ...) are
accepted with that value only (:data:`NEUTRAL`); the rest are refused with the reason
(:data:`UNSUPPORTED`). Plain Python: no web framework here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Tuple

from ..options import shown_value

#: the spec's generation parameters (``AutomaticSpeechRecognitionGenerationParameters``)
SPEC_GENERATION_PARAMETERS = (
    "do_sample",
    "early_stopping",
    "epsilon_cutoff",
    "eta_cutoff",
    "max_length",
    "max_new_tokens",
    "min_length",
    "min_new_tokens",
    "num_beam_groups",
    "num_beams",
    "penalty_alpha",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "use_cache",
)

#: generation parameter -> the Whisper option of the table it sets (by param name)
WHISPER_MAPPING = {
    "num_beams": "beamSize",
    "top_k": "topK",
    "top_p": "topP",
    "max_new_tokens": "maxNewTokens",
}

#: generation parameters with one accepted value: what the engine does anyway
NEUTRAL: Dict[str, Any] = {
    "use_cache": True,  # CTranslate2 always decodes with its key/value cache
    "num_beam_groups": 1,  # no diverse beam search groups
    "penalty_alpha": 0.0,  # no contrastive search
    "typical_p": 1.0,  # no typical sampling
    "epsilon_cutoff": 0.0,  # no truncation sampling
    "eta_cutoff": 0.0,
}

#: generation parameters CTranslate2's Whisper decoder cannot honour, and why
UNSUPPORTED = {
    "max_length": "it counts the decoder prompt; use max_new_tokens",
    "min_length": "the Whisper decoder has no minimum length",
    "min_new_tokens": "the Whisper decoder has no minimum length",
}

PARAMETERS = ("return_timestamps", "generation_parameters")

#: a request's JSON: at most this deep (the spec's is 3: body, parameters, generation_parameters)
MAX_JSON_DEPTH = 8
#: and at most this many values in all (arrays' and objects' members; the spec's has about 20)
MAX_JSON_VALUES = 256
_JSON_STRUCTURE = re.compile(rb"[\[\]{},]")


class RequestError(ValueError):
    """A request the server refuses: HTTP ``status`` and a message for ``{"error": ...}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """What a request asks for: the encoded audio, its parameters (``None`` when absent), and the
    legacy Inference API's ``options`` (``wait_for_model``, ``use_cache``: as the headers)."""

    audio: bytes
    parameters: Optional[Dict[str, Any]] = None
    wait_for_model: Optional[bool] = None
    use_cache: Optional[bool] = None


def _is_json(body: bytes, content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return True
    # No (or a generic) content type: a JSON object is told apart from audio by its first byte
    # (no audio container starts with '{'; headerless PCM is not accepted without a format).
    return media in ("", "application/octet-stream", "text/plain") and body.lstrip()[:1] == b"{"


def names(values: Iterable[Any], most: int = 5) -> str:
    """Names from a request for an error message: each cut short, at most ``most`` of them."""
    values = list(values)
    shown = ", ".join(shown_value(v, 40) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def check_json_shape(body: bytes) -> None:
    """:class:`RequestError` (400) for a JSON body nested deeper than :data:`MAX_JSON_DEPTH` or
    holding more than :data:`MAX_JSON_VALUES` values, before it is parsed: Python's parser
    recurses once per level (100 000 levels: a ``RecursionError``) and builds every value."""
    # outside the strings (escapes removed first, so every '"' left opens or closes one)
    outside = b"".join(body.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[0::2])
    depth = values = 0
    for token in _JSON_STRUCTURE.finditer(outside):
        c = token.group()
        if c in (b"[", b"{"):
            depth += 1
            values += 1
            if depth > MAX_JSON_DEPTH:
                raise RequestError(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        elif c in (b"]", b"}"):
            depth -= 1
        else:
            values += 1
        if values > MAX_JSON_VALUES:
            raise RequestError(400, f"the JSON body holds more than {MAX_JSON_VALUES} values")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_body(body: bytes, content_type: str = "") -> Request:
    """The request body as audio bytes and parameters; :class:`RequestError` (400) when it is
    neither audio bytes nor the spec's JSON object (nor a JSON of bounded size and depth)."""
    if not body:
        raise RequestError(400, "empty request body: send audio bytes, or JSON {'inputs': '<base64 audio>'}")
    if not _is_json(body, content_type or ""):
        return Request(bytes(body))
    check_json_shape(body)
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RequestError(400, f"the body is not valid JSON ({shown_value(str(exc), 200)[1:-1]})") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise RequestError(400, "a JSON body must be an object with 'inputs' (base64-encoded audio)")
    extra = sorted(set(doc) - {"inputs", "parameters", "options"})
    if extra:
        raise RequestError(422, f"unknown field(s) {names(extra)} (accepted: inputs, parameters)")
    legacy = doc.get("options") or {}
    if not isinstance(legacy, dict) or set(legacy) - {"wait_for_model", "use_cache"}:
        raise RequestError(422, f"'options' may hold wait_for_model and use_cache only (got {shown_value(legacy)})")
    for name, value in legacy.items():
        _want(f"options.{name}", value, bool)
    inputs = doc["inputs"]
    if not isinstance(inputs, str):
        raise RequestError(400, f"'inputs' must be a base64-encoded audio string (got {type(inputs).__name__})")
    try:
        audio = base64.b64decode(inputs, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"'inputs' is not valid base64 ({exc})") from None
    if not audio:
        raise RequestError(400, "'inputs' is empty: no audio")
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RequestError(422, f"'parameters' must be an object (got {type(params).__name__})")
    return Request(audio, params, legacy.get("wait_for_model"), legacy.get("use_cache"))


def _same(value: Any, expected: Any) -> bool:
    """``value == expected`` and of its kind: a boolean for a boolean, a number for a number."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return isinstance(value, (int, float)) and value == expected


def _want(name: str, value: Any, kind: type) -> Any:
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise RequestError(
            422, f"{name} must be {'a boolean' if kind is bool else 'a number'} (got {shown_value(value)})"
        )
    return value


def request_options(
    parameters: Optional[Dict[str, Any]], base: Dict[str, Any], whisper: bool, timestamp_modes: Tuple[str, ...]
) -> Dict[str, Any]:
    """The option values (by param name) a request asks for: ``base`` (the server's: every
    engine option's value, the table's default where no flag set it) overridden.

    ``whisper``: the model is Whisper (else CTC, which has no generation parameters but the
    neutral ones). ``timestamp_modes``: the engine's ``timestamps`` choices (for
    ``return_timestamps``). The values are checked by the caller when it builds the engine
    options; here only what the spec itself defines is checked."""
    values = dict(base)
    params = dict(parameters or {})
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise RequestError(422, f"unknown parameter(s) {names(unknown)} (accepted: {', '.join(PARAMETERS)})")
    ts = params.get("return_timestamps")
    if ts is not None:
        if ts is False:
            values["timestamps"] = "none"
        elif ts is True:  # the server's mode, or the engine's coarsest when the server has none
            if base.get("timestamps", "none") == "none":
                values["timestamps"] = "segment" if whisper else "word"
        elif isinstance(ts, str) and ts in timestamp_modes and ts != "none":
            values["timestamps"] = ts  # the transformers pipeline's return_timestamps="word"
        else:
            modes = ", ".join(m for m in timestamp_modes if m != "none")
            raise RequestError(
                422, f"parameters.return_timestamps must be true, false or one of {modes} (got {shown_value(ts)})"
            )
    gen = params.get("generation_parameters")
    if gen is None:
        return values
    if not isinstance(gen, dict):
        raise RequestError(422, f"parameters.generation_parameters must be an object (got {type(gen).__name__})")
    unknown = sorted(set(gen) - set(SPEC_GENERATION_PARAMETERS))
    if unknown:
        raise RequestError(
            422,
            f"unknown generation parameter(s) {names(unknown)} (the spec's: {', '.join(SPEC_GENERATION_PARAMETERS)})",
        )
    gen = {k: v for k, v in gen.items() if v is not None}  # clients send null for "not set"
    for name, neutral in NEUTRAL.items():
        if name in gen and not _same(gen.pop(name), neutral):
            raise RequestError(
                422,
                f"generation_parameters.{name} is not supported: the only value honoured is {json.dumps(neutral)}",
            )
    for name, why in UNSUPPORTED.items():
        if name in gen:
            raise RequestError(422, f"generation_parameters.{name} is not supported: {why}")
    if not whisper:
        if gen.get("do_sample") is False:
            gen.pop("do_sample")  # CTC decoding never samples
        if gen:
            raise RequestError(
                422,
                f"generation parameter(s) {', '.join(sorted(gen))} do not apply to a CTC model "
                "(it decodes without sampling or beams)",
            )
        return values
    return _whisper_generation(gen, values)


def _whisper_generation(gen: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    """Whisper's generation parameters onto the table's options (transformers' Whisper rules: a
    temperature > 0 samples, one temperature means no fallback)."""
    sample = gen.pop("do_sample", None)
    if sample is not None:
        _want("generation_parameters.do_sample", sample, bool)
    temp = gen.pop("temperature", None)
    if temp is not None:
        temp = _want("generation_parameters.temperature", temp, float)
        if temp < 0:
            raise RequestError(422, f"generation_parameters.temperature must be >= 0 (got {temp!r})")
    if sample is True:
        temp = 1.0 if temp is None else temp
        if temp == 0:
            raise RequestError(422, "generation_parameters.do_sample=true needs a temperature > 0 (got 0)")
        values["temperature"] = [temp]
    elif sample is False:
        if temp:
            raise RequestError(
                422, f"generation_parameters.temperature={temp!r} samples, which do_sample=false forbids"
            )
        values["temperature"] = [0.0]
    elif temp is not None:
        values["temperature"] = [temp]
    early = gen.pop("early_stopping", None)
    if early is not None and not (early is True and float(values["patience"]) == 1.0):
        raise RequestError(
            422,
            "generation_parameters.early_stopping is not supported except true: CTranslate2's beam search "
            "stops when num_beams hypotheses are finished (patience 1)",
        )
    temps = [float(t) for t in values["temperature"]]
    greedy_or_beam = 0.0 in temps
    if "num_beams" in gen and not greedy_or_beam:
        raise RequestError(
            422,
            "generation_parameters.num_beams applies to temperature-0 decoding; with sampling only "
            f"(temperature {temps}) Whisper draws best-of candidates instead of beams",
        )
    if "top_k" in gen and not any(t > 0 for t in temps):
        raise RequestError(
            422, "generation_parameters.top_k applies to sampling only (do_sample=true or temperature > 0)"
        )
    for name, option in WHISPER_MAPPING.items():
        if name in gen:
            values[option] = gen.pop(name)
    assert not gen, gen  # every spec name is handled above
    return values


def is_deterministic(whisper_options) -> bool:
    """Whether the same audio and options always give the same transcript (cacheable): no
    temperature above 0, so no sampling, not even in the fallback."""
    return whisper_options is None or not whisper_options.sampling
