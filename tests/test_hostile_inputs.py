"""Hostile and careless inputs at every entry point (issue 30): FFmpeg texts that would read the
server's files or open sockets (concat, SDP, HLS, ffmetadata, subfile:/file: URLs, image2
patterns, DASH) and images, refused by name with nothing opened, through the engine path, the
Spark stages, read_audio, LightPipeline, the batch job, the HTTP server and the demo's handler;
unbounded and mistyped request values; slow and vanishing clients; a long request interleaved
with short ones, its transcript unchanged."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from hostile_support import (
    SDP,
    SECRET_NAME,
    SECRET_WORDS,
    FileTrap,
    hostile_bodies,
    sockets_during,
    udp_sockets,
    wav_of,
)
from serve_support import ThreadServer
from sparkasr.audio import SAMPLE_RATE, AudioError, decode_audio
from sparkasr.cells import INPUT_BINARY, INPUT_PATH, cell_items
from sparkasr.engines import run_steps
from sparkasr.formats import CONTAINERS, Detected, check_codec, ffmpeg_open_args, sniff
from sparkasr.records import AudioItem, Transcript
from sparkasr.serve.app import HttpLimits, create_app
from sparkasr.serve.connections import ConnectionLimits
from sparkasr.serve.scheduling import ALONE_GROUP, LONG, SHORT, Job, LongLane, TurnGate
from sparkasr.serve.service import Limits, ModelService, resolve_model

TESTS_DATA = Path(__file__).resolve().parent / "data"
TIMEOUT = 300.0  # a generous bound on any one wait (busy machine): a hang fails, slowness does not
REFUSED = "not an audio format we read (detected: "


def _secret_clip(clips) -> Path:
    return clips[0][0]  # LibriVox 0870: "...mister john dashwood had then leisure..."


def _no_secret(text: str) -> bool:
    low = text.lower()
    return not any(w in low for w in SECRET_WORDS)


@pytest.fixture
def trap(tmp_path, monkeypatch, clips):
    """The working directory holds the secret's name (and sub/) as pipes that see any open;
    ``trap.bodies``: the hostile inputs pointing at them (relative and absolute)."""
    monkeypatch.chdir(tmp_path)
    t = FileTrap([tmp_path / SECRET_NAME, tmp_path / "sub" / SECRET_NAME], _secret_clip(clips).read_bytes())
    t.bodies = hostile_bodies(absolute=str(tmp_path / SECRET_NAME))
    yield t
    t.close()


# -- the decoder: what it sniffs, what it reads ------------------------------------------------------


def _encode(container: str, codec: str, samples: np.ndarray, rate: int, layout="mono", video=False, bit_rate=None):
    import av
    import soxr

    x = samples if rate == SAMPLE_RATE else soxr.resample(samples, SAMPLE_RATE, rate)
    planes = np.stack([x] * (2 if layout == "stereo" else 1)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        if video:
            v = c.add_stream("mpeg4", rate=5)
            v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        s = c.add_stream(codec, rate=rate)
        s.layout = layout
        if bit_rate:
            s.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        rs = av.AudioResampler(format=s.codec_context.format.name, layout=layout, rate=rate)
        for f in [*rs.resample(frame), *rs.resample(None)]:
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if video:
            img = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
            for i in range(3):
                img.pts = i
                for p in v.encode(img):
                    c.mux(p)
            for p in v.encode(None):
                c.mux(p)
    return buf.getvalue()


AUDIO_FORMATS = [  # (container, codec, rate, layout, options): what users send, one of each container
    ("wav", "pcm_s16le", 16000, "mono", {}),
    ("wav", "adpcm_ms", 16000, "mono", {}),
    ("w64", "pcm_s16le", 16000, "mono", {}),
    ("flac", "flac", 16000, "mono", {}),
    ("ogg", "libopus", 48000, "mono", {}),
    ("mp3", "libmp3lame", 16000, "mono", {}),
    ("adts", "aac", 16000, "mono", {}),
    ("ipod", "aac", 44100, "mono", {}),
    ("3gp", "aac", 16000, "mono", {}),
    ("mp4", "aac", 16000, "mono", {"video": True}),
    ("webm", "libopus", 48000, "mono", {}),
    ("matroska", "pcm_s16le", 16000, "mono", {}),
    ("aiff", "pcm_s16be", 16000, "mono", {}),
    ("caf", "pcm_s16be", 16000, "mono", {}),
    ("au", "pcm_s16be", 16000, "mono", {}),
    ("asf", "wmav2", 44100, "stereo", {"bit_rate": 64000}),
    ("amr", "libopencore_amrnb", 8000, "mono", {}),
]
# Encoded ahead from the same clip: PyAV wheels from 18.1.1 on ship FFmpeg without the AMR-NB
# encoder (the decoder, what is tested, is FFmpeg's own and still there).
ENCODED = {"amr": TESTS_DATA / "amr" / "sense_and_sensibility_01_austen_64kb-0880.amr"}


def test_every_allowed_container_decodes(clips):
    """The allow-list keeps what users send: one file of each container (and a video with an audio
    track) decodes to the clip's length, sniffed as the container it is."""
    speech = decode_audio(str(clips[1][0]))
    seen = set()
    for container, codec, rate, layout, opts in AUDIO_FORMATS:
        if container in ENCODED:
            assert clips[1][0].stem == ENCODED[container].stem
            data = ENCODED[container].read_bytes()
        else:
            data = _encode(container, codec, speech, rate, layout, **opts)
        detected = sniff(data)
        assert detected.audio, (container, detected)
        seen.add(detected.demuxer)
        got = decode_audio(data)
        assert abs(len(got) - len(speech)) < 0.3 * SAMPLE_RATE, (container, codec, len(got), len(speech))
    assert seen == set(CONTAINERS)  # every container of the allow-list was tried


def test_sniff_names_what_is_not_audio():
    for name, (body, detected) in hostile_bodies().items():
        got = sniff(body)
        assert not got.audio and detected in got.name, (name, got)
    assert "text" == sniff(b"just some words\n" * 20).name
    assert sniff(np.random.default_rng(3).bytes(4096)).name.startswith("unrecognised data")


@pytest.mark.parametrize("name", ["concat", "concat-subdir"])
def test_ffmpeg_probing_would_read_the_secret(trap, name):
    """The trap sees FFmpeg's own probing follow a concat script (what the server did before): so
    the tests below, where it sees nothing, can fail. (FFmpeg's concat refuses absolute paths by
    itself; relative ones it follows.)"""
    import av

    with av.open(io.BytesIO(trap.bodies[name][0]), metadata_errors="ignore") as c:
        assert c.format.name == "concat"
        frames = sum(1 for _ in c.decode(c.streams.audio[0]))
    assert frames > 0 and trap.opened


@pytest.mark.parametrize("name", sorted(hostile_bodies()))
def test_the_decoder_refuses_by_name_and_opens_nothing(name, trap, tmp_path):
    body, detected = trap.bodies[name]
    path = tmp_path / f"{name}.wav"
    path.write_bytes(body)
    for cell, kind in ((body, INPUT_BINARY), (str(path), INPUT_PATH)):
        (item,), sockets = sockets_during(lambda: cell_items(cell, kind, f"in/{name}.wav"))
        assert item.samples is None and item.error.startswith(f"in/{name}.wav: {REFUSED}"), item.error
        assert detected in item.error and not sockets
    assert not trap.opened


def test_ffmpeg_whitelists_are_a_second_line(trap):
    """Were a script ever sniffed as audio, the options FFmpeg is opened with would still refuse
    the file it names: the demuxer alone is allowed, no protocol, no nested open."""
    import av

    for demuxer, name in (("concat", "concat"), ("concat", "concat-absolute"), ("hls", "hls")):
        body = trap.bodies[name][0]
        args = ffmpeg_open_args(Detected("a script taken for audio", demuxer, True))
        with pytest.raises(Exception):
            with av.open(io.BytesIO(body), metadata_errors="ignore", **args) as c:
                for _ in c.decode(c.streams.audio[0]):
                    pass
    assert not trap.opened


def test_codec_allow_list_and_video_only_files():
    check_codec("pcm_s16le", "WAV")
    check_codec("opus", "Ogg")
    for codec in ("h264", "png", "subrip", "bin_data"):
        with pytest.raises(ValueError, match="not one we decode"):
            check_codec(codec, "Matroska")
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as c:  # a video without sound
        v = c.add_stream("mpeg4", rate=5)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        img = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        for p in [*v.encode(img), *v.encode(None)]:
            c.mux(p)
    with pytest.raises(AudioError, match="no audio stream"):
        decode_audio(buf.getvalue())


def test_paths_are_not_patterns(tmp_path, clips):
    """A path is opened as it is: no image2-style pattern, no URL protocol."""
    shutil.copy(_secret_clip(clips), tmp_path / "meeting001.wav")
    for cell in (str(tmp_path / "meeting%03d.wav"), f"subfile,,start,0,end,0,,:{tmp_path / 'meeting001.wav'}"):
        (item,) = cell_items(cell, INPUT_PATH, cell)
        assert item.samples is None and "file not found" in item.error, item.error


# -- the option table: every engine option bounded ---------------------------------------------------


def test_every_engine_option_is_bounded():
    from sparkasr.ctc.engine import CTCOptions
    from sparkasr.ctc.lm import BeamOptions
    from sparkasr.options import BOOL, FLOAT, INT, STRING, options_of
    from sparkasr.train.options import TrainOptions
    from sparkasr.whisper import RuntimeOptions, WhisperOptions

    for cls in (WhisperOptions, RuntimeOptions, CTCOptions, BeamOptions, TrainOptions):
        for o in options_of(cls):
            kind = o.element_type
            if o.is_list:
                assert o.max_items is not None, o.name
            if kind in (INT, FLOAT) and o.choices is None:
                assert o.minimum is not None and o.maximum is not None, o.name
            if kind == STRING:
                assert o.choices is not None or o.max_length is not None, o.name
            assert kind in (INT, FLOAT, STRING, BOOL), o.name
    beam = options_of(WhisperOptions)[[o.name for o in options_of(WhisperOptions)].index("beamSize")]
    for bad in ("2", True, 2.0, 10**9):
        with pytest.raises(ValueError):
            beam.check(bad, strict=True)
    assert beam.check("2") == 2  # job files and flags may give numbers as text
    temp = options_of(WhisperOptions)[[o.name for o in options_of(WhisperOptions)].index("temperature")]
    for bad in ([float("inf")], [float("nan")], [3.0], [0.0] * 11):
        with pytest.raises(ValueError):
            temp.check(bad)


# -- the HTTP server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(service):
    limits = ConnectionLimits(header_timeout_s=1.0, body_timeout_s=1.0, min_body_rate=1024, max_connections=64)
    srv = ThreadServer(create_app(service, HttpLimits(max_body_bytes=4 << 20)), limits=limits)
    yield srv
    srv.close()


def _post(url, content, headers=None):
    return httpx.post(url, content=content, headers=headers, timeout=TIMEOUT)


def test_server_refuses_each_hostile_body_raw_and_base64(server, trap, clips):
    for name, (body, detected) in trap.bodies.items():
        doc = json.dumps({"inputs": base64.b64encode(body).decode()}).encode()
        for content, headers in ((body, {}), (doc, {"content-type": "application/json"})):
            r, sockets = sockets_during(lambda: _post(server.url, content, headers))
            assert r.status_code == 400, (name, r.status_code, r.text)
            error = r.json()["error"]
            assert REFUSED in error and detected in error and _no_secret(error), (name, error)
            assert not sockets, (name, sockets)
    assert not trap.opened
    ok = _post(server.url, clips[2][0].read_bytes())  # still serving
    assert ok.status_code == 200 and ok.json()["text"]


def test_sdp_body_opens_no_socket(server):
    before = udp_sockets()
    r, seen = sockets_during(lambda: _post(server.url, SDP))
    assert r.status_code == 400 and "SDP" in r.json()["error"]
    assert not seen and udp_sockets() == before


BAD_PARAMETERS = [  # (generation_parameters as JSON text, status, what the error names)
    ('{"num_beams": 1e9}', 422, "num_beams"),
    ('{"num_beams": 1000}', 422, "num_beams"),
    ('{"num_beams": "2"}', 422, "num_beams"),
    ('{"num_beams": true}', 422, "num_beams"),
    ('{"num_beams": 2.5}', 422, "num_beams"),
    ('{"temperature": 1e999}', 422, "temperature"),
    ('{"temperature": NaN}', 400, "NaN"),
    ('{"temperature": Infinity}', 400, "Infinity"),
    ('{"temperature": -1}', 422, "temperature"),
    ('{"temperature": 7}', 422, "temperature"),
    ('{"temperature": "0.5"}', 422, "temperature"),
    ('{"max_new_tokens": 100000}', 422, "max_new_tokens"),
    ('{"max_new_tokens": "10"}', 422, "max_new_tokens"),
    ('{"top_k": 1e12, "do_sample": true}', 422, "top_k"),
    ('{"do_sample": "yes"}', 422, "do_sample"),
    ('{"use_cache": 1}', 422, "use_cache"),
    ('{"early_stopping": "never"}', 422, "early_stopping"),
]


@pytest.mark.parametrize("gen,status,names", BAD_PARAMETERS)
def test_request_values_bounded_and_typed(server, clips, gen, status, names):
    audio = base64.b64encode(clips[5][0].read_bytes()).decode()
    body = '{"inputs": "' + audio + '", "parameters": {"generation_parameters": ' + gen + "}}"
    r = _post(server.url, body.encode(), {"content-type": "application/json"})
    assert r.status_code == status and names in r.json()["error"], (gen, r.status_code, r.text)


def test_json_depth_size_and_long_names(server, service, clips):
    deep = b'{"inputs": "AAAA", "parameters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    wide = b'{"inputs": "AAAA", "parameters": {"x": [' + b"0," * 100_000 + b"0]}}"
    for body in (deep, b"[" * 100_000, wide):
        r = _post(server.url, body, {"content-type": "application/json"})
        assert r.status_code == 400 and ("deeper" in r.json()["error"] or "values" in r.json()["error"]), r.text
    long_name = "x" * 60_000
    r = _post(server.url, json.dumps({"inputs": "AAAA", long_name: 1}).encode(), {"content-type": "application/json"})
    assert r.status_code == 422 and len(r.text) < 500, r.text[:200]
    r = _post(server.url, clips[5][0].read_bytes(), {"x-wait-for-model": "y" * 4000})
    assert r.status_code == 400 and len(r.text) < 500
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).json()["status"] == "ready"


# -- connections --------------------------------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    return s


def _status_line(s: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return out
        if not chunk:
            return out
        out += chunk


def test_headers_never_finished_get_408_and_close(server):
    s = _connect(server.url)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")  # and nothing more
    answer = _read_all(s)  # the server closes the connection after its header time-out
    s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_trickled_body_is_cut_off(server):
    s = _connect(server.url)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    closed = threading.Event()

    def trickle():
        for _ in range(10_000):  # a byte at a time, far slower than min_body_rate
            if closed.is_set():
                return
            try:
                s.sendall(b"R")
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    answer = _read_all(s)  # returns once the server closed the connection
    closed.set()
    t.join(TIMEOUT)
    s.close()
    assert b"200 OK" not in answer


def test_disconnect_is_one_line_without_traceback(server, caplog):
    caplog.set_level(logging.INFO)
    s = _connect(server.url)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n" + b"RIFF" * 100)
    time.sleep(0.2)  # let the server start reading the body (the assertion does not depend on it)
    s.close()
    deadline = time.monotonic() + TIMEOUT
    while not any("disconnected" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200


def test_connection_cap(service):
    limits = ConnectionLimits(header_timeout_s=TIMEOUT, body_timeout_s=TIMEOUT, max_connections=3)
    srv = ThreadServer(create_app(service, HttpLimits()), limits=limits, timeout_keep_alive=int(TIMEOUT))
    try:
        held = [_connect(srv.url) for _ in range(3)]
        for h in held:  # each connection is open on the server's side once it answers a request
            h.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status_line(h).startswith(b"HTTP/1.1 200")
        extra = _connect(srv.url)
        assert _read_all(extra).startswith(b"HTTP/1.1 503")
        extra.close()
        for h in held:
            h.close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the held connections go; a new one is served again
            try:
                if httpx.get(f"{srv.url}/health", timeout=TIMEOUT).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        srv.close()


# -- fair scheduling -----------------------------------------------------------------------------------


def test_turn_gate_alternates_when_both_sides_wait():
    """A short batch waiting while a long model call runs goes next; then the long side, which
    waited, goes before the short side's next batch: neither is starved."""
    gate = TurnGate()
    order, events = [], {k: threading.Event() for k in ("long_in", "long_go", "short_waiting", "short2")}

    def long_side():
        with gate.turn(LONG):
            order.append("long-1")
            events["long_in"].set()
            events["long_go"].wait(TIMEOUT)
        with gate.turn(LONG):  # the next model call of the long request
            order.append("long-2")

    def short_side():
        events["long_in"].wait(TIMEOUT)
        events["short_waiting"].set()
        with gate.turn(SHORT):
            order.append("short-1")
            # the long side now waits for its next call; the short side's next batch must wait for it
            while not gate._waiting[LONG]:
                time.sleep(0.001)
        with gate.turn(SHORT):
            order.append("short-2")

    threads = [threading.Thread(target=long_side), threading.Thread(target=short_side)]
    for t in threads:
        t.start()
    events["short_waiting"].wait(TIMEOUT)
    while not gate._waiting[SHORT]:
        time.sleep(0.001)
    events["long_go"].set()
    for t in threads:
        t.join(TIMEOUT)
    assert order == ["long-1", "short-1", "long-2", "short-2"]


class _FakeEngine:
    """Records the order of its model calls; a long row is ``pieces`` steps of one call each, and
    the group the lane allowed each step (``groups``: ``(source, group())``)."""

    def __init__(self, log, hold: threading.Event, started: threading.Event, pieces: int = 4):
        self.log, self.hold, self.started, self.pieces = log, hold, started, pieces
        self.groups = []

    def transcribe_batch(self, items):
        self.log.append("short:" + ",".join(it.source for it in items))
        return [Transcript(text=it.source, source=it.source) for it in items]

    def transcribe_steps(self, item, around, group=None):
        for k in range(self.pieces):
            self.groups.append((item.source, group() if group else None))
            with around():
                self.log.append(f"long:{k}")
                if k == 0:
                    self.started.set()
                    self.hold.wait(TIMEOUT)  # the first piece is busy while the short requests arrive
            yield
        return Transcript(text="long", source=item.source)


def test_short_requests_run_between_the_pieces_of_a_long_one():
    log, hold, started = [], threading.Event(), threading.Event()
    svc = ModelService(resolve_model(None), {}, Limits(max_batch=8, max_wait_ms=0, long_s=30.0))
    engine = _FakeEngine(log, hold, started)
    svc.engine = lambda *key: engine  # no model: the order of the calls is what is tested
    svc.long_lane.engine_for = svc.engine
    svc.ready.set_result(True)

    worker = threading.Thread(target=svc._run)
    worker.start()
    svc.long_lane.start()
    try:
        long_future = svc.submit(svc.default_options, AudioItem(np.zeros(60 * SAMPLE_RATE, np.float32), "long"))
        assert started.wait(TIMEOUT)
        assert svc.info()["long_lane"] == 1  # the request whose piece is running counts
        shorts = [
            svc.submit(svc.default_options, AudioItem(np.zeros(SAMPLE_RATE, np.float32), f"s{i}")) for i in range(2)
        ]
        while not svc.gate._waiting[SHORT]:  # the worker took them: they wait for their turn
            time.sleep(0.001)
        hold.set()
        assert [f.result(TIMEOUT).text for f in shorts] == ["s0", "s1"]
        assert long_future.result(TIMEOUT).text == "long"
    finally:
        svc.stop()
        worker.join(TIMEOUT)
    first_short = next(i for i, e in enumerate(log) if e.startswith("short"))
    assert log[0] == "long:0" and first_short == 1, log  # right after the piece that was running
    assert log.count("long:3") == 1 and svc.long_lane.requests == 1
    assert engine.groups[0] == ("long", ALONE_GROUP)  # alone when it started: a batch of pieces


def test_long_steps_take_a_group_of_pieces_only_when_alone():
    """The long lane lets a step decode ``ALONE_GROUP`` pieces batched only while its job is alone:
    one piece while a short request has or waits for a turn, or while another long request or an
    async job waits in the lane."""
    hold, started = threading.Event(), threading.Event()
    hold.set()
    engine = _FakeEngine([], hold, started, pieces=3)
    gate = TurnGate()

    def job(source):
        return Job(("o", None), AudioItem(np.zeros(SAMPLE_RATE, np.float32), source))

    beside_short = LongLane(gate, lambda *key: engine)
    together = LongLane(gate, lambda *key: engine)  # both jobs queued before it starts
    request, background = job("request"), job("job")
    together.add_background(background)
    together.add(request)
    beside_short.start()
    try:
        with gate.turn(SHORT):  # a short request's engine call: the long one's first step waits
            first = job("beside-short")
            beside_short.add(first)
            while not engine.groups:
                time.sleep(0.001)
        assert first.future.result(TIMEOUT).text == "long"
        together.start()
        assert request.future.result(TIMEOUT).text == background.future.result(TIMEOUT).text == "long"
    finally:
        beside_short.stop()
        together.stop()
    assert engine.groups == [
        *[("beside-short", 1), ("beside-short", ALONE_GROUP), ("beside-short", ALONE_GROUP)],
        *[("request", 1)] * 3,  # the async job waits below it
        *[("job", ALONE_GROUP)] * 3,  # then alone
    ]


def test_long_request_transcript_unchanged(server, service, clips):
    """A 2-piece row through the server (the long lane, its model calls in turns) gives the
    transcript of one engine call on the whole row, in steps a piece at a time or, as the server
    takes it alone, both pieces batched in one step (fewer model calls)."""
    parts = [decode_audio(str(p)) for p, _ in clips[:5]]
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    body = wav_of(np.concatenate([x for p in parts * 2 for x in (p, gap)])[: 45 * SAMPLE_RATE])
    row = decode_audio(body)  # the samples the server will decode
    engine = service.engine(service.default_options)
    whole = engine.transcribe_batch([AudioItem(row, source="row")])[0]
    piecewise = TurnGate()
    stepped = run_steps(engine.transcribe_steps(AudioItem(row, source="row"), piecewise.long_call))
    assert whole.extra["pieces"] == 2 and stepped.text == whole.text
    assert [c.as_dict() for c in stepped.chunks] == [c.as_dict() for c in whole.chunks]
    before, calls_before = service.long_lane.requests, service.gate.turns[LONG]
    r = _post(server.url, body, {"x-use-cache": "false"})
    assert r.status_code == 200 and r.json()["text"] == whole.text.strip()
    assert service.long_lane.requests == before + 1
    assert service.gate.turns[LONG] - calls_before < piecewise.turns[LONG]  # alone: one batch of both


# -- the demo's handler -------------------------------------------------------------------------------


def test_demo_reads_only_uploads_and_removes_them(service, trap, tmp_path, monkeypatch, clips):
    import gradio as gr

    from sparkasr.serve.demo import transcribe_upload

    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    for name, (body, detected) in trap.bodies.items():
        path = uploads / name / "audio.wav"
        path.parent.mkdir(parents=True)
        path.write_bytes(body)
        with pytest.raises(gr.Error, match="not an audio format we read") as err:
            transcribe_upload(service, str(path))
        assert detected in str(err.value) and not path.exists() and not path.parent.exists()
    with pytest.raises(gr.Error, match="not an uploaded file"):  # a file of the server, named by a client
        transcribe_upload(service, str(tmp_path / SECRET_NAME))
    good = uploads / "good" / "clip.wav"
    good.parent.mkdir()
    shutil.copy(clips[5][0], good)
    assert transcribe_upload(service, str(good)) and not good.exists()
    assert not trap.opened


# -- Spark: the stages, read_audio, LightPipeline, the job -------------------------------------------


def _hostile_dir(root: Path, clips) -> Path:
    """The hostile files and a good clip; the secret they point at (by absolute path) elsewhere."""
    secret = root / "elsewhere" / SECRET_NAME
    secret.parent.mkdir()
    shutil.copy(_secret_clip(clips), secret)
    d = root / "in"
    d.mkdir()
    bodies = hostile_bodies(absolute=str(secret))
    for name, (body, _) in bodies.items():
        (d / f"{name}.wav").write_bytes(body)
    shutil.copy(clips[5][0], d / "good.wav")
    return d, bodies


def _check_rows(rows: dict, what: str) -> None:
    """``rows``: file name -> (text, error) for every hostile file and good.wav."""
    assert set(rows) == {f"{n}.wav" for n in hostile_bodies()} | {"good.wav"}, (what, sorted(rows))
    for name, (_, detected) in hostile_bodies().items():
        text, error = rows[f"{name}.wav"]
        assert not text and error and f"{name}.wav" in error and REFUSED in error and detected in error, (
            what,
            name,
            error,
        )
    assert rows["good.wav"][0] and not rows["good.wav"][1], (what, rows["good.wav"])
    assert all(_no_secret(t or "") for t, _ in rows.values()), what


@pytest.mark.spark
def test_spark_stages_read_audio_and_light_pipeline(spark, tmp_path, clips):
    from pyspark.ml import PipelineModel

    from sparkasr import AudioAssembler, LightPipeline, WhisperForCTC, read_audio

    d, bodies = _hostile_dir(tmp_path, clips)
    files = spark.read.format("binaryFile").load(str(d / "*.wav")).select("path", "content")
    on_bytes = WhisperForCTC.pretrained().setInputCols(["content"]).setOutputCol("b").setTimestamps("none")
    on_paths = WhisperForCTC.pretrained().setInputCols(["path"]).setOutputCol("p").setTimestamps("none")
    assembler = AudioAssembler(inputCol="content", outputCol="audio")
    out = PipelineModel(stages=[assembler, on_bytes, on_paths]).transform(files).collect()
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in out}
    for col in ("b", "p"):
        _check_rows({n: (r[col][0]["result"], r[col][0]["metadata"].get("error")) for n, r in by_name.items()}, col)
    _check_rows(
        {n: (" " * len(r["audio"][0]["result"]), r["audio"][0]["metadata"].get("error")) for n, r in by_name.items()},
        "AudioAssembler",
    )
    rows = read_audio(spark, str(d), recursive=False).collect()
    _check_rows(
        {r["path"].rsplit("/", 1)[-1]: ("x" if len(r["audio"]) else "", r["error"]) for r in rows}, "read_audio"
    )
    light = LightPipeline(WhisperForCTC.pretrained().setInputCols(["path"]))
    for name, (body, detected) in bodies.items():
        for source in (str(d / f"{name}.wav"), body):
            (full,) = light.fullAnnotate(source)
            (doc,) = full["transcription"]
            assert doc["result"] == "" and REFUSED in doc["metadata"]["error"] and detected in doc["metadata"]["error"]


@pytest.mark.spark
def test_batch_job_gives_an_error_row_per_hostile_file(spark, tmp_path, clips):
    from sparkasr.cli import main

    d, _ = _hostile_dir(tmp_path, clips)
    out = tmp_path / "out"
    assert main(["transcribe", str(d), "--output", str(out), "--quiet", "--no-report"]) == 0
    records = [
        json.loads(line)
        for f in sorted((out / "transcripts").rglob("part-*.json"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    by_name = {r["path"].rsplit("/", 1)[-1]: (r["text"], r["error"]) for r in records}
    _check_rows(by_name, "sparkasr transcribe")
