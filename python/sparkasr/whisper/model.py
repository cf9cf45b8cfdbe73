"""The CTranslate2 Whisper model behind faster-whisper: one cached instance per (path, runtime)
per Python worker process, the encoder call, and the helpers every decoding path shares."""

from __future__ import annotations

import threading
import zlib
from typing import Any, Callable, ContextManager, Dict, Tuple

import numpy as np

from .options import RuntimeOptions

_MODELS: Dict[Tuple[str, RuntimeOptions], Any] = {}
_LOCK = threading.Lock()
LOAD_COUNT: Dict[str, int] = {}  # model path -> times actually loaded in this process (observable by tests)


#: CPU flags (as /proc/cpuinfo names them) of the kernel sets portable_cpu_env pins, best first
_AVX512_VNNI = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni")
PORTABLE_LEVELS = (
    (_AVX512_VNNI, {"CT2_USE_MKL": "0", "CT2_FORCE_CPU_ISA": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}),
    (("avx2",), {"CT2_USE_MKL": "0", "CT2_FORCE_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
)


def portable_cpu_env(cpuinfo: str = "/proc/cpuinfo") -> Dict[str, str]:
    """Environment variables that make CTranslate2 run the same CPU kernels on every x86-64 machine
    of a class (AVX-512 with VNNI; else AVX2), whoever made the CPU, so that results do not depend
    on which of those machines a process lands on.

    Left alone, CTranslate2 chooses by CPU vendor: on Intel, Intel MKL and its own AVX-512 code;
    on others (AMD EPYC), oneDNN and its AVX2 code, with oneDNN's kernels chosen by the CPU's ISA in
    turn (AVX-512 VNNI, bf16, AMX, or AVX2). Their int8 results differ, and so can the decoded text.
    These variables select oneDNN (``CT2_USE_MKL=0``), CTranslate2's code for one ISA
    (``CT2_FORCE_CPU_ISA``) and oneDNN's kernels up to the same ISA (``ONEDNN_MAX_CPU_ISA``). They
    are read when CTranslate2 is first used in a process, so they must be set before that (Spark
    executors: ``spark.executorEnv.*``). Empty where there is nothing to pin (not x86-64, no AVX2).
    Machines of different classes (AVX-512 VNNI and AVX2 only) still differ."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return {}
    for needed, env in PORTABLE_LEVELS:
        if flags.issuperset(needed):
            return dict(env)
    return {}


def load_model(path: str, runtime: RuntimeOptions = RuntimeOptions()):
    """The cached ``faster_whisper.WhisperModel`` for ``path`` and ``runtime``."""
    key = (path, runtime)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            device = runtime.device
            if device == "auto":
                import ctranslate2

                device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
            compute_type = runtime.compute_type
            if device == "cpu" and compute_type in ("float16", "int8_float16", "bfloat16", "int8_bfloat16"):
                import ctranslate2

                if compute_type not in ctranslate2.get_supported_compute_types("cpu"):
                    raise ValueError(f"computeType {compute_type} is not supported on this CPU")
            model = WhisperModel(
                path,
                device=device,
                device_index=runtime.device_index if device == "cuda" else 0,  # CPU has only index 0
                compute_type=compute_type,
                cpu_threads=runtime.cpu_threads,
                local_files_only=True,
            )
            _MODELS[key] = model
            LOAD_COUNT[path] = LOAD_COUNT.get(path, 0) + 1
    return model


class _TopKModel:
    """Proxy around ``ctranslate2.models.Whisper`` that applies ``top_k`` to sampling calls.

    faster-whisper always samples with ``sampling_topk=0`` (whole distribution); this forwards
    everything else unchanged.
    """

    def __init__(self, inner, top_k: int):
        self._inner = inner
        self._top_k = top_k

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, *args, **kwargs):
        if kwargs.get("sampling_temperature", 0) > 0 and kwargs.get("sampling_topk", 1) == 0:
            kwargs["sampling_topk"] = self._top_k
        return self._inner.generate(*args, **kwargs)


class _GatedModel:
    """Proxy around ``ctranslate2.models.Whisper`` whose model calls (encode, generate, align,
    language detection) each run inside ``around()``: a server's turn between requests."""

    CALLS = ("encode", "generate", "align", "detect_language")

    def __init__(self, inner, around: Callable[[], ContextManager]):
        self._inner = inner
        self._around = around

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name not in self.CALLS:
            return attr

        def call(*args, **kwargs):
            with self._around():
                return attr(*args, **kwargs)

        return call


def gated(fw, around: Callable[[], ContextManager]):
    """A copy of the faster-whisper model ``fw`` whose CTranslate2 calls run inside ``around()``."""
    import copy

    model = copy.copy(fw)
    model.model = _GatedModel(fw.model, around)
    return model


def encode(fw, feats: np.ndarray):
    """Whisper's encoder on stacked ``feats``. On CPU one window per call, the outputs stacked:
    batching the encoder on CPU is slower (measured 15-20% on 2 cores: the activations of several
    30-s windows fall out of cache), while the decoder still gets the whole batch at once. Other
    devices encode the batch in one call."""
    if len(feats) == 1 or getattr(fw.model, "device", "cpu") != "cpu":
        return fw.encode(feats)
    import ctranslate2

    outs = [np.asarray(fw.encode(feats[k : k + 1])) for k in range(len(feats))]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(outs)))


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


#: faster-whisper's defaults for attaching punctuation to the neighbouring word (word timestamps)
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


def add_word_timestamps(fw, segments, tokenizer, encoder_output, segment_sizes) -> None:
    """faster-whisper's cross-attention word alignment on ``segments`` (one list per window of
    ``encoder_output``), in place, with its default punctuation rules."""
    fw.add_word_timestamps(
        segments, tokenizer, encoder_output, segment_sizes, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0
    )
