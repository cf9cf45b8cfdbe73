"""Helpers shared by the Whisper reference tests (not a conftest: tests/conftest.py is shared).

* :func:`ct2_greedy`: CTranslate2's own greedy decode (float32, beam 1, Whisper's suppression and
  timestamp rules, as faster-whisper calls it), the reference the PyTorch and ONNX decoders match.
* :func:`onnx_export`: the embedded tiny.en exported by ``sparkasr convert`` once per test process.
* :class:`OnnxGreedy`: a pure-onnxruntime greedy decode of the exported graphs (features, encoder,
  decoder, decoder with past), with :class:`~sparkasr.convert.torch_whisper.TorchWhisper`'s token
  rules. It is a reference for the JVM decoder, kept here, not a second engine in the package.
* :func:`sequential`: an item through the engine's sequential path.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

_CACHE: Dict[str, Path] = {}


def ct2_greedy(
    fw,
    windows: Sequence[np.ndarray],
    timestamps: bool,
    batch_size: Optional[int] = None,
    language: str = "en",
    task: str = "transcribe",
):
    """CTranslate2 ``generate`` results for ``windows`` (each at most 30 s) with faster-whisper's
    model ``fw``, greedy, ``batch_size`` windows per call (default: all); ``language`` and ``task``
    go into the prompt of a multilingual model."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tk = Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task=task, language=language)
    out = []
    step = batch_size or len(windows)
    for i in range(0, len(windows), step):
        part = windows[i : i + step]
        feats = np.stack([pad_or_trim(fw.feature_extractor(x)[..., :-1], 3000) for x in part])
        out += fw.model.generate(
            fw.model.encode(ctranslate2.StorageView.from_array(feats)),
            [fw.get_prompt(tk, [], without_timestamps=not timestamps)] * len(part),
            beam_size=1,
            max_length=448,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tk, [-1]),
            max_initial_timestamp_index=50,
        )
    return out


def onnx_export(quantize: Optional[str] = None) -> Path:
    """The embedded tiny.en as a Whisper ONNX directory, written by ``sparkasr convert`` (the CLI
    entry point, auto-detecting a Whisper model) once per test process."""
    key = quantize or "float32"
    if key not in _CACHE:
        from sparkasr.convert.command import convert_main

        root = Path(tempfile.mkdtemp(prefix=f"sparkasr-whisper-onnx-{key}-"))
        atexit.register(shutil.rmtree, root, True)
        argv = ["--model", "tiny.en", "--output", str(root / "tiny.en")]
        if quantize:
            argv += ["--quantize", quantize]
        assert convert_main(argv) == 0
        _CACHE[key] = root / "tiny.en"
    return _CACHE[key]


class OnnxGreedy:
    """Greedy decoding of a Whisper ONNX export with onnxruntime alone (plus torch for the token
    rules of ``TorchWhisper.greedy``, shared with the PyTorch decoder that equals CTranslate2)."""

    def __init__(self, export_dir: Path, model_path: str, threads: int = 2):
        import onnxruntime as ort

        from sparkasr.convert.torch_whisper import TorchWhisper
        from sparkasr.convert.whisper_onnx import read_meta

        self.meta = read_meta(export_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.sessions = {
            role: ort.InferenceSession(str(export_dir / name), options, providers=["CPUExecutionProvider"])
            for role, name in self.meta["files"].items()
        }
        self.rules = TorchWhisper(model_path)  # tokenizer and token rules (its torch weights unused)

    def features(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        lengths = np.array([len(x) for x in windows], dtype=np.int64)
        audio = np.zeros((len(windows), int(lengths.max())), dtype=np.float32)
        for i, x in enumerate(windows):
            audio[i, : len(x)] = x
        return self.sessions["features"].run(None, {"audio": audio, "lengths": lengths})[0]

    def encode(self, features: np.ndarray) -> np.ndarray:
        return self.sessions["encoder"].run(None, {"input_features": features})[0]

    def generate(self, windows: Sequence[np.ndarray], timestamps: bool = True):
        """(tokens [B, n], sum of log-probabilities [B], no-speech probability [B]) as
        ``TorchWhisper.generate`` returns them."""
        import torch

        enc = self.encode(self.features(windows))
        prompt = self.rules.prompt(timestamps=timestamps)
        ids = np.array([prompt] * len(windows), dtype=np.int64)
        dec = self.sessions["decoder"]
        names = [o.name for o in dec.get_outputs()]
        out = dict(zip(names, dec.run(None, {"input_ids": ids, "encoder_hidden_states": enc})))
        state = {n.replace("present", "past_key_values"): v for n, v in out.items() if n.startswith("present.")}
        past = self.sessions["decoder_with_past"]
        past_names = [o.name for o in past.get_outputs()]

        def step(tokens, position):
            feed = {"input_ids": tokens.numpy().astype(np.int64)[:, None], **state}
            res = dict(zip(past_names, past.run(None, feed)))
            for n, v in res.items():
                if n.startswith("present."):
                    state[n.replace("present", "past_key_values")] = v
            return torch.from_numpy(res["logits"][:, -1]).float()

        budget = self.rules.max_new_tokens(len(prompt))
        return self.rules.greedy(torch.from_numpy(out["logits"]).float(), prompt, step, budget)

    def token_ids(self, windows: Sequence[np.ndarray], timestamps: bool = True) -> List[List[int]]:
        """Per window the generated tokens up to (not including) end-of-text."""
        seqs = self.generate(windows, timestamps)[0].tolist()
        eot = self.meta["tokens"]["eot"]
        return [s[: s.index(eot)] if eot in s else s for s in seqs]


def ct2_words(fw, x: np.ndarray, tokens: Sequence[int], language: str = "en", task: str = "transcribe") -> List[dict]:
    """faster-whisper's word timestamps (CTranslate2's ``align``) of ``tokens`` decoded without
    timestamps from window ``x`` (at most 30 s), as the Python engine aligns a long row's piece: one
    segment from 0 to the window's end, no speech before it."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    from sparkasr.whisper.model import add_word_timestamps

    tk = Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task=task, language=language)
    feats = pad_or_trim(fw.feature_extractor(x)[..., :-1], 3000)[None]
    enc = fw.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))
    dur = len(x) / 16000
    size = min(int(np.ceil(dur) * fw.frames_per_second), 3000)
    segments = [[dict(tokens=list(tokens), start=0.0, end=dur, seek=0, text=tk.decode(list(tokens)))]]
    add_word_timestamps(fw, segments, tk, enc, [size], feats)
    return segments[0][0].get("words", [])


def sequential(engine, item, text_only: bool = False):
    """``item``'s transcript by faster-whisper's sequential algorithm, as ``engine`` runs it (its
    path for long rows with strategy=sequential, and its temperature fallback)."""
    from sparkasr.whisper.sequential import decode_sequential

    return decode_sequential(engine.decoder(), item, text_only=text_only).transcript(item, engine.options.timestamps)
