"""The staged rows in a training process: which rows each process trains on in an epoch, in which
windows and order (:func:`epoch_plan`), and the windows themselves, decoded bucket by bucket
(:func:`iter_batches`).

Every process reads the small index of every staged row, so each computes the same plan for every
process without talking to the others: per epoch the staged files are shuffled (``seed``, epoch) and
grouped into buckets of about ``bucket_rows`` training rows; a bucket's rows are shuffled and dealt
to the processes in turn; each process packs its rows of a bucket into windows and shuffles them.
Steps per epoch are the fewest any process can fill, so all take the same steps (DDP's lock-step).
A process holds the audio of at most two buckets of its rows at a time: memory is bounded by
``bucket_rows / numProcesses`` utterances (at most 30 s each), not by the data set.

Plans depend only on the staged index, the seed and the epoch, so a resumed fit replays the same
batches and skips the ones it already trained on without decoding them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .options import TrainOptions
from .staging import AUDIO_COLUMNS, StageSummary, decode_row, read_index, staged_files
from .windows import Labeler, TrainWindow, build_train_window, plan_train_windows


@dataclass(frozen=True)
class StagedRow:
    """A usable staged row: where it is (file, row in file) and what the index says of it."""

    file: int
    row: int
    key: int
    text: str
    duration_s: float
    n_tokens: int


@dataclass(frozen=True)
class PlannedWindow:
    """A window of an epoch's plan: its rows (in window order), the bucket they come from, and
    whether its labels carry timestamps."""

    bucket: int
    rows: Tuple[StagedRow, ...]
    timestamps: bool


class StagedData:
    """The staged copy of a fit's rows, as a training process sees it."""

    def __init__(self, directory: str):
        self.directory = directory
        self.summary = StageSummary.read(directory)
        self.kind = self.summary.kind
        self.files = staged_files(directory)
        self.train: List[StagedRow] = []
        self.validation: List[StagedRow] = []
        self.train_by_file: Dict[int, List[StagedRow]] = {}
        for f, table in enumerate(read_index(self.files)):
            cols = table.to_pydict()
            for i in range(table.num_rows):
                if cols["skip_kind"][i] is not None:
                    continue
                row = StagedRow(f, i, cols["key"][i], cols["text"][i], cols["duration_s"][i], cols["n_tokens"][i])
                if cols["validation"][i]:
                    self.validation.append(row)
                else:
                    self.train.append(row)
                    self.train_by_file.setdefault(f, []).append(row)
        self.validation.sort(key=lambda r: (r.key, r.text))

    def fingerprint(self) -> str:
        """A hash of the usable rows (keys, texts, sides): a checkpoint resumes only on the same rows."""
        h = hashlib.sha1()
        for side, rows in (("t", self.train), ("v", self.validation)):
            for key, text in sorted((r.key, r.text) for r in rows):
                h.update(f"{side}{key}:{text}\n".encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    # -- epochs --------------------------------------------------------------------------------
    def buckets(self, epoch: int, seed: int, bucket_rows: int) -> List[List[StagedRow]]:
        """The epoch's buckets of training rows, shuffled: the same on every process."""
        rng = random.Random(f"buckets/{seed}/{epoch}")
        files = sorted(self.train_by_file)
        rng.shuffle(files)
        out: List[List[StagedRow]] = []
        current: List[StagedRow] = []
        for f in files:
            current.extend(self.train_by_file[f])
            if len(current) >= bucket_rows:
                out.append(current)
                current = []
        if current:
            out.append(current)
        for rows in out:
            rows.sort(key=lambda r: (r.key, r.file, r.row))
            rng.shuffle(rows)
        return out

    # -- audio ---------------------------------------------------------------------------------
    def load(self, rows: Sequence[StagedRow]) -> Dict[Tuple[int, int], Tuple[Optional[object], Optional[str], str]]:
        """``(file, row) -> (samples, error, source)`` for ``rows``, each file read once."""
        import pyarrow.parquet as pq

        from ..spark.inputs import input_cells

        out = {}
        by_file: Dict[int, List[int]] = {}
        for r in rows:
            by_file.setdefault(r.file, []).append(r.row)
        for f, idx in sorted(by_file.items()):
            table = pq.read_table(self.files[f], columns=list(AUDIO_COLUMNS)).take(sorted(set(idx)))
            batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
            if batch is None:
                continue
            cells = input_cells(batch.column("audio"), self.kind)
            meta = {c: batch.column(c).to_pylist() for c in AUDIO_COLUMNS[1:]}
            for j, i in enumerate(sorted(set(idx))):
                out[(f, i)] = decode_row(
                    cells[j], self.kind, meta["source"][j], meta["offset_s"][j], meta["slice_s"][j], meta["error"][j]
                )
        return out


def epoch_plan(
    data: StagedData, epoch: int, rank: int, world: int, opts: TrainOptions, labeler: Labeler
) -> List[PlannedWindow]:
    """Process ``rank``'s windows of ``epoch`` (of ``world`` processes), in training order."""
    out: List[PlannedWindow] = []
    limit = labeler.max_text_tokens()
    for b, rows in enumerate(data.buckets(epoch, opts.seed, opts.bucket_rows)):
        mine = rows[rank::world]
        groups = plan_train_windows([r.duration_s for r in mine], [r.n_tokens for r in mine], limit, opts.pack)
        rng = random.Random(f"windows/{opts.seed}/{epoch}/{b}/{rank}")
        rng.shuffle(groups)
        for g in groups:
            out.append(PlannedWindow(b, tuple(mine[i] for i in g), rng.random() < opts.timestamp_fraction))
    return out


def windows_per_process(data: StagedData, epoch: int, world: int, opts: TrainOptions, labeler: Labeler) -> List[int]:
    """How many windows each process has in ``epoch``."""
    return [len(epoch_plan(data, epoch, r, world, opts, labeler)) for r in range(world)]


def steps_per_epoch(data: StagedData, epoch: int, world: int, opts: TrainOptions, labeler: Labeler) -> int:
    """Optimizer steps of ``epoch``: as many as the process with the fewest windows starts (its last
    step may be short), so every process takes the same steps."""
    per_step = opts.batch_size * opts.gradient_accumulation
    return min(-(-n // per_step) for n in windows_per_process(data, epoch, world, opts, labeler))


@dataclass
class WindowBatch:
    """The windows of one forward pass and the utterances that could not be read this time."""

    windows: List[TrainWindow]
    unreadable: List[str]


def iter_batches(
    data: StagedData, plan: Sequence[PlannedWindow], batch_size: int, labeler: Labeler, start: int = 0
) -> Iterator[WindowBatch]:
    """``plan``'s windows from window ``start`` on, ``batch_size`` at a time (the last batch may be
    short), their audio decoded a bucket at a time; then empty batches, for a process whose plan
    ran out before the others' (it joins their steps with a zero gradient)."""
    loaded: Dict[int, Dict] = {}
    for s in range(start - start % batch_size, len(plan), batch_size):
        windows, unreadable = [], []
        for w in plan[s : s + batch_size]:
            if w.bucket not in loaded:
                for old in [b for b in loaded if b < w.bucket]:
                    del loaded[old]
                loaded[w.bucket] = data.load([r for pw in plan if pw.bucket == w.bucket for r in pw.rows])
            audio = loaded[w.bucket]
            parts, texts = [], []
            for r in w.rows:
                samples, err, src = audio[(r.file, r.row)]
                if samples is None:
                    unreadable.append(err or src)
                else:
                    parts.append(samples)
                    texts.append(r.text)
            if parts:
                windows.append(build_train_window(parts, texts, labeler, w.timestamps))
        yield WindowBatch(windows, unreadable)
    loaded.clear()
    while True:
        yield WindowBatch([], [])
