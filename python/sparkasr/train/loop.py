"""One training process of a fit (:func:`train_process`, what pyspark's ``TorchDistributor`` runs in
each process): Whisper in transformers, DDP across processes (gloo on CPU, NCCL on GPU), AdamW with
linear warm-up and decay, gradient accumulation and clipping, checkpoints, validation WER after each
epoch with early stopping, and the CTranslate2 export of the result. Process 0 reports progress
lines (step, loss, ETA), writes the checkpoints, validates and exports; it returns the fit's
:class:`~sparkasr.train.metrics.TrainingMetrics` as a dict.

The module imports torch only inside its functions: the estimator builds a :class:`TrainJob` on a
driver that may lack it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Dict, Optional

from .metrics import StepRecord, TrainingMetrics, ValidationRecord
from .options import TrainOptions
from .windows import IGNORE, Labeler

PREFIX = "sparkasr finetune:"


@dataclass(frozen=True)
class TrainJob:
    """Everything a training process needs (picklable; paths are seen by every process).

    ``base_model``: the CTranslate2 directory to start from (``base_name``: as the user named it);
    ``staged_dir``: :mod:`~sparkasr.train.staging`'s copy; ``work_dir``: checkpoints and per-epoch
    exports (``resume``: a checkpoint there is resumed); ``output_dir``: where process 0 writes the
    fitted model. ``return_files``: process 0 also returns the model's files (training on executors,
    whose disks the driver does not see)."""

    options: TrainOptions
    labeler: Labeler
    base_model: str
    base_name: str
    staged_dir: str
    work_dir: str
    output_dir: str
    resume: bool = False
    use_gpu: bool = False
    progress: bool = True
    return_files: bool = False


def fingerprint(job: TrainJob, data_fingerprint: str, world: int) -> Dict[str, str]:
    """What a checkpoint must share with a fit to be resumed by it: the rows, the base model, the
    options that shape training, and the number of processes. (More epochs or steps, other patience,
    threads or checkpoint interval may change between runs.)"""
    from ..paths import fingerprint as path_fingerprint

    free = {"epochs", "max_steps", "early_stopping_patience", "cpu_threads", "checkpoint_steps", "compute_type"}
    shaping = {k: v for k, v in asdict(job.options).items() if k not in free}
    shaping["language"], shaping["task"] = job.labeler.language, job.labeler.task

    def h(x) -> str:
        return hashlib.sha1(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()[:16]

    return {
        "rows": data_fingerprint[:16],
        "baseModel": path_fingerprint(os.path.join(job.base_model, "model.bin")),
        "options": h(shaping),
        "numProcesses": str(world),
    }


def _say(job: TrainJob, line: str) -> None:
    if job.progress:
        print(f"{PREFIX} {line}", flush=True)


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train_process(job: TrainJob) -> Optional[dict]:
    """Run one training process (rank from the ``RANK``/``WORLD_SIZE`` environment torchrun sets;
    a single process without it). Process 0 returns the metrics dict (plus ``files`` with
    ``return_files``); the others None."""
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    threads = job.options.cpu_threads or max(1, (os.cpu_count() or 1) // max(1, local_world))
    torch.set_num_threads(threads)
    device = torch.device(f"cuda:{local_rank}" if job.use_gpu else "cpu")
    if job.use_gpu:
        torch.cuda.set_device(device)
    if world > 1:
        # process 0 validates while the others wait at the next collective: allow a long validation
        dist.init_process_group("nccl" if job.use_gpu else "gloo", timeout=datetime.timedelta(hours=3))
    try:
        return _Trainer(job, rank, world, threads, device).run()
    finally:
        if world > 1:
            dist.destroy_process_group()


class _Trainer:
    def __init__(self, job: TrainJob, rank: int, world: int, threads: int, device):
        from .shards import StagedData
        from .weights import BaseWhisper

        self.job, self.opts = job, job.options
        self.rank, self.world, self.threads, self.device = rank, world, threads, device
        self.lead = rank == 0
        self.data = StagedData(job.staged_dir)
        self.base = BaseWhisper.open(job.base_model)
        self.fingerprint = fingerprint(job, self.data.fingerprint(), world)
        self.exports = os.path.join(job.work_dir, "exports")

    # -- collectives -----------------------------------------------------------------------------
    def _reduce(self, value: float, op: str = "sum") -> float:
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return float(t.item())

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def _broadcast_flag(self, flag: bool) -> bool:
        return self._reduce(1.0 if (flag and self.lead) else 0.0) > 0.5

    # -- setup -----------------------------------------------------------------------------------
    def _schedule(self):
        from .shards import steps_per_epoch

        per_epoch = [
            steps_per_epoch(self.data, e, self.world, self.opts, self.job.labeler) for e in range(self.opts.epochs)
        ]
        total = sum(per_epoch)
        if self.opts.max_steps:
            total = min(total, self.opts.max_steps)
        return per_epoch, total

    def _optimizer(self, model, total: int):
        import torch

        from .weights import trainable_parameters

        params = trainable_parameters(model, self.opts.freeze_encoder)
        ids = {id(p) for p in params}
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if id(p) not in ids:
                continue
            (no_decay if p.ndim < 2 or "layer_norm" in name or "embed_positions" in name else decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.opts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.opts.learning_rate,
        )
        warmup = min(self.opts.warmup_steps, max(total - 1, 0))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _metrics(self) -> TrainingMetrics:
        s = self.data.summary
        return TrainingMetrics(
            base_model=self.job.base_name,
            options=asdict(self.opts),
            num_processes=self.world,
            device="cuda" if self.job.use_gpu else "cpu",
            train_rows=len(self.data.train),
            validation_rows=len(self.data.validation),
            skipped=dict(s.skipped),
            skip_examples={k: list(v) for k, v in s.skip_examples.items()},
            threads=self.threads,
        )

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> Optional[dict]:
        import torch

        from . import checkpoints
        from .weights import load_hf_whisper, write_hf_side

        t0 = time.time()
        job, opts = self.job, self.opts
        torch.manual_seed(opts.seed)
        if not self.data.train:
            raise ValueError(
                "no training rows left after skipping the bad ones: " + json.dumps(self.data.summary.skipped)
            )
        model = load_hf_whisper(self.base).to(self.device)
        self.n_mels = int(model.config.num_mel_bins)
        per_epoch, total = self._schedule()
        if total == 0:
            raise ValueError(f"{len(self.data.train)} training rows give some of the {self.world} processes no window")
        optimizer, scheduler = self._optimizer(model, total)
        progress = checkpoints.Progress()
        metrics = self._metrics()
        meta = checkpoints.latest_meta(job.work_dir) if job.resume else None
        if meta is not None:
            diff = checkpoints.mismatch(meta, self.fingerprint)
            if diff:
                raise ValueError(f"the checkpoint in {meta['path']} is of another fit (differs in {', '.join(diff)})")
            progress = checkpoints.restore(meta, model, optimizer, scheduler)
            metrics = TrainingMetrics.from_dict(meta["metrics"])
            metrics.resumed_from_step = progress.step
            if self.lead:
                _say(job, f"resuming from the checkpoint at step {progress.step} (epoch {progress.epoch + 1})")
        if self.lead:
            os.makedirs(self.exports, exist_ok=True)
            self.hf_side = write_hf_side(self.base, os.path.join(job.work_dir, "hf"))
        validating = bool(self.data.validation)
        if validating and self.lead and not metrics.validation:
            wer = self._validate(self.base.path, 0, 0, metrics)
            _say(job, f"validation WER of the base model {wer:.4f} ({len(self.data.validation)} rows)")
        self._barrier()

        net = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[self.device.index] if job.use_gpu else None)
        self.elapsed0, self.t0 = metrics.train_seconds, t0
        while progress.epoch < opts.epochs and not progress.stopped and progress.step < total:
            epoch = progress.epoch
            n_steps = per_epoch[epoch]
            self._train_epoch(net, model, optimizer, scheduler, progress, metrics, n_steps, total)
            if progress.step >= total and progress.epoch_step < n_steps:
                # maxSteps ended the epoch early: the model of the part-epoch is validated too
                if validating and self.lead:
                    self._validate_epoch(model, progress, metrics, epoch + 1)
                break
            progress.epoch, progress.epoch_step = epoch + 1, 0
            metrics.epochs_completed = progress.epoch
            if validating:
                stop = False
                if self.lead:
                    stop = self._validate_epoch(model, progress, metrics, progress.epoch)
                progress.stopped = self._broadcast_flag(stop)
            if job.resume and self.lead:
                self._save(model, optimizer, scheduler, progress, metrics)
            self._barrier()
        return self._finish(model, progress, metrics, t0)

    def _save(self, model, optimizer, scheduler, progress, metrics) -> None:
        from . import checkpoints

        metrics.train_seconds = round(self.elapsed0 + time.time() - self.t0, 2)
        checkpoints.save(self.job.work_dir, model, optimizer, scheduler, progress, self.fingerprint, metrics)

    def _train_epoch(self, net, model, optimizer, scheduler, progress, metrics, n_steps, total) -> int:
        import torch

        from .shards import epoch_plan, iter_batches

        opts, job = self.opts, self.job
        plan = epoch_plan(self.data, progress.epoch, self.rank, self.world, opts, job.labeler)
        if self.lead:
            while len(metrics.windows_per_epoch) <= progress.epoch:
                metrics.windows_per_epoch.append(0)
            metrics.windows_per_epoch[progress.epoch] = (
                n_steps * opts.batch_size * opts.gradient_accumulation * self.world
            )
            metrics.utterances_per_window = round(sum(len(w.rows) for w in plan) / max(1, len(plan)), 2)
        per_step = opts.batch_size * opts.gradient_accumulation
        batches = iter_batches(self.data, plan, opts.batch_size, job.labeler, start=progress.epoch_step * per_step)
        stepped = 0
        started = time.time()
        while progress.epoch_step < n_steps and progress.step < total:
            t = time.time()
            loss_sum, n_windows = 0.0, 0
            for micro in range(opts.gradient_accumulation):
                batch = next(batches)
                for reason in batch.unreadable:
                    _say(job, f"skipped at training time: {reason}")
                sync = micro == opts.gradient_accumulation - 1 or self.world == 1
                ctx = net.no_sync() if (not sync and hasattr(net, "no_sync")) else contextlib.nullcontext()
                with ctx:
                    loss = self._loss(net, batch.windows)
                    (loss / opts.gradient_accumulation).backward()
                loss_sum += float(loss.detach()) * len(batch.windows)
                n_windows += len(batch.windows)
            if opts.max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], opts.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            progress.epoch_step += 1
            stepped += 1
            mean_loss = self._reduce(loss_sum) / max(1.0, self._reduce(float(n_windows)))
            seconds = time.time() - t
            if self.lead:
                metrics.steps.append(
                    StepRecord(progress.step, progress.epoch + 1, round(mean_loss, 5), lr, round(seconds, 3))
                )
                metrics.total_steps = progress.step
                rate = (time.time() - started) / stepped
                _say(
                    job,
                    f"step {progress.step}/{total} epoch {progress.epoch + 1}/{opts.epochs} loss {mean_loss:.4f} "
                    f"lr {lr:.2e} {seconds:.1f} s/step ETA {_eta(rate * (total - progress.step))}",
                )
            if (
                job.resume
                and opts.checkpoint_steps
                and progress.step % opts.checkpoint_steps == 0
                and progress.epoch_step < n_steps
            ):
                if self.lead:
                    self._save(model, optimizer, scheduler, progress, metrics)
                self._barrier()
        return stepped

    def _loss(self, net, windows):
        """Mean cross-entropy of the windows' label tokens. An empty batch (a process whose plan ran out
        before the others', or whose rows could not be read) runs a second of silence through the model
        and counts it zero times, so the process still joins DDP's gradient exchange."""
        import numpy as np
        import torch

        from ..convert.torch_whisper import log_mel
        from .windows import TrainWindow

        weight = 1.0
        if not windows:
            prompt = self.job.labeler.prompt(False)
            labels = [IGNORE] * (len(prompt) - 1) + [self.job.labeler.eot]
            windows, weight = [TrainWindow(np.zeros(16000, np.float32), prompt, labels, 0, False)], 0.0
        mel = log_mel([w.samples for w in windows], self.device, self.n_mels)
        width = max(len(w.decoder_input) for w in windows)
        pad = self.job.labeler.eot
        dec = torch.full((len(windows), width), pad, dtype=torch.long)
        lab = torch.full((len(windows), width), IGNORE, dtype=torch.long)
        for i, w in enumerate(windows):
            dec[i, : len(w.decoder_input)] = torch.tensor(w.decoder_input)
            lab[i, : len(w.labels)] = torch.tensor(w.labels)
        out = net(input_features=mel, decoder_input_ids=dec.to(self.device), labels=lab.to(self.device))
        return out.loss * weight

    # -- validation --------------------------------------------------------------------------------
    def _validate(self, model_dir: str, epoch: int, step: int, metrics: TrainingMetrics) -> float:
        """Decode the validation rows with the CTranslate2 model in ``model_dir`` (greedy with the
        stage's fallback, one row per call, on the CPU) and score them with the evaluator's counts. The model is loaded here and
        dropped after: every epoch's export is a new model at the same path, so the engines' model
        cache (by path) is not used."""
        from faster_whisper import WhisperModel

        from ..evaluation import ErrorCounts, pair_counts

        t = time.time()
        lab = self.job.labeler
        fw = WhisperModel(
            model_dir,
            device="cpu",
            compute_type=self.opts.compute_type,
            cpu_threads=self.threads,
            local_files_only=True,
        )
        total = ErrorCounts()
        rows = self.data.validation
        for i in range(0, len(rows), self.opts.validation_batch):
            chunk = rows[i : i + self.opts.validation_batch]
            audio = self.data.load(chunk)
            for r in chunk:
                samples, err, _src = audio[(r.file, r.row)]
                hyp = "" if samples is None else self._decode(fw, samples, lab)
                total += pair_counts(r.text, hyp, self.opts.normalizer)
        del fw
        wer = total.wer
        metrics.validation.append(
            ValidationRecord(
                epoch, step, round(wer, 6), total.errors, total.ref_len, len(rows), round(time.time() - t, 2)
            )
        )
        return wer

    @staticmethod
    def _decode(fw, samples, lab: Labeler) -> str:
        """One row as the stage decodes it (its default options: Whisper's quality checks and
        temperature fallback, so a decode that loops is retried), but greedy."""
        from ..whisper import WhisperOptions

        opts = WhisperOptions(language=lab.language if lab.multilingual else "en", task=lab.task, timestamps="none")
        kwargs = {**opts.fw_kwargs(), "beam_size": 1, "condition_on_previous_text": False}
        segments, _ = fw.transcribe(samples, **kwargs)
        return "".join(s.text for s in segments).strip()

    def _validate_epoch(self, model, progress, metrics, epoch: int) -> bool:
        """Export and validate the model after ``epoch`` epochs (the last one maybe cut short by
        maxSteps); keep the best export; True: stop early."""
        from .weights import export_ct2

        path = export_ct2(
            model, self.hf_side, self.base, os.path.join(self.exports, "candidate"), self.opts.compute_type
        )
        wer = self._validate(path, epoch, progress.step, metrics)
        best = progress.best_wer is None or wer < progress.best_wer
        base_wer = metrics.validation[0].wer if metrics.validation else float("nan")
        if best:
            progress.best_wer, progress.best_epoch, progress.epochs_without_gain = wer, epoch, 0
            best_dir = os.path.join(self.exports, "best")
            shutil.rmtree(best_dir, ignore_errors=True)
            os.replace(path, best_dir)
        else:
            progress.epochs_without_gain += 1
            shutil.rmtree(path, ignore_errors=True)
        metrics.best_epoch = progress.best_epoch
        _say(
            self.job,
            f"epoch {epoch} validation WER {wer:.4f} (base {base_wer:.4f}){' best so far' if best else ''}",
        )
        patience = self.opts.early_stopping_patience
        if patience and progress.epochs_without_gain >= patience and epoch < self.opts.epochs:
            metrics.stopped_early = True
            _say(self.job, f"stopping early: no lower validation WER in {patience} epochs")
            return True
        return False

    # -- the result ------------------------------------------------------------------------------
    def _finish(self, model, progress, metrics: TrainingMetrics, t0: float) -> Optional[dict]:
        from .weights import export_ct2

        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        peak = self._reduce(rss_mb, op="max")
        if not self.lead:
            return None
        out = self.job.output_dir
        best = os.path.join(self.exports, "best")
        if self.data.validation and os.path.isdir(best):
            _copy_dir(best, out)
        else:
            export_ct2(model, self.hf_side, self.base, out, self.opts.compute_type)
            metrics.best_epoch = progress.epoch
        metrics.total_steps = progress.step
        metrics.epochs_completed = progress.epoch
        metrics.train_seconds = round(self.elapsed0 + time.time() - t0, 2)
        metrics.peak_rss_mb = round(max(peak, metrics.peak_rss_mb), 1)
        metrics.write(out)
        _say(self.job, f"done: {metrics.summary()} -> {out}")
        result = metrics.to_dict()
        if self.job.return_files:
            result["files"] = {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))}
        return result


def _copy_dir(src: str, dst: str) -> None:
    tmp = dst.rstrip("/") + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.replace(tmp, dst)
