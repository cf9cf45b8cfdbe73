"""Fair scheduling between short and long requests: the long ones are transcribed in steps on a
lane of their own, and their model calls take turns with the short requests' engine calls.

A 60-minute upload transcribed in one engine call held the only worker for minutes while a
10-second request waited behind it. Here:

* :class:`LongLane`: a thread that transcribes the long requests (more than ``long_s`` seconds of
  audio) with :func:`sparkasr.engines.transcribe_steps` (the engine's own pieces: the same
  transcript as one call), a step of each long request in turn. A step is one piece while anyone
  else waits, and ``ALONE_GROUP`` pieces batched while the request is alone (a batch costs less
  per piece, as in the batch job, which batches all of a file's pieces).
* :class:`TurnGate`: every model call of the long lane (each encode, generate or alignment of a
  30-s piece: :func:`sparkasr.whisper.model.gated`) and every engine call of the short requests'
  worker takes a turn; the two sides alternate when both wait. A short request waits for at most
  one model call of a long one (of a group of its pieces when the short one arrived while the long
  one was alone), and a long one always moves on between two short batches. Model
  calls never overlap, so the cores are never shared by two of them.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generator, Hashable, Iterator, Optional

from ..engines import transcribe_steps
from ..records import AudioItem, Transcript

log = logging.getLogger(__name__)

SHORT, LONG = "short", "long"

#: pieces a long request's step decodes batched while nothing else waits: Whisper's default
#: ``batchSize``, one encoder call and one ``generate`` (a larger group would be cut into such
#: batches anyway, and would only make a request that arrives meanwhile wait longer for its turn)
ALONE_GROUP = 8


@dataclass
class Job:
    """One request's audio and options, its future, and (long requests) its steps once started."""

    options: Hashable  # (decoding options, runtime options or None)
    item: AudioItem
    future: cf.Future = field(default_factory=cf.Future)
    steps: Optional[Generator[Optional[Transcript], None, Transcript]] = None
    partial: Optional[Callable[[Transcript], None]] = None  # each finished piece of a long job
    background: bool = False  # an async job's input: below every request (LongLane.add_background)


class TurnGate:
    """Turns between the two sides, :data:`SHORT` and :data:`LONG`: one side at a time, and when
    both wait, the side that did not have the last turn goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: Optional[str] = None
        self._waiting: Dict[str, int] = {SHORT: 0, LONG: 0}
        self._last: Optional[str] = None
        self.turns: Dict[str, int] = {SHORT: 0, LONG: 0}

    @contextmanager
    def turn(self, side: str) -> Iterator[None]:
        other = LONG if side == SHORT else SHORT
        with self._cond:
            self._waiting[side] += 1
            while self._running is not None or (self._waiting[other] and self._last == side):
                self._cond.wait()
            self._waiting[side] -= 1
            self._running = side
            self.turns[side] += 1
        try:
            yield
        finally:
            with self._cond:
                self._running, self._last = None, side
                self._cond.notify_all()

    def long_call(self):
        """A context manager for one model call of the long lane."""
        return self.turn(LONG)

    def busy(self, side: str) -> bool:
        """Whether ``side`` has a turn or waits for one."""
        with self._cond:
            return self._running == side or self._waiting[side] > 0


class LongLane:
    """The long requests, transcribed in steps on one thread, a step of each in turn.
    ``engine_for(options)``: the engine for a job's options.

    Background work (the server's async jobs, :meth:`add_background`) is stepped only when no
    long request waits: it runs below the long requests, which take turns with the short ones."""

    def __init__(self, gate: TurnGate, engine_for: Callable[..., Any]):
        self.gate = gate
        self.engine_for = engine_for
        self._new: queue.Queue[Job] = queue.Queue()
        self._active: Deque[Job] = deque()
        self._background: Deque[Job] = deque()
        self.requests = 0
        self.background_requests = 0
        self.steps = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __len__(self) -> int:
        """Long requests waiting or in progress (background work not counted)."""
        return self._queued(False) + len(self._active)

    @property
    def background(self) -> int:
        """Background jobs waiting or in progress."""
        return self._queued(True) + len(self._background)

    def _queued(self, background: bool) -> int:
        with self._new.mutex:
            return sum(1 for j in self._new.queue if j.background == background)

    def add(self, job: Job) -> None:
        self.requests += 1
        self._new.put(job)

    def add_background(self, job: Job) -> None:
        """``job`` at the lowest priority (see the class docstring), whatever its length."""
        job.background = True
        self.background_requests += 1
        self._new.put(job)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sparkasr-serve-long", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take(block=not (self._active or self._background))
            if self._active:
                self._step(self._active)
            elif self._background:
                self._step(self._background)

    def _take(self, block: bool) -> None:
        try:
            job = self._new.get(timeout=0.5) if block else self._new.get_nowait()
        except queue.Empty:
            return
        while True:  # and any others that arrived meanwhile
            (self._background if job.background else self._active).append(job)
            try:
                job = self._new.get_nowait()
            except queue.Empty:
                return

    def _group(self) -> int:
        """How many pieces the step now starting may decode batched: ``ALONE_GROUP`` when its job
        is the only one in the lane and no short request has or waits for a turn, else 1 (a long
        request arriving meanwhile waits for the whole step, a short one for one model call)."""
        alone = len(self._active) + len(self._background) <= 1 and self._new.empty()
        return ALONE_GROUP if alone and not self.gate.busy(SHORT) else 1

    def _step(self, line: Deque[Job]) -> None:
        """One step of the job at the head of ``line`` (a piece of its audio, or a group of them:
        :meth:`_group`); it then goes to the back. (It stays in the line meanwhile: ``len`` counts it.)"""
        job = line[0]
        try:
            if job.steps is None:
                job.steps = transcribe_steps(self.engine_for(*job.options), job.item, self.gate.long_call, self._group)
            piece = next(job.steps)
        except StopIteration as done:
            line.popleft()
            job.future.set_result(done.value)
            return
        except Exception as exc:  # building the engine failed
            line.popleft()
            job.future.set_exception(exc)
            return
        self.steps += 1
        if piece is not None and job.partial is not None:
            try:
                job.partial(piece)
            except Exception:  # the listener's problem, not the job's
                log.warning("a partial result's listener failed", exc_info=True)
        line.rotate(-1)
