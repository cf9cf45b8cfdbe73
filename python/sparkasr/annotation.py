"""Spark NLP's annotation data model, without Spark NLP.

Our annotators read and write exactly Spark NLP's column layout so that users can swap our stages
for Spark NLP's and chain Spark NLP annotators after ours:

* text annotations (``document``, ``chunk``, ...): ``array<struct<annotatorType: string, begin: int,
  end: int, result: string, metadata: map<string,string>, embeddings: array<float>>>``
* audio annotations (``audio``, the output of ``AudioAssembler``): ``array<struct<annotatorType:
  string, result: array<float>, metadata: map<string,string>>>``

Spark NLP finds a column's annotator type in the column's metadata (``{"annotatorType": ...}``);
:func:`with_annotator_type_metadata` puts it there.

This module is plain Python: the Spark types are built lazily so that the engine can import the
row builders without pyspark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from .records import Transcript

# Annotator types (Spark NLP's AnnotatorType constants).
AUDIO = "audio"
DOCUMENT = "document"
CHUNK = "chunk"
TOKEN = "token"

# Metadata keys we write. Values in Spark NLP metadata are always strings.
ERROR_KEY = "error"


def annotation(
    annotator_type: str,
    begin: int,
    end: int,
    result: str,
    metadata: Optional[Mapping[str, Any]] = None,
    embeddings: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """A text annotation as a plain dict in Spark NLP's field order (Arrow/pandas friendly)."""
    return {
        "annotatorType": annotator_type,
        "begin": int(begin),
        "end": int(end),
        "result": result,
        "metadata": stringify_metadata(metadata),
        "embeddings": list(embeddings) if embeddings is not None else [],
    }


def audio_annotation(samples, metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """An audio annotation (Spark NLP's ``AnnotationAudio``): float samples + metadata."""
    return {
        "annotatorType": AUDIO,
        "result": samples,
        "metadata": stringify_metadata(metadata),
    }


def stringify_metadata(metadata: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Spark NLP metadata is ``map<string,string>``: drop ``None`` values, format the rest."""
    out: Dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if value is None:
            continue
        if isinstance(value, float):
            out[str(key)] = repr(round(value, 6))
        elif isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        else:
            out[str(key)] = str(value)
    return out


def document_text(annotations: Optional[List[Mapping[str, Any]]]) -> str:
    """Join the ``result`` of the ``document`` annotations of one cell (used by evaluators/CLI)."""
    if annotations is None:
        return ""
    parts = [a["result"] for a in annotations if a.get("annotatorType", DOCUMENT) == DOCUMENT]
    return " ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# Transcripts -> annotations
# ---------------------------------------------------------------------------------------------


def transcript_document(t: Transcript, index: int, model_name: str) -> Dict[str, Any]:
    meta = {
        "audio": index,
        "sentence": 0,
        "source": t.source or None,
        "language": t.language,
        "language_probability": t.language_probability,
        "duration_s": round(t.duration_s, 3),
        "offset_s": round(t.offset_s, 3) if t.offset_s else None,
        "model": model_name,
        ERROR_KEY: t.error,
    }
    text = t.text or ""
    return annotation(DOCUMENT, 0, max(len(text) - 1, 0), text, meta)


def transcript_chunks(t: Transcript, index: int) -> List[Dict[str, Any]]:
    out = []
    pos = 0
    text = t.text or ""
    for j, c in enumerate(t.chunks):
        found = text.find(c.text, pos) if c.text else -1
        begin = found if found >= 0 else pos
        end = begin + max(len(c.text) - 1, 0)
        if found >= 0:
            pos = end + 1
        out.append(
            annotation(
                CHUNK,
                begin,
                end,
                c.text,
                {
                    "audio": index,
                    "sentence": 0,
                    "chunk": j,
                    "start": c.start,
                    "end": c.end,
                    "kind": c.kind,
                    "probability": c.probability,
                },
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Spark types (imported lazily)
# ---------------------------------------------------------------------------------------------


def annotation_struct_type():
    from pyspark.sql.types import (
        ArrayType,
        FloatType,
        IntegerType,
        MapType,
        StringType,
        StructField,
        StructType,
    )

    return StructType(
        [
            StructField("annotatorType", StringType(), True),
            StructField("begin", IntegerType(), False),
            StructField("end", IntegerType(), False),
            StructField("result", StringType(), True),
            StructField("metadata", MapType(StringType(), StringType(), True), True),
            StructField("embeddings", ArrayType(FloatType(), False), True),
        ]
    )


def annotation_array_type():
    from pyspark.sql.types import ArrayType

    return ArrayType(annotation_struct_type(), True)


def audio_annotation_struct_type():
    from pyspark.sql.types import ArrayType, FloatType, MapType, StringType, StructField, StructType

    return StructType(
        [
            StructField("annotatorType", StringType(), True),
            StructField("result", ArrayType(FloatType(), True), True),
            StructField("metadata", MapType(StringType(), StringType(), True), True),
        ]
    )


def audio_annotation_array_type():
    from pyspark.sql.types import ArrayType

    return ArrayType(audio_annotation_struct_type(), True)


def with_annotator_type_metadata(df, column: str, annotator_type: str):
    """Return ``df`` with ``{"annotatorType": annotator_type}`` in ``column``'s metadata."""
    from pyspark.sql import functions as F

    field = df.schema[column]
    meta = dict(field.metadata or {})
    meta["annotatorType"] = annotator_type
    return df.withColumn(column, F.col(column).alias(column, metadata=meta))


def column_annotator_type(df, column: str) -> Optional[str]:
    """The ``annotatorType`` recorded in a column's metadata, if any."""
    return (df.schema[column].metadata or {}).get("annotatorType")
