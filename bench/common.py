"""Shared helpers for the benchmarks: corpus loading, WER, machine description, RSS, results files.

Everything here is plain Python (no Spark): the Spark benchmark imports it on the driver only.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
MODEL_LABEL = "Whisper tiny.en, CTranslate2 int8 (embedded default)"

if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))


# ---------------------------------------------------------------------------------------------
# WER: Whisper's English normaliser on both sides, counts through jiwer
# ---------------------------------------------------------------------------------------------

_NORM = None


def normalize(text: str) -> str:
    global _NORM
    if _NORM is None:
        from whisper_normalizer.english import EnglishTextNormalizer

        _NORM = EnglishTextNormalizer()
    return " ".join(_NORM(text or "").split())


def wer_counts(refs: Sequence[str], hyps: Sequence[str]) -> Dict[str, float]:
    """Corpus WER (errors / reference words) with S/D/I counts; empty normalised pairs skipped."""
    import jiwer

    assert len(refs) == len(hyps), (len(refs), len(hyps))
    r_all, h_all = [], []
    for r, h in zip(refs, hyps):
        rn, hn = normalize(r), normalize(h)
        if not rn:
            continue
        r_all.append(rn)
        h_all.append(hn if hn else "")
    if not r_all:
        return {"wer": float("nan"), "ref_words": 0}
    # jiwer refuses empty hypotheses in a list: score them as all-deletions by hand.
    s = d = i = n = 0
    nonempty = [(r, h) for r, h in zip(r_all, h_all) if h]
    for r, h in zip(r_all, h_all):
        if not h:
            d += len(r.split())
            n += len(r.split())
    if nonempty:
        out = jiwer.process_words([r for r, _ in nonempty], [h for _, h in nonempty])
        s += out.substitutions
        d += out.deletions
        i += out.insertions
        n += sum(len(r.split()) for r, _ in nonempty)
    return {"wer": round((s + d + i) / n, 5), "ref_words": n, "substitutions": s, "deletions": d, "insertions": i}


# ---------------------------------------------------------------------------------------------
# Machine description
# ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(mod: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return None


def git_revision() -> Optional[str]:
    """The commit the measured code is at, ``+dirty`` when tracked files other than the results
    (which an earlier benchmark of the same session rewrites) differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=20
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except Exception:
        return None


def machine() -> Dict[str, object]:
    import psutil

    java = None
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20).stderr.splitlines()[0]
    except Exception:
        pass
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "gpu": "none (this task is lent no GPU; the GPU target is measured by run_gpu.py where one is)",
        "versions": {
            m: _version(m)
            for m in (
                "faster-whisper",
                "ctranslate2",
                "pyspark",
                "numpy",
                "pandas",
                "pyarrow",
                "jiwer",
                "whisper-normalizer",
                "sparkasr",
            )
        },
        "model": MODEL_LABEL,
        "git": git_revision(),
    }


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def self_peak_rss_mb() -> float:
    """This process's peak RSS so far (Linux ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class RssSampler:
    """Samples RSS of given root pids and all their descendants every ``period`` seconds.

    ``classify(proc) -> role`` names each process (e.g. ``jvm``, ``python_worker``); the peak per
    role is the largest single-process RSS seen, ``<role>_sum`` the largest sum over that role.

    The same walk keeps each process's CPU time as last seen (``cpu_mark`` / ``cpu_since``): a
    process that exits keeps what it had used. Summing only the live processes at two instants
    lets a Spark Python worker that exits in between take its whole lifetime's CPU with it (the
    naive UDF's long-file CPU seconds came out negative that way).
    """

    def __init__(self, roots: Iterable[int], classify, period: float = 0.2):
        self.roots = list(roots)
        self.classify = classify
        self.period = period
        self.peaks: Dict[str, float] = {}
        self.cpu: Dict[tuple, float] = {}  # (pid, create_time) -> user + system seconds, last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def _sample(self) -> Dict[str, float]:
        """One walk of the process trees: record CPU times and RSS peaks; RSS summed per role."""
        import psutil

        sums: Dict[str, float] = {}
        for root in self.roots:
            try:
                p = psutil.Process(root)
                procs = [p] + p.children(recursive=True)
            except psutil.Error:
                continue
            for q in procs:
                try:
                    with q.oneshot():
                        role = self.classify(q)
                        rss = q.memory_info().rss / 2**20
                        key, t = (q.pid, q.create_time()), q.cpu_times()
                except psutil.Error:
                    continue
                with self._lock:  # the loop and cpu_mark/cpu_since both sample
                    self.cpu[key] = t.user + t.system
                    if role is not None:
                        self.peaks[role] = max(self.peaks.get(role, 0.0), rss)
                if role is not None:
                    sums[role] = sums.get(role, 0.0) + rss
        return sums

    def _loop(self):
        while not self._stop.is_set():
            for role, v in self._sample().items():
                key = role + "_sum"
                with self._lock:
                    self.peaks[key] = max(self.peaks.get(key, 0.0), v)
            self._stop.wait(self.period)

    def cpu_mark(self) -> Dict[tuple, float]:
        """CPU seconds per process now (for :meth:`cpu_since`)."""
        self._sample()
        with self._lock:
            return dict(self.cpu)

    def cpu_since(self, mark: Dict[tuple, float]) -> float:
        """CPU seconds all processes under the roots used since ``mark`` (exited ones included,
        up to their last sample)."""
        self._sample()
        with self._lock:
            return sum(v - mark.get(k, 0.0) for k, v in self.cpu.items())

    def result(self) -> Dict[str, float]:
        return {k: round(v, 1) for k, v in sorted(self.peaks.items())}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def rtfx(audio_s: float, wall_s: float) -> float:
    return round(audio_s / wall_s, 2) if wall_s > 0 else float("nan")


def write_result(name: str, payload: Dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def write_result_md(name: str, payload: Dict[str, object], render: Callable[[dict], str]) -> Path:
    """:func:`write_result`, then ``render`` of the written result as ``<name>.md`` beside it
    (rendered from the file, so the markdown shows exactly what the JSON holds)."""
    path = write_result(name, payload)
    md = path.with_suffix(".md")
    md.write_text(render(json.loads(path.read_text())))
    print(f"wrote {md}")
    return path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
