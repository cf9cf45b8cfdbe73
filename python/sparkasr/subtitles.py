"""SRT and WebVTT subtitles from timed chunks, and collision-free, traversal-free file names."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Sequence, Tuple

Cue = Tuple[float, float, str]  # start s, end s, text


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cues_from_chunks(chunks: Iterable, max_chars: int = 84, max_s: float = 7.0) -> list:
    """Cues from ``{text, timestamp: [start, end]}`` chunks (segments or words).

    Word chunks are grouped into lines of at most ``max_chars`` characters / ``max_s`` seconds.
    """
    cues: list = []
    cur_text, cur_start, cur_end = [], None, None
    for c in chunks:
        text = (c["text"] if isinstance(c, dict) else c[0]).strip()
        ts = c["timestamp"] if isinstance(c, dict) else c[1]
        start, end = float(ts[0]), float(ts[1])
        if not text:
            continue
        if cur_start is not None and (len(" ".join(cur_text + [text])) > max_chars or end - cur_start > max_s):
            cues.append((cur_start, cur_end, " ".join(cur_text)))
            cur_text, cur_start = [], None
        if cur_start is None:
            cur_start = start
        cur_text.append(text)
        cur_end = end
    if cur_text:
        cues.append((cur_start, cur_end, " ".join(cur_text)))
    return cues


def to_srt(cues: Sequence[Cue]) -> str:
    out = []
    for i, (start, end, text) in enumerate(cues, 1):
        out.append(f"{i}\n{_ts(start, ',')} --> {_ts(max(end, start), ',')}\n{text}\n")
    return "\n".join(out)


def to_vtt(cues: Sequence[Cue]) -> str:
    body = "\n".join(f"{_ts(s, '.')} --> {_ts(max(e, s), '.')}\n{t}\n" for s, e, t in cues)
    return "WEBVTT\n\n" + body


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(path: str, max_len: int = 80) -> str:
    """A file name for ``path``'s outputs: its base name made safe, plus a hash of the full path.

    No directory parts survive (no traversal), distinct paths never collide (the hash), and the
    result is stable across runs.
    """
    base = path.rstrip("/").rsplit("/", 1)[-1]
    base = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    base = _UNSAFE.sub("_", base).strip("._") or "audio"
    digest = hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{base[:max_len]}-{digest}"
