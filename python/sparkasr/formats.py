"""Which audio formats are read at all: the container told from its first bytes, the allow-lists
of containers and codecs, and the FFmpeg options that keep every other FFmpeg feature shut.

FFmpeg, left to probe untrusted bytes, picks whatever demuxer claims them: a two-line text
``ffconcat version 1.0`` / ``file secret.wav`` makes its ``concat`` demuxer read a file of the
server's disk; an SDP text makes it open UDP sockets; an HLS playlist fetches URLs; ``image2``
reads file name patterns. So nothing reaches FFmpeg unprobed:

* :func:`sniff` names the container from its magic bytes (:class:`Detected`): one of the audio
  containers of :data:`CONTAINERS`, each with the one FFmpeg demuxer that opens it, or something
  else, named for the error message (an FFmpeg concat script, an SDP session description, an HLS
  playlist, a PNG image, text, ...).
* :func:`ffmpeg_open_args` opens PyAV with that demuxer named explicitly (no probing) and, as a
  second line, FFmpeg's own ``format_whitelist`` (that demuxer only), ``protocol_whitelist`` (no
  protocol: the bytes come through our own I/O, and a demuxer that asks for another file or URL
  is refused) and ``codec_whitelist`` (:data:`AUDIO_CODECS`), plus an ``io_open`` that refuses
  every nested open.
* :func:`check_codec`: the stream's codec must be an audio codec of :data:`AUDIO_CODECS`.

libsndfile (``soundfile``) is tried first on everything but what :func:`sniff` names as not audio:
it reads only its own audio formats through our file object and has no playlist, network or
file-reference feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

#: bytes of a file's start that :func:`sniff` looks at (an ID3 tag is skipped by its size)
HEAD_BYTES = 4096

#: no FFmpeg protocol has this name: as FFmpeg's ``protocol_whitelist`` it allows none
NO_PROTOCOL = "none"


@dataclass(frozen=True)
class Detected:
    """What the first bytes of a file are: ``name`` for messages; ``demuxer``: the FFmpeg demuxer
    that opens it (``None``: FFmpeg never sees it); ``audio``: an audio container we read."""

    name: str
    demuxer: Optional[str] = None
    audio: bool = False


def _audio(name: str, demuxer: str) -> Detected:
    return Detected(name, demuxer, True)


#: the audio containers read, by the FFmpeg demuxer that opens each (libsndfile reads several of
#: them first: WAV, FLAC, OGG, MP3, AIFF, AU, CAF, W64)
CONTAINERS: Dict[str, str] = {
    "wav": "WAV / RF64 / BW64",
    "w64": "Sony Wave64",
    "flac": "FLAC",
    "ogg": "Ogg (Opus, Vorbis, FLAC, Speex)",
    "mp3": "MP3 / MPEG audio",
    "aac": "AAC (ADTS)",
    "mov": "MP4 / M4A / 3GP / QuickTime",
    "matroska": "WebM / Matroska (MKA)",
    "aiff": "AIFF / AIFF-C",
    "caf": "Apple CAF",
    "au": "Sun AU",
    "asf": "WMA / ASF",
    "amr": "AMR",
}

#: the audio decoders allowed (FFmpeg decoder names), besides every ``pcm_*`` and ``adpcm_*`` one
AUDIO_CODECS = frozenset(
    """aac aac_fixed aac_latm ac3 ac3_fixed alac amrnb amrwb dca eac3 evrc flac g722 g723_1 g726
    g726le g729 gsm gsm_ms ilbc libfdk_aac libgsm libgsm_ms libopencore_amrnb libopencore_amrwb
    libopus libspeex libvorbis mace3 mace6 mlp mp1 mp1float mp2 mp2float mp3 mp3adu mp3adufloat
    mp3float opus qcelp qdm2 qdmc speex truehd tta vorbis wavpack wmalossless wmapro wmav1 wmav2
    wmavoice""".split()
)
_CODEC_FAMILIES = ("pcm_", "adpcm_")


def audio_codec_allowed(name: str) -> bool:
    return name in AUDIO_CODECS or name.startswith(_CODEC_FAMILIES)


def codec_whitelist() -> str:
    """FFmpeg's ``codec_whitelist`` value: the allowed decoders that this FFmpeg has."""
    import av

    names = set(AUDIO_CODECS)
    for name in av.codecs_available:
        if name.startswith(_CODEC_FAMILIES):
            names.add(name)
    return ",".join(sorted(names))


_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_W64_GUID = bytes.fromhex("2e91cf11a5d628db04c10000")  # the rest of the GUID after "riff"

# Text formats FFmpeg would act on, by their first line (case-insensitive, after blank space)
_TEXT_SIGNATURES = (
    (re.compile(rb"ffconcat\s+version"), "FFmpeg concat script"),
    (re.compile(rb"#extm3u|#ext-x-|#extinf"), "HLS / M3U playlist"),
    (re.compile(rb";ffmetadata"), "FFmpeg metadata text"),
    (re.compile(rb"v=0\s"), "SDP session description (RTP streams)"),
    (re.compile(rb"<\?xml|<mpd|<smil"), "XML (DASH manifest or similar)"),
    (re.compile(rb"<!doctype|<html"), "HTML"),
    (re.compile(rb"webvtt|\[script info\]|\d+\s*\r?\n\d\d:\d\d:\d\d"), "subtitles (text)"),
    (re.compile(rb"[{\[]"), "JSON"),
    (re.compile(rb"subfile[,:]"), "an FFmpeg subfile URL"),
    (
        re.compile(rb"(file|concat|pipe|data|https?|ftp|rtp|rtsp|rtmp|srt|udp|tcp|unix|fd|crypto|cache|async|hls):"),
        "a URL",
    ),
    (re.compile(rb"file\s"), "FFmpeg concat script"),
)

_BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"BM", None),  # BMP: checked with its header size below
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"\x00\x00\x01\x00", "ICO image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "ELF executable"),
    (b"\x00\x00\x01\xba", "MPEG program stream (video)"),
    (b"FLV\x01", "Flash video"),
)


def _id3_size(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of ``head`` (0 if none)."""
    if len(head) >= 10 and head[:3] == b"ID3" and all(b < 0x80 for b in head[6:10]):
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        return 10 + size + (10 if head[5] & 0x10 else 0)
    return 0


_MPEG_KBPS = {  # (version is MPEG-1, layer) -> bitrate index -> kbit/s
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_bytes(h: bytes) -> int:
    """The length of the MPEG audio (``layer`` > 0) or ADTS frame whose header starts ``h``; 0 when
    ``h`` does not start with a valid header."""
    if len(h) < 7 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return 0
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    if layer == 0:  # ADTS: 12 sync bits, layer 00, a sampling index below 13, the length in 13 bits
        if h[1] & 0xF6 != 0xF0 or (h[2] >> 2) & 0xF >= 13:
            return 0
        return ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)
    index, rate_index, pad = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or index in (0, 15) or rate_index == 3:
        return 0  # reserved version, free-format or bad bitrate, reserved sample rate
    kbps = _MPEG_KBPS[(version == 3, layer)][index]
    rate = _MPEG_RATES[version][rate_index]
    if layer == 3:
        return (12 * kbps * 1000 // rate + pad) * 4
    return (144 if layer == 2 or version == 3 else 72) * kbps * 1000 // rate + pad


def _mpeg_audio(h: bytes, need_next: bool) -> Optional[Detected]:
    """MPEG audio (MP3) or ADTS (AAC) starting ``h``: a valid frame header, and with
    ``need_next`` a second one right after the first frame (when ``h`` holds it)."""
    size = _mpeg_frame_bytes(h)
    if size < 7:
        return None
    if need_next and len(h) >= size + 7 and _mpeg_frame_bytes(h[size:]) < 7:
        return None
    return _audio(CONTAINERS["aac"], "aac") if (h[1] >> 1) & 3 == 0 else _audio(CONTAINERS["mp3"], "mp3")


def _looks_like_text(head: bytes) -> bool:
    sample = head[:512]
    if not sample:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable >= 0.95 * len(sample)


def sniff(head: bytes, after_tag: Optional[bytes] = None) -> Detected:
    """What ``head`` (a file's first :data:`HEAD_BYTES` or more) is; ``after_tag``: the bytes after
    an ID3 tag longer than ``head``."""
    h = head
    if h[:4] in (b"RIFF", b"RF64", b"BW64") and h[8:12] == b"WAVE":
        return _audio(CONTAINERS["wav"], "wav")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return Detected("WebP image")
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return Detected("AVI video")
    if h[:4] == b"riff" and h[4:16] == _W64_GUID:
        return _audio(CONTAINERS["w64"], "w64")
    if h[:4] == b"fLaC":
        return _audio(CONTAINERS["flac"], "flac")
    if h[:4] == b"OggS":
        return _audio(CONTAINERS["ogg"], "ogg")
    if h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return _audio(CONTAINERS["aiff"], "aiff")
    if h[:4] == b"caff":
        return _audio(CONTAINERS["caf"], "caf")
    if h[:4] == b".snd":
        return _audio(CONTAINERS["au"], "au")
    if h[:4] == b"\x1aE\xdf\xa3":
        return _audio(CONTAINERS["matroska"], "matroska")
    if h[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return _audio(CONTAINERS["mov"], "mov")
    if h[:16] == _ASF_GUID:
        return _audio(CONTAINERS["asf"], "asf")
    if h[:6] == b"#!AMR\n" or h[:9] == b"#!AMR-WB\n":
        return _audio(CONTAINERS["amr"], "amr")
    tag = _id3_size(h)
    if tag:
        # an ID3 tag before MPEG audio, ADTS or FLAC (the frame may lie past HEAD_BYTES: MP3 then)
        after = h[tag : tag + 4] if after_tag is None else after_tag
        if after == b"fLaC":
            return _audio(CONTAINERS["flac"], "flac")
        return _mpeg_audio(after, need_next=False) or _audio(CONTAINERS["mp3"], "mp3")
    mpeg = _mpeg_audio(h, need_next=True)
    if mpeg is not None:
        return mpeg
    for magic, name in _BINARY_SIGNATURES:
        if h.startswith(magic):
            if name is None:  # BMP: "BM", then a header size of 12..124 at byte 14
                if len(h) >= 18 and int.from_bytes(h[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
                    return Detected("BMP image")
                continue
            return Detected(name)
    if len(h) >= 189 and h[0] == 0x47 and h[188] == 0x47:
        return Detected("MPEG-TS stream")
    if _looks_like_text(h):
        first = h.lstrip().lower()
        for pattern, name in _TEXT_SIGNATURES:
            if pattern.match(first):
                return Detected(name)
        return Detected("text")
    return Detected("unrecognised data (headerless PCM needs an explicit raw format)")


def sniff_file(fh) -> Detected:
    """:func:`sniff` on a seekable binary file from its current position, which is restored. An ID3
    tag longer than :data:`HEAD_BYTES` is skipped to see the frame after it."""
    start = fh.tell()
    try:
        head = fh.read(HEAD_BYTES)
        tag = _id3_size(head)
        if tag and tag + 4 > len(head):
            fh.seek(start + tag)
            return sniff(head, after_tag=fh.read(4))
        return sniff(head)
    finally:
        fh.seek(start)


def refusal(detected: Detected) -> str:
    """The error for a file that is not an audio format we read."""
    return f"not an audio format we read (detected: {detected.name})"


class NestedOpenRefused(PermissionError):
    """A demuxer asked to open another file or URL."""


def _refuse_nested_open(url: str, flags: int, options: Any):
    raise NestedOpenRefused(f"refused to open {url!r} named inside the audio file")


def ffmpeg_open_args(detected: Detected) -> Dict[str, Any]:
    """Keyword arguments of ``av.open`` for an input already sniffed as ``detected`` (an audio
    container): its demuxer named, every FFmpeg whitelist set, nested opens refused."""
    if not detected.audio or not detected.demuxer:
        raise ValueError(f"{detected.name} is not an audio container")
    return dict(
        format=detected.demuxer,
        container_options={
            "format_whitelist": detected.demuxer,
            "protocol_whitelist": NO_PROTOCOL,
            "codec_whitelist": _codec_whitelist_cached(),
        },
        io_open=_refuse_nested_open,
    )


_WHITELIST: Optional[str] = None


def _codec_whitelist_cached() -> str:
    global _WHITELIST
    if _WHITELIST is None:
        _WHITELIST = codec_whitelist()
    return _WHITELIST


def check_codec(name: str, container: str) -> None:
    """``ValueError`` unless ``name`` (the audio stream's decoder) is an allowed audio codec."""
    if not audio_codec_allowed(name):
        raise ValueError(f"the {container} file's audio codec {name!r} is not one we decode")
