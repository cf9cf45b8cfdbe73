"""Text normalisers for WER/CER, applied identically to the reference and the hypothesis.

A normaliser is a picklable callable ``str -> str`` with a ``name``. Normalisers compose left to
right with ``+``::

    get_normalizer("basic")               # lower-case, punctuation -> space, collapse whitespace
    get_normalizer("whisper_en")          # Whisper's English normaliser (numbers, spellings, ...)
    get_normalizer("whisper_en+nospace")  # composition, applied left to right

Built-in names (see :data:`NORMALIZERS`):

``none``
    identity (jiwer's default tokenisation still applies: words are split on spaces).
``lower``
    Unicode case folding (``str.casefold``; ``"Straße"`` -> ``"strasse"``).
``punct``
    apostrophes inside words are dropped (``don't`` -> ``dont``); any other Unicode punctuation
    character (categories ``P*``) becomes a space.
``ws``
    collapse runs of Unicode whitespace to one space and strip the ends.
``nfkc``
    Unicode NFKC normalisation (full-width forms, ligatures, composed accents).
``basic``
    ``nfkc+lower+punct+ws``.
``whisper_en``
    Whisper's ``EnglishTextNormalizer`` (spelled-out numbers -> digits, British -> American
    spellings, contractions, fillers removed), from the maintained ``whisper-normalizer``
    package (an optional dependency: ``pip install whisper-normalizer``).
``whisper_basic``
    Whisper's multilingual ``BasicTextNormalizer`` (same package): lower-case, brackets and
    symbols removed, keeps diacritics.
``nodiacritics``
    remove diacritics: NFKD, combining marks dropped, NFC (``"Trés último año"`` -> ``"Tres ultimo
    ano"``). For references written without accents (the Spanish Asterisk prompts): compose it
    after the language's normaliser, e.g. ``whisper_basic+nodiacritics``.
``nospace``
    remove all whitespace. For CER on languages written without spaces (Chinese, Japanese,
    Thai) when one side is segmented and the other is not; makes WER meaningless.

Normalisers are looked up by name on each executor (instances are cached per process), so a
Spark job only ships the name string.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Callable, Iterable, List, Sequence, Union

__all__ = [
    "Normalizer",
    "Compose",
    "Identity",
    "Lower",
    "Punctuation",
    "Whitespace",
    "NFKC",
    "NoSpace",
    "NoDiacritics",
    "WhisperEnglish",
    "WhisperBasic",
    "FunctionNormalizer",
    "NORMALIZERS",
    "get_normalizer",
    "normalizer_name",
]


class Normalizer:
    """Base class: a named, picklable ``str -> str`` transformation."""

    name: str = "normalizer"

    def __call__(self, text: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __add__(self, other: NormalizerLike) -> Compose:
        return Compose([self, get_normalizer(other)])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Normalizer) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Identity(Normalizer):
    name = "none"

    def __call__(self, text: str) -> str:
        return text


class Lower(Normalizer):
    name = "lower"

    def __call__(self, text: str) -> str:
        return text.casefold()


# Apostrophe-like characters between two word characters are dropped ("don't" -> "dont");
# every other punctuation character becomes a space.
_APOSTROPHES = "'\u2019\u02bc\u2018`\u00b4"
_INWORD_APOS = re.compile(r"(?<=\w)[" + _APOSTROPHES + r"](?=\w)")


@functools.lru_cache(maxsize=65536)
def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


class Punctuation(Normalizer):
    name = "punct"

    def __call__(self, text: str) -> str:
        text = _INWORD_APOS.sub("", text)
        return "".join(" " if _is_punct(c) else c for c in text)


_WS = re.compile(r"\s+")


class Whitespace(Normalizer):
    name = "ws"

    def __call__(self, text: str) -> str:
        return _WS.sub(" ", text).strip()


class NFKC(Normalizer):
    name = "nfkc"

    def __call__(self, text: str) -> str:
        return unicodedata.normalize("NFKC", text)


class NoSpace(Normalizer):
    name = "nospace"

    def __call__(self, text: str) -> str:
        return _WS.sub("", text)


class NoDiacritics(Normalizer):
    name = "nodiacritics"

    def __call__(self, text: str) -> str:
        decomposed = unicodedata.normalize("NFKD", text)
        return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


class _WhisperBase(Normalizer):
    """Lazily built wrapper around a ``whisper_normalizer`` class (instances are expensive)."""

    _module = ""
    _cls = ""

    def __init__(self) -> None:
        self._impl = None

    def _load(self):
        try:
            mod = __import__(self._module, fromlist=[self._cls])
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"normaliser {self.name!r} needs the 'whisper-normalizer' package: pip install whisper-normalizer"
            ) from e
        return getattr(mod, self._cls)()

    def __call__(self, text: str) -> str:
        if self._impl is None:
            self._impl = self._load()
        return self._impl(text)

    def __getstate__(self):  # ship the name, rebuild on the executor
        return {}

    def __setstate__(self, state):
        self._impl = None


class WhisperEnglish(_WhisperBase):
    name = "whisper_en"
    _module = "whisper_normalizer.english"
    _cls = "EnglishTextNormalizer"


class WhisperBasic(_WhisperBase):
    name = "whisper_basic"
    _module = "whisper_normalizer.basic"
    _cls = "BasicTextNormalizer"


class FunctionNormalizer(Normalizer):
    """Wrap a user function ``str -> str`` (it must be picklable by cloudpickle for Spark)."""

    def __init__(self, fn: Callable[[str], str], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or "custom"

    def __call__(self, text: str) -> str:
        return self.fn(text)


class Compose(Normalizer):
    """Apply normalisers left to right; named ``"a+b+c"``."""

    def __init__(self, parts: Iterable[NormalizerLike]) -> None:
        flat: List[Normalizer] = []
        for p in parts:
            n = get_normalizer(p)
            if type(n) is Compose:  # flatten plain compositions; keep named aliases whole
                flat.extend(n.parts)
            elif isinstance(n, Identity):
                continue
            else:
                flat.append(n)
        self.parts: List[Normalizer] = flat

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(p.name for p in self.parts) if self.parts else "none"

    def __call__(self, text: str) -> str:
        for p in self.parts:
            text = p(text)
        return text


NORMALIZERS = {
    "none": Identity,
    "lower": Lower,
    "punct": Punctuation,
    "ws": Whitespace,
    "nfkc": NFKC,
    "nospace": NoSpace,
    "nodiacritics": NoDiacritics,
    "whisper_en": WhisperEnglish,
    "whisper_basic": WhisperBasic,
}

# Aliases expanding to compositions of built-ins.
_ALIASES = {
    "basic": ["nfkc", "lower", "punct", "ws"],
    "identity": ["none"],
    "whisper": ["whisper_en"],
    "whisper_english": ["whisper_en"],
}

NormalizerLike = Union[None, str, Normalizer, Callable[[str], str], Sequence]


@functools.lru_cache(maxsize=64)
def _from_name(spec: str) -> Normalizer:
    parts: List[Normalizer] = []
    for raw in spec.split("+"):
        key = raw.strip().lower()
        if not key:
            continue
        if key in _ALIASES:
            members = [NORMALIZERS[k]() for k in _ALIASES[key]]
            if len(members) == 1:
                parts.append(members[0])
            else:
                parts.append(_Named(Compose(members), key))
        elif key in NORMALIZERS:
            parts.append(NORMALIZERS[key]())
        else:
            raise ValueError(
                f"unknown normaliser {raw!r}; known: " + ", ".join(sorted(set(NORMALIZERS) | set(_ALIASES)))
            )
    parts = [p for p in parts if not isinstance(p, Identity)]
    if not parts:
        return Identity()
    if len(parts) == 1:
        return parts[0]
    return Compose(parts)


class _Named(Compose):
    """A composition that reports an alias name (``basic``) instead of its parts."""

    def __init__(self, inner: Compose, name: str) -> None:
        self.parts = list(inner.parts)
        self._alias = name

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._alias


def get_normalizer(spec: NormalizerLike = "basic") -> Normalizer:
    """Resolve a normaliser: a name (``"basic"``, ``"whisper_en+nospace"``), a :class:`Normalizer`,
    a plain function ``str -> str``, a list of any of these (composed), or ``None`` (identity)."""
    if spec is None:
        return Identity()
    if isinstance(spec, Normalizer):
        return spec
    if isinstance(spec, str):
        return _from_name(spec)
    if isinstance(spec, (list, tuple)):
        return Compose(spec)
    if callable(spec):
        return FunctionNormalizer(spec)
    raise TypeError(f"cannot make a normaliser from {spec!r}")


def normalizer_name(spec: NormalizerLike) -> str:
    """The name recorded in results for ``spec``."""
    return get_normalizer(spec).name
