"""Helpers for the serving tests and ``bench/run_serve.py``: a server on loopback (in this process
or as the real ``sparkasr serve`` command), audio bodies, and WER."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

import httpx
import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]


def tiny_service(**values):
    """A ModelService on the embedded tiny.en that decodes deterministically unless `values` say
    otherwise, batching up to 8 requests for 10 ms (the serving tests' configuration)."""
    from sparkasr.serve.service import Limits, ModelService, resolve_model

    values.setdefault("temperature", [0.0])
    return ModelService(resolve_model(None), values, Limits(max_batch=8, max_wait_ms=10))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    from sparkasr.evaluation import evaluate_pairs

    return evaluate_pairs(list(refs), list(hyps), "whisper_en").overall.wer


class ThreadServer:
    """uvicorn serving ``app`` on a free loopback port in a background thread, with the servers'
    connection guards (``limits``: :class:`sparkasr.serve.connections.ConnectionLimits`)."""

    def __init__(self, app, timeout_s: float = 120.0, limits=None, **uvicorn_kwargs):
        import uvicorn

        from sparkasr.serve.connections import ConnectionLimits, uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(
            app,
            "127.0.0.1",
            self.port,
            limits or ConnectionLimits(),
            log_level="warning",
            lifespan="off",
            **uvicorn_kwargs,
        )
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


def load_requests(clips, n_good: int, n_bad: int, body_limit: int = 2 << 20):
    """(name, body, headers, expected status, reference) in a seeded shuffle: the clips as WAV,
    FLAC, 44.1-kHz stereo and base64 JSON, and bad inputs of every kind (``body_limit``: the
    server's --max-body-mb in bytes). No request is answered from the result cache."""
    rng = np.random.default_rng(7)
    good = []
    for i in range(n_good):
        wav, ref = clips[i % len(clips)]
        samples, rate = sf.read(wav, dtype="float32")
        kind = ("wav", "flac", "stereo44k", "json")[i % 4]
        if kind == "wav":
            body, headers = wav.read_bytes(), {}
        elif kind == "flac":
            body, headers = wav_bytes(samples, rate, fmt="FLAC"), {"content-type": "audio/flac"}
        elif kind == "stereo44k":
            up = soxr.resample(samples, rate, 44100)
            body, headers = wav_bytes(np.stack([up, up], axis=1), 44100), {}
        else:
            doc = {"inputs": base64.b64encode(wav.read_bytes()).decode(), "parameters": {"return_timestamps": True}}
            body, headers = json.dumps(doc).encode(), {"content-type": "application/json"}
        good.append((f"{kind}:{wav.name}", body, headers, 200, ref))
    bad_kinds = [
        (b"not audio at all", {}, 400),
        (b"", {}, 400),
        (wav_bytes(np.full(8000, np.nan, np.float32), subtype="FLOAT"), {}, 400),
        (wav_bytes(np.zeros(8000, np.float32)), {}, 400),
        (clips[0][0].read_bytes()[:60], {}, 400),  # a WAV header and no data
        (b"RIFF" + bytes(body_limit + 10), {}, 413),
        (b'{"inputs": "%%%"}', {"content-type": "application/json"}, 400),
        (b'{"inputs": "AAAA", "parameters": {"generation_parameters": {"top_p": 0.3}}}', {}, 422),
    ]
    bad = [(f"bad{i % len(bad_kinds)}", *bad_kinds[i % len(bad_kinds)], None) for i in range(n_bad)]
    reqs = [
        (name, body, {**headers, "x-use-cache": "false"}, status, ref)
        for name, body, headers, status, ref in good + bad
    ]
    return [reqs[i] for i in rng.permutation(len(reqs))]


def run_load(url: str, requests, clients: int, timeout_s: float = 300.0):
    """Send ``requests`` from ``clients`` concurrent threads; per request (status, body, seconds)."""

    def one(req):
        _, body, headers, _, _ = req
        t = time.monotonic()
        try:
            r = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
            return r.status_code, r.json(), time.monotonic() - t
        except Exception as exc:  # a hang or a broken connection counts as a failure
            return -1, {"error": f"{type(exc).__name__}: {exc}"}, time.monotonic() - t

    with cf.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, requests))


def percentiles(values: List[float], qs=(50, 90, 95, 99)) -> dict:
    arr = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs} if arr.size else {}
