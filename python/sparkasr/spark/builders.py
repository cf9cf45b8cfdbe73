"""How a Python worker builds each speech stage's engine from its :class:`~sparkasr.spark.context.EngineSpec`.

The stages name these functions as their ``_build_engine``; a task's function refers to them, so
a worker imports this module, which imports neither pyspark.ml nor the stages.
"""

from __future__ import annotations

import os
from dataclasses import replace

from .context import EngineSpec, task_cpus
from .shipping import local_model_dir


def build_whisper_engine(spec: EngineSpec):
    """``WhisperForCTC``'s engine: CTranslate2 Whisper, ``spark.task.cpus`` threads unless set."""
    from ..job import progress
    from ..whisper import WhisperEngine
    from ..whisper.models import resolve_whisper_model

    path = local_model_dir(spec.model, resolver=lambda n: resolve_whisper_model(n).path)
    runtime = spec.runtime if spec.runtime.cpu_threads else replace(spec.runtime, cpu_threads=task_cpus())
    # how far into each long file the engine is: the job's live progress (a no-op outside a job)
    return WhisperEngine(path, spec.options, runtime, progress=progress.advance)


def build_ctc_engine(spec: EngineSpec):
    """``Wav2Vec2ForCTC``'s and ``HubertForCTC``'s engine: ONNX CTC, with the shipped LM if any."""
    from ..ctc.engine import CTCEngine

    path = local_model_dir(spec.model)
    opts = spec.options
    if not opts.num_threads:
        opts = replace(opts, num_threads=task_cpus())
    lm_file = dict(spec.extra).get("lm_file")
    if opts.beam is not None and lm_file:
        opts = replace(opts, beam=replace(opts.beam, kenlm_model_path=os.path.join(path, lm_file)))
    return CTCEngine(path, opts)
