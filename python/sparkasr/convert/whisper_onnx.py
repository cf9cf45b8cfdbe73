"""Whisper as ONNX: a model directory that ONNX Runtime runs without torch, in any language.

``export_whisper(model, output)`` (``sparkasr convert --model tiny.en --output DIR``) writes, from
any Whisper model :func:`sparkasr.whisper.models.resolve_whisper_model` resolves (the embedded tiny.en,
``base``, a CTranslate2 or Hugging Face Whisper directory, a cached hub model), Spark NLP's ONNX
layout plus the front end::

    DIR/encoder_model.onnx            input_features [B, n_mels, 3000] -> last_hidden_state [B, 1500, D]
    DIR/decoder_model.onnx            input_ids [B, T], encoder_hidden_states [B, 1500, D]
                                      -> logits [B, T, V], present.{i}.decoder.key/value [B, H, T, Dh],
                                         present.{i}.encoder.key/value [B, H, 1500, Dh]
    DIR/decoder_with_past_model.onnx  input_ids [R, T], past_key_values.{i}.decoder.key/value [R, H, P, Dh],
                                      past_key_values.{i}.encoder.key/value [B, H, 1500, Dh]
                                      -> logits [R, T, V], present.{i}.decoder.key/value [R, H, P+T, Dh]
    DIR/log_mel_model.onnx            audio [B, N] float32 (16 kHz mono, N <= 480000, zero-padded rows),
                                      lengths [B] int64 -> input_features [B, n_mels, 3000]
    DIR/alignment_model.onnx          input_ids [B, T], encoder_hidden_states -> cross_attention_scores
                                      [B, A, T, 1500]: the alignment heads' scaled query-key scores (before
                                      the softmax), for word timestamps (the JVM's long-row repairs)
    DIR/assets/                       config.json, generation_config.json, preprocessor_config.json and the
                                      tokenizer (tokenizer.json, vocab.json, merges.txt, added_tokens.json, ...)
    DIR/silero_vad_v6.onnx            the Silero VAD (v6) that faster-whisper bundles, copied from the installed
                                      faster_whisper/assets (MIT; provenance under "vad" in the metadata):
                                      the JVM stage's vadGate runs it
    DIR/sparkasr_whisper.json         what a decoder needs: dimensions, token ids, languages, suppressed
                                      tokens, the graphs' names, provenance

Names and shapes are those of Hugging Face Optimum's export, which Spark NLP's ``WhisperForCTC``
loads. One extension: ``decoder_with_past_model``'s rows ``R`` may be a multiple ``K`` of the
encoder states' rows ``B`` (row ``r`` attends to encoder row ``r // K``), so a beam search over
``K`` beams keeps one copy of the encoder keys/values per input, not one per beam; with ``R = B``
it is the usual graph.

``log_mel_model`` is faster-whisper's ``FeatureExtractor`` as a graph (Hann-windowed DFT as a
strided convolution, the Slaney Mel filter bank, log10, the 8-decade floor under each row's own
maximum, reflection padding at each row's own end), so every runtime that runs the model computes
the same features: per row it equals ``pad_or_trim(FeatureExtractor()(x)[..., :-1], 3000)``
(within 1e-5 on the vendored clips, float32). Rows shorter than 40 samples (2.5 ms) are reflected
once where numpy reflects repeatedly.

The graphs are traced from :mod:`.torch_whisper`'s module on the model's float32 weights (int8
CTranslate2 weights de-quantised), so torch is needed here, on the machine that converts, and
nowhere else. ``quantize="int8"``: dynamic int8 quantisation of the MatMul weights and the token
embeddings of the encoder, both decoders and the alignment graph (ONNX Runtime's
``quantize_dynamic``); the convolutions and the front end stay float.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..audio import SAMPLE_RATE
from .torch_whisper import HOP, N_FFT, N_FRAMES, N_SAMPLES, TIME_PRECISION, Dims, hf_config, load_weights, mel_filters

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
ALIGNMENT_FILE = "alignment_model.onnx"
FEATURES_FILE = "log_mel_model.onnx"
VAD_FILE = "silero_vad_v6.onnx"
GRAPH_FILES = (FEATURES_FILE, ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE)  # what every export has
#: word alignment (the JVM's long-row repairs): exports by an older sparkasr convert lack it
OPTIONAL_GRAPH_FILES = (ALIGNMENT_FILE,)
ASSETS_DIR = "assets"
META_FILE = "sparkasr_whisper.json"
FORMAT = 1
QUANTIZE_CHOICES = ("int8",)
DEFAULT_OPSET = 17
#: the source model's small files copied into assets/ beside the generated ones
_COPIED = ("tokenizer.json", "vocabulary.txt", "preprocessor_config.json")


class ExportError(RuntimeError):
    pass


def _copy_vad(out: Path) -> dict:
    """faster-whisper's bundled Silero VAD into ``out``; its provenance for the metadata."""
    try:
        import faster_whisper
        from faster_whisper.utils import get_assets_path
    except ImportError as exc:  # pragma: no cover - faster-whisper is a core dependency
        raise ExportError("copying the Silero VAD model needs faster-whisper (a sparkasr dependency)") from exc
    src = Path(get_assets_path()) / VAD_FILE
    if not src.is_file():
        raise ExportError(f"faster-whisper {faster_whisper.__version__} has no {VAD_FILE} in {src.parent}")
    shutil.copyfile(src, out / VAD_FILE)
    return {
        "file": VAD_FILE,
        "model": "Silero VAD v6 (https://github.com/snakers4/silero-vad, MIT)",
        "source": f"faster-whisper {faster_whisper.__version__}, faster_whisper/assets/{VAD_FILE}",
        "license": "MIT (faster-whisper, Copyright (c) 2023 SYSTRAN; Silero VAD, Copyright (c) 2020-present Silero Team)",
        "used_by": "vadGate (the JVM WhisperForCTC; the Python engine loads faster-whisper's own copy)",
    }


def is_whisper_onnx_dir(path: Union[str, os.PathLike]) -> bool:
    """Whether ``path`` is a directory written by :func:`export_whisper`."""
    p = Path(path)
    return (p / META_FILE).is_file() and all((p / f).is_file() for f in GRAPH_FILES)


def read_meta(path: Union[str, os.PathLike]) -> dict:
    """The ``sparkasr_whisper.json`` of an exported directory."""
    meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("kind") != "whisper":
        raise ExportError(f"{path}: not a sparkasr Whisper ONNX export of format {FORMAT}")
    return meta


# --------------------------------------------------------------------------- the graphs' modules


def _modules(weights: Dict[str, np.ndarray], alignment_heads: Sequence[Tuple[int, int]] = ((0, 0),)):
    """The torch modules traced into the graphs, all sharing one Whisper module's weights
    (``alignment_heads``: the model's (layer, head) pairs that :class:`Aligner` returns)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from .torch_whisper import build_module

    m, dims = build_module(weights)
    H = dims.n_heads
    # one copy of the token embeddings, [D, V], a buffer of each decoder graph (a plain tensor would be
    # traced as one constant per use): the output projection's MatMul weight, and gathered by column
    # for the input embeddings, so the graph holds no second, transposed copy
    embed_t = m.embed.weight.detach().T.contiguous()

    def heads(x):  # [B, T, D] -> [B, H, T, Dh]
        b, t, d = x.shape
        return x.reshape(b, t, H, d // H).transpose(1, 2)

    def merge(x):  # [B, H, T, Dh] -> [B, T, D]
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def decode(embed_t, tokens, enc_kv, past):
        """Logits and the new self-attention keys/values of ``tokens`` [R, T] following ``past``
        (per layer (k, v) [R, H, P, Dh], or None) against ``enc_kv`` (per layer [B, H, S, Dh])."""
        t = tokens.shape[1]
        p = 0 if past is None else past[0][0].shape[2]
        x = embed_t.index_select(1, tokens.reshape(-1)).T.reshape(tokens.shape[0], t, -1) + m.dec_pos[p : p + t]
        # causal mask over the past and the new positions: new token i sees positions <= p + i
        mask = torch.arange(p + t)[None, :] <= (torch.arange(t)[:, None] + p)
        presents = []
        for n, layer in enumerate(m.dec_layers):
            q, k, v = layer.qkv(layer.ln1(x)).chunk(3, dim=-1)
            k, v = heads(k), heads(v)
            if past is not None:
                k, v = torch.cat([past[n][0], k], dim=2), torch.cat([past[n][1], v], dim=2)
            presents.append((k, v))
            x = x + layer.out(merge(F.scaled_dot_product_attention(heads(q), k, v, attn_mask=mask)))
            # cross-attention: the R rows' queries against their B encoder rows (R = K * B)
            xk, xv = enc_kv[n]
            q = heads(layer.xq(layer.ln2(x)))  # [R, H, T, Dh]
            r, _, _, dh = q.shape
            b = xk.shape[0]
            kb = r // b
            q = q.reshape(b, kb, H, t, dh).transpose(1, 2).reshape(b, H, kb * t, dh)
            a = F.scaled_dot_product_attention(q, xk, xv)
            a = a.reshape(b, H, kb, t, dh).transpose(1, 2).reshape(r, H, t, dh)
            x = x + layer.xout(merge(a))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.ln3(x))))
        return m.dec_ln(x) @ embed_t, presents

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, input_features):
            return self.m.encode(input_features)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m
            self.register_buffer("embed_t", embed_t)

        def forward(self, input_ids, encoder_hidden_states):
            enc_kv = [layer.cross_kv(encoder_hidden_states) for layer in self.m.dec_layers]
            logits, presents = decode(self.embed_t, input_ids, enc_kv, None)
            out = [logits]
            for (k, v), (xk, xv) in zip(presents, enc_kv):
                out += [k, v, xk, xv]
            return tuple(out)

    class DecoderWithPast(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m
            self.register_buffer("embed_t", embed_t)

        def forward(self, input_ids, *pasts):
            past = [(pasts[4 * n], pasts[4 * n + 1]) for n in range(dims.decoder_layers)]
            enc_kv = [(pasts[4 * n + 2], pasts[4 * n + 3]) for n in range(dims.decoder_layers)]
            logits, presents = decode(self.embed_t, input_ids, enc_kv, past)
            out = [logits]
            for k, v in presents:
                out += [k, v]
            return tuple(out)

    class Aligner(nn.Module):
        """The cross-attention scores (queries times keys over sqrt(Dh), before the softmax) of the
        alignment heads, [B, A, T, S], of the whole token sequence ``input_ids`` [B, T] at once: what
        CTranslate2's ``align`` computes before its softmax over the window's frames, DTW and
        word split (done by the JVM's decoder). Only the decoder layers up to the last head's run."""

        def __init__(self):
            super().__init__()
            self.m = m
            self.register_buffer("embed_t", embed_t)

        def forward(self, input_ids, encoder_hidden_states):
            t = input_ids.shape[1]
            x = self.embed_t.index_select(1, input_ids.reshape(-1)).T.reshape(input_ids.shape[0], t, -1)
            x = x + self.m.dec_pos[:t]
            mask = torch.arange(t)[None, :] <= torch.arange(t)[:, None]
            picked = []
            for n, layer in enumerate(self.m.dec_layers[: max(layer for layer, _ in alignment_heads) + 1]):
                q, k, v = layer.qkv(layer.ln1(x)).chunk(3, dim=-1)
                x = x + layer.out(merge(F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)))
                xk, xv = layer.cross_kv(encoder_hidden_states)
                q = heads(layer.xq(layer.ln2(x)))
                scores = (q @ xk.transpose(-1, -2)) / float(q.shape[-1]) ** 0.5  # [B, H, T, S]
                picked += [scores[:, h] for layer_n, h in alignment_heads if layer_n == n]
                x = x + layer.xout(merge(torch.softmax(scores, dim=-1) @ xv))
                x = x + layer.fc2(F.gelu(layer.fc1(layer.ln3(x))))
            return torch.stack(picked, dim=1)

    class LogMel(nn.Module):
        """faster-whisper's features of each row's first ``lengths[b]`` samples (see the module docstring)."""

        def __init__(self):
            super().__init__()
            k = np.arange(N_FFT)
            window = np.hanning(N_FFT + 1)[:-1]  # faster-whisper's periodic Hann window
            angle = 2 * np.pi * np.outer(np.arange(N_FFT // 2 + 1), k) / N_FFT
            kernel = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # [2 * 201, 400]
            self.register_buffer("kernel", torch.from_numpy(kernel.astype(np.float32))[:, None, :])
            self.register_buffer("filters", torch.from_numpy(mel_filters(dims.n_mels)))

        def forward(self, audio, lengths):
            b, n = audio.shape
            total = n + HOP  # faster-whisper pads 160 zeros, then reflects n_fft / 2 at both ends
            x = torch.cat([audio, torch.zeros(b, HOP, dtype=audio.dtype)], dim=1)
            end = (lengths + HOP)[:, None]  # each row's own padded length
            i = torch.arange(total + N_FFT)[None, :] - N_FFT // 2
            src = torch.where(i < 0, -i, i)
            src = torch.where(src >= end, 2 * (end - 1) - src, src).clamp(0, total - 1)
            padded = torch.gather(x, 1, src.expand(b, -1))
            spec = F.conv1d(padded[:, None, :], self.kernel, stride=HOP)  # [B, 402, frames]
            bins = N_FFT // 2 + 1
            power = (spec[:, :bins] ** 2 + spec[:, bins:] ** 2)[..., :-1]
            mel = torch.clamp(self.filters @ power, min=1e-10).log10()
            n_valid = (lengths + HOP) // HOP  # the row's frames before faster-whisper's [..., :-1]
            frames = torch.arange(mel.shape[-1])
            valid = frames[None, :] < n_valid[:, None]
            floor = torch.where(valid[:, None, :], mel, torch.full_like(mel, float("-inf")))
            peak = floor.amax(dim=(1, 2), keepdim=True)
            mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
            keep = frames[None, :] < (n_valid - 1)[:, None]
            mel = torch.where(keep[:, None, :], mel, torch.zeros_like(mel))[..., :N_FRAMES]
            return F.pad(mel, (0, N_FRAMES - mel.shape[-1]))

    return dims, Encoder().eval(), Decoder().eval(), DecoderWithPast().eval(), LogMel().eval(), Aligner().eval()


def _default_alignment_heads(dims: Dims) -> List[Tuple[int, int]]:
    """CTranslate2's converter's default where a model names no alignment heads: every head of the
    decoder's last half of layers."""
    return [(n, h) for n in range(dims.decoder_layers // 2, dims.decoder_layers) for h in range(dims.n_heads)]


def _kv_names(prefix: str, layers: int, encoder: bool) -> List[str]:
    names = []
    for n in range(layers):
        names += [f"{prefix}.{n}.decoder.key", f"{prefix}.{n}.decoder.value"]
        if encoder:
            names += [f"{prefix}.{n}.encoder.key", f"{prefix}.{n}.encoder.value"]
    return names


def _export_graphs(
    weights: Dict[str, np.ndarray], out: Path, opset: int, alignment_heads: Sequence[Tuple[int, int]]
) -> Dims:
    import torch

    dims, encoder, decoder, decoder_past, log_mel, aligner = _modules(weights, alignment_heads)
    L, H, dh, S = dims.decoder_layers, dims.n_heads, dims.d_model // dims.n_heads, dims.n_audio_ctx
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(2, 16000, generator=gen) * 0.1
    lengths = torch.tensor([16000, 12000])
    feats = torch.randn(2, dims.n_mels, N_FRAMES, generator=gen)
    enc = torch.randn(2, S, dims.d_model, generator=gen)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    past = []
    for _ in range(L):
        past += [torch.randn(2, H, 3, dh, generator=gen), torch.randn(2, H, 3, dh, generator=gen)]
        past += [torch.randn(2, H, S, dh, generator=gen), torch.randn(2, H, S, dh, generator=gen)]
    present = _kv_names("present", L, encoder=True)
    present_self = _kv_names("present", L, encoder=False)
    past_names = _kv_names("past_key_values", L, encoder=True)
    rows_t = {0: "batch", 1: "tokens"}
    jobs = [
        (
            log_mel,
            (audio, lengths),
            FEATURES_FILE,
            ["audio", "lengths"],
            ["input_features"],
            {"audio": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "input_features": {0: "batch"}},
        ),
        (
            encoder,
            (feats,),
            ENCODER_FILE,
            ["input_features"],
            ["last_hidden_state"],
            {"input_features": {0: "batch"}, "last_hidden_state": {0: "batch"}},
        ),
        (
            decoder,
            (ids, enc),
            DECODER_FILE,
            ["input_ids", "encoder_hidden_states"],
            ["logits"] + present,
            {
                "input_ids": rows_t,
                "encoder_hidden_states": {0: "batch"},
                "logits": rows_t,
                **{name: ({0: "batch"} if ".encoder." in name else {0: "batch", 2: "tokens"}) for name in present},
            },
        ),
        (
            decoder_past,
            (ids[:, :1], *past),
            DECODER_WITH_PAST_FILE,
            ["input_ids"] + past_names,
            ["logits"] + present_self,
            {
                "input_ids": {0: "rows", 1: "tokens"},
                "logits": {0: "rows", 1: "tokens"},
                **{
                    name: ({0: "batch"} if ".encoder." in name else {0: "rows", 2: "past_tokens"})
                    for name in past_names
                },
                **{name: {0: "rows", 2: "total_tokens"} for name in present_self},
            },
        ),
        (
            aligner,
            (ids, enc),
            ALIGNMENT_FILE,
            ["input_ids", "encoder_hidden_states"],
            ["cross_attention_scores"],
            {
                "input_ids": rows_t,
                "encoder_hidden_states": {0: "batch"},
                "cross_attention_scores": {0: "batch", 2: "tokens"},
            },
        ),
    ]
    with torch.inference_mode(), warnings.catch_warnings():
        # tracer warnings about shapes read as Python values: the graphs are checked on other
        # batch sizes, lengths and past lengths against transformers by the test suite
        for category in (torch.jit.TracerWarning, DeprecationWarning, UserWarning, FutureWarning):
            warnings.simplefilter("ignore", category=category)
        for module, args, name, inputs, outputs, axes in jobs:
            torch.onnx.export(
                module,
                args,
                str(out / name),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    return dims


def _quantize(out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE, ALIGNMENT_FILE):
        fp32 = out / (name + ".fp32")
        os.replace(out / name, fp32)
        # the MatMul weights, and the token embeddings (the decoders' one Gather of a weight)
        quantize_dynamic(
            str(fp32), str(out / name), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"]
        )
        fp32.unlink()


# --------------------------------------------------------------------------- tokens and configs


def _token_ids(tokenizer_json: dict, n_vocab: int) -> Dict[str, Optional[int]]:
    added = {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}
    vocab = tokenizer_json["model"]["vocab"]

    def tid(token: str) -> Optional[int]:
        return added.get(token, vocab.get(token))

    no_timestamps = tid("<|notimestamps|>")
    if tid("<|endoftext|>") is None or tid("<|startoftranscript|>") is None or no_timestamps is None:
        raise ExportError("the model's tokenizer.json lacks Whisper's special tokens")
    return {
        "eot": tid("<|endoftext|>"),
        "sot": tid("<|startoftranscript|>"),
        "sot_prev": tid("<|startofprev|>"),
        "sot_lm": tid("<|startoflm|>"),
        "translate": tid("<|translate|>"),
        "transcribe": tid("<|transcribe|>"),
        "no_speech": tid("<|nospeech|>") if tid("<|nospeech|>") is not None else tid("<|nocaptions|>"),
        "no_timestamps": no_timestamps,
        "timestamp_begin": no_timestamps + 1,
        "space": tid("\u0120"),  # byte-level BPE's ' '
        "vocab_size": n_vocab,
    }


def _write_assets(src: Path, assets: Path, dims: Dims, ct2_config: dict, meta: dict) -> None:
    """Spark NLP's ``assets/``: the Hugging Face config files and the tokenizer, derived from the
    source model's ``tokenizer.json`` and CTranslate2 ``config.json``."""
    import transformers

    assets.mkdir(parents=True, exist_ok=True)
    tok = meta["tokens"]
    langs = meta["languages"]
    # tokenizer_config.json (and, with older transformers, vocab.json/merges.txt); then the source's
    # own tokenizer.json replaces the re-serialised one
    transformers.WhisperTokenizerFast(tokenizer_file=str(src / "tokenizer.json")).save_pretrained(str(assets))
    for name in _COPIED:
        if (src / name).is_file():
            shutil.copyfile(src / name, assets / name)
    if not (assets / "vocab.json").is_file():
        raw = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        (assets / "vocab.json").write_text(json.dumps(raw["model"]["vocab"], ensure_ascii=False), encoding="utf-8")
        merges = raw["model"].get("merges", [])
        lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
        (assets / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
    added = {t["content"]: t["id"] for t in json.loads((src / "tokenizer.json").read_text())["added_tokens"]}
    (assets / "added_tokens.json").write_text(json.dumps(added, indent=2, ensure_ascii=False) + "\n")
    forced = [[1, tok["no_timestamps"]]] if not meta["multilingual"] else [[1, None], [2, tok["transcribe"]]]
    cfg = hf_config(
        dims,
        decoder_start_token_id=tok["sot"],
        bos_token_id=tok["eot"],
        eos_token_id=tok["eot"],
        pad_token_id=tok["eot"],
    ).to_dict()
    # the generation fields Spark NLP's loadSavedModel reads from config.json
    cfg.update(
        architectures=["WhisperForConditionalGeneration"],
        begin_suppress_tokens=meta["suppress_tokens_begin"],
        suppress_tokens=meta["suppress_tokens"],
        forced_decoder_ids=forced,
        max_length=dims.n_text_ctx,
    )
    (assets / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    generation = {
        "decoder_start_token_id": tok["sot"],
        "bos_token_id": tok["eot"],
        "eos_token_id": tok["eot"],
        "pad_token_id": tok["eot"],
        "max_length": dims.n_text_ctx,
        "begin_suppress_tokens": meta["suppress_tokens_begin"],
        "suppress_tokens": meta["suppress_tokens"],
        "forced_decoder_ids": forced,
        "no_timestamps_token_id": tok["no_timestamps"],
        "prev_sot_token_id": tok["sot_prev"],
        "is_multilingual": meta["multilingual"],
        "alignment_heads": ct2_config.get("alignment_heads", []),
    }
    if meta["multilingual"]:
        generation["lang_to_id"] = {f"<|{code}|>": i for code, i in langs.items()}
        generation["task_to_id"] = {"transcribe": tok["transcribe"], "translate": tok["translate"]}
    (assets / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    if not (assets / "preprocessor_config.json").is_file():
        fe = transformers.WhisperFeatureExtractor(feature_size=dims.n_mels)
        fe_dict = {k: v for k, v in fe.to_dict().items() if k != "mel_filters"}
        (assets / "preprocessor_config.json").write_text(json.dumps(fe_dict, indent=2) + "\n")


# --------------------------------------------------------------------------- export


def export_whisper(
    model: Optional[Union[str, os.PathLike]],
    output: Union[str, os.PathLike],
    quantize: Optional[str] = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write the ONNX directory of Whisper ``model`` (a name or path :func:`resolve_whisper_model`
    takes; ``None`` = the embedded tiny.en) to ``output``; returns ``output``."""
    if quantize not in (None,) + QUANTIZE_CHOICES:
        raise ExportError(f"--quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
    from ..whisper.models import ModelNotFoundError, resolve_whisper_model, whisper_languages

    try:
        source = resolve_whisper_model(model)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # e.g. a Hugging Face directory CTranslate2's converter cannot read
        raise ExportError(f"{model} could not be read as a Whisper model: {type(exc).__name__}: {exc}") from exc
    if source.kind == "onnx-export":
        raise ExportError(f"{model} is already a Whisper ONNX export")
    src = Path(source.path)
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ExportError(
            "exporting Whisper to ONNX needs torch and transformers (and onnx): pip install 'sparkasr[convert]'"
        ) from exc
    if not (src / "tokenizer.json").is_file():
        raise ExportError(f"{src} has no tokenizer.json")
    weights, ct2_config = load_weights(src)
    dims = Dims.of(weights)
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    tokens = _token_ids(tokenizer_json, dims.n_vocab)
    codes = whisper_languages(str(src))
    multilingual = codes != ("en",)
    added = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}
    languages = {c: added[f"<|{c}|>"] for c in codes if f"<|{c}|>" in added} if multilingual else {}
    specials = [tokens[k] for k in ("translate", "transcribe", "sot", "sot_prev", "sot_lm", "no_speech")]
    meta = {
        "format": FORMAT,
        "kind": "whisper",
        "source": str(model) if model is not None else source.name,
        "source_name": source.name,
        "source_kind": source.kind,
        "files": {
            "features": FEATURES_FILE,
            "encoder": ENCODER_FILE,
            "decoder": DECODER_FILE,
            "decoder_with_past": DECODER_WITH_PAST_FILE,
            "alignment": ALIGNMENT_FILE,
        },
        "dims": {
            "n_mels": dims.n_mels,
            "d_model": dims.d_model,
            "n_heads": dims.n_heads,
            "encoder_layers": dims.encoder_layers,
            "decoder_layers": dims.decoder_layers,
            "n_vocab": dims.n_vocab,
            "n_text_ctx": dims.n_text_ctx,
            "n_audio_ctx": dims.n_audio_ctx,
        },
        "sample_rate": SAMPLE_RATE,
        "n_samples": N_SAMPLES,
        "n_frames": N_FRAMES,
        "time_precision": TIME_PRECISION,
        "multilingual": multilingual,
        "languages": languages,
        "tokens": tokens,
        # Whisper's suppression: CTranslate2's suppress_ids plus the special tokens faster-whisper
        # adds (get_suppressed_tokens); at the first step also suppress_tokens_begin
        "suppress_tokens": sorted(set(ct2_config.get("suppress_ids", [])) | {t for t in specials if t is not None}),
        "suppress_tokens_begin": list(ct2_config.get("suppress_ids_begin", [tokens["space"], tokens["eot"]])),
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "quantize": quantize,
        "opset": opset,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=str(out), prefix=".export-") as tmp:
        work = Path(tmp)
        heads = [tuple(h) for h in meta["alignment_heads"]] or _default_alignment_heads(dims)
        meta["alignment_heads"] = [list(h) for h in heads]
        _export_graphs(weights, work, opset, heads)
        if quantize == "int8":
            _quantize(work)
        _write_assets(src, work / ASSETS_DIR, dims, ct2_config, meta)
        meta["vad"] = _copy_vad(work)
        (work / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        # the finished files replace an older export's; the metadata goes last, so a directory
        # with sparkasr_whisper.json is complete
        (out / META_FILE).unlink(missing_ok=True)
        shutil.rmtree(out / ASSETS_DIR, ignore_errors=True)
        for f in sorted(work.iterdir(), key=lambda p: p.name == META_FILE):
            os.replace(f, out / f.name)
    return out
