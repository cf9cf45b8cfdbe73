"""``sparkasr serve`` on loopback with the real command: one client's latency, dynamic batching
against one request at a time, a load + fault run, the demo's streaming latency, and an async job
against the batch job.

* **latency**: one client, a 5.3-s LibriVox clip (and 0.25 s of silence) sent N times one after
  another (after 2 warm-up requests, ``x-use-cache: false``): p50 / p90 / mean (target: p50 <=
  1.0 s, tiny.en).
* **batching**: the same N short clips (the vendored clips, cycled) sent one at a time (each
  request waits for the previous answer), then all N at once (the worker gathers them into
  batches of up to --max-batch); ratio = sequential wall / concurrent wall, per strategy
  (``batch``: the engine's batched decode; ``pack``: several clips packed into one 30-s window)
  and per temperature (``default``: the server's fallback 0, 0.2, ..., 1.0; a number: the
  server started with ``--temperature T``, one temperature, no fallback, whichever route the
  requests take: OpenAI's ``temperature`` field would add the fallback). Server defaults
  otherwise (beam 5; requests send ``x-use-cache: false``). Rounds alternate the two orders;
  medians reported (target: >= 1.5x).
* **async job**: a 10-minute file of real speech (the evaluation corpus's ``asterisk-en-long``
  file, or the vendored clips concatenated to 10 min when the corpus is not fetched; 60 s with
  ``--quick``) submitted by path to ``POST /jobs`` and polled until done: RTFx from submission
  to completion, against ``sparkasr transcribe FILE --master local[2] --timestamps word`` (a
  fresh process, Spark's start included; word timestamps as the job's) on the same file
  (target: the job's RTFx within 10 % of the batch job's).
* **load**: the test suite's mix (good clips as WAV/FLAC/44.1-kHz stereo/base64 JSON, and bad
  inputs of every kind) from many concurrent clients: counts, failures, latency percentiles,
  the server's RSS before/after, batch sizes.
* **streaming** (``--demo``): the demo's streaming tab in Debian's Chromium with a clip as the
  microphone; latency = first partial text on the page - the speech onset in the clip; runs
  with at least one partial (target: first partial <= 1.5 s after onset in 3 of 3 runs).
* **interleaving** (``--interleave``): a 10-s request's latency idle, then while a 60-min file of
  real speech (the corpus's ``hour/long_60min.wav``, the vendored clips in random order; 10 min
  with ``--quick``) is uploaded, decoded and transcribed by the same server: one short request
  after another (``--gap-s`` apart) until the long one is answered. Ratio = median latency during / median idle
  (target: at most 2). Load averages before and after are recorded.

    python bench/run_serve.py [--quick] [--demo]     # -> bench/results/serve.json + serve.md (serve_quick.*)
    python bench/run_serve.py --interleave --skip-batching --skip-load --name serve_interleave
    python bench/run_serve.py --api openai --skip-load --name serve_openai   # the same through /v1

The markdown summary beside the JSON lists every figure, the load average before and after each
part (a part whose 1-min load average was above 1 is marked: rerun it) and the target lines, met
or missed. Figures from a machine shared with other work are indicative only; rerun on a quiet
one with ``flock /tmp/sparkasr-bench.lock python bench/run_serve.py --demo``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import log, write_result_md  # noqa: E402
from conftest import ALL_CLIPS  # noqa: E402
from serve_support import CommandServer, load_requests, percentiles, run_load, wer  # noqa: E402

TIMEOUT = 600.0
NO_CACHE = {"x-use-cache": "false"}


API = "hf"  # which route the short requests take: hf (POST /) or openai (/v1/audio/transcriptions)
_MODELS: dict = {}


def _post(url: str, body: bytes) -> str:
    if API == "openai":
        if url not in _MODELS:
            _MODELS[url] = httpx.get(f"{url}/v1/models", timeout=TIMEOUT).json()["data"][0]["id"]
        r = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("clip.wav", body, "audio/wav")},
            data={"model": _MODELS[url]},
            headers=NO_CACHE,  # the route keeps no cache: said anyway
            timeout=TIMEOUT,
        )
    else:
        r = httpx.post(url, content=body, headers=NO_CACHE, timeout=TIMEOUT)
    r.raise_for_status()
    return r.json()["text"]


def _sequential(url: str, bodies):
    t = time.monotonic()
    texts = [_post(url, b) for b in bodies]
    return time.monotonic() - t, texts


def _concurrent(url: str, bodies):
    t = time.monotonic()
    with cf.ThreadPoolExecutor(len(bodies)) as pool:
        texts = list(pool.map(lambda b: _post(url, b), bodies))
    return time.monotonic() - t, texts


def _batches(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=TIMEOUT).json()["batch_sizes"]


def _load_avg() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def _temperature_args(temperature: str) -> list:
    """The server flags for a --temperatures value: ``default`` (the table's fallback 0, 0.2, ...,
    1.0) or one number (that temperature, no fallback). A server flag, not a request field, so
    both routes decode alike: OpenAI's ``temperature`` field means T, T+0.2, ..., 1.0."""
    if temperature == "default":
        return []
    try:
        t = float(temperature)
    except ValueError:
        t = float("nan")
    if not 0.0 <= t <= 2.0:
        raise SystemExit(f"--temperatures: {temperature!r} is neither 'default' nor a number in 0..2")
    return ["--temperature", repr(t)]


def batching(
    strategy: str, n: int, rounds: int, max_batch: int, logdir: Path, extra=(), temperature: str = "default"
) -> dict:
    clips = [ALL_CLIPS[i % len(ALL_CLIPS)] for i in range(n)]
    bodies = [p.read_bytes() for p, _ in clips]
    refs = [r for _, r in clips]
    audio_s = sum(len(b) - 44 for b in bodies) / 32000  # 16-bit 16-kHz WAVs
    server_args = [*extra, *_temperature_args(temperature)]
    load_before = _load_avg()
    srv = CommandServer(
        ["--strategy", strategy, "--max-batch", str(max_batch), "--no-demo", *server_args],
        log=logdir / f"serve-{strategy}-t{temperature}.log",
    )
    try:
        _post(srv.url, bodies[0])  # warm-up
        seq, conc, texts_seq, texts_conc = [], [], [], []
        before = _batches(srv.url)
        for k in range(rounds):  # alternate the order, so neither always runs first
            for mode in ("sequential", "concurrent") if k % 2 == 0 else ("concurrent", "sequential"):
                wall, texts = (_sequential if mode == "sequential" else _concurrent)(srv.url, bodies)
                (seq if mode == "sequential" else conc).append(round(wall, 3))
                (texts_seq if mode == "sequential" else texts_conc).extend(texts)
                log(
                    f"{strategy} temperature {temperature} {mode} round {k + 1}: {wall:.2f} s for {n} clips "
                    f"({audio_s:.1f} s of audio)"
                )
        after = _batches(srv.url)
    finally:
        srv.close()
    sizes = {s: after.get(s, 0) - before.get(s, 0) for s in after if after.get(s, 0) - before.get(s, 0)}
    med_seq, med_conc = statistics.median(seq), statistics.median(conc)
    return {
        "strategy": strategy,
        "temperature": temperature,
        "server_args": server_args,
        "clips": n,
        "audio_s": round(audio_s, 2),
        "max_batch": max_batch,
        "sequential_s": seq,
        "concurrent_s": conc,
        "median_sequential_s": med_seq,
        "median_concurrent_s": med_conc,
        "ratio": round(med_seq / med_conc, 3),
        "rtfx_sequential": round(audio_s / med_seq, 2),
        "rtfx_concurrent": round(audio_s / med_conc, 2),
        "wer_sequential": round(wer(refs * rounds, texts_seq), 4),
        "wer_concurrent": round(wer(refs * rounds, texts_conc), 4),
        "batch_sizes": sizes,
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
    }


def load(n_good: int, n_bad: int, clients: int, logdir: Path) -> dict:
    reqs = load_requests(ALL_CLIPS, n_good, n_bad)
    load_before = _load_avg()
    srv = CommandServer(["--max-body-mb", "2", "--max-batch", "16", "--no-demo"], log=logdir / "serve-load.log")
    try:
        rss0 = srv.rss_bytes()
        t = time.monotonic()
        results = run_load(srv.url, reqs, clients, TIMEOUT)
        wall = time.monotonic() - t
        rss1 = srv.rss_bytes()
        health = httpx.get(f"{srv.url}/health", timeout=TIMEOUT).json()
    finally:
        srv.close()
    failures = [(r[0], r[3], res[0]) for r, res in zip(reqs, results) if res[0] != r[3]]
    good = [(r[4], res[1].get("text", "")) for r, res in zip(reqs, results) if r[3] == 200]
    lat_good = [res[2] for r, res in zip(reqs, results) if r[3] == 200]
    lat_bad = [res[2] for r, res in zip(reqs, results) if r[3] != 200]
    return {
        "requests": len(reqs),
        "good": n_good,
        "bad": n_bad,
        "clients": clients,
        "failures": len(failures),
        "failed": failures[:10],
        "wall_s": round(wall, 2),
        "latency_all_s": percentiles([res[2] for res in results]),
        "latency_good_s": percentiles(lat_good),
        "latency_bad_s": percentiles(lat_bad),
        "wer_good": round(wer([g[0] for g in good], [g[1] for g in good]), 4),
        "rss_mb_before": rss0 >> 20,
        "rss_mb_after": rss1 >> 20,
        "batch_sizes": health["batch_sizes"],
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
    }


#: targets of issue 34's item 3
TARGET_P50_S = 1.0  # one client, a 5-s clip, tiny.en
TARGET_RATIO = 1.5  # 16 concurrent clients vs one at a time
TARGET_FIRST_PARTIAL_S = 1.5  # after speech onset, in every run
TARGET_ASYNC_SHARE = 0.9  # the async job's RTFx at least this share of the batch job's


def streaming(runs: int, logdir: Path) -> dict:
    from browser import run_demo
    from sparkasr.audio import SAMPLE_RATE, decode_audio, speech_bounds

    wav, ref = max((c for c in ALL_CLIPS if "librivox" in str(c[0])), key=lambda c: len(c[1]))
    samples = decode_audio(str(wav))
    duration, onset = len(samples) / SAMPLE_RATE, speech_bounds(samples)[0]
    load_before = _load_avg()
    srv = CommandServer([], log=logdir / "serve-demo.log")
    out = []
    try:
        for k in range(runs):
            s = run_demo(f"{srv.url}/demo/", wav, "live", duration + 2.0, logdir / f"live{k}.png", TIMEOUT)
            first = s.first_partial_s()
            out.append(
                {
                    "first_partial_s": first,
                    "latency_s": None if first is None else round(first - onset, 3),
                    "partials": len([p for p in s.partials if p[1].strip()]),
                    "final_wer": round(wer([ref], [s.text]), 4),
                }
            )
            log(f"streaming run {k + 1}: {out[-1]}")
    finally:
        srv.close()
    lat = [o["latency_s"] for o in out if o["latency_s"] is not None]
    return {
        "clip": wav.name,
        "clip_s": round(duration, 2),
        "speech_onset_s": round(onset, 3),
        "runs": out,
        "runs_with_partials": sum(1 for o in out if o["partials"] >= 1),
        "first_partial_latency_s": [o["latency_s"] for o in out],
        "runs_within_target": sum(1 for x in lat if x <= TARGET_FIRST_PARTIAL_S),
        "median_latency_s": statistics.median(lat) if lat else None,
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
    }


def _timed(url: str, body: bytes) -> float:
    t = time.monotonic()
    _post(url, body)
    return time.monotonic() - t


def _books():
    """The vendored LibriVox clips, shortest reference first."""
    return sorted((c for c in ALL_CLIPS if "librivox" in str(c[0])), key=lambda c: len(c[1]))


def _ten_second_clip():
    """About 10 s of real speech (whole vendored LibriVox clips back to back, 0.25 s apart) as a
    WAV, its length in seconds and its reference."""
    books = _books()
    return _speech_clip((books[-1], books[0]))  # the longest and the shortest: 7.1 + 3.0 s


def _five_second_clip():
    """About 5 s of real speech: the vendored LibriVox clip nearest 5 s (5.3 s), 0.25 s of
    silence after it, as :func:`_ten_second_clip` gives it."""
    import soundfile as sf

    return _speech_clip([min(_books(), key=lambda c: abs(sf.info(str(c[0])).duration - 5.0))])


def _speech_clip(clips):
    """Whole clips back to back, 0.25 s apart, as a 16-kHz WAV: (bytes, seconds, reference)."""
    import soundfile as sf

    from sparkasr.audio import SAMPLE_RATE, decode_audio

    parts, refs, n = [], [], 0
    for path, ref in clips:
        x = decode_audio(str(path))
        parts += [x, np.zeros(SAMPLE_RATE // 4, np.float32)]
        refs.append(ref)
        n += len(x) + SAMPLE_RATE // 4
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(parts), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue(), n / SAMPLE_RATE, " ".join(refs)


class _InProcessServer:
    """The server's app on uvicorn in a thread of this process (``--in-process``)."""

    def __init__(self, max_body_bytes: int):
        from serve_support import ThreadServer
        from sparkasr.serve.app import HttpLimits, create_app
        from sparkasr.serve.service import ModelService, resolve_model

        self.service = ModelService(resolve_model(None), {})
        self.service.load()
        self.server = ThreadServer(create_app(self.service, HttpLimits(max_body_bytes=max_body_bytes)))
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()
        self.service.stop()


def interleave(quick: bool, idle_n: int, gap_s: float, logdir: Path, in_process: bool = False) -> dict:
    """A short request's latency idle and while a long file is uploaded, decoded and transcribed."""
    from corpus import load as load_corpus

    man = load_corpus()
    entry = next(e for e in man["long"] if "10min" in e["path"]) if quick else man["hour"][0]
    long_body = Path(entry["path"]).read_bytes()
    short, short_s, short_ref = _ten_second_clip()
    body_mb = len(long_body) / (1 << 20) + 16
    if in_process:
        srv = _InProcessServer(int(body_mb * (1 << 20)))
    else:
        srv = CommandServer(["--max-body-mb", f"{body_mb:.0f}", "--no-demo"], log=logdir / "serve-interleave.log")
    try:
        load_before = os.getloadavg()
        short_text = _post(srv.url, short)  # warm-up
        idle = [_timed(srv.url, short) for _ in range(idle_n)]
        log(f"idle: {[round(x, 2) for x in idle]} s")
        with cf.ThreadPoolExecutor(1) as pool:
            t0 = time.monotonic()
            long_future = pool.submit(lambda: httpx.post(srv.url, content=long_body, headers=NO_CACHE, timeout=None))
            during = []
            while not long_future.done():
                lane = httpx.get(f"{srv.url}/health", timeout=TIMEOUT).json()["long_lane"]
                at = time.monotonic() - t0
                lat = _timed(srv.url, short)
                if long_future.done():
                    break  # it may have ended before this one: not counted as "during"
                during.append({"at_s": round(at, 1), "latency_s": round(lat, 3), "long_in_lane": bool(lane)})
                log(f"during (+{at:.0f} s, {'transcribing' if lane else 'uploading/decoding'}): {lat:.2f} s")
                time.sleep(gap_s)
            answer = long_future.result()
            long_wall = time.monotonic() - t0
        idle_after = [_timed(srv.url, short) for _ in range(idle_n)]
        load_after = os.getloadavg()
        health = httpx.get(f"{srv.url}/health", timeout=TIMEOUT).json()
    finally:
        srv.close()
    answer.raise_for_status()
    lat_during = [d["latency_s"] for d in during]
    lat_transcribing = [d["latency_s"] for d in during if d["long_in_lane"]]
    idle_med = statistics.median(idle)
    return {
        "server": "in-process (uvicorn thread)" if in_process else "sparkasr serve (subprocess)",
        "long_file": Path(entry["path"]).name,
        "long_audio_s": entry["duration_s"],
        "long_body_mb": round(len(long_body) / (1 << 20), 1),
        "long_wall_s": round(long_wall, 1),
        "long_words": len(answer.json()["text"].split()),
        "long_wer": round(wer([entry["reference"]], [answer.json()["text"]]), 4),
        "short_clip_s": round(short_s, 2),
        "short_wer": round(wer([short_ref], [short_text]), 4),
        "idle_latency_s": [round(x, 3) for x in idle],
        "idle_after_latency_s": [round(x, 3) for x in idle_after],
        "during": during,
        "median_idle_s": round(idle_med, 3),
        "median_during_s": round(statistics.median(lat_during), 3) if lat_during else None,
        "p90_during_s": percentiles(lat_during, (90,)).get("p90"),
        "max_during_s": max(lat_during) if lat_during else None,
        "ratio_median": round(statistics.median(lat_during) / idle_med, 3) if lat_during else None,
        "ratio_median_transcribing": (
            round(statistics.median(lat_transcribing) / idle_med, 3) if lat_transcribing else None
        ),
        "ratio_p90": round(percentiles(lat_during, (90,))["p90"] / idle_med, 3) if lat_during else None,
        "long_steps": health["long_steps"],
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }


def latency(n: int, logdir: Path) -> dict:
    """One client: the 5-s clip sent ``n`` times one after another, after 2 warm-up requests."""
    body, clip_s, ref = _five_second_clip()
    load_before = _load_avg()
    srv = CommandServer(["--no-demo"], log=logdir / "serve-latency.log")
    try:
        for _ in range(2):
            _post(srv.url, body)
        lat, texts = [], []
        for _ in range(n):
            t = time.monotonic()
            texts.append(_post(srv.url, body))
            lat.append(time.monotonic() - t)
    finally:
        srv.close()
    log(f"latency: {n} requests of a {clip_s:.1f}-s clip: {[round(x, 2) for x in lat]} s")
    return {
        "clip_s": round(clip_s, 2),
        "requests": n,
        "warm_up": 2,
        "latency_s": [round(x, 3) for x in lat],
        **percentiles(lat, (50, 90)),
        "mean": round(statistics.fmean(lat), 3),
        "min": round(min(lat), 3),
        "max": round(max(lat), 3),
        "wer": round(wer([ref] * n, texts), 4),
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
    }


def _long_file(quick: bool, workdir: Path):
    """The async part's file: (path, seconds, reference, what it is). The evaluation corpus's
    ``asterisk-en-long`` file when it is fetched, else the vendored clips concatenated as
    ``bench/corpus.py`` makes its 10-min file (1 min with ``quick``)."""
    if not quick:
        from eval_corpus import load_set

        try:
            e = load_set("asterisk-en-long")[0]
            return e.path, e.duration_s, e.reference, f"evaluation corpus asterisk-en-long ({e.name})"
        except FileNotFoundError as exc:
            log(f"async: {exc}; the vendored clips concatenated to 10 min instead")
    import corpus

    minutes = 1 if quick else 10
    x, ref = corpus._concat(corpus.real_clips(), minutes * 60.0, np.random.default_rng(1000 + minutes))
    path = workdir / f"long_{minutes:02d}min.wav"
    corpus._write(path, x)
    return str(path), len(x) / corpus.SR, ref, f"the vendored clips concatenated to {minutes} min"


def _batch_texts(out: Path) -> list:
    """The texts of a batch job's current view (``OUT/current``), in record order."""
    import pandas as pd

    current = out / "current"
    if any(current.rglob("*.parquet")):
        return list(pd.read_parquet(current)["text"].fillna(""))
    frames = [pd.read_json(f, lines=True) for f in sorted(current.rglob("*.json")) if not f.name.startswith(".")]
    return list(pd.concat(frames)["text"].fillna("")) if frames else []


def async_job(quick: bool, logdir: Path) -> dict:
    """A long file as an async job (submitted by path, polled until done) against the batch job
    (``sparkasr transcribe`` on ``local[2]``, a fresh process) on the same file: RTFx of each."""
    workdir = Path(tempfile.mkdtemp(prefix="sparkasr-bench-async-"))
    path, audio_s, ref, what = _long_file(quick, workdir)
    short, _, _ = _five_second_clip()
    load_before = _load_avg()
    srv = CommandServer(
        ["--no-demo", "--jobs-dir", str(workdir / "jobs"), "--allow-read", str(Path(path).parent)],
        log=logdir / "serve-async.log",
    )
    try:
        _post(srv.url, short)  # warm-up: the model's first call is not the job's
        t0 = time.monotonic()
        r = httpx.post(f"{srv.url}/jobs", json={"paths": [path]}, timeout=TIMEOUT)
        r.raise_for_status()
        job_id, polls = r.json()["id"], 0
        while True:
            status = httpx.get(f"{srv.url}/jobs/{job_id}", timeout=TIMEOUT).json()
            polls += 1
            if status["status"] == "completed":
                break
            time.sleep(0.2)
        job_wall = time.monotonic() - t0
        records = httpx.get(f"{srv.url}/jobs/{job_id}/results", timeout=TIMEOUT).json()["records"]
    finally:
        srv.close()
    log(f"async job: {audio_s:.0f} s of audio in {job_wall:.1f} s ({polls} polls)")
    load_mid = _load_avg()
    out = workdir / "batch-out"
    cmd = [
        *(sys.executable, "-m", "sparkasr.cli", "transcribe", path, "--output", str(out)),
        *("--master", "local[2]", "--timestamps", "word", "--quiet"),
    ]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "python"), env.get("PYTHONPATH", "")]
    )
    t0 = time.monotonic()
    with open(logdir / "transcribe-batch.log", "wb") as f:
        done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    batch_wall = time.monotonic() - t0
    if done.returncode:
        raise RuntimeError(
            f"sparkasr transcribe exited with {done.returncode} (log: {logdir / 'transcribe-batch.log'})"
        )
    batch_texts = _batch_texts(out)
    shutil.rmtree(workdir)  # the jobs' state, the batch output and the built file
    log(f"batch job: {audio_s:.0f} s of audio in {batch_wall:.1f} s")
    rtfx_job, rtfx_batch = audio_s / job_wall, audio_s / batch_wall
    return {
        "file": what,
        "path": path,
        "audio_s": round(audio_s, 2),
        "job_wall_s": round(job_wall, 2),
        "job_rtfx": round(rtfx_job, 2),
        "job_errors": [r.get("error") for r in records if r and r.get("error")],
        "job_wer": round(wer([ref], [records[0]["text"] if records and records[0] else ""]), 4),
        "batch_command": " ".join(["sparkasr", *cmd[3:]]),
        "batch_wall_s": round(batch_wall, 2),
        "batch_rtfx": round(rtfx_batch, 2),
        "batch_wer": round(wer([ref], [" ".join(batch_texts)]), 4),
        "job_vs_batch": round(rtfx_job / rtfx_batch, 3),
        "load_avg_before": load_before,
        "load_avg_between": load_mid,
        "load_avg_after": _load_avg(),
    }


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def targets(result: dict) -> list:
    """The issue's target lines for the parts that ran: {target, figure, met}."""
    out = []
    lat = result.get("latency")
    if lat:
        out.append(
            {
                "target": f"one client, {lat['clip_s']}-s clip: p50 <= {TARGET_P50_S} s (tiny.en)",
                "figure": f"p50 {lat['p50']} s (p90 {lat['p90']} s, mean {lat['mean']} s)",
                "met": lat["p50"] <= TARGET_P50_S,
            }
        )
    for b in result.get("batching", []):
        out.append(
            {
                "target": f"{b['clips']} concurrent >= {TARGET_RATIO}x one at a time "
                f"(strategy {b['strategy']}, temperature {b['temperature']})",
                "figure": f"{b['ratio']}x ({b['median_sequential_s']} s -> {b['median_concurrent_s']} s)",
                "met": b["ratio"] >= TARGET_RATIO,
            }
        )
    st = result.get("streaming")
    if st:
        n = len(st["runs"])
        out.append(
            {
                "target": "streaming demo: partials in every run",
                "figure": f"{st['runs_with_partials']} of {n} runs",
                "met": st["runs_with_partials"] == n,
            }
        )
        out.append(
            {
                "target": f"first partial <= {TARGET_FIRST_PARTIAL_S} s after speech onset in {n} of {n} runs",
                "figure": f"{st['runs_within_target']} of {n} (latencies {st['first_partial_latency_s']} s)",
                "met": st["runs_within_target"] == n,
            }
        )
    a = result.get("async")
    if a:
        out.append(
            {
                "target": "async job's RTFx within 10 % of the batch job's",
                "figure": f"{a['job_rtfx']} vs {a['batch_rtfx']} ({a['job_vs_batch']}x)",
                "met": a["job_vs_batch"] >= TARGET_ASYNC_SHARE,
            }
        )
    return out


def _loads(part: dict) -> str:
    seen = [part[k] for k in ("load_avg_before", "load_avg_between", "load_avg_after") if k in part]
    text = " -> ".join(f"{x[0]:.2f}" for x in seen)
    return text + (" (above 1: rerun on a quiet machine)" if any(x[0] > 1 for x in seen) else "")


def summary_md(r: dict) -> str:
    """The results as markdown: every figure, the load average around each part, the targets."""
    m = r["machine"]
    lines = [
        f"# {r['benchmark']}: sparkasr serve",
        "",
        f"Finished {r['finished_utc']}, git {m.get('git')}, {m.get('cpu_model')} ({m.get('nproc')} CPUs), "
        f"{m.get('model')}; route `{r['api']}`{', --quick (a check that it runs)' if r['quick'] else ''}. "
        f"1-min load average {r['load_avg_before'][0]:.2f} at the start, {r['load_avg_after'][0]:.2f} at the end.",
        "",
        "## Targets",
        "",
        "| target | figure | |",
        "| --- | --- | --- |",
        *(f"| {t['target']} | {t['figure']} | **{_met(t['met'])}** |" for t in r["targets"]),
    ]
    lat = r.get("latency")
    if lat:
        lines += [
            "",
            f"## Latency: one client, a {lat['clip_s']}-s clip, {lat['requests']} requests after {lat['warm_up']} "
            "warm-up",
            "",
            f"p50 {lat['p50']} s, p90 {lat['p90']} s, mean {lat['mean']} s, min {lat['min']} s, max {lat['max']} s; "
            f"WER {lat['wer']}. Load {_loads(lat)}.",
        ]
    if r.get("batching"):
        lines += [
            "",
            "## Dynamic batching: N short clips one at a time vs all at once (medians over the rounds)",
            "",
            "| strategy | temperature | clips (audio s) | one at a time s | all at once s | ratio | RTFx | WER "
            "| batch sizes | load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for b in r["batching"]:
            lines.append(
                f"| {b['strategy']} | {b['temperature']} | {b['clips']} ({b['audio_s']}) | {b['sequential_s']} "
                f"| {b['concurrent_s']} | **{b['ratio']}x** | {b['rtfx_sequential']} / {b['rtfx_concurrent']} "
                f"| {b['wer_sequential']} / {b['wer_concurrent']} | {b['batch_sizes']} | {_loads(b)} |"
            )
    ld = r.get("load")
    if ld:
        lines += [
            "",
            "## Load + fault run",
            "",
            f"{ld['requests']} requests ({ld['good']} good, {ld['bad']} bad) from {ld['clients']} clients in "
            f"{ld['wall_s']} s: **{ld['failures']} failures**; latency {ld['latency_all_s']} (good "
            f"{ld['latency_good_s']}, bad {ld['latency_bad_s']}); WER {ld['wer_good']}; server RSS "
            f"{ld['rss_mb_before']} -> {ld['rss_mb_after']} MB. Load {_loads(ld)}.",
        ]
    st = r.get("streaming")
    if st:
        lines += [
            "",
            f"## Streaming demo in Chromium ({st['clip']}, {st['clip_s']} s, speech onset {st['speech_onset_s']} s)",
            "",
            f"Partials in {st['runs_with_partials']} of {len(st['runs'])} runs; first partial within "
            f"{TARGET_FIRST_PARTIAL_S} s of onset in {st['runs_within_target']}. Load {_loads(st)}.",
            "",
            "| run | first partial (s on the page) | after onset s | partials | final WER |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| {k + 1} | {o['first_partial_s']} | {o['latency_s']} | {o['partials']} | {o['final_wer']} |"
                for k, o in enumerate(st["runs"])
            ),
        ]
    a = r.get("async")
    if a:
        lines += [
            "",
            f"## Async job vs the batch job: {a['file']}, {a['audio_s']} s",
            "",
            "| run | wall s | RTFx | WER |",
            "| --- | --- | --- | --- |",
            f"| `POST /jobs` by path, submitted -> completed | {a['job_wall_s']} | {a['job_rtfx']} | {a['job_wer']} |",
            f"| `{a['batch_command']}` (fresh process) | {a['batch_wall_s']} | {a['batch_rtfx']} | {a['batch_wer']} |",
            "",
            f"Job / batch RTFx: **{a['job_vs_batch']}**. Load {_loads(a)} (before, between, after).",
        ]
    i = r.get("interleave")
    if i:
        lines += [
            "",
            f"## Interleaving ({i['server']}): a {i['short_clip_s']}-s request beside {i['long_file']} "
            f"({i['long_audio_s']} s)",
            "",
            f"Idle median {i['median_idle_s']} s; during {i['median_during_s']} s (p90 {i['p90_during_s']} s, max "
            f"{i['max_during_s']} s): ratio {i['ratio_median']} (p90 {i['ratio_p90']}); the long file in "
            f"{i['long_wall_s']} s, WER {i['long_wer']}. Load {_loads(i)}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one round, fewer requests (a check that it runs)")
    p.add_argument("--demo", action="store_true", help="also measure the demo's streaming latency in Chromium")
    p.add_argument("--strategies", default="batch,pack")
    p.add_argument(
        "--temperatures",
        default="default,0",
        help="batching runs per temperature: 'default' (the server's fallback 0, 0.2, ..., 1.0) or a number "
        "(the server's --temperature, no fallback)",
    )
    p.add_argument("--clips", type=int, default=None, help="concurrent short clips (default 16; 4 with --quick)")
    p.add_argument(
        "--latency-requests", type=int, default=None, help="one client's 5-s requests (default 20; 5 with --quick)"
    )
    p.add_argument("--skip-latency", action="store_true", help="no one-client latency run")
    p.add_argument("--skip-async", action="store_true", help="no async job vs batch job run")
    p.add_argument("--server-args", default="", help="more sparkasr serve flags for the batching runs")
    p.add_argument("--skip-load", action="store_true", help="no load + fault run")
    p.add_argument("--skip-batching", action="store_true", help="no batching runs")
    p.add_argument("--interleave", action="store_true", help="a 10-s request's latency beside a 60-min one")
    p.add_argument("--idle-requests", type=int, default=5, help="idle short requests (before and after)")
    p.add_argument("--gap-s", type=float, default=3.0, help="pause between two short requests during the long one")
    p.add_argument(
        "--in-process", action="store_true", help="--interleave against the app in this process, not the command"
    )
    p.add_argument(
        "--api",
        choices=("hf", "openai"),
        default="hf",
        help="the route of the batching and interleaving requests: the Inference API (POST /) or OpenAI's "
        "(POST /v1/audio/transcriptions; no result cache there)",
    )
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    global API
    API = args.api
    temperatures = args.temperatures.split(",")
    for t in temperatures:
        _temperature_args(t)  # a bad value fails now, not after the first parts
    logdir = Path(tempfile.mkdtemp(prefix="sparkasr-bench-serve-"))
    rounds = 1 if args.quick else 3
    clips = args.clips or (4 if args.quick else 16)
    load_before = os.getloadavg()
    result = {"quick": args.quick, "api": args.api}
    if not args.skip_latency:
        result["latency"] = latency(args.latency_requests or (5 if args.quick else 20), logdir)
    result["batching"] = (
        []
        if args.skip_batching
        else [
            batching(s, clips, rounds, 16, logdir, args.server_args.split(), t)
            for s in args.strategies.split(",")
            for t in temperatures
        ]
    )
    if not args.skip_load:
        result["load"] = load(16, 8, 12, logdir) if args.quick else load(48, 24, 32, logdir)
    if args.demo:
        result["streaming"] = streaming(1 if args.quick else 3, logdir)
    if not args.skip_async:
        result["async"] = async_job(args.quick, logdir)
    if args.interleave:
        result["interleave"] = interleave(args.quick, args.idle_requests, args.gap_s, logdir, args.in_process)
        i = result["interleave"]
        log(
            f"interleave: 10-s request {i['median_idle_s']} s idle, {i['median_during_s']} s (median) during "
            f"{i['long_audio_s']:.0f} s of audio: ratio {i['ratio_median']} (p90 {i['ratio_p90']})"
        )
    for b in result["batching"]:
        log(
            f"{b['strategy']}, temperature {b['temperature']}: dynamic batching {b['ratio']}x one at a time "
            f"({b['batch_sizes']})"
        )
    if "load" in result:
        log(f"load: {result['load']['requests']} requests, {result['load']['failures']} failures")
    result["load_avg_before"] = [round(x, 2) for x in load_before]
    result["load_avg_after"] = _load_avg()
    result["targets"] = targets(result)
    for t in result["targets"]:
        log(f"target {_met(t['met'])}: {t['target']}: {t['figure']}")
    write_result_md(args.name or ("serve_quick" if args.quick else "serve"), result, summary_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
