"""Speakers in a server answer: ``parameters.return_speakers: true`` (our extension of the Inference
API's request) diarizes the audio (:mod:`sparkasr.diarize`, the engine cached per process) and gives
each chunk of the timestamped answer a ``speaker``; it asks for segment timestamps when the request
has none."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..engines import cached_engine
from .protocol import RequestError

PARAMETER = "return_speakers"


def wants_speakers(parameters: Optional[Dict[str, Any]]) -> Tuple[Optional[Dict[str, Any]], bool]:
    """``parameters`` without ``return_speakers``, and whether it asked for speakers (422 when it is
    not a boolean)."""
    if not parameters or PARAMETER not in parameters:
        return parameters, False
    rest = {k: v for k, v in parameters.items() if k != PARAMETER}
    value = parameters[PARAMETER]
    if not isinstance(value, bool):
        raise RequestError(422, f"parameters.{PARAMETER} must be true or false (got {value!r})")
    if value and rest.get("return_timestamps") in (None, False):
        rest["return_timestamps"] = True  # speakers are given per chunk: chunks need times
    return rest, value


def _engine():
    from ..diarize import DiarizationEngine, DiarizationOptions, resolve_voice_encoder

    return cached_engine(("diarize", "serve"), lambda: DiarizationEngine(resolve_voice_encoder(), DiarizationOptions()))


def add_speakers(body: Dict[str, Any], item) -> Dict[str, Any]:
    """``body`` (a timestamped answer) with a ``speaker`` on each chunk and the ``speakers`` turns."""
    from ..diarize import assign_speakers

    (d,) = _engine().diarize_batch([item])
    if d.error:
        raise RequestError(500, d.error)
    chunks = body.get("chunks") or []
    who = assign_speakers([tuple(c["timestamp"]) for c in chunks], d.turns)
    out = dict(body)
    out["chunks"] = [{**c, "speaker": s} for c, s in zip(chunks, who)]
    out["speakers"] = [t.as_dict() for t in d.turns]
    return out
