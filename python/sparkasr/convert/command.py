"""``sparkasr convert``: a CTC checkpoint or a Whisper model -> a directory ONNX Runtime runs.

    sparkasr convert --model facebook/wav2vec2-base-960h --output /models/w2v2-base-960h [--quantize int8]
    sparkasr convert --model ./my-hubert-ctc --output /models/hubert [--allow-pickle]
    sparkasr convert --model tiny.en --output /models/whisper-tiny.en-onnx [--quantize int8]
    sparkasr convert --diarizer [--output DIR]

**The speaker model** (``--diarizer``): Resemblyzer's voice encoder (``resemblyzer/pretrained.pt``
from its PyPI wheel) as ``voice_encoder.onnx`` for the ``SpeakerDiarizer`` and ``--diarize``
(:mod:`sparkasr.convert.voice_encoder`); by default into the model cache, where they look for it.

**Whisper** (the embedded ``tiny.en``, ``base``, a CTranslate2 or Hugging Face Whisper directory:
detected by itself; ``--whisper`` for a hub id) is written as encoder/decoder ONNX graphs in Spark
NLP's layout plus the log-Mel front end as a graph, for the JVM ``WhisperForCTC``: see
:mod:`sparkasr.convert.whisper_onnx`.

**CTC checkpoints:**

The output directory holds ``model.onnx`` (input ``input_values`` [batch, samples] float32, plus
``attention_mask`` [batch, samples] int64 when the model's feature extractor uses one; output
``logits`` [batch, frames, vocab]), the checkpoint's config/preprocessor/tokenizer files and
``sparkasr_ctc.json`` (provenance). torch and transformers are needed for this step only (the
``convert`` extra), never on executors.

Weights are read from ``model.safetensors``; a pickled ``pytorch_model.bin`` is refused unless
``--allow-pickle`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import List, Optional, Union

from ..ctc.checkpoint import (
    CONFIG_FILES,
    META_FILE,
    ONNX_FILE,
    CheckpointError,
    load_checkpoint,
    resolve,
    weights_file,
)

QUANTIZE_CHOICES = ("int8",)
DEFAULT_OPSET = 17


class ConversionError(RuntimeError):
    pass


def _import_convert_deps():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConversionError(
            "converting a checkpoint to ONNX needs torch and transformers (and onnx for --quantize): "
            "pip install 'sparkasr[convert]'"
        ) from exc


def _export_fp32(src: Path, onnx_path: Path, use_mask: bool, allow_pickle: bool, opset: int) -> None:
    import torch
    from transformers import AutoModelForCTC

    weights = weights_file(src, allow_pickle=allow_pickle)
    is_pickle = weights.name.startswith("pytorch_model")
    model = AutoModelForCTC.from_pretrained(str(src), use_safetensors=not is_pickle, attn_implementation="eager")
    model.eval()

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_values, attention_mask=None):
            return self.inner(input_values, attention_mask=attention_mask, return_dict=True).logits

    wrapper = _Wrapper(model).eval()
    gen = torch.Generator().manual_seed(0)
    dummy = torch.randn(2, 16000, generator=gen)
    names = ["input_values"]
    args: tuple = (dummy,)
    dyn = {"input_values": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}}
    if use_mask:
        mask = torch.ones(2, 16000, dtype=torch.long)
        mask[1, 12000:] = 0
        args = (dummy, mask)
        names.append("attention_mask")
        dyn["attention_mask"] = {0: "batch", 1: "samples"}
    with torch.inference_mode(), warnings.catch_warnings():
        # tracing warnings about shape-dependent Python branches: the exported graph is checked
        # against transformers on other lengths and batch sizes by the test-suite
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(
            wrapper,
            args,
            str(onnx_path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _quantize_int8(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # MatMul only: the transformer layers carry nearly all weights; dynamic ConvInteger is slow
    # or missing on some ORT builds, so the conv feature encoder stays float.
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


def convert_checkpoint(
    model: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    quantize: Optional[str] = None,
    allow_pickle: bool = False,
    opset: int = DEFAULT_OPSET,
    revision: Optional[str] = None,
) -> Path:
    """Convert ``model`` (local HF dir or Hub id) into ``output``; returns the output directory."""
    if quantize not in (None,) + QUANTIZE_CHOICES:
        raise ConversionError(f"--quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
    src = resolve(model, allow_pickle=allow_pickle, revision=revision)
    ckpt = load_checkpoint(src)  # validates config / vocab / preprocessor before heavy imports
    weights_file(src, allow_pickle=allow_pickle)
    _import_convert_deps()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    use_mask = ckpt.features.return_attention_mask
    with tempfile.TemporaryDirectory(dir=str(out)) as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        _export_fp32(src, fp32, use_mask, allow_pickle, opset)
        final = Path(tmp) / ONNX_FILE
        if quantize == "int8":
            _quantize_int8(fp32, final)
        else:
            os.replace(fp32, final)
        # single-file model: small CTC models fit the 2 GB protobuf limit
        os.replace(final, out / ONNX_FILE)
    for name in CONFIG_FILES:
        if (src / name).is_file() and (src.resolve() != out.resolve()):
            shutil.copyfile(src / name, out / name)
    import torch
    import transformers

    meta = {
        "format": 1,
        "source": str(model),
        "model_type": ckpt.model_type,
        "architecture": ckpt.architecture,
        "inputs": ["input_values"] + (["attention_mask"] if use_mask else []),
        "quantize": quantize,
        "opset": opset,
        "inputs_to_logits_ratio": ckpt.inputs_to_logits_ratio,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def is_whisper_source(model: str) -> bool:
    """Whether ``model`` names a Whisper model without asking a hub: an embedded name, or a local
    CTranslate2 Whisper or Hugging Face Whisper directory."""
    from ..whisper.models import _BASE_ALIASES, _EMBEDDED_ALIASES, is_ct2_dir, is_hf_whisper_dir

    if model in _EMBEDDED_ALIASES or model in _BASE_ALIASES:
        return True
    path = Path(os.path.expanduser(model))
    return is_hf_whisper_dir(path) or (is_ct2_dir(path) and (path / "tokenizer.json").is_file())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparkasr convert",
        description="Convert a Hugging Face CTC checkpoint (wav2vec2 / HuBERT / data2vec-audio / WavLM ...ForCTC) "
        "or a Whisper model (tiny.en, base, a CTranslate2 or Hugging Face Whisper directory) to ONNX.",
    )
    p.add_argument(
        "--diarizer",
        action="store_true",
        help="convert the speaker model (Resemblyzer's voice encoder, from its PyPI wheel) for diarization; "
        "--output defaults to the model cache, where SpeakerDiarizer and --diarize find it",
    )
    p.add_argument(
        "--model",
        help="local checkpoint directory or Hub id (e.g. facebook/wav2vec2-base-960h); Whisper: tiny.en, base or a "
        "CTranslate2 / Hugging Face Whisper directory",
    )
    p.add_argument(
        "--output",
        help="output directory (CTC: model.onnx + config/tokenizer files; Whisper: encoder_model.onnx, "
        "decoder_model.onnx, decoder_with_past_model.onnx, log_mel_model.onnx, assets/, sparkasr_whisper.json)",
    )
    p.add_argument(
        "--quantize", choices=QUANTIZE_CHOICES, default=None, help="dynamic int8 quantisation of the MatMul weights"
    )
    p.add_argument(
        "--whisper",
        action="store_true",
        help="the model is Whisper (found by itself for embedded names and local directories; needed for a hub id)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept a pickled pytorch_model.bin (can run code: trusted sources only)",
    )
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    return p


def convert_main(argv: List[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.diarizer:
        return _diarizer_main(args)
    if not args.model or not args.output:
        parser.error("--model and --output are required (or --diarizer)")
    if args.whisper or is_whisper_source(args.model):
        return _whisper_main(args)
    try:
        out = convert_checkpoint(
            args.model,
            args.output,
            quantize=args.quantize,
            allow_pickle=args.allow_pickle,
            opset=args.opset,
            revision=args.revision,
        )
    except (CheckpointError, ConversionError, FileNotFoundError) as exc:
        print(f"sparkasr convert: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / ONNX_FILE}")
    return 0


def _diarizer_main(args) -> int:
    from ..diarize.models import default_encoder_dir
    from .voice_encoder import ONNX_FILE as VOICE_ONNX
    from .voice_encoder import VoiceEncoderUnavailable, export_voice_encoder

    if args.model or args.quantize or args.whisper or args.allow_pickle or args.revision:
        print("sparkasr convert: error: --diarizer takes only --output", file=sys.stderr)
        return 2
    try:
        out = export_voice_encoder(args.output or default_encoder_dir())
    except VoiceEncoderUnavailable as exc:
        print(f"sparkasr convert: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / VOICE_ONNX}")
    return 0


def _whisper_main(args) -> int:
    from ..whisper.models import ModelNotFoundError
    from .whisper_onnx import ENCODER_FILE, ExportError, export_whisper

    if args.allow_pickle or args.revision:
        print("sparkasr convert: error: --allow-pickle and --revision apply to CTC checkpoints only", file=sys.stderr)
        return 2
    try:
        out = export_whisper(args.model, args.output, quantize=args.quantize, opset=args.opset)
    except (ExportError, ModelNotFoundError, ValueError) as exc:
        print(f"sparkasr convert: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / ENCODER_FILE} and the decoder, front-end and tokenizer files beside it")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(convert_main(sys.argv[1:]))
