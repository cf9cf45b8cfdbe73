"""GPU benchmark: sparkasr's PyTorch window decoder against transformers' Whisper ``generate``, same
weights, same windows of real speech, same device, one run.

Issue 7's GPU target: at least 2x the best batch of transformers fp16 ``generate`` (tiny.en). The
lent GPU machine has PyTorch (CUDA 13) but no Java, no pyspark, and CTranslate2's wheel cannot use
its GPU, so what is measured there is the engine stage on PyTorch (``sparkasr.convert.torch_whisper``).
This script needs only numpy, torch, tokenizers and transformers: it reads the WAV clips with
``wave`` and imports nothing else from the package.

Steps::

    .venv/bin/python bench/run_gpu.py --prepare        # here: bench/.gpu/ (int8 weights, 40 MB, + tokenizer)
    python3 bench/run_gpu.py                            # on the GPU machine (carry bench/.gpu)
    .venv/bin/python bench/run_gpu.py --score FILE      # here: adds WER when the GPU machine had no jiwer

Workload: ``--windows`` windows of 25-29.5 s, each the vendored real clips (LibriVox + cards) in a
seeded order with 0.5-1.0 s of low-level noise between, its reference the clips' references
joined. Both pipelines decode greedily to end-of-text without timestamps (ours also with
timestamps); audio seconds per wall second (RTFx) per batch size; WER of every pipeline against
the references; peak GPU memory. Ours is timed from host float32 audio (features computed on the
GPU inside the timing); transformers from features already on the GPU (its feature extraction is
left out of its time, which favours it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = ROOT / "tests" / "data"
GPU_DIR = BENCH / ".gpu"
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(BENCH))  # common.py (its WER needs jiwer, imported only when scoring)

from sparkasr.convert import torch_whisper as tw  # noqa: E402  (numpy + torch + tokenizers only)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def clips() -> List[Tuple[np.ndarray, str]]:
    """The 10 vendored clips with their references, in bench/corpus.py's order."""
    out = [(_read_wav(p), p.with_suffix(".txt").read_text().strip()) for p in sorted((DATA / "librivox").glob("*.wav"))]
    refs = {}
    for line in (DATA / "cards" / "cards.transcription").read_text().splitlines():
        m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\w+)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    out += [(_read_wav(DATA / "cards" / f"{k}.wav"), refs[k]) for k in sorted(refs)]
    return out


def windows(n: int, seed: int = 0, max_s: float = 29.5) -> Tuple[List[np.ndarray], List[str]]:
    base = clips()
    rng = np.random.default_rng(seed)
    wins, refs = [], []
    for _ in range(n):
        parts, words, size = [], [], 0
        for i in rng.permutation(len(base)):
            x, ref = base[i]
            gap = (rng.standard_normal(int(16000 * rng.uniform(0.5, 1.0))) * 3e-4).astype(np.float32)
            if size + len(x) + len(gap) > max_s * 16000:
                break
            parts += [x, gap]
            words.append(ref)
            size += len(x) + len(gap)
        wins.append(np.concatenate(parts))
        refs.append(" ".join(words))
    return wins, refs


def wer(refs: Sequence[str], hyps: Sequence[str]) -> Optional[Dict[str, float]]:
    try:
        from common import wer_counts

        return wer_counts(refs, hyps)
    except ImportError:  # no jiwer / whisper_normalizer on the GPU machine: --score adds it later
        return None


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device) -> Optional[float]:
    import torch

    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return None


def _measure(pipeline, bs, timestamps, one_pass, warm_up, wins, refs, repeats, device) -> dict:
    """One result row: ``warm_up()``, then ``repeats`` timed ``one_pass()`` calls (each returning
    (texts, tokens)); the median wall, RTFx, tokens/s, peak GPU memory and WER."""
    audio_s = sum(len(x) for x in wins) / 16000
    warm_up()
    _sync(device)
    _peak_reset(device)
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        hyps, tokens = one_pass()
        _sync(device)
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    log(f"{pipeline} bs={bs} ts={timestamps}: {wall:.2f} s, RTFx {audio_s / wall:.0f}, {tokens} tokens")
    return {
        "pipeline": pipeline,
        "batch": bs,
        "timestamps": timestamps,
        "walls_s": [round(w, 3) for w in walls],
        "wall_s": round(wall, 3),
        "rtfx": round(audio_s / wall, 1),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall),
        "peak_gpu_gb": _peak_gb(device),
        "wer": wer(refs, hyps),
        "hyps": hyps,
    }


def run_ours(model, wins, refs, batches, repeats, timestamps, device) -> List[dict]:
    rows = []
    for bs in batches:

        def one_pass():
            res = model.transcribe(wins, batch_size=bs, timestamps=timestamps)
            return [r.text for r in res], sum(len(r.tokens) for r in res)

        def warm_up():  # kernels, allocator
            model.transcribe(wins[:bs], batch_size=bs, timestamps=timestamps)

        rows.append(_measure("sparkasr_torch", bs, timestamps, one_pass, warm_up, wins, refs, repeats, device))
    return rows


def hf_model(model: tw.TorchWhisper):
    """transformers' WhisperForConditionalGeneration holding the same weights, fp16 on the device."""
    import transformers

    hf = tw.hf_whisper(
        tw.load_weights(model.path)[0],
        decoder_start_token_id=model.sot,
        eos_token_id=model.eot,
        pad_token_id=model.eot,
        bos_token_id=model.eot,
    )
    hf.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=model.sot,
        eos_token_id=model.eot,
        pad_token_id=model.eot,
        no_timestamps_token_id=model.no_timestamps,
        suppress_tokens=list(model.suppress),
        begin_suppress_tokens=list(model.blank),
        is_multilingual=model.multilingual,
    )
    return hf.to(model.device, model.dtype)


def hf_features(model, wins, device):
    """transformers' input: the windows' log-Mel features, computed once, already on the device."""
    import torch

    return torch.cat([tw.log_mel(wins[i : i + 64], device).to(model.dtype) for i in range(0, len(wins), 64)])


def run_hf(model, hf, wins, refs, batches, repeats, device, feats) -> List[dict]:
    import torch

    d_new = model.dims.n_text_ctx // 2
    rows = []
    for bs in batches:

        def one_pass():
            texts, n_tok = [], 0
            for i in range(0, len(wins), bs):
                with torch.inference_mode():
                    seq = hf.generate(
                        input_features=feats[i : i + bs], max_new_tokens=d_new, do_sample=False, num_beams=1
                    )
                for row in seq.tolist():
                    body = [t for t in row if t < model.eot]
                    n_tok += len(body)
                    texts.append(model.tokenizer.decode(body).strip())
            return texts, n_tok

        def warm_up():
            hf.generate(input_features=feats[:bs], max_new_tokens=8, do_sample=False, num_beams=1)

        rows.append(_measure("transformers_generate", bs, False, one_pass, warm_up, wins, refs, repeats, device))
    return rows


def summarize(result: dict) -> dict:
    best = {}
    for row in result["runs"]:
        key = row["pipeline"] + ("_timestamps" if row["timestamps"] else "")
        if key not in best or row["rtfx"] > best[key]["rtfx"]:
            best[key] = {"batch": row["batch"], "rtfx": row["rtfx"], "wer": (row["wer"] or {}).get("wer")}
    out = {"best": best}
    if "sparkasr_torch" in best and "transformers_generate" in best:
        out["ours_over_transformers_best"] = round(
            best["sparkasr_torch"]["rtfx"] / best["transformers_generate"]["rtfx"], 2
        )
    if "sparkasr_torch_timestamps" in best and "transformers_generate" in best:
        out["ours_timestamps_over_transformers_best"] = round(
            best["sparkasr_torch_timestamps"]["rtfx"] / best["transformers_generate"]["rtfx"], 2
        )
    return out


def prepare(model_dir: Optional[str]) -> None:
    """Here: the int8 ``.npz`` (the fp16 model.bin is over the device's 64 MiB carry limit) and the
    tokenizer, into bench/.gpu."""
    if model_dir is None:
        from sparkasr.whisper.models import resolve_whisper_model

        model_dir = resolve_whisper_model(None).path
    w, cfg = tw.load_weights(model_dir)
    GPU_DIR.mkdir(parents=True, exist_ok=True)
    tw.save_compact(w, GPU_DIR / "tiny_en.npz", cfg)
    shutil.copy(Path(model_dir) / "tokenizer.json", GPU_DIR / "tokenizer.json")
    log(f"wrote {GPU_DIR / 'tiny_en.npz'} ({(GPU_DIR / 'tiny_en.npz').stat().st_size / 1e6:.1f} MB) and tokenizer.json")


def score(path: Path) -> None:
    result = json.loads(path.read_text())
    refs = windows(result["windows"], result["seed"])[1]
    for row in result["runs"]:
        row["wer"] = wer(refs, row["hyps"])
    result["summary"] = summarize(result)
    path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"scored {path}: {json.dumps(result['summary'])}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", action="store_true", help="write bench/.gpu (int8 weights + tokenizer) and stop")
    ap.add_argument("--score", type=Path, help="add WER to a result file written without jiwer, and stop")
    ap.add_argument("--model", default=None, help="CTranslate2 Whisper folder or .npz (default bench/.gpu/tiny_en.npz)")
    ap.add_argument("--tokenizer", default=None, help="folder with tokenizer.json (default: beside --model)")
    ap.add_argument("--device", default=None, help="default cuda when available, else cpu")
    ap.add_argument("--windows", type=int, default=1024)
    ap.add_argument(
        "--hf-windows", type=int, default=512, help="windows for transformers (it is slow at small batches)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", default="64,128,256,512")
    ap.add_argument("--hf-batches", default="64,128,256", help="'' to skip transformers")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="start no further measurement after this many seconds (the device allows 600 s per command)",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "gpu.json")
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.model)
        return 0
    if args.score:
        score(args.score)
        return 0

    import torch
    import transformers

    t_start = time.perf_counter()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_path = args.model or str(GPU_DIR / "tiny_en.npz")
    tok = args.tokenizer or (str(GPU_DIR) if model_path.endswith(".npz") else None)
    model = tw.TorchWhisper(model_path, device=device, tokenizer=tok)
    wins, refs = windows(args.windows, args.seed)
    hf_windows = min(args.hf_windows, len(wins))
    log(f"{len(wins)} windows, {sum(len(x) for x in wins) / 16000:.0f} s of audio, device {device}")
    dev = {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        dev["gpu"] = torch.cuda.get_device_name()
    result = {
        "benchmark": "gpu",
        "finished_utc": None,
        "model": model_path,
        "dtype": str(model.dtype).replace("torch.", ""),
        "machine": dev,
        "windows": len(wins),
        "hf_windows": hf_windows,
        "seed": args.seed,
        "audio_s": round(sum(len(x) for x in wins) / 16000, 1),
        "hf_audio_s": round(sum(len(x) for x in wins[:hf_windows]) / 16000, 1),
        "runs": [],
        "skipped": [],
    }

    def save() -> None:  # after every measurement: a run stopped at the device's limit keeps what it measured
        result["summary"] = summarize(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    batches = sorted((int(b) for b in args.batches.split(",") if b), reverse=True)
    hf_batches = sorted((int(b) for b in args.hf_batches.split(",") if b), reverse=True)
    # The target's comparison first (ours at its largest batches, transformers at its largest), then the rest.
    plan = (
        [("ours", False, b) for b in batches[:2]]
        + [("hf", False, b) for b in hf_batches[:1]]
        + [("ours", False, b) for b in batches[2:]]
        + [("hf", False, b) for b in hf_batches[1:]]
        + [("ours", True, b) for b in batches]
    )
    hf = feats = None
    for kind, timestamps, bs in plan:
        if time.perf_counter() - t_start > args.budget_s:
            result["skipped"].append(
                {"pipeline": kind, "batch": bs, "timestamps": timestamps, "why": f"over --budget-s {args.budget_s:g}"}
            )
            log(f"skipped {kind} bs={bs} ts={timestamps}: over the time budget")
            continue
        if kind == "ours":
            result["runs"] += run_ours(model, wins, refs, [bs], args.repeats, timestamps, device)
        else:
            if hf is None:
                hf, feats = hf_model(model), hf_features(model, wins[:hf_windows], device)
            result["runs"] += run_hf(
                model, hf, wins[:hf_windows], refs[:hf_windows], [bs], max(1, args.repeats - 1), device, feats
            )
        save()
    result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    log(f"wrote {args.out} in {time.perf_counter() - t_start:.0f} s: {json.dumps(result['summary'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
