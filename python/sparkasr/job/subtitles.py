"""SRT and WebVTT subtitles from timed chunks, following subtitle conventions (at most two lines of
42 characters and 7 s per cue, cut at sentence ends, punctuation and pauses by word timestamps),
and collision-free, traversal-free file names.

Chunks with a ``speaker`` (a diarized transcript) give cues of one speaker each, marked as each
format does: SRT names the speaker in brackets where the speaker changes (``[S1] ...``), WebVTT
puts every cue in a voice span (``<v S1>...``)."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, List, Optional, Sequence, Tuple

Cue = Tuple[float, float, str]  # start s, end s, text (a speaker's cue: "<speaker>\x1f<text>")
_SPEAKER_SEP = "\x1f"


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


MAX_LINE = 42  # characters per line (broadcast and streaming guidelines)
MAX_LINES = 2
MAX_CUE_S = 7.0  # seconds a cue stays on screen at most
MIN_CUE_S = 0.833  # ... and at least (five sixths of a second), when the next cue leaves room
LONG_PAUSE_S = 1.0  # a pause this long always ends a cue
_SENTENCE_END = (".", "?", "!", "…", '."', '?"', '!"')
_CLAUSE_END = (",", ";", ":", "—", "–", "-")

Word = Tuple[float, float, str]  # start s, end s, text


def _words(chunks: Iterable, speakers: Optional[List[Optional[str]]] = None) -> List[Word]:
    """Timed words from ``{text, timestamp: [start, end]}`` chunks: word chunks as they are; a chunk
    of several words (a segment) split into its words, its time shared out by their lengths.
    ``speakers``: filled with each word's chunk's ``speaker`` (None when it has none)."""
    out: List[Word] = []
    for c in chunks:
        text = (c["text"] if isinstance(c, dict) else c[0]).strip()
        ts = c["timestamp"] if isinstance(c, dict) else c[1]
        who = c.get("speaker") if isinstance(c, dict) else None
        start, end = float(ts[0]), float(ts[1])
        parts = text.split()
        if not parts:
            continue
        if speakers is not None:
            speakers.extend([who] * len(parts))
        if len(parts) == 1:
            out.append((start, max(end, start), parts[0]))
            continue
        total = sum(len(w) + 1 for w in parts)
        t = start
        for w in parts:
            d = (end - start) * (len(w) + 1) / total
            out.append((t, t + d, w))
            t += d
    return out


def wrap(text: str, width: int = MAX_LINE) -> List[str]:
    """``text`` as at most two lines of ``width`` characters when it fits: one line when short
    enough, else the split that keeps both lines within ``width``, preferring a break after
    punctuation, then balanced lines. Text that cannot fit in two lines is wrapped greedily."""
    if len(text) <= width:
        return [text]
    words = text.split()
    best, best_score = None, None
    for k in range(1, len(words)):
        a, b = " ".join(words[:k]), " ".join(words[k:])
        if len(a) > width or len(b) > width:
            continue
        score = abs(len(a) - len(b)) - (12 if a.endswith(_SENTENCE_END + _CLAUSE_END) else 0)
        if best_score is None or score < best_score:
            best, best_score = [a, b], score
    if best is not None:
        return best
    import textwrap

    return textwrap.wrap(text, width, break_long_words=True) or [text]


def _fits(words: Sequence[Word], max_line: int, max_lines: int, max_s: float) -> bool:
    return words[-1][1] - words[0][0] <= max_s and len(wrap(" ".join(w[2] for w in words), max_line)) <= max_lines


_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "prof.", "vs.", "etc.", "e.g.", "i.e.", "no."}


def _sentence_end(word: str, following: str) -> bool:
    """Whether a sentence ends after ``word`` (not an abbreviation such as "Mr.", and the next word
    does not go on in lower case)."""
    if not word.endswith(_SENTENCE_END) or word.lower() in _ABBREVIATIONS:
        return False
    return not following[:1].islower()


def _chars(words: Sequence[Word]) -> int:
    return len(" ".join(w[2] for w in words))


def _break_after(words: Sequence[Word], following: Word) -> int:
    """Where to end a cue that cannot take ``following``: the index of the word to end it after,
    the best of sentence ends, clause punctuation and pauses, fuller cues preferred."""
    best, best_score = len(words) - 1, float("-inf")
    for k in range(len(words)):
        nxt = words[k + 1] if k + 1 < len(words) else following
        text = words[k][2]
        score = (k + 1) / len(words)  # fill the cue
        score += 3.0 if _sentence_end(text, nxt[2]) else 2.0 if text.endswith(_CLAUSE_END) else 0.0
        score += 4.0 * min(max(nxt[0] - words[k][1], 0.0), 1.0)  # a pause
        if score > best_score:
            best, best_score = k, score
    return best


def cues_from_chunks(
    chunks: Iterable,
    max_line: int = MAX_LINE,
    max_lines: int = MAX_LINES,
    max_s: float = MAX_CUE_S,
    min_s: float = MIN_CUE_S,
) -> List[Cue]:
    """Subtitle cues from timed chunks (words, or segments split into words by length).

    Each cue holds at most ``max_lines`` lines of ``max_line`` characters (lines joined by a newline)
    and lasts at most ``max_s`` seconds; cues end at sentence ends and at pauses of
    ``LONG_PAUSE_S`` or more, and a cue too long for the next word ends at its best break (a
    sentence end, then clause punctuation, then the longest pause). A cue is shown for at least
    ``min_s`` when the next cue leaves room."""
    who: List[Optional[str]] = []
    words = _words(chunks, who)
    speaker_of = {id(w): s for w, s in zip(words, who)}
    groups: List[List[Word]] = []
    cur: List[Word] = []
    for w in words:
        if cur and (
            speaker_of[id(w)] != speaker_of[id(cur[-1])]
            or w[0] - cur[-1][1] >= LONG_PAUSE_S
            or (_sentence_end(cur[-1][2], w[2]) and (cur[-1][1] - cur[0][0] >= 1.0 or _chars(cur) >= 20))
        ):
            groups.append(cur)
            cur = []
        if cur and not _fits(cur + [w], max_line, max_lines, max_s):
            k = _break_after(cur, w)
            groups.append(cur[: k + 1])
            cur = cur[k + 1 :]
            if cur and not _fits(cur + [w], max_line, max_lines, max_s):  # the rest cannot take w either
                groups.append(cur)
                cur = []
        cur.append(w)
    if cur:
        groups.append(cur)
    cues: List[Cue] = []
    for g in groups:
        start, end = g[0][0], min(g[-1][1], g[0][0] + max_s)
        text = "\n".join(wrap(" ".join(x[2] for x in g), max_line))
        spk = speaker_of[id(g[0])]
        cues.append((start, end, f"{spk}{_SPEAKER_SEP}{text}" if spk else text))
    # a minimum time on screen, and never past the next cue's start: aligned words of neighbouring
    # windows can overlap by a few tenths of a second (pack strategy, tiny.en int8, AMD EPYC AVX2: 0.16 s)
    for i, (start, end, text) in enumerate(cues):
        nxt = cues[i + 1][0] if i + 1 < len(cues) else float("inf")
        cues[i] = (start, max(start, min(max(end, start + min_s), nxt)), text)
    return cues


def speaker_text(cue_text: str) -> Tuple[Optional[str], str]:
    """A cue's speaker (None when the transcript was not diarized) and its text."""
    if _SPEAKER_SEP in cue_text:
        spk, text = cue_text.split(_SPEAKER_SEP, 1)
        return spk, text
    return None, cue_text


def to_srt(cues: Sequence[Cue]) -> str:
    out, last = [], None
    for i, (start, end, raw) in enumerate(cues, 1):
        spk, text = speaker_text(raw)
        if spk is not None and spk != last:
            text = f"[{spk}] {text}"
        last = spk
        out.append(f"{i}\n{_ts(start, ',')} --> {_ts(max(end, start), ',')}\n{text}\n")
    return "\n".join(out)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    parts = []
    for s, e, raw in cues:
        spk, text = speaker_text(raw)
        text = f"<v {_vtt_escape(spk)}>{text}" if spk is not None else text
        parts.append(f"{_ts(s, '.')} --> {_ts(max(e, s), '.')}\n{text}\n")
    return "WEBVTT\n\n" + "\n".join(parts)


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
