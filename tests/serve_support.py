"""Helpers for the serving tests and ``bench/run_serve.py``: a server on loopback (in this process
or as the real ``sparkasr serve`` command), audio bodies, and WER."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    from sparkasr.evaluation import evaluate_pairs

    return evaluate_pairs(list(refs), list(hyps), "whisper_en").overall.wer


class ThreadServer:
    """uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app, timeout_s: float = 120.0):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class CommandServer:
    """``sparkasr serve ARGS`` as a subprocess on a free port; waits until the model is loaded."""

    def __init__(self, args: Sequence[str] = (), timeout_s: float = 300.0, log: Optional[Path] = None):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
        self.log_path = log
        self._log = open(log, "wb") if log else subprocess.DEVNULL
        cmd = [sys.executable, "-m", "sparkasr.cli", "serve", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen([*cmd, *args], env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sparkasr serve exited with {self.proc.returncode} (log: {log})")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).json()["status"] == "ready":
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"sparkasr serve did not become ready in {timeout_s} s (log: {log})")
            time.sleep(0.25)

    def rss_bytes(self) -> int:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def percentiles(values: List[float], qs=(50, 90, 95, 99)) -> dict:
    arr = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs} if arr.size else {}
