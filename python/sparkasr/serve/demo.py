"""The microphone demo: a Gradio app on the same :class:`~.service.ModelService` as the HTTP API.

* **Full context**: record (or upload) a clip, then *Transcribe*: the file Gradio saved is decoded
  by :func:`sparkasr.cells.cell_items` (any format, resampled to 16 kHz by :mod:`sparkasr.audio`)
  and transcribed with the server's options, through the same queue as the HTTP requests.
* **Streaming**: ``gr.Blocks`` with ``audio.stream(...)``: one call per microphone chunk (int16 at
  the browser's 44.1/48 kHz, converted with :func:`sparkasr.audio.to_mono_16k`). A handler only
  appends the chunk and returns the latest text: decoding runs in the background (one decode in
  flight per session, of the audio not yet settled, on one thread fewer than the server's so the
  web server keeps a core, greedy at one temperature: :meth:`.ModelService.background`), so a
  handler is never slower than the chunk rate. Audio past
  ``commit_s`` seconds is settled at a quiet point and its text kept, so a partial decode never
  grows past one window. The partials are best effort: Gradio 6 keeps only the latest chunk when
  its loop falls behind (``/stream/{event}`` overwrites the event's data), so a busy server drops
  chunks. The final transcript does not depend on them: the page also records the microphone
  (:data:`RECORDER_JS`, a ``MediaRecorder`` on a clone of the stream Gradio opens), hands the
  whole recording over at stop, and the server decodes it as the full-context tab does.

Offline: ``GRADIO_ANALYTICS_ENABLED=False`` (set before gradio is imported), no server-side
rendering, no share link; the page loads no outside assets. Uploads: only files in Gradio's upload
folder are read, and each is removed once transcribed (or after ``UPLOAD_MAX_AGE_S``).
"""

from __future__ import annotations

import base64
import binascii
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
from ..cells import INPUT_BINARY, INPUT_PATH, cell_items  # noqa: E402
from ..records import AudioItem  # noqa: E402
from .service import ModelService  # noqa: E402

log = logging.getLogger(__name__)

STREAM_EVERY_S = 0.5  # how often the browser sends a microphone chunk
MIN_DECODE_S = 0.5  # a partial decode waits for this much audio
LISTENING, FINAL = "listening", "final"  # the streaming tab's status
UPLOAD_MAX_AGE_S = 3600  # an upload never transcribed is removed after this long

LIVE_AUDIO_ID = "live-audio"  # the streaming tab's microphone component

#: In the page: every microphone stream opened while the streaming tab's microphone is on screen is
#: also recorded whole (a MediaRecorder on a clone), and sparkasrTake() returns that recording as
#: base64 at stop. Whether to record is decided as the stream opens (not by a tab event, whose
#: handler can run after the record click on a busy page). Only public browser APIs:
#: getUserMedia, MediaRecorder, Blob.
RECORDER_JS = """
<script>
(() => {
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia || window.sparkasrTake) return;
  const tap = { recorder: null, chunks: [] };
  const streaming = () => {
    const el = document.getElementById("@LIVE_AUDIO_ID@");
    return !!el && el.getClientRects().length > 0;
  };
  const drop = () => {
    const rec = tap.recorder;
    tap.recorder = null;
    if (rec) { if (rec.state !== "inactive") rec.stop(); rec.stream.getTracks().forEach((t) => t.stop()); }
  };
  const open = media.getUserMedia.bind(media);
  media.getUserMedia = async (constraints) => {
    const stream = await open(constraints);
    if (streaming() && constraints && constraints.audio && !constraints.video && window.MediaRecorder) {
      drop();
      const rec = new MediaRecorder(stream.clone());
      tap.chunks = [];
      rec.ondataavailable = (e) => { if (e.data.size) tap.chunks.push(e.data); };
      rec.start(250);
      tap.recorder = rec;
    }
    return stream;
  };
  window.sparkasrDrop = drop;
  window.sparkasrTake = async () => {
    const rec = tap.recorder;
    if (!rec) return "";
    if (rec.state !== "inactive") await new Promise((done) => { rec.onstop = done; rec.stop(); });
    drop();
    const bytes = new Uint8Array(await new Blob(tap.chunks, { type: rec.mimeType }).arrayBuffer());
    tap.chunks = [];
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
})();
</script>
""".replace("@LIVE_AUDIO_ID@", LIVE_AUDIO_ID)


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

    def finish(self, recording: Optional[np.ndarray] = None, timeout: Optional[float] = None) -> str:
        """The final transcript: of ``recording`` (the whole recording, 16 kHz) when given, else
        of the streamed audio (the decode in flight, then the rest)."""
        self.service.ready.result(timeout)
        with self.lock:
            self._collect()
            if recording is not None:
                self._absorb(block=True)
                (t,) = self.service.transcribe([AudioItem(recording, source="microphone")], timeout=timeout)
                self.settled_text, self.partial = ([] if t.error else [t.text]), ""
            else:
                self._absorb(block=True)
                if self._start(final=True) is not None:
                    self._absorb(block=True)
                self.partial = ""
            self.final = self.text()
            if self.first_at is not None:
                log.info(
                    "live session: %.1f s of streamed audio received over %.1f s; final from %s",
                    self.received_s,
                    time.monotonic() - self.first_at,
                    "the whole recording" if recording is not None else "the streamed audio",
                )
            return self.final


#: how the page is served, mounted or launched: no server-side rendering, the recorder script
PAGE = dict(ssr_mode=False, head=RECORDER_JS)


def recording_samples(b64: Optional[str]) -> Optional[np.ndarray]:
    """The page's whole recording (base64 of a WebM/Ogg file) as 16 kHz samples; ``None`` when
    there is none or it cannot be decoded (the streamed audio is used then)."""
    if not b64:
        return None
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    (item,) = cell_items(data, INPUT_BINARY, "microphone recording")
    if item.error:
        log.warning("demo: %s", item.error)
        return None
    return item.samples


def _upload_folder() -> str:
    from gradio.utils import get_upload_folder

    return os.path.realpath(get_upload_folder())


def is_upload(path: str) -> bool:
    """``path`` lies in Gradio's upload folder."""
    folder = _upload_folder()
    real = os.path.realpath(path)
    return real != folder and os.path.commonpath([folder, real]) == folder


def remove_upload(path: str) -> None:
    """Remove an uploaded file, and its folder (Gradio makes one per upload) once empty."""
    if not is_upload(path):
        return
    real = os.path.realpath(path)
    try:
        os.remove(real)
        if os.path.dirname(real) != _upload_folder():
            os.rmdir(os.path.dirname(real))
    except OSError:
        pass  # already gone, or the folder holds another file


def transcribe_upload(service: ModelService, path: Optional[str]) -> str:
    """The full-context tab: the transcript of an uploaded (or recorded) file, which is removed
    once read; ``gr.Error`` with the reason otherwise."""
    if not path:
        raise gr.Error("record or upload some audio first")
    if not is_upload(path):  # Gradio checks this too: a file of the server is never read
        raise gr.Error("not an uploaded file")
    try:
        (item,) = cell_items(path, INPUT_PATH, os.path.basename(path))
    finally:
        remove_upload(path)
    if item.error:
        raise gr.Error(item.error)
    (t,) = service.transcribe([item])
    if t.error:
        raise gr.Error(t.error)
    return t.text


def warm_partials(service: ModelService) -> threading.Thread:
    """Load the live partials' engine (:meth:`ModelService.background`: its own model replica on
    fewer threads) once the server's model is loaded, so the first partial of the first session
    does not wait for it."""

    def load() -> None:
        try:
            service.ready.result()
            service.engine(*service.background())
        except Exception:  # the server reports its own load failure; a partial would retry
            log.warning("the live partials' engine did not load", exc_info=True)

    t = threading.Thread(target=load, name="sparkasr-demo-warm", daemon=True)
    t.start()
    return t


def build_demo(service: ModelService, title: str = "sparkasr") -> gr.Blocks:
    """The two-tab Gradio app for ``service``."""
    warm_partials(service)

    def transcribe_file(path: Optional[str]) -> str:
        return transcribe_upload(service, path)

    def stream(chunk, session: Optional[LiveSession]):
        session = session or LiveSession(service)
        if session.final is not None:  # a chunk sent after stop: the final text stays
            return session.final, FINAL, session
        if chunk is not None:
            session.add(*chunk)
        return session.poll(), LISTENING, session

    def stop(recording: Optional[str], session: Optional[LiveSession]):
        if session is None:
            session = LiveSession(service)
        return session.finish(recording_samples(recording)), FINAL, session

    # uploads are removed once transcribed; those never transcribed within UPLOAD_MAX_AGE_S, by Gradio
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(UPLOAD_MAX_AGE_S, UPLOAD_MAX_AGE_S)) as blocks:
        gr.Markdown(f"## {title}: speech to text with {service.model.name}")
        with gr.Tab("Full context", id="full") as full_tab:
            audio = gr.Audio(
                sources=["microphone", "upload"], type="filepath", label="Record or upload", elem_id="full-audio"
            )
            button = gr.Button("Transcribe", variant="primary", elem_id="full-submit")
            full_text = gr.Textbox(label="Transcript", lines=4, elem_id="full-transcript")
            button.click(transcribe_file, inputs=audio, outputs=full_text, concurrency_limit=service.limits.max_batch)
        with gr.Tab("Streaming", id="live"):
            live = gr.Audio(sources=["microphone"], type="numpy", streaming=True, label="Speak", elem_id=LIVE_AUDIO_ID)
            live_text = gr.Textbox(label="Live transcript", lines=4, elem_id="live-transcript")
            live_status = gr.Textbox(label="Status", value="", interactive=False, elem_id="live-status")
            recording = gr.Textbox(visible=False)  # the page's whole recording, base64, at stop
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
            live.stop_recording(None, None, recording, js="async () => await window.sparkasrTake()").then(
                stop, inputs=[recording, state], outputs=[live_text, live_status, state]
            )
        full_tab.select(None, js="() => window.sparkasrDrop()")  # the streaming tab's microphone is let go
    return blocks


def mount_demo(app, service: ModelService, path: str = "/demo", token: Optional[str] = None):
    """Mount the demo on a FastAPI ``app``; with ``token``, behind Gradio's login (password: the
    token), since a browser cannot send the API's Bearer header."""
    auth = (lambda _user, password: hmac.compare_digest(str(password), token)) if token else None
    return gr.mount_gradio_app(app, build_demo(service), path=path, auth=auth, **PAGE)
