"""``sparkasr serve`` with ``parameters.return_speakers``: the chunks of a timestamped answer carry a
speaker (an English conversation of two people: Allison's English prompts and the LibriVox reader)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import conversations  # noqa: E402
import eval_corpus  # noqa: E402
from serve_support import ThreadServer, wav_bytes  # noqa: E402

MISSING = eval_corpus.missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def test_chunks_carry_speakers_when_asked():
    from sparkasr.evaluation import diarization_stats
    from sparkasr.serve.app import HttpLimits, create_app
    from sparkasr.serve.service import Limits, ModelService, resolve_model

    pool = conversations.voices()
    pool = {
        "allison": conversations.Voice("allison", [p for p in pool["allison"].clips if "en_US" in p]),
        conversations.LIBRIVOX: pool[conversations.LIBRIVOX],
    }
    conv = conversations.build("serve", pool, 2, 20.0, 60, speakers=["allison", conversations.LIBRIVOX])
    body = base64.b64encode(wav_bytes(conv.samples)).decode()
    service = ModelService(resolve_model(None), {"temperature": [0.0]}, Limits(max_batch=4, max_wait_ms=10))
    service.load()
    server = ThreadServer(create_app(service, HttpLimits(max_body_bytes=8 << 20)))
    try:
        r = httpx.post(f"{server.url}/", json={"inputs": body, "parameters": {"return_speakers": True}}, timeout=300)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["chunks"] and all(c["speaker"] in {"S1", "S2"} for c in doc["chunks"])
        turns = [(t["start"], t["end"], t["speaker"]) for t in doc["speakers"]]
        assert diarization_stats(conv.turns, turns).counts().der < 0.2
        plain = httpx.post(f"{server.url}/", json={"inputs": body}, timeout=300).json()
        assert "speakers" not in plain and all("speaker" not in c for c in plain["chunks"])
        bad = httpx.post(f"{server.url}/", json={"inputs": body, "parameters": {"return_speakers": "yes"}}, timeout=60)
        assert bad.status_code == 422 and "return_speakers" in bad.json()["error"]
    finally:
        server.close()
        service.stop()
