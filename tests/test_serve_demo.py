"""The Gradio demo (`sparkasr demo`, and `/demo` in `sparkasr serve`) in a real browser: Debian's
Chromium, driven by Playwright, with a vendored speech clip as the microphone. Both modes record,
stop and check the transcript against the clip's reference; each saves a screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from browser import CHROMIUM, run_demo
from serve_support import ROOT, CommandServer, free_port, wer
from sparkasr.audio import SAMPLE_RATE, decode_audio, speech_bounds
from sparkasr.serve.demo import LiveSession, mic_samples
from sparkasr.serve.service import Limits, ModelService, resolve_model

TIMEOUT = 300.0


@pytest.fixture(scope="module")
def clip(clips):
    """The longest LibriVox clip: (path, reference, duration s, speech onset s)."""
    wav, ref = max((c for c in clips if "librivox" in str(c[0])), key=lambda c: len(c[1]))
    samples = decode_audio(str(wav))
    return wav, ref, len(samples) / SAMPLE_RATE, speech_bounds(samples)[0]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is needed: scripts/setup.sh --all installs Debian's chromium"
    # info: the log says where each live session's final came from
    srv = CommandServer(
        ["--temperature", "0", "--log-level", "info"], log=tmp_path_factory.mktemp("demo") / "serve.log"
    )
    yield srv
    srv.close()


def _check_screenshot(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, (path, len(data))


def test_full_context_in_browser(demo_server, clip, tmp_path):
    wav, ref, duration, _ = clip
    shot = tmp_path / "full.png"
    session = run_demo(f"{demo_server.url}/demo/", wav, "full", duration + 1.5, shot, TIMEOUT)
    print(f"full context: {session.text!r}")
    assert wer([ref], [session.text]) <= 0.3, session.text
    _check_screenshot(shot)


def test_streaming_in_browser(demo_server, clip, tmp_path):
    wav, ref, duration, onset = clip
    shot = tmp_path / "live.png"
    session = run_demo(f"{demo_server.url}/demo/", wav, "live", duration + 2.0, shot, TIMEOUT)
    first = session.first_partial_s()
    latency = None if first is None else round(first - onset, 3)
    print(f"streaming: final {session.text!r}; first partial at {first} s (speech from {onset:.2f} s): {latency} s")
    assert "listening" in session.statuses  # the page's start handler ran
    # the final: the page's whole recording, decoded (the streamed chunks are best effort)
    assert "final from the whole recording" in demo_server.log_path.read_text(errors="replace")
    assert wer([ref], [session.text]) <= 0.3, session.text
    _check_screenshot(shot)


def test_live_session_partials_and_final(clips):
    """The streaming handler's session without a browser: the microphone's int16 at 48 kHz in
    0.1-s chunks, partials while it grows, the final transcript at stop, audio past commit_s
    settled at a quiet point. About 17 s of speech is twice commit_s (so a part settles), and a
    decode is awaited every 2 s of audio: each wait is one partial decode, the test's main cost."""
    svc = ModelService(resolve_model(None), {"temperature": [0.0]}, Limits())
    svc.load()
    try:
        import soxr

        refs, audio = [], []
        for wav, ref in clips[:3]:  # about 17 s of speech with pauses between clips
            refs.append(ref)
            audio += [decode_audio(str(wav)), np.zeros(SAMPLE_RATE // 2, np.float32)]
        mic = (soxr.resample(np.concatenate(audio), SAMPLE_RATE, 48000) * 32767).astype(np.int16)
        session = LiveSession(svc, commit_s=8.0)
        partials = []
        for start in range(0, len(mic), 4800):
            session.add(48000, mic[start : start + 4800])
            partials.append(session.poll())
            if session.pending is not None and start % (4800 * 20) == 0:
                session.pending[0].result(TIMEOUT)  # let a decode finish now and then (no timing)
        final = session.finish(timeout=TIMEOUT)
        assert any(p for p in partials[:-1]) and session.settled_text  # partials, and settled parts
        assert wer([" ".join(refs)], [final]) <= 0.3, final
        assert session.final == final and abs(session.received_s - len(mic) / 48000) < 1e-3
    finally:
        svc.stop()


def test_mic_samples_converts_int16_stereo():
    tone = np.sin(np.arange(4410) / 10).astype(np.float32) * 0.5
    stereo = (np.stack([tone, tone], axis=1) * 32768).astype(np.int16)
    out = mic_samples(44100, stereo)
    assert out.dtype == np.float32 and len(out) == 1600 and 0.45 < np.abs(out).max() < 0.55


def test_demo_command_serves_the_app(clip):
    """`sparkasr demo` on its own (behind --token, like serve: the page's password), and the
    full-context path through gradio's own client."""
    from gradio_client import Client, handle_file

    wav, ref, _, _ = clip
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkasr.cli", "demo", "--port", str(port), "--temperature", "0", "--token", "tok"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert proc.poll() is None, f"sparkasr demo exited with {proc.returncode}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "sparkasr demo did not start"
            time.sleep(0.25)
        assert httpx.get(f"http://127.0.0.1:{port}/config", timeout=TIMEOUT).status_code == 401
        text = Client(f"http://127.0.0.1:{port}/", auth=("me", "tok"), verbose=False).predict(
            handle_file(str(wav)), api_name="/transcribe_file"
        )
        assert wer([ref], [text]) <= 0.3, text
    finally:
        proc.terminate()
        proc.wait(30)


def test_demo_behind_the_token_asks_for_it_as_password():
    """With --token the API wants the Bearer header and the mounted demo Gradio's login."""
    from serve_support import ThreadServer
    from sparkasr.serve.app import HttpLimits, create_app

    svc = ModelService(resolve_model(None), {})  # not loaded: nothing here transcribes
    srv = ThreadServer(create_app(svc, HttpLimits(token="tok"), demo=True))
    try:
        with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
            assert c.get("/demo/config").status_code == 401
            assert c.post("/demo/login", data={"username": "me", "password": "nope"}).status_code == 400
            assert c.post("/demo/login", data={"username": "me", "password": "tok"}).status_code == 200
            assert c.get("/demo/config").json()["version"]
            assert c.post("/", content=b"x").status_code == 401  # the login is not the API's token
    finally:
        srv.close()
