"""sparkasr.spark.compat: the pyspark versions the stages accept (runs in both CI legs)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyspark")

from sparkasr.spark import compat  # noqa: E402


@pytest.mark.parametrize("version", ["3.5.0", "3.5.9", "4.0.1", "4.3.0", "4.4.0.dev1"])
def test_supported_versions_pass(version):
    compat.check_pyspark_version(version)


@pytest.mark.parametrize("version", ["3.4.4", "3.3.0", "2.4.8"])
def test_older_versions_are_refused_naming_the_version(version):
    with pytest.raises(ImportError, match=rf"need pyspark >= 3\.5; found pyspark {version}$"):
        compat.check_pyspark_version(version)


def test_the_running_pyspark_is_parsed():
    import pyspark

    assert compat.PYSPARK_VERSION == tuple(int(p) for p in pyspark.__version__.split(".")[:2])
    assert compat.PYSPARK_VERSION >= compat.MIN_PYSPARK
