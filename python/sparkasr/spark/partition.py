"""The speech stages' ``mapInArrow`` partition function (:func:`make_partition_fn`): what every task
of ``WhisperForCTC``, ``Wav2Vec2ForCTC`` and ``HubertForCTC`` runs in its Python worker.

A worker unpickling the function imports what it refers to, and no more: this module, the engines'
builders (:mod:`.builders`) and what they use import neither pyspark.ml nor the stages, which a
worker does not need (~0.5 s of every fresh worker's start).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, List, Optional

from .. import annotation as A
from ..cells import cell_items, cell_source
from ..engines import transcribe_isolating
from ..job import progress
from ..records import AudioItem, Transcript, error_transcript
from .context import EngineSpec, task_engine
from .inputs import column_values, input_cells


class TaskTimes:
    """A task's time in reading and decoding its rows and in the engine's calls, reported to the
    job's profile when the task's input ends (:func:`~sparkasr.job.progress.report_span`)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.read = self.infer = 0.0
        self.rows = self.calls = 0

    def report(self) -> None:
        progress.report_span("task", time.perf_counter() - self.t0)
        progress.report_span("read and decode", self.read, self.rows)
        progress.report_span("inference", self.infer, self.calls)


def make_partition_fn(
    spec: EngineSpec,
    builder: Callable[[EngineSpec], Any],
    input_col: str,
    input_kind: str,
    output_col: str,
    chunks_col: Optional[str],
    path_col: Optional[str],
    batch_size: int,
    model_name: str,
    out_schema,
    offset_col: Optional[str] = None,
    error_col: Optional[str] = None,
    duration_col: Optional[str] = None,
):
    """Build the ``mapInArrow`` function (closure only over picklable values).

    ``duration_col`` (path input only) makes each row a slice of its file.

    Input columns go back to Spark as the Arrow arrays that came in (an audio column is never
    converted to Python objects); only the annotation columns are built here. ``out_schema`` is
    the output's Spark schema.
    """

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        # engines report how far into each file they are (the job's live progress; else a no-op)
        with progress.reporting(progress.task_address()):
            yield from _run(batches)

    def _run(batches: Iterator[Any]) -> Iterator[Any]:
        from .arrow import arrow_type

        names = [f.name for f in out_schema.fields]
        types = {f.name: arrow_type(f.dataType) for f in out_schema.fields if f.name in (output_col, chunks_col)}
        engine = None
        pending: List[Any] = []
        n_items = 0
        spent = TaskTimes()
        for batch in batches:
            t_read = time.perf_counter()
            rows_items: List[List[AudioItem]] = []
            cells = input_cells(batch.column(input_col), input_kind)
            paths = column_values(batch, path_col, len(cells))
            offsets = column_values(batch, offset_col, len(cells))
            errors = column_values(batch, error_col, len(cells))
            durations = column_values(batch, duration_col, len(cells))
            for cell, p, off, err, dur in zip(cells, paths, offsets, errors, durations):
                rows_items.append(
                    cell_items(cell, input_kind, cell_source(cell, input_kind, p), offset=off, error=err, duration=dur)
                )
            del cells
            pending.append((batch, rows_items))
            n_items += sum(len(r) for r in rows_items)
            spent.read += time.perf_counter() - t_read
            spent.rows += len(rows_items)
            if n_items >= batch_size:
                if engine is None:
                    engine = task_engine(spec, builder)
                yield from _flush(engine, pending, names, types, spent)
                pending, n_items = [], 0
        if pending:
            if engine is None and any(it.error is None for _, rows in pending for r in rows for it in r):
                engine = task_engine(spec, builder)
            yield from _flush(engine, pending, names, types, spent)
        spent.report()

    def _flush(engine, pending, names, types, spent):
        import pyarrow as pa

        from .arrow import replace_columns

        flat = [it for _, rows in pending for r in rows for it in r]
        live = [it for it in flat if it.error is None]
        results: List[Transcript] = []
        if live:
            for it in live:
                progress.advance(it.source, it.offset_s, it.offset_s + it.duration_s)
            t0 = time.perf_counter()
            results = transcribe_isolating(engine, live)
            spent.infer += time.perf_counter() - t0
            spent.calls += 1
            for it in live:
                progress.advance(it.source, it.offset_s + it.duration_s)
        it_res = iter(results)
        for batch, rows in pending:
            docs, chunks = [], []
            for items in rows:
                row_docs, row_chunks = [], []
                for k, it in enumerate(items):
                    t = next(it_res) if it.error is None else error_transcript(it, it.error)
                    row_docs.append(A.transcript_document(t, k, model_name))
                    row_chunks.extend(A.transcript_chunks(t, k))
                docs.append(row_docs)
                chunks.append(row_chunks)
            new = {output_col: pa.array(docs, type=types[output_col])}
            if chunks_col:
                new[chunks_col] = pa.array(chunks, type=types[chunks_col])
            yield replace_columns(batch, new, names)

    return run
