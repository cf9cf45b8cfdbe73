"""Spark ML stages: thin params/schema layers over the plain-Python engines.

Importing any of them checks that pyspark is one this package supports (>= 3.5,
:mod:`.compat`); without pyspark, the modules that need none (``arrow``, ``inputs``, ``shipping``, ``context``)
still import.
"""

try:
    import pyspark  # noqa: F401
except ImportError:  # pragma: no cover - the engine-only install
    pass
else:
    from .compat import check_pyspark_version

    check_pyspark_version()
