"""The Arrow helpers behind the mapInArrow glue (no Spark session needed)."""

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql.types import ArrayType, DoubleType, FloatType

from sparkasr import annotation as A
from sparkasr.cells import INPUT_AUDIO, INPUT_FLOATS, cell_items
from sparkasr.spark.arrow import (
    arrow_type,
    audio_annotation_array,
    audio_annotations,
    float_list_array,
    float_lists,
    replace_columns,
)
from sparkasr.spark.inputs import input_cells


def test_float_lists_are_views_of_the_arrow_buffer_and_respect_slices_and_nulls():
    rows = [np.arange(5, dtype=np.float32), None, np.zeros(0, np.float32), np.array([0.5, -0.25], np.float32)]
    arr = float_list_array(rows, arrow_type(ArrayType(FloatType(), True)))
    assert arr.type == arrow_type(ArrayType(FloatType(), True)) and arr.null_count == 1
    back = float_lists(arr)
    assert back[1] is None and len(back[2]) == 0
    np.testing.assert_array_equal(back[0], rows[0])
    np.testing.assert_array_equal(back[3], rows[3])
    # zero copy: the row shares memory with the Arrow values buffer
    assert np.shares_memory(back[0], arr.values.to_numpy())
    sliced = float_lists(arr.slice(2))
    assert len(sliced) == 2 and len(sliced[0]) == 0
    np.testing.assert_array_equal(sliced[1], rows[3])


def test_double_lists_become_float32_and_null_samples_nan_then_an_error_row():
    arr = pa.array([[0.25, None, 1.0], [2.0]], type=arrow_type(ArrayType(DoubleType(), True)))
    a, b = float_lists(arr)
    assert a.dtype == np.float32 and a[0] == 0.25 and np.isnan(a[1]) and a[2] == 1.0 and b.tolist() == [2.0]
    (bad,) = cell_items(a, INPUT_FLOATS, "r0")
    assert bad.error == "r0: audio contains NaN or infinite samples"


def test_audio_annotations_round_trip_and_feed_cell_items():
    t = arrow_type(A.audio_annotation_array_type())
    x = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    rows = [
        [A.audio_annotation(x, {"source": "a.wav", "sample_rate": 16000})],
        [],
        [
            A.audio_annotation(np.zeros(0, np.float32), {"source": "b.wav", "error": "b.wav: not audio"}),
            A.audio_annotation(x[:800], {"offset_s": 2.5}),
        ],
    ]
    arr = audio_annotation_array(rows, t)
    assert arr.type == t
    back = audio_annotations(arr)
    assert [len(r) for r in back] == [1, 0, 2]
    np.testing.assert_array_equal(back[0][0]["result"], x)
    assert back[0][0]["metadata"] == {"source": "a.wav", "sample_rate": "16000"}
    assert back[0][0]["annotatorType"] == A.AUDIO

    items = [cell_items(c, INPUT_AUDIO, "row") for c in input_cells(arr, INPUT_AUDIO)]
    assert items[0][0].error is None and items[0][0].source == "a.wav"
    assert items[1][0].error == "no audio annotation in the input cell"
    assert items[2][0].error == "b.wav: not audio"
    assert items[2][1].error is None and items[2][1].offset_s == 2.5 and len(items[2][1].samples) == 800


def test_float_cells_with_bad_samples_become_error_items():
    arr = float_list_array([np.array([0.1, np.nan], np.float32), None], arrow_type(ArrayType(FloatType(), True)))
    bad, null = [cell_items(c, INPUT_FLOATS, f"r{i}") for i, c in enumerate(input_cells(arr, INPUT_FLOATS))]
    assert bad[0].error and bad[0].error.startswith("r0:")
    assert null[0].error == "input is null"


def test_replace_columns_passes_other_columns_through_unchanged():
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["p1", "p2"]), pa.array([[1.0], [2.0]], type=pa.list_(pa.float32()))], names=["path", "audio"]
    )
    out = replace_columns(batch, {"text": pa.array(["a", "b"])}, ["path", "audio", "text"])
    assert out.schema.names == ["path", "audio", "text"]
    assert out.column(1) is not None and out.column(1).buffers()[-1].address == batch.column(1).buffers()[-1].address
    with pytest.raises(KeyError):
        replace_columns(batch, {}, ["path", "missing"])
