"""The microphone demo: a Gradio app on the same :class:`~.service.ModelService` as the HTTP API.

* **Full context**: record (or upload) a clip, then *Transcribe*: the file Gradio saved is decoded
  by :func:`sparkasr.cells.cell_items` (any format, resampled to 16 kHz by :mod:`sparkasr.audio`)
  and transcribed with the server's options, through the same queue as the HTTP requests.
* **Streaming**: ``gr.Blocks`` with ``audio.stream(...)``: one call per microphone chunk (int16 at
  the browser's 44.1/48 kHz, converted with :func:`sparkasr.audio.to_mono_16k`). A handler only
  appends the chunk and returns the latest text: decoding runs in the background (one decode in
  flight per session, of the audio not yet settled), so a handler is never slower than
  ``stream_every`` and no chunk is dropped. Audio past ``commit_s`` seconds is settled at a quiet
  point and its text kept, so a partial decode never grows past one window. At stop, the rest is
  decoded and the final transcript shown.

Offline: ``GRADIO_ANALYTICS_ENABLED=False`` (set before gradio is imported), no server-side
rendering, no share link; the page loads no outside assets.
"""

from __future__ import annotations

import concurrent.futures as cf
import hmac
import logging
import os
import threading
import time
from typing import List, Optional, Tuple

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..audio import SAMPLE_RATE, AudioError, quiet_cut, to_mono_16k, validate_samples  # noqa: E402
from ..cells import INPUT_PATH, cell_items  # noqa: E402
from ..records import AudioItem  # noqa: E402
from .service import ModelService  # noqa: E402

log = logging.getLogger(__name__)

STREAM_EVERY_S = 0.5  # how often the browser sends a microphone chunk
MIN_DECODE_S = 0.5  # a partial decode waits for this much audio
LISTENING, FINAL = "listening", "final"  # the streaming tab's status


def mic_samples(rate: int, data: np.ndarray) -> np.ndarray:
    """A microphone chunk as Gradio hands it (int or float samples, ``(n,)`` or ``(n, channels)``)
    as 16 kHz mono float32."""
    arr = np.asarray(data)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    channels = arr.shape[1] if arr.ndim == 2 else 1
    return to_mono_16k(arr.reshape(-1), int(rate), channels)


class LiveSession:
    """One browser's stream: its 16-kHz audio, the text of the settled part, the latest partial,
    and at most one decode in flight."""

    def __init__(self, service: ModelService, commit_s: float = 20.0):
        self.service = service
        self.commit_s = commit_s
        self.blocks: List[np.ndarray] = []
        self.audio = np.zeros(0, np.float32)
        self.settled = 0  # samples whose text is final
        self.settled_text: List[str] = []
        self.partial = ""
        self.pending: Optional[Tuple[cf.Future, Optional[int]]] = None  # (future, settles up to sample)
        self.final: Optional[str] = None  # the transcript once recording stopped
        self.received_s = 0.0  # audio that reached the server
        self.first_at: Optional[float] = None  # when the first chunk arrived (monotonic)
        self.lock = threading.Lock()

    def add(self, rate: int, data: np.ndarray) -> None:
        samples = mic_samples(rate, data)
        with self.lock:
            self.first_at = self.first_at or time.monotonic()
            self.received_s += len(samples) / SAMPLE_RATE
            self.blocks.append(samples)

    def text(self) -> str:
        return " ".join([*self.settled_text, self.partial]).strip()

    def _collect(self) -> None:
        if self.blocks:
            self.audio = np.concatenate([self.audio, *self.blocks])
            self.blocks = []

    def _absorb(self, block: bool) -> None:
        if self.pending is None:
            return
        future, settles = self.pending
        if not block and not future.done():
            return
        self.pending = None
        t = future.result()
        if t.error:
            log.warning("demo decode failed: %s", t.error)
            return
        if settles is None:
            self.partial = t.text
        else:
            self.settled_text.append(t.text)
            self.settled, self.partial = settles, ""

    def _start(self, final: bool) -> Optional[cf.Future]:
        tail = self.audio[self.settled :]
        if len(tail) < MIN_DECODE_S * SAMPLE_RATE and not (final and len(tail)):
            return None
        settles: Optional[int] = None
        if final:
            settles = len(self.audio)
        elif len(tail) > self.commit_s * SAMPLE_RATE:
            cut = quiet_cut(tail, int(self.commit_s * SAMPLE_RATE), 5 * SAMPLE_RATE)
            tail, settles = tail[:cut], self.settled + cut
        try:
            validate_samples(tail)
        except AudioError:  # nothing audible yet
            if settles is not None:
                self.settled = settles
            return None
        options, runtime = self.service.background()
        future = self.service.submit(options, AudioItem(tail, source="microphone"), runtime)
        self.pending = (future, settles)
        return future

    def poll(self) -> str:
        """Take the new audio, pick up a finished decode, start the next; the latest text."""
        with self.lock:
            self._collect()
            self._absorb(block=False)
            if self.pending is None and self.service.ready.done():
                self._start(final=False)
            return self.text()

    def finish(self, timeout: Optional[float] = None) -> str:
        """The final transcript: waits for the decode in flight, then decodes the rest."""
        self.service.ready.result(timeout)
        with self.lock:
            self._collect()
            self._absorb(block=True)
            if self._start(final=True) is not None:
                self._absorb(block=True)
            self.partial = ""
            self.final = self.text()
            if self.first_at is not None:  # Gradio keeps only the latest chunk when its loop falls behind
                log.info(
                    "live session: %.1f s of audio received over %.1f s",
                    self.received_s,
                    time.monotonic() - self.first_at,
                )
            return self.final


def build_demo(service: ModelService, title: str = "sparkasr") -> gr.Blocks:
    """The two-tab Gradio app for ``service``."""

    def transcribe_file(path: Optional[str]) -> str:
        if not path:
            raise gr.Error("record or upload some audio first")
        (item,) = cell_items(path, INPUT_PATH, os.path.basename(path))
        if item.error:
            raise gr.Error(item.error)
        (t,) = service.transcribe([item])
        if t.error:
            raise gr.Error(t.error)
        return t.text

    def stream(chunk, session: Optional[LiveSession]):
        session = session or LiveSession(service)
        if session.final is not None:  # a chunk sent after stop: the final text stays
            return session.final, FINAL, session
        if chunk is not None:
            session.add(*chunk)
        return session.poll(), LISTENING, session

    def stop(session: Optional[LiveSession]):
        if session is None:
            return "", FINAL, None
        return session.finish(), FINAL, session

    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {title}: speech to text with {service.model.name}")
        with gr.Tab("Full context", id="full"):
            audio = gr.Audio(
                sources=["microphone", "upload"], type="filepath", label="Record or upload", elem_id="full-audio"
            )
            button = gr.Button("Transcribe", variant="primary", elem_id="full-submit")
            full_text = gr.Textbox(label="Transcript", lines=4, elem_id="full-transcript")
            button.click(transcribe_file, inputs=audio, outputs=full_text, concurrency_limit=service.limits.max_batch)
        with gr.Tab("Streaming", id="live"):
            live = gr.Audio(sources=["microphone"], type="numpy", streaming=True, label="Speak", elem_id="live-audio")
            live_text = gr.Textbox(label="Live transcript", lines=4, elem_id="live-transcript")
            live_status = gr.Textbox(label="Status", value="", interactive=False, elem_id="live-status")
            state = gr.State(None)
            live.start_recording(lambda: ("", LISTENING, None), outputs=[live_text, live_status, state])
            live.stream(
                stream,
                inputs=[live, state],
                outputs=[live_text, live_status, state],
                stream_every=STREAM_EVERY_S,
                concurrency_limit=None,
                show_progress="hidden",
            )
            live.stop_recording(stop, inputs=[state], outputs=[live_text, live_status, state])
    return blocks


def mount_demo(app, service: ModelService, path: str = "/demo", token: Optional[str] = None):
    """Mount the demo on a FastAPI ``app``; with ``token``, behind Gradio's login (password: the
    token), since a browser cannot send the API's Bearer header."""
    auth = (lambda _user, password: hmac.compare_digest(str(password), token)) if token else None
    return gr.mount_gradio_app(app, build_demo(service), path=path, auth=auth, ssr_mode=False)
