"""What every caller of an engine shares: the one process-wide engine cache, the failure
isolation around an engine call, and the driving of an engine's steps (a long row transcribed in
steps that a server interleaves with other requests).

An engine (and its model) is built once per Python process for each distinct key, a hashable
value such as ``("whisper", model_dir, WhisperOptions, RuntimeOptions)`` or a Spark stage's
:class:`~sparkasr.spark.context.EngineSpec`. The Spark glue, LightPipeline, packing's inner
engines and the engine-level ``get_engine`` helpers all go through it, so a worker never loads the
same engine twice."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Generator, Hashable, List, Optional, Sequence, TypeVar

from .records import AudioItem, Transcript, error_transcript

log = logging.getLogger(__name__)

T = TypeVar("T")

#: engines kept per process; the least recently used beyond this are dropped (a server builds one
#: small engine per distinct request options; their models stay in the model cache)
MAX_ENGINES = 32

_ENGINES: OrderedDict[Hashable, Any] = OrderedDict()
_LOCK = threading.Lock()


def cached_engine(key: Hashable, build: Callable[[], Any]) -> Any:
    """The engine cached under ``key``, built with ``build()`` the first time."""
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = build()
            while len(_ENGINES) > MAX_ENGINES:
                _ENGINES.popitem(last=False)
        else:
            _ENGINES.move_to_end(key)
    return engine


def transcribe_isolating(engine, items: Sequence[AudioItem]) -> List[Transcript]:
    """``engine.transcribe_batch(items)``; when the call fails, the batch is split in halves and
    each half tried again, down to single items, so only the items that fail get an error
    (``model failed: ...``, naming the file) and the others keep their transcripts. Halving also
    gets a batch past a GPU out-of-memory error when smaller batches fit."""
    items = list(items)
    try:
        results = list(engine.transcribe_batch(items))
        if len(results) != len(items):
            raise RuntimeError(f"the engine returned {len(results)} results for {len(items)} inputs")
        return results
    except Exception as exc:
        if len(items) == 1:
            it = items[0]
            log.warning("model failed on %s", it.source or "<audio>", exc_info=True)
            return [error_transcript(it, f"model failed: {type(exc).__name__}: {exc}")]
        log.warning("model failed on a batch of %d (%s: %s); retrying in halves", len(items), type(exc).__name__, exc)
        mid = len(items) // 2
        return transcribe_isolating(engine, items[:mid]) + transcribe_isolating(engine, items[mid:])


def run_steps(steps: Generator[Any, None, T]) -> T:
    """Run a generator of steps to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def transcribe_steps(
    engine,
    item: AudioItem,
    around: Optional[Callable[[], ContextManager]] = None,
    group: Optional[Callable[[], int]] = None,
) -> Generator[Optional[Transcript], None, Transcript]:
    """``item`` through ``engine`` in steps: ``engine.transcribe_steps`` where the engine has it
    (a long row a piece or a window at a time), else one ``transcribe_batch`` call. ``around()``:
    a context manager each model call runs in (a server's turn-taking between requests);
    ``group()``: how many pieces the next step may decode batched (Whisper's pieces; engines whose
    steps are already batches ignore it). Never raises: a failure is the item's error
    transcript, as :func:`transcribe_isolating` gives it."""
    around = around or nullcontext
    steps = getattr(engine, "transcribe_steps", None)
    if steps is None:
        with around():
            return transcribe_isolating(engine, [item])[0]
    try:
        return (yield from steps(item, around, group=group))
    except Exception as exc:
        log.warning("model failed on %s", item.source or "<audio>", exc_info=True)
        return error_transcript(item, f"model failed: {type(exc).__name__}: {exc}")
