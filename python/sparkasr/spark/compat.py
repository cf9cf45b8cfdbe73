"""What differs between the pyspark versions sparkasr supports (3.5.x and 4.0-4.3), in one place.

The stages use pyspark.ml's ``Params``, ``keyword_only`` convention, ``Transformer``/``Model``,
``mapInArrow``/``mapInPandas`` and ``DefaultParamsWriter``/``Reader``; of those, one thing differs
between 3.5 and 4.x:

* ``DefaultParamsWriter.saveMetadata`` / ``DefaultParamsReader.loadMetadata`` take a
  ``SparkContext`` in 3.5 (``sc.parallelize(...).saveAsTextFile``, ``sc.textFile``) and a
  ``SparkSession`` or a ``SparkContext`` in 4.x (a DataFrame text write and read), so a speech
  stage's own writer and reader go through :func:`save_metadata` / :func:`load_metadata`.

Everything else the package uses (``to_arrow_type`` with one argument, ``DataFrame.sparkSession``,
``mapInArrow``, pandas UDFs returning structs, the SQL functions) behaves the same in both; the
pyspark 3.5.9 leg of ``scripts/test.sh`` (``scripts/test_spark35.sh``) checks it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pyspark

__all__ = ["PYSPARK_VERSION", "MIN_PYSPARK", "check_pyspark_version", "save_metadata", "load_metadata"]

MIN_PYSPARK: Tuple[int, int] = (3, 5)


def _major_minor(version: str) -> Tuple[int, int]:
    """``"3.5.9"`` -> (3, 5); ``"4.1.0.dev0"`` -> (4, 1)."""
    parts = (version.split(".") + ["0"])[:2]
    return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


PYSPARK_VERSION: Tuple[int, int] = _major_minor(pyspark.__version__)


def check_pyspark_version(version: str = pyspark.__version__) -> None:
    """Refuse a pyspark older than 3.5, naming the version found (newer ones are left to run)."""
    if _major_minor(version) < MIN_PYSPARK:
        raise ImportError(
            f"sparkasr's Spark stages need pyspark >= {'.'.join(map(str, MIN_PYSPARK))}; found pyspark {version}"
        )


def _metadata_context(spark):
    """What pyspark's metadata helpers accept: the SparkContext before 4.0, the session after."""
    return spark.sparkContext if PYSPARK_VERSION < (4, 0) else spark


def save_metadata(instance, path: str, spark, extra: Optional[Dict[str, Any]] = None) -> None:
    """``DefaultParamsWriter.saveMetadata`` (``<path>/metadata``, pyspark.ml's JSON) on any supported pyspark."""
    from pyspark.ml.util import DefaultParamsWriter

    DefaultParamsWriter.saveMetadata(instance, path, _metadata_context(spark), extraMetadata=extra)


def load_metadata(path: str, spark) -> Dict[str, Any]:
    """``DefaultParamsReader.loadMetadata`` on any supported pyspark."""
    from pyspark.ml.util import DefaultParamsReader

    return DefaultParamsReader.loadMetadata(path, _metadata_context(spark))
