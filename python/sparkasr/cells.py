"""One input cell → its audio: the single place where a row's audio is decoded and where a failure
is worded, for ``AudioAssembler``, the speech annotators, ``read_audio`` and ``LightPipeline``.

A cell is one of four kinds (the Spark glue tells them apart by column type,
:func:`sparkasr.spark.inputs.classify_input`; ``LightPipeline`` by Python type):

* :data:`INPUT_AUDIO`: Spark NLP ``audio`` annotations (``AudioAssembler`` output: samples at
  16 kHz mono plus metadata, possibly an upstream ``error``);
* :data:`INPUT_FLOATS`: float samples, at ``rate`` with ``channels`` interleaved channels;
* :data:`INPUT_BINARY`: an encoded file's bytes (``binaryFile``'s ``content``);
* :data:`INPUT_PATH`: a file path or ``file:`` URI, optionally a slice of it (``offset``,
  ``duration``: ``read_audio(samples=False)``'s references).

A failure is reported as ``"<source>: <reason>"`` (:func:`failure`), where the reason is an
:class:`~sparkasr.audio.AudioError`'s message or ``cannot read audio (<exception>)`` for anything
unexpected: no exception ever loses a row.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional

import numpy as np

from .audio import (
    SAMPLE_RATE,
    AudioError,
    decode_audio,
    decode_audio_slice,
    iter_audio_blocks,
    to_mono_16k,
    validate_samples,
)
from .paths import local_path
from .records import AudioItem, with_source

INPUT_AUDIO = "audio"  # array<struct<annotatorType, result: array<float>, metadata>> (Spark NLP AUDIO)
INPUT_BINARY = "binary"  # encoded file bytes (binaryFile's content)
INPUT_PATH = "path"  # a file path/URI readable from the Python worker
INPUT_FLOATS = "floats"  # array<float|double> samples


def failure(source: str, exc: BaseException) -> str:
    """How a failure to read ``source`` is reported: ``"<source>: <reason>"``."""
    reason = str(exc) if isinstance(exc, AudioError) else f"cannot read audio ({type(exc).__name__}: {exc})"
    return with_source(source, reason)


def cell_source(cell, kind: str, path=None) -> str:
    """What names a row's audio in metadata and errors: its ``pathCol`` value, else the input
    itself when it is a path, else ''."""
    return str(path) if path is not None else (str(cell) if kind == INPUT_PATH and cell is not None else "")


def decode_path(cell, offset: Optional[float] = None, duration: Optional[float] = None) -> np.ndarray:
    """The samples of a path cell: the whole file, or with ``duration`` (seconds, not null) the
    slice from ``offset`` that long, decoded by seeking (read_audio(samples=False)'s references)."""
    path = local_path(str(cell))
    if duration is None:
        return decode_audio(path, name=path, validate=False)
    start = int(round(float(offset or 0.0) * SAMPLE_RATE))
    return decode_audio_slice(path, start, int(round(float(duration) * SAMPLE_RATE)), name=path)


def decode_cell(
    cell,
    kind: str,
    source: str = "",
    *,
    offset: Optional[float] = None,
    duration: Optional[float] = None,
    rate: Optional[int] = SAMPLE_RATE,
    channels: int = 1,
) -> np.ndarray:
    """16 kHz mono float32 samples of one samples, binary or path cell (not validated: see
    :func:`~sparkasr.audio.validate_samples`). Raises :class:`AudioError` (or whatever a decoder
    raised) on failure."""
    if cell is None:
        raise AudioError("input is null")
    if kind == INPUT_FLOATS:
        if rate is None or int(rate) <= 0:
            raise AudioError(f"invalid sample rate {rate}")
        return to_mono_16k(np.asarray(cell, dtype=np.float32), int(rate), channels)
    if kind == INPUT_BINARY:
        return decode_audio(bytes(cell), name=source or None, validate=False)
    if kind == INPUT_PATH:
        return decode_path(cell, offset, duration)
    raise ValueError(f"decode_cell: unknown input kind {kind!r}")


def cell_blocks(cell, kind: str, source: str = "", raw_format=None) -> Iterator[np.ndarray]:
    """A binary or path cell decoded as a stream of 16 kHz mono blocks (``read_audio``: bounded
    memory for files of any length)."""
    if kind == INPUT_BINARY:
        if cell is None or len(cell) == 0:
            raise AudioError("empty file (0 bytes)")
        return iter_audio_blocks(bytes(cell), name=source or None, raw_format=raw_format)
    if kind == INPUT_PATH:
        return iter_audio_blocks(local_path(str(cell)), name=source or None, raw_format=raw_format)
    raise ValueError(f"cell_blocks: unknown input kind {kind!r}")


def cell_items(
    cell,
    kind: str,
    source: str = "",
    *,
    offset: Optional[float] = None,
    error: Optional[str] = None,
    duration: Optional[float] = None,
    rate: Optional[int] = SAMPLE_RATE,
    channels: int = 1,
) -> List[AudioItem]:
    """One input cell → its validated audio items (one per audio annotation), errors kept.

    ``offset``: where the row starts in its file (seconds; read_audio's ``offset_s``), added to the
    timestamps; an annotation's own ``offset_s`` metadata takes precedence. ``error``: the row could
    not be read upstream (read_audio's ``error``); it is reported as is and nothing is decoded.
    ``duration``: with a path cell, the row is the slice ``[offset, offset + duration)`` s of the
    file. ``rate``/``channels``: of float samples."""
    off = float(offset or 0.0)
    if error:
        return [AudioItem(None, source=source, offset_s=off, error=str(error))]
    if cell is None:
        return [AudioItem(None, source=source, offset_s=off, error="input is null")]
    if kind == INPUT_AUDIO:
        anns = list(cell)
        if not anns:
            return [AudioItem(None, source=source, error="no audio annotation in the input cell")]
        items = []
        for ann in anns:
            meta = dict(ann.get("metadata") or {})
            src = meta.get("source") or source
            at = float(meta["offset_s"]) if meta.get("offset_s") not in (None, "") else off
            if meta.get("error"):
                items.append(AudioItem(None, source=src, offset_s=at, error=meta["error"]))
            else:
                items.append(_item(ann.get("result"), INPUT_FLOATS, src, at))
        return items
    return [_item(cell, kind, source, off, offset=offset, duration=duration, rate=rate, channels=channels)]


def _item(cell, kind: str, source: str, at: float, **decode: Any) -> AudioItem:
    try:
        samples = decode_cell(np.zeros(0, np.float32) if cell is None else cell, kind, source, **decode)
        return AudioItem(validate_samples(samples), source=source, offset_s=at)
    except Exception as exc:  # never lose a row
        return AudioItem(None, source=source, offset_s=at, error=failure(source, exc))
