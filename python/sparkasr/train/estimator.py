"""``WhisperFineTuner``: a pyspark.ml ``Estimator`` whose ``fit`` trains Whisper on a DataFrame of
(audio, reference text) and returns a ``WhisperForCTC`` carrying the fine-tuned weights.

``fit`` stages the rows (:mod:`.staging`: a Spark job writes them, checked, to Parquet under the
fit's working directory), runs the training processes with pyspark's ``TorchDistributor``
(:func:`.loop.train_process`: DDP, each process reading its shard of the staged rows), and returns
the model process 0 exported (CTranslate2, ``computeType``). Training metrics are on the model
(``getTrainingMetrics()``) and in ``training_metrics.json`` beside its weights.

The driver needs no torch in cluster mode; the machines that train need ``sparkasr[train]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Optional

from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsReadable

from ..options import engine_kwargs
from ..params import trainer_table
from ..spark.params import HasInputCols, HasReaderCols, declare_params
from ..spark.session import ParamsWritable, check_python_workers, is_connect
from .options import TrainOptions


@declare_params(trainer_table())
class WhisperFineTuner(Estimator, HasInputCols, HasReaderCols, DefaultParamsReadable, ParamsWritable):
    """Fine-tune Whisper on your own labelled audio.

    >>> tuner = WhisperFineTuner(inputCols=["path"], labelCol="reference", baseModel="tiny.en",
    ...                          epochs=3, validationFraction=0.1, numProcesses=2)
    >>> asr = tuner.fit(train_df)            # a WhisperForCTC with the new weights
    >>> asr.getTrainingMetrics().validation_wer

    Input: one audio column (``inputCols``) of any kind the speech stages take (``AudioAssembler``
    output, file paths, file bytes, 16-kHz samples; read_audio's path/offset/duration/error columns
    are honoured) and ``labelCol``, the text. Rows that cannot teach (unreadable or silent audio,
    an empty reference, audio over 30 s, a text that cannot be the audio's) are skipped and
    counted; the fit goes on.
    """

    def _options(self) -> TrainOptions:
        try:
            return TrainOptions(**engine_kwargs(TrainOptions, self._option_values()))
        except ValueError as exc:
            raise ValueError(f"WhisperFineTuner: {exc}") from None

    def _validate(self) -> None:
        self._options()

    def checkModel(self):
        """Resolve ``baseModel`` and check ``language``/``task`` against it, on the driver, so a bad
        combination fails here, naming the param; ``(ModelSource, Labeler)``."""
        from ..whisper.models import resolve_whisper_model
        from .windows import Labeler

        source = resolve_whisper_model(self.getBaseModel())
        if source.kind == "onnx-export":
            raise ValueError(
                f"WhisperFineTuner: baseModel {self.getBaseModel()} is an ONNX export; give a Whisper model"
            )
        opts = self._options()
        try:
            return source, Labeler.for_model(source.path, opts.language, opts.task)
        except ValueError as exc:
            raise ValueError(f"WhisperFineTuner: {exc}") from None

    # -- fit ---------------------------------------------------------------------------------------
    def _fit(self, dataset):
        return self.fitToDirectory(dataset, None)

    def fitToDirectory(self, dataset, path: Optional[str] = None, quiet: bool = False):
        """``fit``, writing the fitted model to the local directory ``path`` (replaced); by default
        ``<checkpointDir>/model``, else a new directory in sparkasr's model cache. ``quiet``: no
        progress lines from the training processes."""
        from ..spark.inputs import classify_input
        from ..spark.whisper import WhisperForCTC
        from ..whisper.models import models_cache_dir
        from .checkpoints import latest_meta, mismatch
        from .loop import TrainJob, fingerprint, train_process
        from .shards import StagedData, windows_per_process
        from .staging import stage_rows

        opts = self._options()
        cols = self.getInputCols()
        if len(cols) != 1:
            raise ValueError(f"WhisperFineTuner takes exactly one input column, got {cols}")
        audio_col, label_col = cols[0], self.getLabelCol()
        for what, c in (("input", audio_col), ("labelCol", label_col)):
            if c not in dataset.columns:
                raise ValueError(f"WhisperFineTuner: {what} column '{c}' not found; columns are {dataset.columns}")
        kind = classify_input(dataset.schema[audio_col].dataType)
        indicator = self.getValidationIndicatorCol() or None
        if indicator and indicator not in dataset.columns:
            raise ValueError(f"WhisperFineTuner: validationIndicatorCol '{indicator}' not found")
        source, labeler = self.checkModel()
        local = self.getLocalMode()
        checkpoint_dir = self.getCheckpointDir()
        if not local and not checkpoint_dir:
            raise ValueError("WhisperFineTuner: localMode=false needs checkpointDir, a path every executor reads")
        spark = dataset.sparkSession
        check_python_workers(spark)
        work = os.path.abspath(checkpoint_dir) if checkpoint_dir else tempfile.mkdtemp(prefix="sparkasr-finetune-")
        os.makedirs(work, exist_ok=True)
        try:
            if is_connect(spark) and local:
                _check_shared(spark, work)
            staged = os.path.join(work, "staged")
            summary = stage_rows(
                dataset,
                audio_col,
                kind,
                label_col,
                self._reader_cols(dataset, kind == "path"),
                indicator,
                opts.validation_fraction,
                opts.seed,
                labeler,
                opts.max_words_per_s,
                staged,
            )
            if summary.train_rows == 0:
                example = next((v[0] for v in summary.skip_examples.values() if v), "")
                raise ValueError(
                    f"WhisperFineTuner: no row to train on ({summary.validation_rows} validation rows; skipped: "
                    f"{summary.skipped or 'none'}{'; e.g. ' + example if example else ''})"
                )
            out = os.path.abspath(
                path
                or (
                    os.path.join(work, "model")
                    if checkpoint_dir
                    else str(models_cache_dir() / f"finetuned-{self.uid}-{time.strftime('%Y%m%d-%H%M%S')}")
                )
            )
            job = TrainJob(
                options=opts,
                labeler=labeler,
                base_model=source.path,
                base_name=self.getBaseModel(),
                staged_dir=staged,
                work_dir=work,
                output_dir=out if local else os.path.join(work, "model"),
                resume=bool(checkpoint_dir),
                use_gpu=self.getUseGpu(),
                progress=not quiet,
                return_files=not local,
            )
            n = self.getNumProcesses()
            data = StagedData(staged)
            windows = windows_per_process(data, 0, n, opts, labeler)
            if min(windows) == 0:
                raise ValueError(
                    f"WhisperFineTuner: {summary.train_rows} training rows make {sum(windows)} windows, too few for "
                    f"numProcesses={n} (each process needs one)"
                )
            if checkpoint_dir:
                meta = latest_meta(work)
                if meta is not None:
                    diff = mismatch(meta, fingerprint(job, data.fingerprint(), n))
                    if diff:
                        raise ValueError(
                            f"WhisperFineTuner: checkpointDir {checkpoint_dir} holds a fit of other "
                            f"{', '.join(diff)}; give a new checkpointDir (or delete it) to start over"
                        )
            from pyspark.ml.torch.distributor import TorchDistributor

            result = TorchDistributor(num_processes=n, local_mode=local, use_gpu=self.getUseGpu()).run(
                train_process, job
            )
            if not isinstance(result, dict):
                raise RuntimeError(f"the training processes returned no report ({result!r})")
            files = result.pop("files", None)
            if files is not None:
                _write_files(out, files)
        finally:
            if not checkpoint_dir:
                shutil.rmtree(work, ignore_errors=True)
        model = WhisperForCTC(
            modelSource=out,
            inputCols=[audio_col],
            outputCol=self.getOutputCol(),
            language=labeler.language if labeler.multilingual else "",
            task=labeler.task,
            # int8 is the stage's default; a model written in another type runs in it where the device allows
            computeType="int8" if opts.compute_type == "int8" else "default",
        )
        for p in ("pathCol", "offsetCol", "durationCol", "errorCol"):
            model._set(**{p: self.getOrDefault(p)})
        return model


def _check_shared(spark, work: str) -> None:
    """Spark Connect, localMode: the server's tasks write the staged copy that the training processes
    on this machine read, so the fit's directory must be one both see (a server on this machine, a
    shared mount); else one line saying what to give."""
    from ..job.run import SetupError, check_output_shared

    try:
        check_output_shared(spark, work)
    except SetupError:
        raise ValueError(
            f"WhisperFineTuner: on Spark Connect with localMode=true the training processes run on this machine and "
            f"read the rows the server stages in {work}, a directory the server does not see; give a checkpointDir "
            "that both see (a shared mount, /Volumes/... on Databricks), or localMode=false to train on the "
            "cluster's executors"
        ) from None


def _write_files(directory: str, files) -> None:
    tmp = directory.rstrip("/") + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name, data in files.items():
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
    if os.path.exists(directory):
        shutil.rmtree(directory)
    os.replace(tmp, directory)
