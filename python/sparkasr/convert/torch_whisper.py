"""Whisper on PyTorch: batched window decoding for GPUs where CTranslate2 cannot run.

CTranslate2 (through faster-whisper) is the engine everywhere it runs. Its PyPI wheel is built for
CUDA 12; on a CUDA 13 machine it cannot load ``libcublas.so.12`` and has no GPU. This module runs
the *same weights* (read from the CTranslate2 ``model.bin``, no Hugging Face checkpoint or network
needed) on PyTorch, with what throughput on a GPU needs:

* log-Mel features computed on the device for the whole batch (``log_mel``), equal to
  faster-whisper's ``FeatureExtractor`` on each window, padded to 3000 frames as our engine does;
* the encoder run on the batch in one call (``scaled_dot_product_attention``);
* greedy decoding of the whole batch with a preallocated self-attention cache, the cross-attention
  keys/values computed once, Whisper's token rules applied to all rows at once as tensor masks
  (suppressed tokens, blank at the start, timestamp rules, the first-timestamp limit), and one host
  synchronisation every ``sync_every`` steps to stop when every row has ended.

It depends on numpy, torch and ``tokenizers`` only (no faster-whisper, no CTranslate2), so it runs
on a GPU image that has PyTorch and nothing else. :func:`load_weights` also reads the compact
``.npz`` written by :func:`save_compact` (int8 matrices with per-row scales, as CTranslate2's int8
quantisation; about half the size of the fp16 ``model.bin``).

Scope: windows of at most 30 s (cut or pack longer audio first), greedy decoding (``beam_size=1``,
temperature 0), English-only or a given language. :class:`TorchWhisper` returns, per window, the
text, timestamped segments and the average log-probability and no-speech probability that
Whisper's quality checks use. Parity is tested against CTranslate2 (same tokens on real speech,
float32) and against ``transformers``' Whisper (same logits) in ``tests/test_torch_whisper.py``.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE

N_FFT = 400
HOP = 160
N_FRAMES = 3000  # 30 s
N_SAMPLES = N_FRAMES * HOP
TIME_PRECISION = 0.02

_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


# --------------------------------------------------------------------------- weights


def read_ct2_model(path) -> Dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (binary format of ``ModelSpec._serialize``),
    aliases resolved, int8 variables de-quantised with their ``weight_scale``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    raw: Dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def read(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            n = read("H")
            return f.read(n)[:-1].decode("utf-8")

        version = read("I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 model format {version} is too old (need >= 5)")
        spec = string()
        if spec != "WhisperSpec":
            raise ValueError(f"{path}: a {spec}, not a Whisper model")
        read("I")  # revision
        for _ in range(read("I")):
            name = string()
            shape = [read("I") for _ in range(read("B"))]
            dtype = _CT2_DTYPES[read("B")]
            nbytes = read("I")
            buf = f.read(nbytes)
            if dtype == "bfloat16":
                arr = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(buf, dtype=dtype)
            raw[name] = arr.reshape(shape)
        aliases = {}
        for _ in range(read("I")):
            alias = string()
            aliases[alias] = string()
    out = {}
    for name, arr in raw.items():
        if name.endswith("weight_scale"):
            continue
        scale = raw.get(name[: -len("weight")] + "weight_scale") if name.endswith("weight") else None
        if arr.dtype == np.int8 and scale is not None and arr.ndim >= 2:
            # one scale per output row; ctranslate2's converter also quantises the encoder's convolutions
            arr = arr.astype(np.float32) / scale.astype(np.float32).reshape((-1,) + (1,) * (arr.ndim - 1))
        out[name] = arr
    # after de-quantising: an alias (ctranslate2's converter writes the output projection as one of the
    # token embeddings) has no scale of its own, and takes its target's de-quantised values
    for alias, target in aliases.items():
        if target in out:
            out[alias] = out[target]
    return out


def save_compact(weights: Dict[str, np.ndarray], path, config: Optional[dict] = None) -> None:
    """Write ``weights`` to an ``.npz``: every weight matrix (linear layers, embeddings) as int8 with
    one float32 scale per row (``round(w * 127 / max|row|)``, CTranslate2's int8 scheme), the rest
    (biases, norms, position encodings, convolutions) as fp16; ``config`` (the model's
    ``config.json``) travels inside. A variable that is another's alias (the output projection tied
    to the token embeddings) is written once."""
    arrays = {}
    seen = set()
    for name, arr in weights.items():
        if id(arr) in seen:
            continue
        seen.add(id(arr))
        a = np.asarray(arr)
        if a.ndim == 2 and name.endswith("weight") and a.dtype.kind == "f":
            a32 = a.astype(np.float32)
            absmax = np.maximum(np.abs(a32).max(axis=1), 1e-12)
            scale = (127.0 / absmax).astype(np.float32)
            arrays[name + "::q"] = np.clip(np.rint(a32 * scale[:, None]), -127, 127).astype(np.int8)
            arrays[name + "::scale"] = scale
        elif a.dtype.kind == "f":
            arrays[name] = a.astype(np.float16)
        else:
            arrays[name] = a
    arrays["__config__"] = np.frombuffer(json.dumps(config or {}).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def load_weights(path) -> Tuple[Dict[str, np.ndarray], dict]:
    """(variables, config) from a CTranslate2 model folder or a :func:`save_compact` ``.npz``."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            config = json.loads(bytes(z["__config__"]).decode("utf-8"))
            out = {}
            for key in z.files:
                if key == "__config__" or key.endswith("::scale"):
                    continue
                if key.endswith("::q"):
                    name = key[:-3]
                    out[name] = z[key].astype(np.float32) / z[name + "::scale"].reshape(-1, 1)
                else:
                    out[key] = z[key]
        return out, config
    folder = path if path.is_dir() else path.parent
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    return read_ct2_model(folder), config


def _n_layers(w: Dict[str, np.ndarray], side: str) -> int:
    return len({k.split("/")[1] for k in w if re.match(side + r"/layer_\d+/", k)})


def to_hf_state_dict(w: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The same weights under ``transformers``' ``WhisperForConditionalGeneration`` names (used to
    check this implementation against transformers, and by the GPU benchmark's baseline)."""
    sd: Dict[str, np.ndarray] = {}
    d = w["encoder/conv1/weight"].shape[0]

    def lin(dst, src, bias=True):
        sd[dst + ".weight"] = w[src + "/weight"]
        if bias:
            sd[dst + ".bias"] = w[src + "/bias"]

    def ln(dst, src):
        sd[dst + ".weight"] = w[src + "/gamma"]
        sd[dst + ".bias"] = w[src + "/beta"]

    def self_attn(dst, src):
        qkv_w, qkv_b = w[src + "/linear_0/weight"], w[src + "/linear_0/bias"]
        for k, name in enumerate("qkv"):
            sd[f"{dst}.{name}_proj.weight"] = qkv_w[k * d : (k + 1) * d]
            if name != "k":
                sd[f"{dst}.{name}_proj.bias"] = qkv_b[k * d : (k + 1) * d]
        lin(dst + ".out_proj", src + "/linear_1")
        ln(dst + "_layer_norm", src + "/layer_norm")

    for side in ("encoder", "decoder"):
        n_layers = _n_layers(w, side)
        for i in range(n_layers):
            p, s = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            self_attn(p + ".self_attn", s + "/self_attention")
            if side == "decoder":
                lin(p + ".encoder_attn.q_proj", s + "/attention/linear_0")
                kv_w, kv_b = w[s + "/attention/linear_1/weight"], w[s + "/attention/linear_1/bias"]
                sd[p + ".encoder_attn.k_proj.weight"] = kv_w[:d]
                sd[p + ".encoder_attn.v_proj.weight"] = kv_w[d:]
                sd[p + ".encoder_attn.v_proj.bias"] = kv_b[d:]
                lin(p + ".encoder_attn.out_proj", s + "/attention/linear_2")
                ln(p + ".encoder_attn_layer_norm", s + "/attention/layer_norm")
            lin(p + ".fc1", s + "/ffn/linear_0")
            lin(p + ".fc2", s + "/ffn/linear_1")
            ln(p + ".final_layer_norm", s + "/ffn/layer_norm")
        ln(f"model.{side}.layer_norm", f"{side}/layer_norm")
        sd[f"model.{side}.embed_positions.weight"] = w[f"{side}/position_encodings/encodings"]
    for k in (1, 2):
        lin(f"model.encoder.conv{k}", f"encoder/conv{k}")
    sd["model.decoder.embed_tokens.weight"] = w["decoder/embeddings/weight"]
    sd["proj_out.weight"] = w["decoder/embeddings/weight"]
    return sd


def hf_config(d: Dims, **config):
    """transformers' ``WhisperConfig`` of a model of dimensions ``d``, plus ``config`` fields."""
    import transformers

    return transformers.WhisperConfig(
        vocab_size=d.n_vocab,
        num_mel_bins=d.n_mels,
        d_model=d.d_model,
        encoder_layers=d.encoder_layers,
        decoder_layers=d.decoder_layers,
        encoder_attention_heads=d.n_heads,
        decoder_attention_heads=d.n_heads,
        encoder_ffn_dim=4 * d.d_model,
        decoder_ffn_dim=4 * d.d_model,
        max_source_positions=d.n_audio_ctx,
        max_target_positions=d.n_text_ctx,
        **config,
    )


def hf_whisper(w: Dict[str, np.ndarray], **config):
    """transformers' ``WhisperForConditionalGeneration`` (float32, CPU, eval mode) holding ``w``,
    loaded strictly through :func:`to_hf_state_dict`; ``config`` adds ``WhisperConfig`` fields
    (token ids). Needs transformers."""
    import torch
    import transformers

    hf = transformers.WhisperForConditionalGeneration(hf_config(Dims.of(w), **config))
    hf.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in to_hf_state_dict(w).items()})
    return hf.eval()


@dataclass(frozen=True)
class Dims:
    n_mels: int
    d_model: int
    n_heads: int
    encoder_layers: int
    decoder_layers: int
    n_vocab: int
    n_text_ctx: int
    n_audio_ctx: int

    @staticmethod
    def of(w: Dict[str, np.ndarray]) -> Dims:
        heads = int(np.asarray(w["decoder/num_heads"]).reshape(-1)[0]) if "decoder/num_heads" in w else 6
        return Dims(
            n_mels=w["encoder/conv1/weight"].shape[1],
            d_model=w["encoder/conv1/weight"].shape[0],
            n_heads=heads,
            encoder_layers=_n_layers(w, "encoder"),
            decoder_layers=_n_layers(w, "decoder"),
            n_vocab=w["decoder/embeddings/weight"].shape[0],
            n_text_ctx=w["decoder/position_encodings/encodings"].shape[0],
            n_audio_ctx=w["encoder/position_encodings/encodings"].shape[0],
        )


# --------------------------------------------------------------------------- features


def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-scale Mel filterbank, as faster-whisper's (and librosa's) ``get_mel_filters``."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs.reshape(-1, 1) - fftfreqs.reshape(1, -1)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(windows: Sequence[np.ndarray], device="cpu", n_mels: int = 80):
    """Whisper log-Mel features of ``windows`` (each ≤ 30 s of 16 kHz mono), as a float32 tensor
    ``[B, n_mels, 3000]`` on ``device``: per window exactly faster-whisper's
    ``FeatureExtractor(x)[..., :-1]`` (160 samples of zero padding, the maximum taken over the
    window's own frames), padded with zeros to 3000 frames like ``pad_or_trim``."""
    import torch

    lengths = [len(x) for x in windows]
    if any(n > N_SAMPLES for n in lengths):
        raise ValueError(f"a window is longer than {N_SAMPLES / SAMPLE_RATE:.0f} s: cut long audio first")
    batch = np.zeros((len(windows), N_SAMPLES + HOP), dtype=np.float32)
    for i, x in enumerate(windows):
        batch[i, : len(x)] = x
    audio = torch.from_numpy(batch).to(device)
    window = torch.hann_window(N_FFT, periodic=True, device=device)
    spec = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2  # [B, 201, 3001]
    filters = torch.from_numpy(mel_filters(n_mels)).to(device)
    mel = torch.clamp(filters @ power, min=1e-10).log10()
    n_valid = torch.tensor([(n + HOP) // HOP for n in lengths], device=device)  # frames before [..., :-1]
    frames = torch.arange(mel.shape[-1], device=device)
    valid = frames[None, :] < n_valid[:, None]
    peak = torch.where(valid[:, None, :], mel, torch.full_like(mel, -torch.inf)).amax(dim=(1, 2), keepdim=True)
    mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
    keep = frames[None, :] < (n_valid - 1)[:, None]
    mel = torch.where(keep[:, None, :], mel, torch.zeros_like(mel))
    return mel[..., :N_FRAMES].contiguous()


# --------------------------------------------------------------------------- model


def _build_module(dims: Dims):
    import torch
    import torch.nn.functional as F
    from torch import nn

    H = dims.n_heads

    def heads(x):  # [B, T, D] -> [B, H, T, Dh]
        b, t, d = x.shape
        return x.view(b, t, H, d // H).transpose(1, 2)

    def merge(x):  # [B, H, T, Dh] -> [B, T, D]
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    class EncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            d = dims.d_model
            self.ln1, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ln2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
            x = x + self.out(merge(F.scaled_dot_product_attention(heads(q), heads(k), heads(v))))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            d = dims.d_model
            self.ln1, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ln2, self.xq, self.xkv, self.xout = (
                nn.LayerNorm(d),
                nn.Linear(d, d),
                nn.Linear(d, 2 * d),
                nn.Linear(d, d),
            )
            self.ln3, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x, k_cache, v_cache, pos: int, xk, xv):
            """x [B, T, D] at positions pos..pos+T-1; caches [B, H, n_ctx, Dh] written in place."""
            t = x.shape[1]
            q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
            k_cache[:, :, pos : pos + t] = heads(k)
            v_cache[:, :, pos : pos + t] = heads(v)
            a = F.scaled_dot_product_attention(
                heads(q), k_cache[:, :, : pos + t], v_cache[:, :, : pos + t], is_causal=t > 1 and pos == 0
            )
            x = x + self.out(merge(a))
            a = F.scaled_dot_product_attention(heads(self.xq(self.ln2(x))), xk, xv)
            x = x + self.xout(merge(a))
            return x + self.fc2(F.gelu(self.fc1(self.ln3(x))))

        def cross_kv(self, enc):
            k, v = self.xkv(enc).chunk(2, dim=-1)
            return heads(k).contiguous(), heads(v).contiguous()

    class Whisper(nn.Module):
        def __init__(self):
            super().__init__()
            d = dims.d_model
            self.conv1 = nn.Conv1d(dims.n_mels, d, 3, padding=1)
            self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
            self.register_buffer("enc_pos", torch.zeros(dims.n_audio_ctx, d))
            self.enc_layers = nn.ModuleList(EncoderLayer() for _ in range(dims.encoder_layers))
            self.enc_ln = nn.LayerNorm(d)
            self.embed = nn.Embedding(dims.n_vocab, d)
            self.register_buffer("dec_pos", torch.zeros(dims.n_text_ctx, d))
            self.dec_layers = nn.ModuleList(DecoderLayer() for _ in range(dims.decoder_layers))
            self.dec_ln = nn.LayerNorm(d)

        def encode(self, mel):
            x = F.gelu(self.conv1(mel))
            x = F.gelu(self.conv2(x)).transpose(1, 2)
            x = x + self.enc_pos[: x.shape[1]]
            for layer in self.enc_layers:
                x = layer(x)
            return self.enc_ln(x)

        def decode(self, tokens, pos: int, caches, cross):
            x = self.embed(tokens) + self.dec_pos[pos : pos + tokens.shape[1]]
            for layer, (kc, vc), (xk, xv) in zip(self.dec_layers, caches, cross):
                x = layer(x, kc, vc, pos, xk, xv)
            return self.dec_ln(x) @ self.embed.weight.T

    return Whisper()


def build_module(weights: Dict[str, np.ndarray]):
    """(the Whisper ``nn.Module`` holding ``weights`` in float32 on the CPU, eval mode, its :class:`Dims`):
    the model :class:`TorchWhisper` runs and :mod:`.whisper_onnx` traces."""
    import torch

    dims = Dims.of(weights)
    module = _build_module(dims)
    module.load_state_dict(
        {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in _state_from_ct2(weights, dims).items()
        }
    )
    return module.eval(), dims


def _state_from_ct2(w: Dict[str, np.ndarray], dims: Dims) -> Dict[str, np.ndarray]:
    sd = {}

    def lin(dst, src):
        sd[dst + ".weight"], sd[dst + ".bias"] = w[src + "/weight"], w[src + "/bias"]

    def ln(dst, src):
        sd[dst + ".weight"], sd[dst + ".bias"] = w[src + "/gamma"], w[src + "/beta"]

    for k in (1, 2):
        lin(f"conv{k}", f"encoder/conv{k}")
    sd["enc_pos"] = w["encoder/position_encodings/encodings"]
    sd["dec_pos"] = w["decoder/position_encodings/encodings"]
    sd["embed.weight"] = w["decoder/embeddings/weight"]
    ln("enc_ln", "encoder/layer_norm")
    ln("dec_ln", "decoder/layer_norm")
    for side, prefix in (("encoder", "enc_layers"), ("decoder", "dec_layers")):
        for i in range(dims.encoder_layers if side == "encoder" else dims.decoder_layers):
            p, s = f"{prefix}.{i}", f"{side}/layer_{i}"
            ln(p + ".ln1", s + "/self_attention/layer_norm")
            lin(p + ".qkv", s + "/self_attention/linear_0")
            lin(p + ".out", s + "/self_attention/linear_1")
            ffn_ln = p + (".ln2" if side == "encoder" else ".ln3")
            ln(ffn_ln, s + "/ffn/layer_norm")
            lin(p + ".fc1", s + "/ffn/linear_0")
            lin(p + ".fc2", s + "/ffn/linear_1")
            if side == "decoder":
                ln(p + ".ln2", s + "/attention/layer_norm")
                lin(p + ".xq", s + "/attention/linear_0")
                lin(p + ".xkv", s + "/attention/linear_1")
                lin(p + ".xout", s + "/attention/linear_2")
    return sd


# --------------------------------------------------------------------------- tokens


@dataclass
class WindowResult:
    """One decoded window: text, timestamped segments (seconds within the window), the token ids
    (timestamps included, end-of-text excluded) and Whisper's quality measures."""

    text: str
    segments: List[Tuple[float, float, str]] = field(default_factory=list)
    tokens: List[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


class TorchWhisper:
    """Greedy batched Whisper on PyTorch for windows of at most 30 s.

    ``model``: a CTranslate2 Whisper folder (``model.bin``, ``config.json``, ``tokenizer.json``) or a
    :func:`save_compact` ``.npz`` (then ``tokenizer`` names the folder holding ``tokenizer.json``).
    ``dtype``: ``"float16"`` (default on CUDA) or ``"float32"`` (default on CPU)."""

    def __init__(self, model, device: str = "cpu", dtype: Optional[str] = None, tokenizer=None):
        import torch
        from tokenizers import Tokenizer

        self.path = str(model)
        weights, self.config = load_weights(model)
        module, self.dims = build_module(weights)
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype or ("float16" if self.device.type == "cuda" else "float32"))
        self.module = module.to(self.device, self.dtype)
        tk_dir = Path(tokenizer) if tokenizer is not None else Path(model)
        tk_file = tk_dir / "tokenizer.json" if tk_dir.is_dir() else tk_dir.parent / "tokenizer.json"
        self.tokenizer = Tokenizer.from_file(str(tk_file))
        ids = self.tokenizer.token_to_id
        self.eot = ids("<|endoftext|>")
        self.sot = ids("<|startoftranscript|>")
        self.no_timestamps = ids("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1
        self.no_speech = ids("<|nospeech|>") if ids("<|nospeech|>") is not None else ids("<|nocaptions|>")
        self.multilingual = self.dims.n_vocab >= 51865
        specials = [
            ids(t)
            for t in ("<|translate|>", "<|transcribe|>", "<|startoftranscript|>", "<|startofprev|>", "<|startoflm|>")
            if ids(t) is not None
        ] + [self.no_speech]
        self.suppress = sorted(set(self.config.get("suppress_ids", [])) | set(specials))
        self.blank = self.tokenizer.encode(" ", add_special_tokens=False).ids + [self.eot]

    def prompt(self, language: Optional[str] = None, task: str = "transcribe", timestamps: bool = True) -> List[int]:
        """Whisper's start sequence: ``<|startoftranscript|>`` [language, task] [``<|notimestamps|>``]."""
        seq = [self.sot]
        if self.multilingual:
            lang = self.tokenizer.token_to_id(f"<|{language or 'en'}|>")
            if lang is None:
                raise ValueError(f"unknown language {language!r}")
            seq += [lang, self.tokenizer.token_to_id(f"<|{task}|>")]
        if not timestamps:
            seq.append(self.no_timestamps)
        return seq

    def transcribe(
        self,
        windows: Sequence[np.ndarray],
        batch_size: int = 64,
        timestamps: bool = True,
        language: Optional[str] = None,
        max_new_tokens: Optional[int] = None,
        sync_every: int = 8,
    ) -> List[WindowResult]:
        """Decode ``windows`` (≤ 30 s each, 16 kHz mono float32), ``batch_size`` at a time."""
        out: List[WindowResult] = []
        for i in range(0, len(windows), batch_size):
            part = windows[i : i + batch_size]
            mel = log_mel(part, self.device, self.dims.n_mels)
            out.extend(
                self.decode(
                    mel,
                    self.prompt(language, timestamps=timestamps),
                    max_new_tokens,
                    durations=[len(x) / SAMPLE_RATE for x in part],
                    sync_every=sync_every,
                )
            )
        return out

    def decode(
        self,
        mel,
        prompt: Sequence[int],
        max_new_tokens: Optional[int] = None,
        durations: Optional[Sequence[float]] = None,
        sync_every: int = 8,
    ) -> List[WindowResult]:
        """Greedy decode of a feature batch ``[B, n_mels, 3000]`` with one start sequence."""
        seqs, sum_lp, no_speech = (t.cpu() for t in self.generate(mel, prompt, max_new_tokens, sync_every))
        results = []
        for b in range(seqs.shape[0]):
            toks = seqs[b].tolist()
            n = toks.index(self.eot) if self.eot in toks else len(toks)
            body = toks[:n]
            dur = durations[b] if durations is not None else N_SAMPLES / SAMPLE_RATE
            results.append(
                WindowResult(
                    text=self._text(body),
                    segments=self.segments(body, dur)
                    if self.no_timestamps not in prompt
                    else ([(0.0, round(dur, 3), self._text(body))] if body else []),
                    tokens=body,
                    avg_logprob=float(sum_lp[b]) / (len(body) + 1),
                    no_speech_prob=float(no_speech[b]),
                )
            )
        return results

    def generate(self, mel, prompt: Sequence[int], max_new_tokens: Optional[int] = None, sync_every: int = 8):
        """(tokens ``[B, n]`` padded with end-of-text, sum of log-probabilities ``[B]``, no-speech
        probability ``[B]``): greedy, with Whisper's suppression and timestamp rules."""
        import torch

        m, dims, dev = self.module, self.dims, self.device
        B, P = mel.shape[0], len(prompt)
        max_new_tokens = self.max_new_tokens(P, max_new_tokens)
        with torch.inference_mode():
            enc = m.encode(mel.to(dev, self.dtype))
            cross = [layer.cross_kv(enc) for layer in m.dec_layers]
            dh = dims.d_model // dims.n_heads
            ctx = P + max_new_tokens
            caches = [
                (
                    torch.empty(B, dims.n_heads, ctx, dh, device=dev, dtype=self.dtype),
                    torch.empty(B, dims.n_heads, ctx, dh, device=dev, dtype=self.dtype),
                )
                for _ in m.dec_layers
            ]
            prompt_logits = m.decode(torch.tensor([list(prompt)] * B, device=dev), 0, caches, cross).float()

            def step_fn(tokens, pos):
                return m.decode(tokens[:, None], pos, caches, cross)[:, -1].float()

            return self.greedy(prompt_logits, prompt, step_fn, max_new_tokens, sync_every)

    def max_new_tokens(self, prompt_length: int, max_new_tokens: Optional[int] = None) -> int:
        """New tokens a decode may write after a prompt of ``prompt_length`` (default: half the
        decoder's context, as Whisper; never past its end)."""
        if max_new_tokens is None:
            max_new_tokens = self.dims.n_text_ctx // 2
        return min(max_new_tokens, self.dims.n_text_ctx - prompt_length)

    def greedy(self, prompt_logits, prompt: Sequence[int], step_fn, max_new_tokens: int, sync_every: int = 8):
        """Whisper's greedy search over any decoder: ``prompt_logits`` ``[B, P, V]`` (float32 tensor,
        the decoder's output at every prompt position), ``step_fn(tokens [B], position) -> logits [B, V]``
        feeds one token per row at ``position`` and returns the next logits. Returns what
        :meth:`generate` returns. Suppressed tokens, a blank or end-of-text first, and the timestamp
        rules are applied to all rows at once as masks."""
        import torch

        dims, dev = self.dims, prompt_logits.device
        B, P = prompt_logits.shape[0], len(prompt)
        timestamps = self.no_timestamps not in prompt
        V, ts0, eot = dims.n_vocab, self.timestamp_begin, self.eot
        with torch.inference_mode():
            logits = prompt_logits
            sot_at = list(prompt).index(self.sot)
            no_speech = (
                logits[:, sot_at].softmax(-1)[:, self.no_speech]
                if self.no_speech is not None
                else torch.zeros(B, device=dev)
            )
            logits = logits[:, -1]

            cols = torch.arange(V, device=dev)
            always = torch.zeros(V, dtype=torch.bool, device=dev)
            always[torch.tensor(self.suppress, device=dev, dtype=torch.long)] = True
            if timestamps:
                always[self.no_timestamps] = True
            blank = torch.zeros(V, dtype=torch.bool, device=dev)
            blank[torch.tensor(self.blank, device=dev)] = True
            text_cols, ts_cols = cols < eot, cols >= ts0
            first_ts_limit = cols > ts0 + int(round(1.0 / TIME_PRECISION))
            neg = torch.tensor(-torch.inf, device=dev)

            out = torch.full((B, max_new_tokens), eot, dtype=torch.long, device=dev)
            done = torch.zeros(B, dtype=torch.bool, device=dev)
            sum_lp = torch.zeros(B, device=dev)
            last_ts = torch.full((B,), -1, dtype=torch.long, device=dev)  # last timestamp token (index), -1 none
            last_is_ts = torch.zeros(B, dtype=torch.bool, device=dev)
            penult_is_ts = torch.ones(B, dtype=torch.bool, device=dev)  # Whisper: true while fewer than 2 tokens
            n = 0
            for step in range(max_new_tokens):
                mask = always.expand(B, V)
                if step == 0:
                    mask = mask | blank
                if timestamps:
                    if step == 0:
                        mask = mask | ~ts_cols | first_ts_limit
                    else:
                        # after a timestamp pair: text; after a single timestamp: a timestamp or the end
                        mask = (
                            mask
                            | ((last_is_ts & penult_is_ts)[:, None] & ts_cols)
                            | ((last_is_ts & ~penult_is_ts)[:, None] & text_cols)
                        )
                        # timestamps do not decrease, and a segment has non-zero length
                        floor = ts0 + last_ts + torch.where(last_is_ts & ~penult_is_ts, 0, 1)
                        mask = mask | ((last_ts >= 0)[:, None] & ts_cols & (cols[None, :] < floor[:, None]))
                logits = logits.masked_fill(mask, neg)
                if timestamps:
                    logprobs = logits.log_softmax(-1)
                    ts_mass = logprobs[:, ts0:].logsumexp(-1)
                    text_best = logprobs[:, :ts0].max(-1).values
                    logits = logits.masked_fill((ts_mass > text_best)[:, None] & ~ts_cols, neg)
                logprobs = logits.log_softmax(-1)
                nxt = logits.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, eot), nxt)
                sum_lp = sum_lp + torch.where(done, torch.zeros_like(sum_lp), logprobs.gather(1, nxt[:, None])[:, 0])
                out[:, step] = nxt
                done = done | (nxt == eot)
                is_ts = nxt >= ts0
                penult_is_ts = last_is_ts if step > 0 else torch.ones_like(is_ts)
                last_is_ts = is_ts
                last_ts = torch.where(is_ts, nxt - ts0, last_ts)
                n = step + 1
                if (step + 1) % sync_every == 0 and bool(done.all()):
                    break
                if step + 1 < max_new_tokens:
                    logits = step_fn(nxt, P + step)
            return out[:, :n], sum_lp, no_speech

    # ---------------------------------------------------------------- text

    def _text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.eot]).strip()

    def segments(self, tokens: Sequence[int], duration_s: float) -> List[Tuple[float, float, str]]:
        """Segments of a timestamped decode: text between timestamp tokens, with the times around it;
        text after the last timestamp runs to the window's end (``duration_s``)."""
        segs: List[Tuple[float, float, str]] = []
        start: Optional[float] = None
        text: List[int] = []
        for t in tokens:
            if t >= self.timestamp_begin:
                time = (t - self.timestamp_begin) * TIME_PRECISION
                if text:
                    segs.append((round(start or 0.0, 3), round(time, 3), self._text(text)))
                    text = []
                start = time
            elif t < self.eot:
                text.append(t)
        if text:
            segs.append((round(start or 0.0, 3), round(max(duration_s, start or 0.0), 3), self._text(text)))
        return [s for s in segs if s[2]]
