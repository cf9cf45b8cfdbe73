"""The model behind the server and the demo: resolved once, loaded in the background, called by one
worker thread that gathers concurrent requests into batches (dynamic batching).

* :func:`resolve_model`: any model ``sparkasr transcribe`` takes (the embedded default, ``base``,
  CTranslate2 / Hugging Face Whisper directories, hub ids when online) and CTC directories
  (``sparkasr convert`` output, or a Hugging Face CTC checkpoint, converted once).
* :class:`ModelService`: the options of the server (the option table's values, by param name),
  the options of one request built from them exactly as a Spark stage builds its engine options
  (:func:`sparkasr.options.engine_kwargs`), the background load, and :meth:`ModelService.submit`.
* The worker: requests wait in a bounded queue; the worker takes the first, gathers more for up
  to ``max_wait_ms`` (or until ``max_batch``), groups them by options and makes one
  :func:`~sparkasr.engines.transcribe_isolating` call per group on the cached engine
  (:func:`~sparkasr.engines.cached_engine`): the engine's own batching (``batchSize``) and
  packing (``strategy="pack"``) then apply across requests.
* Fair scheduling (:mod:`.scheduling`): a request with more than ``long_s`` seconds of audio
  goes to the long lane, a thread that transcribes it a piece at a time (a batch of pieces while
  nothing else waits); each of its model calls takes turns with the worker's engine calls
  (:class:`~.scheduling.TurnGate`), so a short request waits for at most one model call of a long
  one. Model calls still never overlap. Decoding the
  upload happens before, outside both threads (:mod:`.app`).
* :class:`ResultCache`: deterministic results keyed on the audio bytes and the options.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from ..engines import cached_engine, transcribe_isolating
from ..options import Option, engine_kwargs, options_of
from ..records import AudioItem, Transcript
from .protocol import WHISPER_MAPPING, RequestError, is_deterministic
from .scheduling import SHORT, Job, LongLane, TurnGate

log = logging.getLogger(__name__)

WHISPER, CTC = "whisper", "ctc"


@dataclass(frozen=True)
class Limits:
    """The server's own options (not job options): batching, queue, cache."""

    max_batch: int = 16  # requests gathered into one engine call
    max_wait_ms: float = 10.0  # how long the worker waits for more requests after the first
    max_queue: int = 256  # requests waiting for or in the engine; more are refused (429)
    cache_size: int = 1024  # results kept for x-use-cache (0 = no cache)
    long_s: float = 30.0  # requests with more audio are transcribed in steps, between short ones

    def __post_init__(self):
        if self.max_batch < 1 or self.max_queue < 1 or self.cache_size < 0 or self.max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, cache_size and max_wait_ms >= 0")
        if self.long_s <= 0:
            raise ValueError("long_s must be > 0")


@dataclass(frozen=True)
class ResolvedModel:
    kind: str  # whisper | ctc
    path: str  # a local directory the engine loads
    name: str  # what the model is called in responses and errors

    def weights_bytes(self) -> int:
        names = ("model.bin",) if self.kind == WHISPER else ("model.onnx",)
        return sum((Path(self.path) / n).stat().st_size for n in names if (Path(self.path) / n).is_file())


def _ctc_checkpoint_dir(path: str) -> bool:
    from ..ctc.checkpoint import ONNX_FILE, SUPPORTED_MODEL_TYPES

    p = Path(path)
    if not p.is_dir():
        return False
    if (p / ONNX_FILE).is_file():
        return True
    try:
        model_type = json.loads((p / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return False
    return model_type in SUPPORTED_MODEL_TYPES


def resolve_model(name: Optional[str]) -> ResolvedModel:
    """A model name or directory as the engine will load it; raises
    :class:`~sparkasr.whisper.models.ModelNotFoundError` / :class:`~sparkasr.ctc.CheckpointError` with the
    reason."""
    from ..whisper.models import resolve_whisper_model

    local = os.path.expanduser(name) if name else ""
    if local and _ctc_checkpoint_dir(local):
        from ..ctc.models import resolve_ctc_model

        return ResolvedModel(CTC, resolve_ctc_model(local), os.path.basename(os.path.abspath(local)))
    src = resolve_whisper_model(name)
    return ResolvedModel(WHISPER, src.path, src.name)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def engine_tables(kind: str) -> Tuple[type, ...]:
    """The engine option dataclasses of a model kind: decoding first, then runtime."""
    if kind == WHISPER:
        from ..whisper import RuntimeOptions, WhisperOptions

        return (WhisperOptions, RuntimeOptions)
    from ..ctc import CTCOptions

    return (CTCOptions,)


#: request-side name of each option a request can change (for error messages)
_REQUEST_NAMES = {option: f"generation_parameters.{name}" for name, option in WHISPER_MAPPING.items()}
_REQUEST_NAMES.update(temperature="generation_parameters.temperature", timestamps="parameters.return_timestamps")


class Overloaded(RuntimeError):
    """The request queue is full."""


class ResultCache:
    """A bounded LRU of response bodies keyed on (audio digest, options)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(audio: bytes, options: Hashable) -> Hashable:
        return (hashlib.sha256(audio).hexdigest(), options)

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Stats:
    requests: int = 0
    batches: int = 0
    batched_items: int = 0
    largest_batch: int = 0
    refused_full: int = 0
    batch_sizes: Dict[int, int] = field(default_factory=dict)


#: the server's defaults where they differ from the option table's (by param name). strategy: batch,
#: not pack: interactive requests come a few at a time, so packing has little to share a window
#: with, and the OpenAI routes' segment timestamps need Whisper's own segments (refused under pack)
SERVER_DEFAULTS: Dict[str, Any] = {"strategy": "batch"}


class ModelService:
    """One model, its options, the background load and the batching worker.

    ``values``: the server's option values by param name (flags given; :data:`SERVER_DEFAULTS`
    and the table's defaults fill the rest). ``runtime`` values (threads, device) apply to every request; the decoding
    values are what a request starts from."""

    def __init__(self, model: ResolvedModel, values: Optional[Dict[str, Any]] = None, limits: Limits = Limits()):
        self.model = model
        self.limits = limits
        tables = engine_tables(model.kind)
        self._options = {o.name: o for cls in tables for o in options_of(cls)}
        self.base: Dict[str, Any] = {name: SERVER_DEFAULTS.get(name, o.default) for name, o in self._options.items()}
        unknown = sorted(set(values or {}) - set(self.base))
        if unknown:
            raise ValueError(f"options {', '.join(unknown)} do not apply to the {model.kind} model {model.name}")
        self.base.update(values or {})
        for name, value in self.base.items():  # the server's own values, checked as the table checks them
            try:
                self.base[name] = self._options[name].check(value)
            except ValueError as exc:
                raise ValueError(f"{name} {exc}") from None
        if model.kind == WHISPER:
            from ..whisper import RuntimeOptions
            from ..whisper.models import check_whisper_options

            runtime = RuntimeOptions(**engine_kwargs(RuntimeOptions, self.base))
            if not runtime.cpu_threads:
                runtime = replace(runtime, cpu_threads=usable_cpus())
            self.runtime = runtime
            check_whisper_options(model.path, model.name, self.base["language"] or None, self.base["task"])
        else:
            self.runtime = None
            if not self.base["cpuThreads"]:
                self.base["cpuThreads"] = usable_cpus()
        self.default_options = self.options(self.base)
        self.cache = ResultCache(limits.cache_size)
        self.stats = Stats()
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=limits.max_queue)
        self.gate = TurnGate()
        self.long_lane = LongLane(self.gate, self.engine)
        self.ready: cf.Future = cf.Future()  # set when the model is loaded (or failed to load)
        self.load_started: Optional[float] = None
        self.load_s: Optional[float] = None
        self._worker: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # -- options -----------------------------------------------------------------------------

    @property
    def whisper(self) -> bool:
        return self.model.kind == WHISPER

    @property
    def timestamp_modes(self) -> Tuple[str, ...]:
        return tuple(self._options["timestamps"].choices or ())

    def check_value(self, name: str, value: Any) -> Any:
        """``value`` of option ``name`` checked as the table checks it, with exact types
        (``ValueError`` with the reason otherwise)."""
        return self._options[name].check(value, strict=True)

    def options(self, values: Dict[str, Any]):
        """The decoding options dataclass for ``values`` (by param name), checked as the table
        checks them, with exact types (a request's ``"2"`` is not an integer, nor is ``true``);
        :class:`RequestError` (422) naming the request's parameter otherwise."""
        checked = {}
        for name, value in values.items():
            try:
                checked[name] = self._options[name].check(value, strict=True)
            except ValueError as exc:
                raise RequestError(422, f"{_REQUEST_NAMES.get(name, name)} {exc}") from None
        cls = engine_tables(self.model.kind)[0]
        try:
            return cls(**engine_kwargs(cls, checked))
        except ValueError as exc:  # a rule across options: name the request's parameter it came from
            msg = str(exc)
            asked = [n for n in _REQUEST_NAMES if msg.startswith(n) and checked.get(n) != self.base.get(n)]
            raise RequestError(422, f"{_REQUEST_NAMES[asked[0]]}: {msg}" if asked else msg) from None

    def cacheable(self, options) -> bool:
        return self.limits.cache_size > 0 and is_deterministic(options if self.whisper else None)

    # -- loading -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if not self.ready.done():
            return "loading"
        return "failed" if self.ready.exception() is not None else "ready"

    def estimated_time(self) -> float:
        """Seconds until the model is expected to be loaded (the Inference API's
        ``estimated_time``): about 1 s plus the weights read at 150 MB/s, less the time spent."""
        expected = 1.0 + self.model.weights_bytes() / 150e6
        spent = time.monotonic() - self.load_started if self.load_started is not None else 0.0
        return round(max(0.1, expected - spent), 2)

    def engine(self, options, runtime=None):
        """The cached engine for ``options`` (and ``runtime``, default the server's; the model
        itself is loaded once per runtime)."""
        if self.whisper:
            from ..whisper import get_engine

            return get_engine(self.model.path, options, runtime or self.runtime)
        from ..ctc import CTCEngine

        return cached_engine(("ctc", self.model.path, options), lambda: CTCEngine(self.model.path, options))

    def load(self) -> None:
        """Load the model (the default options' engine) and start the worker; sets :attr:`ready`."""
        self.load_started = time.monotonic()
        try:
            self.engine(self.default_options)
        except Exception as exc:
            log.exception("loading %s failed", self.model.name)
            self.ready.set_exception(exc)
            return
        self.load_s = time.monotonic() - self.load_started
        self._worker = threading.Thread(target=self._run, name="sparkasr-serve-worker", daemon=True)
        self._worker.start()
        self.long_lane.start()
        self.ready.set_result(True)

    def start(self) -> threading.Thread:
        """:meth:`load` in a background thread (the server answers 503 meanwhile)."""
        t = threading.Thread(target=self.load, name="sparkasr-serve-load", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        self.long_lane.stop()

    # -- requests ----------------------------------------------------------------------------

    def background(self) -> Tuple[Any, Any]:
        """``(options, runtime)`` for the demo's live partials: work that must leave a core to the
        web server, on one thread fewer, and quick rather than best (Whisper: greedy, one
        temperature; a partial is replaced by the next one and by the final transcript, which is
        decoded with the server's own options)."""
        if self.whisper:
            quick = replace(self.default_options, beam_size=1, temperature=(0.0,))
            return quick, replace(self.runtime, cpu_threads=max(1, self.runtime.cpu_threads - 1))
        threads = max(1, self.default_options.num_threads - 1)
        return replace(self.default_options, num_threads=threads), None

    def submit(self, options, item: AudioItem, runtime=None, partial=None) -> cf.Future:
        """Queue ``item`` for transcription with ``options`` (and ``runtime``, default the
        server's); a future of its :class:`Transcript`. :class:`Overloaded` when the queue is full.
        ``partial(transcript)``: called from the long lane with each piece of a long item as it
        is done (a streamed answer)."""
        job = Job((options, runtime), item, partial=partial)
        try:
            if self._queue.qsize() + len(self.long_lane) >= self.limits.max_queue:
                raise queue.Full
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.refused_full += 1
            raise Overloaded(f"the server is busy: {self.limits.max_queue} requests are waiting") from None
        self.stats.requests += 1
        return job.future

    def transcribe(self, items: Sequence[AudioItem], options=None, timeout: Optional[float] = None) -> List[Transcript]:
        """Blocking: ``items`` through the same queue and worker as the HTTP requests (the demo)."""
        self.ready.result(timeout)
        futures = [self.submit(options or self.default_options, it) for it in items]
        return [f.result(timeout) for f in futures]

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def _gather(self) -> List[Job]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.limits.max_wait_ms / 1000.0
        while len(batch) < self.limits.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _is_long(self, job: Job) -> bool:
        return job.item.samples is not None and job.item.duration_s > self.limits.long_s

    def _run(self) -> None:
        while not self._stop.is_set():
            self._turn()

    def _turn(self) -> None:
        """The requests waiting (up to ``max_batch``, gathered for up to ``max_wait_ms``): the long
        ones handed to the long lane, the short ones grouped by options, each group one engine
        call in its turn at the gate."""
        groups: Dict[Hashable, List[Job]] = {}
        for job in self._gather():
            if not job.future.set_running_or_notify_cancel():
                continue
            if self._is_long(job):
                self.long_lane.add(job)
            else:
                groups.setdefault(job.options, []).append(job)
        for key, jobs in groups.items():
            with self.gate.turn(SHORT):
                self._call(key, jobs)

    def _call(self, key, jobs: List[Job]) -> None:
        s = self.stats
        s.batches += 1
        s.batched_items += len(jobs)
        s.largest_batch = max(s.largest_batch, len(jobs))
        s.batch_sizes[len(jobs)] = s.batch_sizes.get(len(jobs), 0) + 1
        try:
            results = transcribe_isolating(self.engine(*key), [j.item for j in jobs])
        except Exception as exc:  # building the engine failed: every job of the group gets the error
            for j in jobs:
                j.future.set_exception(exc)
            return
        for j, r in zip(jobs, results):
            j.future.set_result(r)

    def info(self) -> Dict[str, Any]:
        s = self.stats
        return {
            "status": self.state,
            "model": self.model.name,
            "kind": self.model.kind,
            "load_s": None if self.load_s is None else round(self.load_s, 3),
            "queued": self.queued,
            "long_lane": len(self.long_lane),
            "max_batch": self.limits.max_batch,
            "requests": s.requests,
            "batches": s.batches,
            "mean_batch": round(s.batched_items / s.batches, 3) if s.batches else 0.0,
            "largest_batch": s.largest_batch,
            "batch_sizes": {str(k): v for k, v in sorted(s.batch_sizes.items())},
            "refused_queue_full": s.refused_full,
            "long_requests": self.long_lane.requests,
            "long_steps": self.long_lane.steps,
            "background": self.long_lane.background,
            "background_requests": self.long_lane.background_requests,
            "cache": {"entries": len(self.cache), "hits": self.cache.hits, "misses": self.cache.misses},
        }


def option_flags() -> List[Option]:
    """The option table's options the server takes as flags: the Whisper options of
    ``sparkasr transcribe`` (:func:`sparkasr.params.transcribe_options`), decoding and runtime,
    with the server's own defaults (:data:`SERVER_DEFAULTS`)."""
    from ..params import transcribe_options
    from ..whisper import RuntimeOptions, WhisperOptions

    fields = {o.field for cls in (WhisperOptions, RuntimeOptions) for o in options_of(cls)}
    return [
        replace(o, default=SERVER_DEFAULTS[o.name]) if o.name in SERVER_DEFAULTS else o
        for o in transcribe_options()
        if o.field in fields
    ]
