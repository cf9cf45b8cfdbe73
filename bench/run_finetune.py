"""Fine-tuning benchmark: Whisper tiny.en fine-tuned on the English Asterisk prompts with
``WhisperFineTuner`` (Spark local, TorchDistributor), scored before and after on held-out prompts
and on general English (the vendored pocketsphinx LibriVox/cards clips).

    scripts/fetch_eval_corpus.sh && python bench/run_finetune.py            # -> results/finetune.{json,md}
    python bench/run_finetune.py --quick       # a few steps on a few prompts: checks the script, not the model
    python bench/run_finetune.py --set asterisk-es --model base --name finetune_es   # Spanish with Whisper base

Split: the set's speech prompts are grouped by normalised reference text and each group goes to
the test part when the sha1 of its first prompt name (in name order) is 0 mod 5, so about 20 % of
the prompts are test and prompts with the same text fall on one side only. The rest is the
training part; ``--validation-fraction`` of it (by text, seeded) is the fit's validation rows
(early stopping on their WER).

Scored before and after, each file on its own (``WhisperEngine``, the stage's default decoding:
beam 5, CTranslate2 int8, ``--threads`` threads): WER with the set's normaliser on both sides, its
95 % bootstrap interval over files, and the paired difference after - before with its interval
(``sparkasr.evaluation.bootstrap_difference``, 10 000 resamples). Training: wall time of ``fit``
(staging, process start, training, validation, export), the peak RSS summed over the whole process
tree (driver, JVM, training processes; sampled every 0.5 s) and per training process. The load
average is recorded before and after: timings on a shared machine are indicative only.

Targets (issue 35): test WER at least 30 % lower (relative) with the paired interval below 0;
pocketsphinx WER not worse by more than 1 point; training at most 30 minutes and 6 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import eval_corpus  # noqa: E402
from sparkasr.evaluation import bootstrap_difference, bootstrap_rate, get_normalizer, pair_counts  # noqa: E402


def split(entries: Sequence[eval_corpus.Entry], normalizer: str) -> Tuple[List, List]:
    """(train, test): speech prompts grouped by normalised text; a group is test when the sha1 of its
    first prompt name is 0 mod 5."""
    norm = get_normalizer(normalizer)
    groups: Dict[str, List] = {}
    for e in sorted((e for e in entries if e.speech and e.reference.strip()), key=lambda e: e.name):
        groups.setdefault(norm(e.reference), []).append(e)
    train, test = [], []
    for members in groups.values():
        h = int(hashlib.sha1(members[0].name.encode()).hexdigest(), 16)
        (test if h % 5 == 0 else train).extend(members)
    return sorted(train, key=lambda e: e.name), sorted(test, key=lambda e: e.name)


def transcribe(model: str, entries, language: str, threads: int) -> Tuple[List[str], float]:
    """Each file on its own with the stage's default decoding; (texts, wall seconds)."""
    from sparkasr.audio import decode_audio
    from sparkasr.records import AudioItem
    from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
    from sparkasr.whisper.models import resolve_whisper_model

    path = resolve_whisper_model(model).path
    engine = WhisperEngine(
        path,
        WhisperOptions(language=language, timestamps="none"),
        RuntimeOptions(cpu_threads=threads),
    )
    items = [AudioItem(decode_audio(e.path), source=e.path) for e in entries]
    t = time.time()
    out = []
    for i in range(0, len(items), 8):
        out.extend(r.text for r in engine.transcribe_batch(items[i : i + 8]))
    return out, time.time() - t


def score(refs, before, after, normalizer: str) -> Dict[str, object]:
    a = [pair_counts(r, h, normalizer) for r, h in zip(refs, after)]
    b = [pair_counts(r, h, normalizer) for r, h in zip(refs, before)]
    rb, ra = bootstrap_rate(b), bootstrap_rate(a)
    diff = bootstrap_difference(a, b)
    return {
        "files": len(refs),
        "reference_words": sum(c.ref_len for c in b),
        "wer_before": round(rb.estimate, 5),
        "wer_before_ci95": [round(rb.low, 5), round(rb.high, 5)],
        "wer_after": round(ra.estimate, 5),
        "wer_after_ci95": [round(ra.low, 5), round(ra.high, 5)],
        "difference": round(diff.estimate, 5),
        "difference_ci95": [round(diff.low, 5), round(diff.high, 5)],
        "relative_change": round(diff.estimate / rb.estimate, 4) if rb.estimate else None,
    }


def _classify(proc):
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:
        return None
    if "java" in proc.name() or "org.apache.spark" in cmd:
        return "jvm"
    if "torch.distributed.run" in cmd or "torch_run_process_wrapper" in cmd:
        return "launcher"
    if "train.py" in cmd or "sparkasr" in cmd and "pyspark.daemon" not in cmd and proc.pid != os.getpid():
        return "trainer"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "python_worker"
    return "driver" if proc.pid == os.getpid() else "other"


def fine_tune(train, args, out_dir: str) -> Tuple[object, float, Dict[str, float], list]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from sparkasr.train import WhisperFineTuner

    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .appName("sparkasr-bench-finetune")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.createDataFrame([(e.path, e.reference) for e in train], "path string, reference string")
    tuner = WhisperFineTuner(
        inputCols=["path"],
        labelCol="reference",
        baseModel=args.model,
        language=args.language,
        epochs=args.epochs,
        maxSteps=args.max_steps,
        learningRate=args.learning_rate,
        batchSize=args.batch_size,
        gradientAccumulation=args.gradient_accumulation,
        warmupSteps=args.warmup_steps,
        freezeEncoder=args.freeze_encoder,
        validationFraction=args.validation_fraction,
        earlyStoppingPatience=args.patience,
        normalizer=args.normalizer,
        numProcesses=args.processes,
        cpuThreads=max(1, args.threads // args.processes),
        seed=args.seed,
    )
    load = [round(x, 2) for x in os.getloadavg()]
    with common.RssSampler([os.getpid()], _classify, period=0.5) as sampler, _TreeRss() as tree:
        t = time.time()
        model = tuner.fitToDirectory(df, out_dir)
        wall = time.time() - t
    spark.stop()
    return model, wall, {"total": round(tree.peak, 1), **sampler.result()}, load


class _TreeRss:
    """The peak of the RSS summed over this process and all its descendants (sampled every 0.5 s)."""

    def __init__(self):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0.0
            for q in [me] + me.children(recursive=True):
                try:
                    total += q.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.5)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="asterisk-en")
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--language", default="")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--gradient-accumulation", type=int, default=1)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--freeze-encoder", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="24 training prompts, 2 steps, 12 test prompts")
    p.add_argument("--name", default=None, help="results name (default finetune, finetune_quick)")
    p.add_argument("--keep", default=None, help="keep the fine-tuned model in this directory")
    args = p.parse_args(argv)
    language, normalizer = eval_corpus.set_info(args.set)
    args.language = args.language or ("" if args.model == "tiny.en" else language)
    args.normalizer = normalizer  # the validation WER's, as the test's
    entries = eval_corpus.load_set(args.set)
    train, test = split(entries, normalizer)
    general = eval_corpus.load_set("pocketsphinx") if language == "en" else []
    if args.quick:
        train, test, general = train[::16][:24], test[::8][:12], general[:4]
        args.max_steps, args.epochs, args.validation_fraction, args.batch_size = 2, 1, 0.0, 1
    name = args.name or ("finetune_quick" if args.quick else "finetune")
    common.log(f"{args.set}: {len(train)} training prompts, {len(test)} test prompts; load {os.getloadavg()}")
    lang = language if args.model != "tiny.en" else None
    before_test, t_before = transcribe(args.model, test, lang, args.threads)
    before_general, _ = transcribe(args.model, general, "en", args.threads) if general else ([], 0.0)
    common.log(f"before: transcribed in {t_before:.1f} s")
    out_dir = args.keep or tempfile.mkdtemp(prefix="sparkasr-bench-finetune-")
    model, wall, rss, load_before_fit = fine_tune(train, args, out_dir)
    metrics = model.getTrainingMetrics()
    common.log(f"fit: {wall:.1f} s; {metrics.summary()}")
    after_test, _ = transcribe(out_dir, test, lang, args.threads)
    after_general, _ = transcribe(out_dir, general, "en", args.threads) if general else ([], 0.0)
    result = {
        "set": args.set,
        "model": args.model,
        "normalizer": normalizer,
        "split": {
            "train_prompts": len(train),
            "test_prompts": len(test),
            "rule": "sha1(first name of a text group) % 5 == 0 -> test",
        },
        "options": {k: v for k, v in vars(args).items() if k not in ("keep", "name")},
        "test": score([e.reference for e in test], before_test, after_test, normalizer),
        "general_english": score([e.reference for e in general], before_general, after_general, "whisper_en")
        if general
        else None,
        "training": {
            "fit_wall_s": round(wall, 1),
            "train_seconds_in_processes": metrics.train_seconds,
            "steps": metrics.total_steps,
            "epochs_completed": metrics.epochs_completed,
            "best_epoch": metrics.best_epoch,
            "stopped_early": metrics.stopped_early,
            "windows_per_epoch": metrics.windows_per_epoch,
            "utterances_per_window": metrics.utterances_per_window,
            "validation_wer": metrics.validation_wer,
            "loss_first_last": [metrics.losses[0], metrics.losses[-1]] if metrics.losses else None,
            "skipped": metrics.skipped,
            "peak_rss_mb_process_tree": rss,
            "peak_rss_mb_training_process": metrics.peak_rss_mb,
            "load_avg_before_fit": load_before_fit,
        },
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "examples": [
            {"reference": e.reference, "before": b, "after": a}
            for e, b, a in list(zip(test, before_test, after_test))
            if b != a
        ][:15],
    }
    common.write_result(name, result)
    (common.RESULTS / f"{name}.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


def render(r: Dict[str, object]) -> str:
    def row(label, s):
        return (
            f"| {label} | {s['files']} | {s['wer_before']:.4f} [{s['wer_before_ci95'][0]:.4f}, {s['wer_before_ci95'][1]:.4f}] "
            f"| {s['wer_after']:.4f} [{s['wer_after_ci95'][0]:.4f}, {s['wer_after_ci95'][1]:.4f}] "
            f"| {s['difference']:+.4f} [{s['difference_ci95'][0]:+.4f}, {s['difference_ci95'][1]:+.4f}] "
            f"| {100 * (s['relative_change'] or 0):+.1f} % |"
        )

    t = r["training"]
    lines = [
        f"# Fine-tuning {r['model']} on {r['set']} (bench/run_finetune.py)",
        "",
        "| set | files | WER before [95 % CI] | WER after [95 % CI] | after - before [95 % CI] | relative |",
        "| --- | --- | --- | --- | --- | --- |",
        row(f"{r['set']} test", r["test"]),
    ]
    if r.get("general_english"):
        lines.append(row("pocketsphinx (general English)", r["general_english"]))
    lines += [
        "",
        f"Training: {t['fit_wall_s']:.0f} s wall for fit ({t['steps']} steps, {t['epochs_completed']} epochs, best epoch "
        f"{t['best_epoch']}, {t['utterances_per_window']} utterances per window); peak RSS {t['peak_rss_mb_process_tree']['total']:.0f} MB "
        f"(whole process tree: driver, JVM, Spark workers, training processes), {t['peak_rss_mb_training_process']:.0f} MB "
        f"the largest training process. Load average before the fit "
        f"{t['load_avg_before_fit']}, at the end {r['load_avg_at_end']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
