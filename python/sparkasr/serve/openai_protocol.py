"""OpenAI's audio API (``/v1/audio/transcriptions``, ``/v1/audio/translations``): its form fields read
into option values of the option table, and a transcript written in its response formats.

:func:`read_fields` checks every field a request sends (an unknown field or value is refused, never
ignored: :class:`OpenAIError`, 400, naming the field as ``param``) and returns a
:class:`OpenAIRequest`: the option values by param name (on top of the server's) and what the answer
looks like. :func:`render` writes a :class:`~sparkasr.records.Transcript` as ``json``, ``text``,
``srt``, ``vtt`` (the batch job's cue rules, :mod:`sparkasr.job.subtitles`) or ``verbose_json``
(the language by name, Whisper's segments with how each was decoded,
:class:`~sparkasr.records.SegmentInfo`, and the words); :func:`stream_event` the server-sent
events of ``stream=true``. Plain Python: no web framework here.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..options import shown_value
from ..records import Chunk, Transcript
from .protocol import RequestError

TRANSCRIPTIONS, TRANSLATIONS = "transcribe", "translate"
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
TEXT_MEDIA = {"text": "text/plain", "srt": "text/plain", "vtt": "text/vtt"}

#: the form fields of each route (``timestamp_granularities`` as the clients send it, with ``[]``)
FIELDS = {
    TRANSCRIPTIONS: (
        "file",
        "model",
        "language",
        "prompt",
        "temperature",
        "response_format",
        "timestamp_granularities[]",
        "stream",
    ),
    TRANSLATIONS: ("file", "model", "prompt", "temperature", "response_format"),
}
#: fields of OpenAI's API that these routes refuse, and why
REFUSED = {
    "include[]": "token log-probabilities are not returned (include[] is not supported)",
    "chunking_strategy": "long audio is always cut at quiet points by the server (chunking_strategy is not supported)",
    "known_speaker_names[]": "speaker references are not supported",
    "known_speaker_references[]": "speaker references are not supported",
}
#: form limits: values (other than the file) at most this many bytes, at most this many fields
MAX_FIELD_BYTES = 16 << 10
MAX_FIELDS = 32
#: OpenAI's temperature fallback: from the request's temperature up to 1.0 in these steps
TEMPERATURE_STEP = 0.2


class OpenAIError(RequestError):
    """A request refused with OpenAI's error body: ``{"error": {message, type, param, code}}``."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(status, message)
        self.param = param
        self.code = code


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


_CODES = {401: "invalid_api_key", 403: "invalid_api_key", 413: "request_too_large", 429: "rate_limit_exceeded"}


def error_body(status: int, message: str, param: Optional[str] = None, code: Optional[str] = None) -> Dict[str, Any]:
    return {
        "error": {"message": message, "type": error_type(status), "param": param, "code": code or _CODES.get(status)}
    }


@dataclass(frozen=True)
class OpenAIRequest:
    """What a request asks for: option values (by param name), the answer's format, the
    granularities of ``verbose_json``, whether it streams, and the task."""

    values: Dict[str, Any]
    response_format: str
    granularities: Tuple[str, ...]
    stream: bool
    task: str


def _one(form: Mapping[str, Sequence[Any]], name: str) -> Optional[str]:
    values = form.get(name) or []
    if len(values) > 1:
        raise OpenAIError(400, f"{name} was sent {len(values)} times", param=name)
    if not values:
        return None
    v = values[0]
    if not isinstance(v, str):
        raise OpenAIError(400, f"{name} must be a form value, not a file", param=name)
    return v


def _boolean(name: str, text: str) -> bool:
    v = text.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise OpenAIError(400, f"{name} must be true or false (got {shown_value(text)})", param=name)


def fallback_temperatures(t: float) -> List[float]:
    """OpenAI's rule for ``temperature``: decode at ``t``, and when Whisper's quality checks fail
    go up by :data:`TEMPERATURE_STEP` to 1.0 (openai-whisper's ``temperature_increment_on_fallback``)."""
    out, k = [], 0
    while t + k * TEMPERATURE_STEP <= 1.0 + 1e-9:
        out.append(round(t + k * TEMPERATURE_STEP, 6))
        k += 1
    return out


def read_fields(
    form: Mapping[str, Sequence[Any]],
    task: str,
    served: str,
    base: Dict[str, Any],
    whisper: bool,
    timestamp_modes: Sequence[str],
) -> OpenAIRequest:
    """The option values a request's form fields ask for, on top of ``base`` (the server's).

    ``form``: field name -> the values sent (the file among them as a non-string). ``served``:
    the model's name (``model`` must be it: 404 ``model_not_found`` otherwise). Values are checked
    here as OpenAI defines them; the caller checks them against the option table's bounds."""
    accepted = FIELDS[task]
    for name in form:
        if name in REFUSED:
            raise OpenAIError(400, REFUSED[name], param=name.rstrip("[]"))
        if name == "timestamp_granularities" and task == TRANSCRIPTIONS:
            continue  # clients that send the array without brackets
        if name not in accepted:
            raise OpenAIError(
                400, f"unknown field {shown_value(name, 40)} (accepted: {', '.join(accepted)})", param=name
            )
    if not form.get("file"):
        raise OpenAIError(400, "the audio 'file' field is missing", param="file")
    if len(form["file"]) > 1 or isinstance(form["file"][0], str):
        raise OpenAIError(400, "'file' must be one uploaded audio file", param="file")
    model = _one(form, "model")
    if model is None:
        raise OpenAIError(400, "the 'model' field is missing", param="model")
    if model != served:
        raise OpenAIError(
            404,
            f"The model {shown_value(model, 80)} does not exist: this server serves {served!r}",
            param="model",
            code="model_not_found",
        )
    values = dict(base)
    values["task"] = task
    fmt = _one(form, "response_format") or "json"
    if fmt not in FORMATS:
        raise OpenAIError(
            400,
            f"response_format must be one of {', '.join(FORMATS)} (got {shown_value(fmt, 40)})",
            param="response_format",
        )
    grans = list((form.get("timestamp_granularities[]") or []) + (form.get("timestamp_granularities") or []))
    for g in grans:
        if g not in GRANULARITIES:
            raise OpenAIError(
                400,
                f"timestamp_granularities must be word and/or segment (got {shown_value(g, 40)})",
                param="timestamp_granularities",
            )
    if grans and fmt != "verbose_json":
        raise OpenAIError(
            400, "timestamp_granularities needs response_format=verbose_json", param="timestamp_granularities"
        )
    granularities = tuple(g for g in GRANULARITIES if g in grans) or (("segment",) if fmt == "verbose_json" else ())
    stream_text = _one(form, "stream")
    stream = stream_text is not None and _boolean("stream", stream_text)
    if stream and fmt not in ("json", "text"):
        raise OpenAIError(400, "stream=true gives text events: response_format must be json or text", param="stream")

    language = _one(form, "language")
    prompt = _one(form, "prompt")
    temperature = _one(form, "temperature")
    if not whisper:
        for name, value in (("language", language), ("prompt", prompt)):
            if value:
                raise OpenAIError(400, f"{name} does not apply to a CTC model", param=name)
        if task == TRANSLATIONS:
            raise OpenAIError(400, "a CTC model cannot translate", param="model")
    if temperature is not None:
        try:
            t = float(temperature)
        except ValueError:
            t = float("nan")
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise OpenAIError(
                400, f"temperature must be a number in 0..1 (got {shown_value(temperature, 40)})", param="temperature"
            )
        if whisper:
            values["temperature"] = fallback_temperatures(t)
        elif t != 0:
            raise OpenAIError(400, "a CTC model does not sample: temperature must be 0", param="temperature")
    if language:
        values["language"] = language.strip().lower()
    if prompt is not None:
        values["initialPrompt"] = prompt

    # timestamps: what the answer needs, decoded no finer than that
    if fmt in ("srt", "vtt") or "word" in granularities:
        if "word" not in timestamp_modes:
            raise OpenAIError(400, "this model gives no word timestamps", param="response_format")
        values["timestamps"] = "word"
    elif "segment" in granularities:
        if "segment" not in timestamp_modes:
            raise OpenAIError(
                400,
                "a CTC model has no segments: ask for timestamp_granularities[]=word",
                param="timestamp_granularities",
            )
        values["timestamps"] = "segment"
    elif stream and "segment" in timestamp_modes:  # a delta per segment
        values["timestamps"] = "segment"
    else:
        values["timestamps"] = "none"
    if "segment" in granularities and base.get("strategy") == "pack":
        raise OpenAIError(
            400,
            "this server packs clips into shared windows (strategy=pack), which keeps no per-segment decoding "
            "details: ask for timestamp_granularities[]=word only",
            param="timestamp_granularities",
        )
    return OpenAIRequest(values, fmt, granularities, stream, task)


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


def _usage(t: Transcript) -> Dict[str, Any]:
    return {"type": "duration", "seconds": int(math.ceil(t.duration_s))}


def _segments(t: Transcript) -> List[Chunk]:
    """Whisper's segments of a transcript: its chunks (segment timestamps) or the segments its
    words belong to (word timestamps), in order."""
    if any(c.kind == "segment" for c in t.chunks):
        return [c for c in t.chunks if c.kind == "segment"]
    out: List[Chunk] = []
    seen = set()
    for w in t.chunks:
        s = w.segment
        if s is not None and id(s) not in seen:
            seen.add(id(s))
            out.append(s)
    return out


def segment_dict(i: int, c: Chunk) -> Dict[str, Any]:
    info = c.info
    if info is None:
        raise RequestError(500, f"segment {i} has no decoding details")
    return {
        "id": i,
        "seek": info.seek,
        "start": c.start,
        "end": c.end,
        "text": " " + c.text if c.text else "",
        "tokens": list(info.tokens),
        "temperature": info.temperature,
        "avg_logprob": info.avg_logprob,
        "compression_ratio": info.compression_ratio,
        "no_speech_prob": info.no_speech_prob,
    }


@functools.cache
def _language_names() -> Dict[str, str]:
    # Whisper's own table (openai-whisper's tokenizer.LANGUAGES, as transformers ships it):
    # faster-whisper keeps only the codes.
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return dict(LANGUAGES)


def language_name(code: Optional[str]) -> str:
    """The language as OpenAI's ``verbose_json`` names it: Whisper's English name in lower case
    (``"en"`` -> ``"english"``); ``""`` when unknown (a CTC model)."""
    if not code:
        return ""
    return _language_names().get(code, code)


def verbose(t: Transcript, req: OpenAIRequest) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "task": req.task,
        "language": language_name(t.language),
        "duration": round(t.duration_s, 3),
        "text": t.text,
    }
    if "segment" in req.granularities:
        body["segments"] = [segment_dict(i, c) for i, c in enumerate(_segments(t))]
    if "word" in req.granularities:
        body["words"] = [{"word": c.text, "start": c.start, "end": c.end} for c in t.chunks if c.kind == "word"]
    body["usage"] = _usage(t)
    return body


def render(t: Transcript, req: OpenAIRequest) -> Tuple[str, str]:
    """``(body, media type)`` of the answer in the request's ``response_format``."""
    fmt = req.response_format
    if fmt == "json":
        return json.dumps({"text": t.text, "usage": _usage(t)}, ensure_ascii=False), "application/json"
    if fmt == "verbose_json":
        return json.dumps(verbose(t, req), ensure_ascii=False), "application/json"
    if fmt == "text":
        return t.text + "\n", TEXT_MEDIA["text"]
    from ..job.subtitles import cues_from_chunks, to_srt, to_vtt

    cues = cues_from_chunks([c.as_dict() for c in t.chunks])
    return (to_srt(cues) if fmt == "srt" else to_vtt(cues)), TEXT_MEDIA[fmt]


def deltas(t: Transcript) -> List[str]:
    """The text deltas of a finished transcript: one per segment (the whole text when it has no
    segments)."""
    texts = [c.text for c in t.chunks if c.kind == "segment" and c.text]
    if not texts:
        return [t.text] if t.text else []
    return [x if i == 0 else " " + x for i, x in enumerate(texts)]


def stream_event(kind: str, text: str) -> bytes:
    """One server-sent event: ``transcript.text.delta`` (``text`` is the delta) or
    ``transcript.text.done`` (``text`` is the whole transcript)."""
    if kind == "delta":
        doc: Dict[str, Any] = {"type": "transcript.text.delta", "delta": text}
    else:
        doc = {"type": "transcript.text.done", "text": text}
    return b"data: " + json.dumps(doc, ensure_ascii=False).encode("utf-8") + b"\n\n"
