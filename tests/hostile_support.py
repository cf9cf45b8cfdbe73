"""Hostile inputs for tests/test_hostile_inputs.py: FFmpeg's text formats that read files, open
sockets or fetch URLs, images, and a trap that sees any process open a file (a C library too)."""

from __future__ import annotations

import io
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

SECRET_NAME = "private_meeting.wav"  # what the hostile texts point at
SECRET_WORDS = ("dashwood", "prudently", "leisure")  # words of the secret clip: never to come back


def _image(codec: str, pix_fmt: str) -> bytes:
    import av

    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 16, 16, pix_fmt
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24").reformat(format=pix_fmt)
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=meeting\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    b"m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def hostile_bodies(
    secret: str = SECRET_NAME, absolute: str = "/nonexistent/" + SECRET_NAME
) -> Dict[str, Tuple[bytes, str]]:
    """name -> (bytes, the format the refusal names). ``secret``: the file the texts point at
    (relative to the working directory); ``absolute``: the same by absolute path."""
    s = secret.encode()
    return {
        "concat": (b"ffconcat version 1.0\nfile " + s + b"\n", "FFmpeg concat script"),
        "concat-absolute": (b"ffconcat version 1.0\nfile '" + absolute.encode() + b"'\n", "FFmpeg concat script"),
        "concat-subdir": (b"ffconcat version 1.0\nfile sub/" + s + b"\n", "FFmpeg concat script"),
        "sdp": (SDP, "SDP session description"),
        "hls": (
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n" + s + b"\n#EXT-X-ENDLIST\n",
            "HLS / M3U playlist",
        ),
        "ffmetadata": (
            b";FFMETADATA1\ntitle=meeting\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=10\n",
            "FFmpeg metadata",
        ),
        "subfile-url": (b"subfile,,start,0,end,0,,:" + s, "an FFmpeg subfile URL"),
        "file-url": (b"file:" + s, "a URL"),
        "file-url-absolute": (b"file://" + absolute.encode(), "a URL"),
        "http-url": (b"http://127.0.0.1:9/meeting.wav", "a URL"),
        "image2-pattern": (b"frame%03d.png", "text"),
        "dash-manifest": (b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n', "XML"),
        "png": (_image("png", "rgb24"), "PNG image"),
        "jpeg": (_image("mjpeg", "yuvj420p"), "JPEG image"),
    }


class FileTrap:
    """Named pipes at ``paths``: any process that opens one for reading is seen (``opened``) and
    handed ``payload`` (the secret's audio, so a leak would also show as a transcript)."""

    def __init__(self, paths: Sequence[Path], payload: bytes):
        self.paths = [Path(p) for p in paths]
        self.payload = payload
        self.opened: List[str] = []
        for p in self.paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(p)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="file-trap", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for p in self.paths:
                try:
                    fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO unless a reader has it open
                except OSError:
                    continue
                self.opened.append(str(p))
                try:
                    os.set_blocking(fd, True)
                    os.write(fd, self.payload)
                except OSError:
                    pass
                finally:
                    os.close(fd)
            time.sleep(0.002)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for p in self.paths:
            p.unlink(missing_ok=True)


def udp_sockets() -> set:
    """This process's UDP sockets (local addresses)."""
    import psutil

    return {c.laddr for c in psutil.Process().net_connections(kind="udp")}


def sockets_during(fn):
    """``(fn(), UDP sockets seen while it ran)``: sampled from this thread while ``fn`` runs in
    another, at least once after it started."""
    out: dict = {}
    seen: set = set()
    t = threading.Thread(target=lambda: out.setdefault("value", fn()))
    before = udp_sockets()
    t.start()
    while True:
        seen |= udp_sockets() - before
        if not t.is_alive():
            break
        time.sleep(0.005)
    t.join()
    return out.get("value"), seen


def wav_of(samples: np.ndarray, rate: int = 16000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
