"""The CTC engine (Wav2Vec2ForCTC, HubertForCTC, Data2VecAudioForCTC, WavLMForCTC) on ONNX Runtime.

``CTCEngine(model_dir).transcribe_batch(items)`` returns one :class:`Transcript` per item, never
raising for a bad item. Per batch:

1. each item is validated (error rows, missing/non-finite samples), then split into units: the
   whole item, or overlapping chunks for long items (``chunk_length_s`` / ``stride_length_s``, the
   arithmetic of transformers' ASR pipeline; rows longer than ``max_unchunked_s`` are always
   chunked so memory stays bounded);
2. units are normalised on their own (``do_normalize``), grouped by length (identical lengths only
   for models without attention mask, so padding never changes a result) and run in batches;
3. per item the logits of the chunk strides are dropped, the rest concatenated, and decoded:
   greedy (default, identical to ``Wav2Vec2Processor.batch_decode``) or beam search with a KenLM
   n-gram LM and hotwords (pyctcdecode); word/char timestamps from frame offsets × the model's
   real stride.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, Generator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..audio import SAMPLE_RATE
from ..engines import cached_engine, run_steps
from ..options import BOOL, FLOAT, INT, LIST_FLOAT, STRING, option, validate
from ..records import AudioItem, Chunk, Transcript, error_transcript
from . import decode as D
from .checkpoint import CheckpointError, CTCCheckpoint, load_checkpoint
from .features import length_groups, pad_batch, prepare
from .lm import BeamDecoder, BeamOptions

log = logging.getLogger(__name__)

TIMESTAMP_MODES = ("none", "word", "char")
BACKENDS = ("onnx", "transformers")


def _strides(value) -> Optional[Tuple[float, float]]:
    """strideLengthS → (left, right): one value is both sides."""
    v = [float(x) for x in value]
    return (v[0], v[0]) if len(v) == 1 else tuple(v)


@dataclass(frozen=True)
class CTCOptions:
    """Inference and decoding options (hashable: engines are cached per distinct value)."""

    batch_size: int = option("batchSize", INT, 8, "rows decoded together in one model call", minimum=1, maximum=1024)
    timestamps: str = option(
        "timestamps",
        STRING,
        "word",
        "none, word or char: chunk annotations with start/end seconds",
        choices=TIMESTAMP_MODES,
    )
    chunk_length_s: float = option(
        "chunkLengthS",
        FLOAT,
        0.0,
        "long audio: chunk length in seconds (0 = only rows longer than maxUnchunkedS are chunked)",
        minimum=0.0,
        maximum=600.0,
    )
    stride_length_s: Optional[Tuple[float, float]] = option(
        "strideLengthS",
        LIST_FLOAT,
        [],
        "overlap dropped on each side of a chunk, [left, right] seconds ([] = chunkLengthS/6)",
        minimum=0.0,
        maximum=300.0,
        max_items=2,
        null=[],
        convert=_strides,
    )
    max_unchunked_s: float = option(
        "maxUnchunkedS",
        FLOAT,
        60.0,
        "rows longer than this are always chunked (bounded memory)",
        minimum=1.0,
        maximum=3600.0,
    )
    auto_chunk_length_s: float = 30.0  # the chunk length used then
    max_batch_samples: int = 16000 * 240  # rows x padded length per inference call (memory bound)
    max_padding_ratio: float = 0.25  # masked models: padding allowed in a batch, share of longest
    num_threads: int = option(
        "cpuThreads",
        INT,
        0,
        "ONNX Runtime threads per task; 0 = spark.task.cpus inside Spark, all cores outside it",
        minimum=0,
        maximum=1024,
        key="threads",
    )
    backend: str = option(
        "backend",
        STRING,
        "onnx",
        "onnx (default; no torch on executors) or transformers (needs torch on executors)",
        choices=BACKENDS,
    )
    allow_pickle: bool = option(
        "allowPickle",
        BOOL,
        False,
        "accept a pickled pytorch_model.bin checkpoint (trusted sources only)",
    )
    beam: Optional[BeamOptions] = None  # None: greedy decoding (the stage builds it from the beam params)

    def __post_init__(self):
        validate(self)
        if self.auto_chunk_length_s <= 0:
            raise ValueError("autoChunkLengthS must be > 0")
        if self.stride_length_s is not None:
            if len(self.stride_length_s) != 2:
                raise ValueError("strideLengthS must be one or two values >= 0 (left, right)")
            if self.chunk_length_s and sum(self.stride_length_s) >= self.chunk_length_s:
                raise ValueError("chunkLengthS must be greater than the two strides together")
        if self.max_batch_samples < 16000:
            raise ValueError("maxBatchSamples must be >= 16000")
        if not (0.0 <= self.max_padding_ratio < 1.0):
            raise ValueError("maxPaddingRatio must be in [0, 1)")


@dataclass
class _Unit:
    item: int
    span: D.ChunkSpan
    values: np.ndarray


def _r(x: float) -> float:
    return round(float(x), 3)


class CTCEngine:
    """Transcribe batches of :class:`AudioItem` with one CTC model (converted dir or HF dir)."""

    def __init__(self, model_dir: Union[str, os.PathLike], options: CTCOptions = CTCOptions(), backend=None):
        self.options = options
        self.checkpoint: CTCCheckpoint = load_checkpoint(model_dir)
        self.vocab = self.checkpoint.vocab
        self.features = self.checkpoint.features
        self.ratio = self.features.inputs_to_logits_ratio
        if backend is not None:
            self.backend = backend
        elif options.backend == "transformers":
            from .onnx_backend import TransformersCTCBackend

            self.backend = TransformersCTCBackend(
                model_dir, allow_pickle=options.allow_pickle, num_threads=options.num_threads or None
            )
        else:
            onnx_path = self.checkpoint.onnx_path
            if onnx_path is None:
                raise CheckpointError(
                    f"{model_dir}: no model.onnx. Convert the checkpoint once with "
                    f"`sparkasr convert --model {model_dir} --output DIR` (needs the convert extra), "
                    "or use backend='transformers'"
                )
            from .onnx_backend import OnnxCTCBackend

            self.backend = OnnxCTCBackend(onnx_path, num_threads=options.num_threads or None)
            if self.features.return_attention_mask and not self.backend.has_attention_mask:
                log.warning(
                    "%s: preprocessor asks for an attention mask but model.onnx takes none; "
                    "batching only identical lengths",
                    model_dir,
                )
        # pass a mask only when the model was trained with one (HF feature extractor semantics)
        self.use_mask = bool(self.features.return_attention_mask and getattr(self.backend, "has_attention_mask", False))
        self.beam = BeamDecoder(self.vocab, options.beam) if options.beam is not None else None

    @property
    def name(self) -> str:
        return self.checkpoint.name

    # -- public ------------------------------------------------------------------------------

    def transcribe(self, samples: np.ndarray, source: str = "") -> Transcript:
        return self.transcribe_batch([AudioItem(samples=samples, source=source)])[0]

    def transcribe_batch(self, items: Sequence[AudioItem]) -> List[Transcript]:
        out: List[Optional[Transcript]] = [None] * len(items)
        units: List[_Unit] = []
        spans: Dict[int, List[D.ChunkSpan]] = {}
        for i, item in enumerate(items):
            try:
                plan = self._plan(item)
            except Exception as exc:
                out[i] = error_transcript(
                    item, f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
                )
                continue
            if isinstance(plan, Transcript):
                out[i] = plan
                continue
            spans[i] = plan
            samples = np.asarray(item.samples, dtype=np.float32).reshape(-1)
            for sp in plan:
                units.append(_Unit(i, sp, prepare(samples[sp.start : sp.end], self.features)))

        logits, failed = self._infer(units)
        per_item: Dict[int, List[np.ndarray]] = {}
        for u, lg in zip(units, logits):
            per_item.setdefault(u.item, []).append(lg)
        for i, plan in spans.items():
            item = items[i]
            if i in failed:
                out[i] = error_transcript(item, f"inference failed: {failed[i]}")
                continue
            try:
                out[i] = self._finish(item, plan, per_item[i])
            except Exception as exc:
                out[i] = error_transcript(item, f"decoding failed: {type(exc).__name__}: {exc}")
        return [t for t in out]  # type: ignore[misc]

    def logits(self, samples: np.ndarray) -> np.ndarray:
        """Stitched logits (frames, vocab) of one utterance, as used for decoding."""
        item = AudioItem(samples=np.asarray(samples, dtype=np.float32))
        plan = self._plan(item)
        if isinstance(plan, Transcript):
            return np.zeros((0, len(self.vocab)), dtype=np.float32)
        units = [_Unit(0, sp, prepare(item.samples[sp.start : sp.end], self.features)) for sp in plan]
        lgs, failed = self._infer(units)
        if failed:
            raise RuntimeError(failed[0])
        return self._stitch(plan, lgs)

    # -- steps -------------------------------------------------------------------------------

    def _plan(self, item: AudioItem):
        """Validate an item; return its chunk spans, or a finished Transcript (error/too short)."""
        if item.error is not None:
            return error_transcript(item, item.error)
        if item.samples is None:
            return error_transcript(item, "no audio")
        samples = np.asarray(item.samples)
        if samples.ndim != 1:
            return error_transcript(item, f"expected mono samples (1-D), got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            return error_transcript(item, f"expected float samples, got {samples.dtype}")
        n = samples.shape[0]
        if n and not np.isfinite(samples).all():
            return error_transcript(item, "audio contains NaN or infinite samples")
        if n < self.features.min_samples:
            return Transcript(
                text="",
                duration_s=item.duration_s,
                source=item.source,
                offset_s=item.offset_s,
                extra={
                    "model": self.name,
                    "note": f"audio shorter than the model's {self.features.min_samples}-sample receptive field",
                },
            )
        o = self.options
        chunk_s = o.chunk_length_s
        if not chunk_s and n > o.max_unchunked_s * SAMPLE_RATE:
            chunk_s = o.auto_chunk_length_s
        if chunk_s and n > chunk_s * SAMPLE_RATE:
            chunk_len, left, right = D.chunk_sizes(chunk_s, o.stride_length_s, self.ratio, SAMPLE_RATE)
            return D.plan_chunks(n, chunk_len, left, right)
        return [D.ChunkSpan(0, n, 0, 0)]

    def transcribe_steps(
        self,
        item: AudioItem,
        around: Optional[Callable[[], ContextManager]] = None,
        group: Optional[Callable[[], int]] = None,
    ) -> Generator[None, None, Transcript]:
        """``transcribe_batch([item])[0]`` in steps: a generator that yields after each model call
        (a batch of a long row's chunks, batched as :meth:`transcribe_batch` batches them) and
        returns the transcript, so that a server can run other requests between them. ``around()``:
        a context manager every model call runs in; ``group`` is taken for the engines' common
        signature and not used (each step is already a batch of chunks)."""
        try:
            plan = self._plan(item)
        except Exception:
            return self.transcribe_batch([item])[0]  # words the error as a batch does
        if isinstance(plan, Transcript):
            return plan
        samples = np.asarray(item.samples, dtype=np.float32).reshape(-1)
        units = [_Unit(0, sp, prepare(samples[sp.start : sp.end], self.features)) for sp in plan]
        logits, failed = yield from self._infer_steps(units, around or nullcontext)
        if failed:
            return error_transcript(item, f"inference failed: {failed[0]}")
        try:
            return self._finish(item, plan, logits)
        except Exception as exc:
            return error_transcript(item, f"decoding failed: {type(exc).__name__}: {exc}")

    def _infer(self, units: List[_Unit]) -> Tuple[List[Optional[np.ndarray]], Dict[int, str]]:
        """Logits per unit, trimmed to the unit's own frame count; failures per item."""
        return run_steps(self._infer_steps(units))

    def _infer_steps(self, units: List[_Unit], around: Callable[[], ContextManager] = nullcontext):
        """:meth:`_infer`, yielding after each model call (each inside ``around()``)."""
        out: List[Optional[np.ndarray]] = [None] * len(units)
        failed: Dict[int, str] = {}
        lengths = [len(u.values) for u in units]
        groups = length_groups(
            lengths,
            self.options.batch_size,
            exact=not self.use_mask,
            max_padding_ratio=self.options.max_padding_ratio,
            max_batch_samples=self.options.max_batch_samples,
        )
        for g in groups:
            try:
                with around():
                    self._run_group(units, g, out)
            except Exception as exc:
                if len(g) == 1:
                    failed[units[g[0]].item] = f"{type(exc).__name__}: {exc}"
                    continue
                log.warning("CTC batch of %d failed (%s); retrying one at a time", len(g), exc)
                for j in g:
                    try:
                        with around():
                            self._run_group(units, [j], out)
                    except Exception as exc1:
                        failed[units[j].item] = f"{type(exc1).__name__}: {exc1}"
            yield
        return out, failed

    def _run_group(self, units: List[_Unit], group: List[int], out: List[Optional[np.ndarray]]) -> None:
        values, mask = pad_batch([units[j].values for j in group], self.features)
        logits = self.backend(values, mask if self.use_mask else None)
        for row, j in enumerate(group):
            n_frames = self.features.output_length(len(units[j].values))
            out[j] = logits[row, :n_frames]

    def _stitch(self, plan: List[D.ChunkSpan], logits: List[np.ndarray]) -> np.ndarray:
        if len(plan) == 1 and plan[0].left == 0 and plan[0].right == 0:
            return logits[0]
        return D.stitch(logits, plan, self.ratio)

    def _finish(self, item: AudioItem, plan: List[D.ChunkSpan], logits: List[np.ndarray]) -> Transcript:
        lg = self._stitch(plan, logits)
        sec = self.ratio / SAMPLE_RATE
        mode = self.options.timestamps
        chunks: List[Chunk] = []
        extra: Dict[str, Any] = {"model": self.name, "frames": int(lg.shape[0]), "chunks_in": len(plan)}
        lower = self.vocab.do_lower_case
        if self.beam is not None:
            res = self.beam.decode(lg)
            text = res.text
            extra.update(decoder="beam", lm_score=res.lm_score, logit_score=res.logit_score)
            if mode != "none":  # pyctcdecode gives word frames only
                for w in res.words:
                    chunks.append(
                        Chunk(
                            w.word,
                            _r(item.offset_s + w.start_offset * sec),
                            _r(item.offset_s + w.end_offset * sec),
                            "word",
                        )
                    )
        else:
            dec = D.greedy_decode(lg, self.vocab, offsets=mode != "none")
            text = dec.text
            extra["decoder"] = "greedy"
            if mode != "none":
                conf = D.frame_confidences(lg)
                if mode == "word":
                    pieces = [(w.word, w.start_offset, w.end_offset) for w in dec.word_offsets]
                else:
                    pieces = [(c.char, c.start_offset, c.end_offset) for c in dec.char_offsets]
                for txt, s, e in pieces:
                    prob = float(conf[s:e].mean()) if e > s else None
                    chunks.append(
                        Chunk(
                            txt.lower() if lower else txt,
                            _r(item.offset_s + s * sec),
                            _r(item.offset_s + e * sec),
                            mode,
                            prob,
                        )
                    )
        return Transcript(
            text=text,
            chunks=chunks,
            duration_s=item.duration_s,
            source=item.source,
            offset_s=item.offset_s,
            extra=extra,
        )


def get_engine(model_dir: Union[str, os.PathLike], options: CTCOptions = CTCOptions()) -> CTCEngine:
    """The process's cached engine for ``model_dir`` and ``options``."""
    path = os.path.abspath(os.fspath(model_dir))
    return cached_engine(("ctc", path, options), lambda: CTCEngine(model_dir, options))
