"""CPU speed of the same CTC model on ONNX Runtime (our executor path) vs transformers/torch.

No real CTC weights can be downloaded here, so the model is a random-weight ``Wav2Vec2ForCTC`` with
the exact architecture of ``facebook/wav2vec2-base-960h`` (``--size base``: 12 layers, hidden 768,
conv feature encoder 512 channels, ~94M parameters; speed does not depend on weight values), or
the tiny test model (``--size tiny``). It is converted with ``sparkasr convert`` (fp32 and int8),
and the real clips in tests/data are transcribed one at a time (batch 1, as for long rows) by:

* ``torch``: ``AutoModelForCTC`` forward under ``torch.inference_mode`` (transformers' default
  attention implementation), plus argmax;
* ``onnx``: :class:`sparkasr.ctc.CTCEngine` end to end (normalisation, ONNX Runtime, decoding);
* ``onnx-int8``: the same with the dynamically quantised model.

Both use the same number of intra-op threads (``--threads``, default 1). Writes
bench/results/ctc_onnx_vs_torch.json.

    python bench/ctc_onnx_vs_torch.py [--size base|tiny] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))

BASE_CONFIG = dict(  # facebook/wav2vec2-base-960h's architecture
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    conv_dim=(512,) * 7,
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    feat_extract_norm="group",
    do_stable_layer_norm=False,
    vocab_size=32,
    pad_token_id=0,
)


def make_base(out: Path) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from fixtures.make_ctc_models import VOCAB

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**BASE_CONFIG)).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "vocab.json").write_text(json.dumps(VOCAB))
    Wav2Vec2CTCTokenizer(str(out / "vocab.json")).save_pretrained(str(out))
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(str(out))
    return out


def clips():
    import soundfile as sf

    files = sorted((ROOT / "tests" / "data" / "librivox").glob("*.wav")) + sorted(
        (ROOT / "tests" / "data" / "cards").glob("*.wav")
    )
    return [(f.name, sf.read(str(f), dtype="float32")[0]) for f in files]


def timeit(fn, audio, repeats):
    """(best wall s, best process-CPU s, all wall runs). CPU time is reported too because a shared
    machine's wall clock is noisy; with one thread it is the work done."""
    fn(audio[0][1])  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _, x in audio:
            fn(x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), walls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=("base", "tiny"), default="base")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", type=int, default=0, help="use only the first N clips (0 = all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ctc_onnx_vs_torch.json"))
    args = ap.parse_args(argv)

    import onnxruntime
    import torch
    import transformers
    from transformers import AutoModelForCTC, Wav2Vec2FeatureExtractor

    from sparkasr.convert.command import convert_checkpoint
    from sparkasr.ctc import CTCEngine, CTCOptions

    torch.set_num_threads(args.threads)
    audio = clips()
    if args.clips:
        audio = audio[: args.clips]
    total_s = sum(len(x) for _, x in audio) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.size == "base":
            hf = make_base(tmp / "hf")
        else:
            from fixtures.make_ctc_models import make_checkpoint

            hf = make_checkpoint("wav2vec2", tmp / "hf")
        fp32 = convert_checkpoint(hf, tmp / "onnx")
        int8 = convert_checkpoint(hf, tmp / "int8", quantize="int8")
        convert_s = time.perf_counter() - t0

        model = AutoModelForCTC.from_pretrained(str(hf)).eval()
        fe = Wav2Vec2FeatureExtractor.from_pretrained(str(hf))
        n_params = sum(p.numel() for p in model.parameters())

        def run_torch(x):
            inp = fe(x, sampling_rate=16000, return_tensors="pt")
            with torch.inference_mode():
                return model(**inp).logits[0].argmax(-1)

        eng = CTCEngine(fp32, CTCOptions(num_threads=args.threads, batch_size=1))
        eng8 = CTCEngine(int8, CTCOptions(num_threads=args.threads, batch_size=1))

        # parity on the first clip (same input, same model)
        x0 = audio[0][1]
        with torch.inference_mode():
            ref = model(**fe(x0, sampling_rate=16000, return_tensors="pt")).logits[0].numpy()
        diff = float(np.abs(eng.logits(x0) - ref).max())
        diff8 = float(np.abs(eng8.logits(x0) - ref).max())

        # interleaved rounds, so that load changes on a shared machine hit all three alike
        runs = {"torch": [], "onnx_fp32": [], "onnx_int8": []}
        fns = {"torch": run_torch, "onnx_fp32": lambda x: eng.transcribe(x), "onnx_int8": lambda x: eng8.transcribe(x)}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                runs[k].append(timeit(fn, audio, 1))
        torch_s, onnx_s, int8_s = (min(r[0] for r in runs[k]) for k in fns)
        torch_c, onnx_c, int8_c = (min(r[1] for r in runs[k]) for k in fns)
        torch_all, onnx_all, int8_all = ([r[0] for r in runs[k]] for k in fns)
        sizes = {
            "onnx_fp32_mb": round((fp32 / "model.onnx").stat().st_size / 2**20, 1),
            "onnx_int8_mb": round((int8 / "model.onnx").stat().st_size / 2**20, 1),
        }

    result = {
        "model": f"random-weight Wav2Vec2ForCTC, {args.size} ({'wav2vec2-base-960h architecture' if args.size == 'base' else 'test fixture'})",
        "parameters": n_params,
        "threads": args.threads,
        "clips": len(audio),
        "audio_s": round(total_s, 2),
        "repeats": args.repeats,
        "torch_s": round(torch_s, 3),
        "onnx_fp32_s": round(onnx_s, 3),
        "onnx_int8_s": round(int8_s, 3),
        "speedup_onnx_fp32_vs_torch": round(torch_s / onnx_s, 3),
        "speedup_onnx_int8_vs_torch": round(torch_s / int8_s, 3),
        "cpu_torch_s": round(torch_c, 3),
        "cpu_onnx_fp32_s": round(onnx_c, 3),
        "cpu_onnx_int8_s": round(int8_c, 3),
        "cpu_speedup_onnx_fp32_vs_torch": round(torch_c / onnx_c, 3),
        "cpu_speedup_onnx_int8_vs_torch": round(torch_c / int8_c, 3),
        "rtf_torch": round(torch_s / total_s, 4),
        "rtf_onnx_fp32": round(onnx_s / total_s, 4),
        "rtf_onnx_int8": round(int8_s / total_s, 4),
        "max_abs_logit_diff_fp32": diff,
        "max_abs_logit_diff_int8": diff8,
        "all_runs_s": {"torch": torch_all, "onnx_fp32": onnx_all, "onnx_int8": int8_all},
        "convert_s": round(convert_s, 1),
        **sizes,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "the ONNX timing includes normalisation and CTC decoding; the torch timing includes feature extraction and argmax",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "all_runs_s"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
