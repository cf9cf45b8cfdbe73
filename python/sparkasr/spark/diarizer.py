"""``SpeakerDiarizer`` (who spoke when, per row) and ``SpeakerIdentity`` (one label per person across
rows and files): thin Spark stages over :mod:`sparkasr.diarize`.

``SpeakerDiarizer`` reads any audio column the speech annotators read (Spark NLP ``audio``
annotations, samples, file bytes, paths; read_audio's reader columns) and writes, per row,
``chunk`` annotations, one per speaker turn (``result``: the speaker; ``metadata``: ``start``,
``end`` on the file's clock, ``speaker``), an ``error`` annotation for a row it cannot diarize, and
the row's speakers with their voice embeddings (``voicesCol``) for ``SpeakerIdentity``. With
``transcriptChunksCol`` (``WhisperForCTC``'s chunks) each transcript chunk gets a ``speaker``.

``SpeakerIdentity`` is an Estimator: ``fit`` clusters the speakers' voices of each partition, then
the partitions' voices once on the driver (and names those a gallery knows); the
``SpeakerIdentityModel`` relabels each row's turns and transcript chunks with those global labels
and drops the voices column unless ``keepVoiceprints``. Rows of one long file (read_audio's
segments) are diarized apart; the identity step gives them shared labels.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Tuple

from pyspark.ml import Estimator, Model
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from .. import annotation as A
from ..cells import cell_items, cell_source
from ..options import engine_kwargs
from ..params import stage_table
from .context import EngineSpec, task_cpus, task_engine
from .inputs import INPUT_PATH, classify_input, column_values, input_cells
from .params import HasInputCols, HasReaderCols, declare_params
from .shipping import ModelRef, local_model_dir, ship_model_dir

SPEAKER_EMBEDDINGS = "speaker_embeddings"  # annotator type of the voices column


def turn_annotations(d, index: int) -> List[Dict[str, Any]]:
    """A row's diarization as ``chunk`` annotations (an error as one annotation with ``error``)."""
    if d.error:
        return [A.annotation(A.CHUNK, 0, 0, "", {"audio": index, A.ERROR_KEY: d.error, "source": d.source or None})]
    return [
        A.annotation(A.CHUNK, 0, 0, t.speaker, {"audio": index, "start": t.start, "end": t.end, "speaker": t.speaker})
        for t in d.turns
    ]


def voice_annotations(d, index: int) -> List[Dict[str, Any]]:
    return [
        A.annotation(SPEAKER_EMBEDDINGS, 0, 0, s.label, {"audio": index, "speech_s": s.speech_s}, s.centroid.tolist())
        for s in d.speakers
    ]


def _turns_of(anns) -> List[Any]:
    from ..diarize.records import SpeakerTurn

    out = []
    for a in anns or []:
        m = dict(a["metadata"] or {})
        if "start" in m and "end" in m and not m.get(A.ERROR_KEY):
            out.append(SpeakerTurn(float(m["start"]), float(m["end"]), m.get("speaker") or a["result"]))
    return out


def with_speakers(chunks, turns) -> List[Dict[str, Any]]:
    """Transcript chunk annotations with a ``speaker`` metadata key (the turn they overlap most)."""
    from ..diarize.assign import assign_speakers

    chunks = list(chunks or [])
    spans = []
    for c in chunks:
        m = dict(c["metadata"] or {})
        spans.append((float(m.get("start") or 0.0), float(m.get("end") or 0.0)))
    speakers = assign_speakers(spans, turns)
    out = []
    for c, s in zip(chunks, speakers):
        m = {k: v for k, v in dict(c["metadata"] or {}).items() if k != "speaker"}
        if s is not None:
            m["speaker"] = s
        out.append({**c, "metadata": m})
    return out


def _partition_fn(
    spec, input_col, kind, out_col, voices_col, chunks_col, path_col, offset_col, error_col, duration_col, out_schema
):
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from .arrow import arrow_type, replace_columns

        names = [f.name for f in out_schema.fields]
        types = {f.name: arrow_type(f.dataType) for f in out_schema.fields}
        engine = None
        for batch in batches:
            cells = input_cells(batch.column(input_col), kind)
            n = len(cells)
            rows = []
            for cell, p, off, err, dur in zip(
                cells,
                column_values(batch, path_col, n),
                column_values(batch, offset_col, n),
                column_values(batch, error_col, n),
                column_values(batch, duration_col, n),
            ):
                rows.append(cell_items(cell, kind, cell_source(cell, kind, p), offset=off, error=err, duration=dur))
            del cells
            if engine is None and any(it.error is None for r in rows for it in r):
                engine = task_engine(spec, _build_engine)
            turns_col, voices, chunks_out = [], [], []
            transcript = batch.column(chunks_col).to_pylist() if chunks_col else None
            for i, items in enumerate(rows):
                results = _diarize(engine, items)
                turns_col.append([a for k, d in enumerate(results) for a in turn_annotations(d, k)])
                voices.append([a for k, d in enumerate(results) for a in voice_annotations(d, k)])
                if transcript is not None:
                    all_turns = [t for d in results for t in d.turns]
                    chunks_out.append(with_speakers(transcript[i], all_turns) if transcript[i] is not None else None)
            new = {
                out_col: pa.array(turns_col, type=types[out_col]),
                voices_col: pa.array(voices, type=types[voices_col]),
            }
            if chunks_col:
                new[chunks_col] = pa.array(chunks_out, type=types[chunks_col])
            yield replace_columns(batch, new, names)

    return run


def _diarize(engine, items):
    """``engine.diarize_batch(items)``; rows whose items all failed to read need no engine."""
    from ..diarize.records import Diarization

    if engine is None:
        return [Diarization(source=it.source, offset_s=it.offset_s, error=it.error) for it in items]
    return engine.diarize_batch(items)


def _build_engine(spec: EngineSpec):
    from ..diarize.engine import DiarizationEngine
    from ..diarize.models import resolve_voice_encoder

    path = local_model_dir(spec.model, resolver=lambda n: resolve_voice_encoder(n))
    return DiarizationEngine(path, spec.options, spec.extra[0] or task_cpus())


@declare_params(stage_table("SpeakerDiarizer"))
class SpeakerDiarizer(Model, HasInputCols, HasReaderCols, DefaultParamsReadable, DefaultParamsWritable):
    """Who spoke when, per row: speaker turns as ``chunk`` annotations (see the module docstring).

    >>> diarizer = SpeakerDiarizer(inputCols=["audio_assembler"], transcriptChunksCol="transcription_chunks")

    Its params are the option table's (:func:`sparkasr.params.stage_table` ``("SpeakerDiarizer")``):
    columns, the speaker model, and every :class:`~sparkasr.diarize.DiarizationOptions` option.
    """

    def _options(self):
        from ..diarize.options import DiarizationOptions

        try:
            return DiarizationOptions(**engine_kwargs(DiarizationOptions, self._option_values()))
        except ValueError as exc:
            raise ValueError(f"SpeakerDiarizer: {exc}") from None

    def _validate(self) -> None:
        self._options()

    def getVoicesCol(self) -> str:
        return self.getOrDefault(self.voicesCol) or self.getOutputCol() + "_voices"

    def _model_ref(self, spark) -> ModelRef:
        from ..diarize.models import resolve_voice_encoder

        local = resolve_voice_encoder(self.getModelSource())
        if self.getShipModel():
            return ship_model_dir(spark, local)
        return ModelRef("path", path=local)

    def _transform(self, dataset):
        from pyspark.sql.types import StructField, StructType

        try:
            import scipy.cluster.hierarchy  # noqa: F401  (on the driver: not once per task)
        except ImportError:
            raise ImportError("SpeakerDiarizer needs scipy: pip install 'sparkasr[diarize]'") from None
        cols = self.getInputCols()
        if len(cols) != 1:
            raise ValueError(f"SpeakerDiarizer takes exactly one input column, got {cols}")
        in_col = cols[0]
        if in_col not in dataset.columns:
            raise ValueError(f"input column '{in_col}' not found; columns are {dataset.columns}")
        chunks_col = self.getTranscriptChunksCol() or None
        if chunks_col and chunks_col not in dataset.columns:
            raise ValueError(f"transcriptChunksCol '{chunks_col}' not found; columns are {dataset.columns}")
        kind = classify_input(dataset.schema[in_col].dataType)
        out_col, voices_col = self.getOutputCol(), self.getVoicesCol()
        path_col, offset_col, error_col, duration_col = self._reader_cols(dataset, kind == INPUT_PATH)
        spec = EngineSpec(self._model_ref(dataset.sparkSession), self._options(), extra=(self.getCpuThreads(),))
        fields = [f for f in dataset.schema.fields if f.name not in (out_col, voices_col)]
        fields.append(StructField(out_col, A.annotation_array_type(), True, metadata={"annotatorType": A.CHUNK}))
        fields.append(
            StructField(voices_col, A.annotation_array_type(), True, metadata={"annotatorType": SPEAKER_EMBEDDINGS})
        )
        schema = StructType(fields)
        src = dataset.drop(*[c for c in (out_col, voices_col) if c in dataset.columns])
        fn = _partition_fn(
            spec, in_col, kind, out_col, voices_col, chunks_col, path_col, offset_col, error_col, duration_col, schema
        )
        return src.mapInArrow(fn, schema=schema)

    def diarize_items(self, items):
        """The stage's engine on in-memory items, without Spark."""
        from ..diarize.models import resolve_voice_encoder

        ref = ModelRef("path", path=resolve_voice_encoder(self.getModelSource()))
        spec = EngineSpec(ref, self._options(), extra=(self.getCpuThreads(),))
        return task_engine(spec, _build_engine).diarize_batch(items)


# ---------------------------------------------------------------------------------------------
# Identity across files
# ---------------------------------------------------------------------------------------------


def _voices_of(anns) -> List[Tuple[str, int, float, Any]]:
    import numpy as np

    out = []
    for a in anns or []:
        m = dict(a["metadata"] or {})
        if a["embeddings"]:
            out.append(
                (
                    a["result"],
                    int(m.get("audio") or 0),
                    float(m.get("speech_s") or 0.0),
                    np.asarray(a["embeddings"], np.float32),
                )
            )
    return out


def _partition_voices(voices_col: str, threshold: float):
    def run(batches):
        import pyarrow as pa

        from ..diarize.identity import Voice, merge_voices

        voices = []
        for b in batches:
            for anns in b.column(voices_col).to_pylist():
                voices.extend(Voice(lab, c, s) for lab, _, s, c in _voices_of(anns))
        merged = merge_voices(voices, threshold)
        yield pa.RecordBatch.from_pydict(
            {
                "centroid": [v.centroid.tolist() for v in merged],
                "speech_s": [float(v.speech_s) for v in merged],
            },
            schema=pa.schema([("centroid", pa.list_(pa.float32())), ("speech_s", pa.float64())]),
        )

    return run


@declare_params(stage_table("SpeakerIdentity"))
class SpeakerIdentity(Estimator, DefaultParamsReadable, DefaultParamsWritable):
    """One label per person across the rows of a DataFrame (see the module docstring).

    >>> model = SpeakerIdentity(speakerGallery="/data/voices").fit(diarized)
    >>> labelled = model.transform(diarized)
    """

    def _options(self):
        from ..diarize.options import IdentityOptions

        try:
            return IdentityOptions(**engine_kwargs(IdentityOptions, self._option_values()))
        except ValueError as exc:
            raise ValueError(f"SpeakerIdentity: {exc}") from None

    def _validate(self) -> None:
        self._options()

    def _fit(self, dataset):
        import numpy as np

        from ..diarize.identity import Voice, gallery_voices, merge_voices, name_voices

        opts = self._options()
        voices_col = self.getVoicesCol()
        if voices_col not in dataset.columns:
            raise ValueError(
                f"voicesCol '{voices_col}' not found (SpeakerDiarizer's voices); columns are {dataset.columns}"
            )
        parts = (
            dataset.select(voices_col)
            .mapInArrow(_partition_voices(voices_col, opts.threshold), "centroid array<float>, speech_s double")
            .collect()
        )
        voices = [Voice("", np.asarray(r["centroid"], np.float32), r["speech_s"]) for r in parts]
        merged = merge_voices(voices, opts.threshold)
        if opts.gallery:
            from ..diarize.engine import DiarizationEngine
            from ..diarize.models import resolve_voice_encoder

            engine = DiarizationEngine(resolve_voice_encoder(self.getModelSource()))
            merged = name_voices(merged, gallery_voices(engine, opts.gallery), opts.gallery_threshold)
        model = SpeakerIdentityModel(
            speakersCol=self.getSpeakersCol(),
            voicesCol=voices_col,
            transcriptChunksCol=self.getTranscriptChunksCol(),
            keepVoiceprints=opts.keep_voiceprints,
        )
        model._set(
            voiceprints=json.dumps(
                [
                    {
                        "label": v.label,
                        "speech_s": round(v.speech_s, 3),
                        "centroid": [round(float(x), 6) for x in v.centroid],
                    }
                    for v in merged
                ]
            )
        )
        return self._copyValues(model)


def _relabel_fn(speakers_col, voices_col, chunks_col, keep, voices_json, names):
    def run(batches):
        import numpy as np
        import pyarrow as pa

        from ..diarize.identity import Voice, label_of

        known = [
            Voice(v["label"], np.asarray(v["centroid"], np.float32), v["speech_s"]) for v in json.loads(voices_json)
        ]
        for b in batches:
            spk = b.column(speakers_col).to_pylist()
            vo = b.column(voices_col).to_pylist()
            ch = b.column(chunks_col).to_pylist() if chunks_col else None
            new_spk, new_vo, new_ch = [], [], []
            for i in range(b.num_rows):
                mapping: Dict[Tuple[int, str], str] = {}
                for lab, audio, _, c in _voices_of(vo[i]):
                    mapping[(audio, lab)] = label_of(c, known) or lab
                anns = []
                for a in spk[i] or []:
                    m = dict(a["metadata"] or {})
                    key = (int(m.get("audio") or 0), a["result"])
                    if key in mapping:
                        m["speaker"] = mapping[key]
                        a = {**a, "result": mapping[key], "metadata": m}
                    anns.append(a)
                new_spk.append(_merged(anns) if spk[i] is not None else None)
                new_vo.append(
                    [
                        {
                            **a,
                            "result": mapping.get(
                                (int(dict(a["metadata"] or {}).get("audio") or 0), a["result"]), a["result"]
                            ),
                        }
                        for a in vo[i] or []
                    ]
                )
                if ch is not None:
                    new_ch.append(with_speakers(ch[i], _turns_of(new_spk[-1])) if ch[i] is not None else None)
            cols = {speakers_col: pa.array(new_spk, type=b.schema.field(speakers_col).type)}
            if keep:
                cols[voices_col] = pa.array(new_vo, type=b.schema.field(voices_col).type)
            if ch is not None:
                cols[chunks_col] = pa.array(new_ch, type=b.schema.field(chunks_col).type)
            from .arrow import replace_columns

            yield replace_columns(b, cols, names)

    return run


def _merged(anns):
    """Turn annotations with consecutive turns of one speaker (after relabelling) joined."""
    out = []
    for a in anns:
        m = dict(a["metadata"] or {})
        if out and "start" in m:
            pm = dict(out[-1]["metadata"] or {})
            if (
                pm.get("speaker") == m.get("speaker")
                and pm.get("audio") == m.get("audio")
                and abs(float(pm["end"]) - float(m["start"])) < 1e-6
            ):
                pm["end"] = m["end"]
                out[-1] = {**out[-1], "metadata": pm}
                continue
        out.append(a)
    return out


@declare_params(stage_table("SpeakerIdentity"))
class SpeakerIdentityModel(Model, DefaultParamsReadable, DefaultParamsWritable):
    """The global voices a :class:`SpeakerIdentity` found (``voiceprints``: their labels and centroids,
    saved with the model) and the relabelling of each row by them."""

    def _transform(self, dataset):
        from pyspark.sql.types import StructType

        opts_keep = self.getKeepVoiceprints()
        speakers_col, voices_col = self.getSpeakersCol(), self.getVoicesCol()
        chunks_col = self.getTranscriptChunksCol() or None
        for c in (speakers_col, voices_col) + ((chunks_col,) if chunks_col else ()):
            if c not in dataset.columns:
                raise ValueError(f"column '{c}' not found; columns are {dataset.columns}")
        fields = [f for f in dataset.schema.fields if opts_keep or f.name != voices_col]
        names = [f.name for f in fields]
        fn = _relabel_fn(speakers_col, voices_col, chunks_col, opts_keep, self.getOrDefault("voiceprints"), names)
        return dataset.mapInArrow(fn, schema=StructType(fields))

    def voices(self) -> List[Dict[str, Any]]:
        """The global voices: label, speech seconds, centroid."""
        return json.loads(self.getOrDefault("voiceprints"))


def _add_voiceprints_param(cls):
    from pyspark.ml.param import Param, Params, TypeConverters

    cls.voiceprints = Param(
        Params._dummy(),
        "voiceprints",
        "the global voices found by fit (JSON: label, speech_s, centroid)",
        typeConverter=TypeConverters.toString,
    )
    return cls


_add_voiceprints_param(SpeakerIdentityModel)
