"""``sparkasr serve``: throughput with dynamic batching against one request at a time, a load +
fault run, and the demo's streaming latency, on loopback with the real command.

* **batching**: the same N short clips (the vendored clips, cycled) sent one at a time (each
  request waits for the previous answer), then all N at once (the worker gathers them into
  batches of up to --max-batch); ratio = sequential wall / concurrent wall, per strategy
  (``batch``: the engine's batched decode; ``pack``: several clips packed into one 30-s window).
  Server defaults otherwise (beam 5, temperature fallback: nothing is served from the cache;
  requests also send ``x-use-cache: false``). Rounds alternate the two orders; medians reported.
* **load**: the test suite's mix (good clips as WAV/FLAC/44.1-kHz stereo/base64 JSON, and bad
  inputs of every kind) from many concurrent clients: counts, failures, latency percentiles,
  the server's RSS before/after, batch sizes.
* **streaming** (``--demo``): the demo's streaming tab in Debian's Chromium with a clip as the
  microphone; latency = first partial text on the page - the speech onset in the clip.
* **interleaving** (``--interleave``): a 10-s request's latency idle, then while a 60-min file of
  real speech (the corpus's ``hour/long_60min.wav``, the vendored clips in random order; 10 min
  with ``--quick``) is uploaded, decoded and transcribed by the same server: one short request
  after another (``--gap-s`` apart) until the long one is answered. Ratio = median latency during / median idle
  (target: at most 2). Load averages before and after are recorded.

    python bench/run_serve.py [--quick] [--demo]     # -> bench/results/serve.json (serve_quick.json)
    python bench/run_serve.py --interleave --skip-batching --skip-load --name serve_interleave

Figures from a machine shared with other work are indicative only; rerun on a quiet one with
``flock /tmp/sparkasr-bench.lock python bench/run_serve.py --demo``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import log, write_result  # noqa: E402
from conftest import ALL_CLIPS  # noqa: E402
from serve_support import CommandServer, load_requests, percentiles, run_load, wer  # noqa: E402

TIMEOUT = 600.0
NO_CACHE = {"x-use-cache": "false"}


def _post(url: str, body: bytes) -> str:
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


def batching(strategy: str, n: int, rounds: int, max_batch: int, logdir: Path, extra=()) -> dict:
    clips = [ALL_CLIPS[i % len(ALL_CLIPS)] for i in range(n)]
    bodies = [p.read_bytes() for p, _ in clips]
    refs = [r for _, r in clips]
    audio_s = sum(len(b) - 44 for b in bodies) / 32000  # 16-bit 16-kHz WAVs
    srv = CommandServer(
        ["--strategy", strategy, "--max-batch", str(max_batch), "--no-demo", *extra],
        log=logdir / f"serve-{strategy}.log",
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
                log(f"{strategy} {mode} round {k + 1}: {wall:.2f} s for {n} clips ({audio_s:.1f} s of audio)")
        after = _batches(srv.url)
    finally:
        srv.close()
    sizes = {s: after.get(s, 0) - before.get(s, 0) for s in after if after.get(s, 0) - before.get(s, 0)}
    med_seq, med_conc = statistics.median(seq), statistics.median(conc)
    return {
        "strategy": strategy,
        "server_args": list(extra),
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
    }


def load(n_good: int, n_bad: int, clients: int, logdir: Path) -> dict:
    reqs = load_requests(ALL_CLIPS, n_good, n_bad)
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
    }


def streaming(runs: int, logdir: Path) -> dict:
    from browser import run_demo
    from sparkasr.audio import SAMPLE_RATE, decode_audio, speech_bounds

    wav, ref = max((c for c in ALL_CLIPS if "librivox" in str(c[0])), key=lambda c: len(c[1]))
    samples = decode_audio(str(wav))
    duration, onset = len(samples) / SAMPLE_RATE, speech_bounds(samples)[0]
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
        "median_latency_s": statistics.median(lat) if lat else None,
    }


def _timed(url: str, body: bytes) -> float:
    t = time.monotonic()
    _post(url, body)
    return time.monotonic() - t


def _ten_second_clip():
    """About 10 s of real speech (whole vendored LibriVox clips back to back, 0.25 s apart) as a
    WAV, its length in seconds and its reference."""
    import soundfile as sf

    from sparkasr.audio import SAMPLE_RATE, decode_audio

    books = sorted((c for c in ALL_CLIPS if "librivox" in str(c[0])), key=lambda c: len(c[1]))
    parts, refs, n = [], [], 0
    for path, ref in (books[-1], books[0]):  # the longest and the shortest: 7.1 + 3.0 s
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one round, fewer requests (a check that it runs)")
    p.add_argument("--demo", action="store_true", help="also measure the demo's streaming latency in Chromium")
    p.add_argument("--strategies", default="batch,pack")
    p.add_argument("--clips", type=int, default=16, help="concurrent short clips")
    p.add_argument("--server-args", default="", help="more sparkasr serve flags for the batching runs")
    p.add_argument("--skip-load", action="store_true", help="no load + fault run")
    p.add_argument("--skip-batching", action="store_true", help="no batching runs")
    p.add_argument("--interleave", action="store_true", help="a 10-s request's latency beside a 60-min one")
    p.add_argument("--idle-requests", type=int, default=5, help="idle short requests (before and after)")
    p.add_argument("--gap-s", type=float, default=3.0, help="pause between two short requests during the long one")
    p.add_argument(
        "--in-process", action="store_true", help="--interleave against the app in this process, not the command"
    )
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    logdir = Path(tempfile.mkdtemp(prefix="sparkasr-bench-serve-"))
    rounds = 1 if args.quick else 3
    result = {
        "quick": args.quick,
        "batching": []
        if args.skip_batching
        else [
            batching(s, args.clips, rounds, 16, logdir, args.server_args.split()) for s in args.strategies.split(",")
        ],
    }
    if not args.skip_load:
        result["load"] = load(16, 8, 12, logdir) if args.quick else load(48, 24, 32, logdir)
    if args.demo:
        result["streaming"] = streaming(1 if args.quick else 3, logdir)
    if args.interleave:
        result["interleave"] = interleave(args.quick, args.idle_requests, args.gap_s, logdir, args.in_process)
        i = result["interleave"]
        log(
            f"interleave: 10-s request {i['median_idle_s']} s idle, {i['median_during_s']} s (median) during "
            f"{i['long_audio_s']:.0f} s of audio: ratio {i['ratio_median']} (p90 {i['ratio_p90']})"
        )
    for b in result["batching"]:
        log(f"{b['strategy']}: dynamic batching {b['ratio']}x one at a time ({b['batch_sizes']})")
    if "load" in result:
        log(f"load: {result['load']['requests']} requests, {result['load']['failures']} failures")
    write_result(args.name or ("serve_quick" if args.quick else "serve"), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
