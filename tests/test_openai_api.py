"""OpenAI's audio API on `sparkasr serve` (/v1/audio/transcriptions, /v1/audio/translations,
/v1/models), end to end with the official `openai` client and curl on the vendored real clips: each
response format, both timestamp granularities, streaming (a short clip and a long upload through the
long lane), and the refusals in OpenAI's error shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from serve_support import ThreadServer, wav_bytes, wer
from sparkasr.records import AudioItem
from sparkasr.serve.app import HttpLimits, create_app
from sparkasr.serve.openai_protocol import fallback_temperatures, language_name
from sparkasr.serve.service import Limits, ModelService, resolve_model

TIMEOUT = 300.0  # generous bound on any one request (the machine may be busy): hangs fail, slowness does not
TOKEN = "open-sesame"
DATA = Path(__file__).resolve().parent / "data"
CLIP = DATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"
REF = (DATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.txt").read_text().strip()
SHORT = DATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 3 s, for the cheaper checks
SHORT_REF = (DATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.txt").read_text().strip()
MODEL = "tiny.en"


@pytest.fixture(scope="module")
def server(service):
    srv = ThreadServer(create_app(service, HttpLimits(max_body_bytes=2 << 20, token=TOKEN)))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def verbose(client):
    """One decode with both granularities, shared by the tests that read it."""
    with open(CLIP, "rb") as f:
        return client.audio.transcriptions.create(
            model=MODEL, file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )


def _words(text: str):
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def _post(server, files=None, data=None, token=TOKEN, path="/v1/audio/transcriptions", **kw):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.url}{path}", files=files, data=data, headers=headers, timeout=TIMEOUT, **kw)


def _clip_file():
    return {"file": ("clip.wav", CLIP.read_bytes(), "audio/wav")}


def _openai_error(r: httpx.Response, status: int, param=None, code=None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


# -- answers ------------------------------------------------------------------------------------


def test_json_text_and_models(client):
    with open(CLIP, "rb") as f:
        t = client.audio.transcriptions.create(model=MODEL, file=f)
    assert wer([REF], [t.text]) < 0.3
    assert t.usage.type == "duration" and t.usage.seconds == 8
    with open(SHORT, "rb") as f:
        text = client.audio.transcriptions.create(model=MODEL, file=f, response_format="text")
    assert isinstance(text, str) and text.endswith("\n") and wer([SHORT_REF], [text]) < 0.3
    listed = client.models.list()
    assert [m.id for m in listed.data] == [MODEL] and listed.data[0].object == "model"
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("whisper-1")
    assert e.value.code == "model_not_found"


def test_verbose_json_segments_and_words(verbose):
    v = verbose
    assert v.language == "english" and v.task == "transcribe"  # OpenAI names the language
    assert language_name("es") == "spanish" and language_name("yue") == "cantonese" and language_name(None) == ""
    assert v.duration == pytest.approx(7.1, abs=0.01)
    assert wer([REF], [v.text]) < 0.3
    assert v.segments and v.words
    seg_text = "".join(s.text for s in v.segments).strip()
    assert seg_text == v.text
    for i, s in enumerate(v.segments):
        assert s.id == i and 0 <= s.start <= s.end <= v.duration + 0.01
        assert s.tokens and all(isinstance(x, int) and 0 <= x < 51865 for x in s.tokens)
        assert s.temperature == 0.0 and -5 < s.avg_logprob <= 0 and 0 <= s.no_speech_prob <= 1
        assert 0 < s.compression_ratio < 3 and s.seek == 0
    assert [w.word for w in v.words] == v.text.split()
    starts = [w.start for w in v.words]
    assert starts == sorted(starts) and all(w.start <= w.end <= v.duration + 0.01 for w in v.words)
    # each word lies in its segment's time, give or take the alignment's edges
    assert v.words[0].start >= v.segments[0].start - 0.5 and v.words[-1].end <= v.segments[-1].end + 0.5


def test_verbose_json_one_granularity(client, verbose):
    with open(CLIP, "rb") as f:
        only_segments = client.audio.transcriptions.create(model=MODEL, file=f, response_format="verbose_json")
    assert only_segments.words is None and only_segments.text == verbose.text
    assert [s.text for s in only_segments.segments] == [s.text for s in verbose.segments]
    assert [s.tokens for s in only_segments.segments] == [s.tokens for s in verbose.segments]
    with open(CLIP, "rb") as f:
        only_words = client.audio.transcriptions.create(
            model=MODEL, file=f, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert only_words.segments is None
    assert [w.word for w in only_words.words] == [w.word for w in verbose.words]


def test_srt_and_vtt_follow_the_cue_rules(client, verbose):
    from sparkasr.job.subtitles import cues_from_chunks, to_srt, to_vtt

    chunks = [{"text": w.word, "timestamp": [w.start, w.end]} for w in verbose.words]
    cues = cues_from_chunks(chunks)
    with open(CLIP, "rb") as f:
        srt = client.audio.transcriptions.create(model=MODEL, file=f, response_format="srt")
    assert srt == to_srt(cues) and srt.startswith("1\n00:00:0")
    with open(CLIP, "rb") as f:
        vtt = client.audio.transcriptions.create(model=MODEL, file=f, response_format="vtt")
    assert vtt == to_vtt(cues) and vtt.startswith("WEBVTT\n\n00:00:0")


def test_prompt_language_and_temperature_are_honoured(client, verbose):
    with open(SHORT, "rb") as f:
        t = client.audio.transcriptions.create(
            model=MODEL, file=f, language="en", prompt="Sense and Sensibility.", temperature=0.0
        )
    assert wer([SHORT_REF], [t.text]) < 0.3
    assert fallback_temperatures(0.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and fallback_temperatures(0.9) == [0.9]


def test_curl_multipart_by_hand(server, verbose):
    out = subprocess.run(
        [
            "curl",
            "-sS",
            f"{server.url}/v1/audio/transcriptions",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "-F",
            f"file=@{CLIP}",
            "-F",
            f"model={MODEL}",
            "-F",
            "response_format=verbose_json",
            "-F",
            "timestamp_granularities[]=word",
            "-F",
            "timestamp_granularities[]=segment",
        ],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    body = json.loads(out.stdout)
    assert body["text"] == verbose.text and len(body["words"]) == len(verbose.words)


def test_result_cache_serves_repeats(client, server, service):
    """The same audio and options twice: the second answer comes from the result cache (no engine
    call), in any format that needs the same timestamps; x-use-cache: false decodes again;
    sampling (an explicit temperature: OpenAI's fallback up to 1.0) is never cached."""
    card = DATA / "cards" / "002.wav"
    raw = client.audio.transcriptions.with_raw_response
    with open(card, "rb") as f:
        first = raw.create(model=MODEL, file=f)
    calls = service.stats.batched_items
    with open(card, "rb") as f:
        again = raw.create(model=MODEL, file=f)
    with open(card, "rb") as f:
        text = raw.create(model=MODEL, file=f, response_format="text")
    assert (first.headers["x-cache"], again.headers["x-cache"], text.headers["x-cache"]) == ("miss", "hit", "hit")
    assert again.parse().text == first.parse().text == text.parse().rstrip("\n") and first.parse().text
    assert service.stats.batched_items == calls  # no engine call
    with open(card, "rb") as f:
        fresh = raw.create(model=MODEL, file=f, extra_headers={"x-use-cache": "false"})
    assert fresh.headers["x-cache"] == "miss" and service.stats.batched_items == calls + 1
    with open(card, "rb") as f:
        assert raw.create(model=MODEL, file=f, temperature=0.0).headers["x-cache"] == "off"
    # a stream decodes with segment timestamps (a delta per segment): its own cache entry, whose
    # text may differ from the text-only decode's on a close call
    streamed = [
        _post(
            server, files={"file": ("c.wav", card.read_bytes(), "audio/wav")}, data={"model": MODEL, "stream": "true"}
        )
        for _ in range(2)
    ]
    assert [r.headers["x-cache"] for r in streamed] == ["miss", "hit"]
    done = [json.loads(r.text.split("\n\n")[-2][6:])["text"] for r in streamed]
    assert done[0] == done[1] and done[0]


# -- streaming ------------------------------------------------------------------------------------


def _events(stream):
    return [(e.type, getattr(e, "delta", None) or getattr(e, "text", None)) for e in stream]


def test_stream_short_clip(client, server, verbose):
    with open(CLIP, "rb") as f:  # decoded, not answered from the cache
        events = _events(
            client.audio.transcriptions.create(model=MODEL, file=f, stream=True, extra_headers={"x-use-cache": "false"})
        )
    kinds = [k for k, _ in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    assert len(kinds) - 1 == len(verbose.segments)  # a delta per segment
    assert "".join(d for _, d in events[:-1]) == events[-1][1] == verbose.text
    r = _post(server, files=_clip_file(), data={"model": MODEL, "stream": "true"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    lines = [x for x in r.text.split("\n") if x]
    assert all(x.startswith("data: ") for x in lines)
    assert json.loads(lines[-1][6:]) == {"type": "transcript.text.done", "text": verbose.text}


def test_stream_long_upload_a_delta_per_piece(client, service, monkeypatch):
    """Over 30 s: the long lane sends each piece as it is done. The lane is held after its first
    piece until the client has received a delta, so a server that sent the deltas only at the end
    fails here, whatever the timing."""
    clips = sorted((DATA / "librivox").glob("*.wav")) + sorted((DATA / "cards").glob("*.wav"))
    gap = np.zeros(8000, dtype=np.float32)
    audio = np.concatenate([np.concatenate([sf.read(c, dtype="float32")[0], gap]) for c in clips])
    assert len(audio) / 16000 > 35
    first_delta = threading.Event()
    early = []  # per piece: whether the client had a delta while the lane waited
    submit = service.submit

    def held_submit(options, item, runtime=None, partial=None):
        def held(piece):
            partial(piece)
            early.append(first_delta.wait(TIMEOUT))

        return submit(options, item, runtime, held if partial else None)

    monkeypatch.setattr(service, "submit", held_submit)
    events = []
    for e in client.audio.transcriptions.create(model=MODEL, file=("long.wav", wav_bytes(audio)), stream=True):
        events.append((e.type, getattr(e, "delta", None) or getattr(e, "text", None)))
        if e.type == "transcript.text.delta":
            first_delta.set()
    deltas = [d for k, d in events if k == "transcript.text.delta"]
    assert events[-1][0] == "transcript.text.done" and len(deltas) >= 2 and early and early[0] is True
    assert "".join(deltas) == events[-1][1]
    refs = " ".join(p.read_text().strip() for p in sorted((DATA / "librivox").glob("*.txt")))
    assert wer([refs], [" ".join(_words(events[-1][1])[: len(refs.split()) + 5])]) < 0.5


# -- refusals -------------------------------------------------------------------------------------


def test_translation_on_an_english_only_model_is_refused(client):
    with open(CLIP, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.translations.create(model=MODEL, file=f)
    assert e.value.status_code == 400 and e.value.param == "model" and "English-only" in e.value.message


def test_translation_with_the_multilingual_model():
    """Whisper base translates a Spanish prompt (Debian's Asterisk es_MX prompts) into English:
    English words come back and the Spanish ones do not; verbose_json names the language heard."""
    sys.path.insert(0, str(DATA.parents[1] / "bench"))
    import eval_corpus

    missing = eval_corpus.missing_reason()
    if missing is not None:
        pytest.skip(str(missing))
    clip = {e.name: e for e in eval_corpus.load_set("asterisk-es")}["agent-incorrect"]
    # "Clave incorrecta. Por favor, ingrese su numero de agente seguido por la tecla de numero"
    svc = ModelService(resolve_model("base"), {"temperature": [0.0]})
    svc.load()
    srv = ThreadServer(create_app(svc))
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="none", max_retries=0, timeout=TIMEOUT)
        with open(clip.path, "rb") as f:
            v = client.audio.translations.create(model="base", file=f, response_format="verbose_json")
        words = set(re.findall(r"\w+", v.text.lower()))
        assert v.task == "translate" and v.language == "spanish", v
        assert words & {"please", "enter", "number", "key", "agent", "incorrect", "wrong"}, v.text
        assert not words & {"por", "favor", "ingrese", "numero", "número", "clave", "tecla"}, v.text
    finally:
        srv.close()
        svc.stop()


def test_model_and_token_errors(client, server):
    with open(CLIP, "rb") as f, pytest.raises(openai.NotFoundError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.code == "model_not_found" and e.value.param == "model"
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0, timeout=TIMEOUT)
    with open(CLIP, "rb") as f, pytest.raises(openai.PermissionDeniedError):
        bad.audio.transcriptions.create(model=MODEL, file=f)
    r = _post(server, files=_clip_file(), data={"model": MODEL}, token=None)
    assert _openai_error(r, 401)["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"
    _openai_error(httpx.get(f"{server.url}/v1/models", timeout=TIMEOUT), 401)
    _openai_error(_post(server, path="/v1/nowhere", data={"a": "b"}), 404)


@pytest.mark.parametrize(
    "data, param, needle",
    [
        ({"response_format": "diarized_json"}, "response_format", "response_format must be one of"),
        ({"response_format": "verbose_json", "timestamp_granularities[]": "char"}, "timestamp_granularities", "word"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities", "verbose_json"),
        ({"temperature": "3"}, "temperature", "0..1"),
        ({"temperature": "nan"}, "temperature", "0..1"),
        ({"language": "de"}, "language", "English-only"),
        ({"language": "x" * 50}, "language", ""),
        ({"prompt": "word " * 600}, "prompt", ""),
        ({"stream": "maybe"}, "stream", "true or false"),
        ({"stream": "true", "response_format": "srt"}, "stream", "json or text"),
        ({"include[]": "logprobs"}, "include", "log-probabilities"),
        ({"best_of": "5"}, "best_of", "unknown field"),
    ],
)
def test_unsupported_values_are_refused(server, data, param, needle):
    err = _openai_error(_post(server, files=_clip_file(), data={"model": MODEL, **data}), 400, param=param)
    assert needle in err["message"] and err["type"] == "invalid_request_error"


def test_bad_bodies_are_refused(server):
    err = _openai_error(_post(server, data={"model": MODEL}, files={"x": ("a", b"")}), 400, "x")
    assert "unknown field" in err["message"]
    _openai_error(_post(server, data={"model": MODEL, "language": "en"}, files={}), 400)  # not multipart: no file
    not_audio = {"file": ("a.wav", b"ffconcat version 1.0\nfile /etc/passwd\n", "audio/wav")}
    err = _openai_error(_post(server, files=not_audio, data={"model": MODEL}), 400)
    assert "not an audio format" in err["message"]
    _openai_error(_post(server, files={"file": ("a.wav", b"", "audio/wav")}, data={"model": MODEL}), 400, "file")
    _openai_error(_post(server, files=_clip_file(), data={}), 400, "model")
    two = [("file", ("a.wav", CLIP.read_bytes(), "audio/wav")), ("file", ("b.wav", CLIP.read_bytes(), "audio/wav"))]
    assert "multipart" in _openai_error(_post(server, files=two, data={"model": MODEL}), 400)["message"]
    many = {f"f{i}": "x" for i in range(40)}
    _openai_error(_post(server, files=_clip_file(), data={"model": MODEL, **many}), 400)
    big_field = {"prompt": "x" * (20 << 10)}
    _openai_error(_post(server, files=_clip_file(), data={"model": MODEL, **big_field}), 400)
    r = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        content=json.dumps({"model": MODEL, "file": "abc"}),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        timeout=TIMEOUT,
    )
    assert "multipart/form-data" in _openai_error(r, 400)["message"]
    big = {"file": ("big.wav", wav_bytes(np.zeros(16000 * 70, dtype=np.float32)), "audio/wav")}
    assert _openai_error(_post(server, files=big, data={"model": MODEL}), 413)["code"] == "request_too_large"
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).json()["status"] == "ready"  # still up


def test_loading_and_full_queue():
    """503 while the model loads (Retry-After), 429 when the queue is full: OpenAI's shapes."""
    svc = ModelService(resolve_model(None), {"temperature": [0.0]}, Limits(max_queue=1))
    srv = ThreadServer(create_app(svc, HttpLimits()))
    try:
        r = _post(srv, files=_clip_file(), data={"model": MODEL}, token=None)
        err = _openai_error(r, 503)
        assert err["type"] == "server_error" and int(r.headers["retry-after"]) >= 1
        svc.ready.set_result(True)  # "loaded", with no worker: the queue does not drain
        svc.submit(svc.default_options, AudioItem(np.zeros(16000, dtype=np.float32)))
        err = _openai_error(_post(srv, files=_clip_file(), data={"model": MODEL}, token=None), 429)
        assert err["type"] == "rate_limit_error"
    finally:
        srv.close()


def test_ctc_model():
    """A CTC model: text and words; what it cannot do (segments, language, prompt, translating,
    sampling) refused."""
    from ctc_support import tiny_models

    onnx_dir = tiny_models()["wav2vec2"]["onnx"]
    svc = ModelService(resolve_model(str(onnx_dir)), {"batchSize": 4})
    svc.load()
    srv = ThreadServer(create_app(svc))
    name = svc.model.name
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="none", max_retries=0, timeout=TIMEOUT)
        with open(SHORT, "rb") as f:
            v = client.audio.transcriptions.create(
                model=name, file=f, response_format="verbose_json", timestamp_granularities=["word"]
            )
        assert v.segments is None and [w.word for w in v.words] == v.text.split()
        with open(SHORT, "rb") as f:
            assert client.audio.transcriptions.create(model=name, file=f).text == v.text
        for data, param in [
            ({"response_format": "verbose_json"}, "timestamp_granularities"),
            ({"language": "en"}, "language"),
            ({"prompt": "hello"}, "prompt"),
            ({"temperature": "0.5"}, "temperature"),
        ]:
            _openai_error(_post(srv, files=_clip_file(), data={"model": name, **data}, token=None), 400, param)
        r = _post(srv, files=_clip_file(), data={"model": name}, token=None, path="/v1/audio/translations")
        _openai_error(r, 400, "model")
    finally:
        srv.close()
        svc.stop()
