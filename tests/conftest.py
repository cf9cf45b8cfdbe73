"""Shared test fixtures: real speech clips with references, and ONE local[2] SparkSession per run."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from sparkasr.whisper.model import portable_cpu_env

DATA = Path(__file__).resolve().parent / "data"

# The same CPU kernels on every machine the suite runs on (before anything loads CTranslate2; the
# Spark workers inherit the variables): the transcripts every test compares, and so their
# verdicts, then do not depend on the CPU's vendor or ISA (see portable_cpu_env).
for _k, _v in portable_cpu_env().items():
    os.environ.setdefault(_k, _v)


def _librivox():
    out = []
    for wav in sorted((DATA / "librivox").glob("*.wav")):
        ref = wav.with_suffix(".txt").read_text().strip()
        out.append((wav, ref))
    return out


def _cards():
    refs = {}
    for line in (DATA / "cards" / "cards.transcription").read_text().splitlines():
        m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\w+)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    return [(DATA / "cards" / f"{k}.wav", v) for k, v in sorted(refs.items())]


LIBRIVOX = _librivox()
CARDS = _cards()
GOFORWARD = (DATA / "goforward.raw", "go forward ten meters")  # raw s16le, 16 kHz, mono
ALL_CLIPS = LIBRIVOX + CARDS


@pytest.fixture(scope="session")
def clips():
    """[(Path, reference_text)] for the vendored real WAV clips (LibriVox + cards)."""
    return list(ALL_CLIPS)


@pytest.fixture(scope="session")
def data_dir():
    return DATA


def _spark_builder():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("sparkasr-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8")
        .config("spark.driver.memory", "3g")
        .config("spark.sql.session.timeZone", "UTC")
    )
    jars = os.environ.get("SPARKASR_TEST_JARS")  # e.g. the Spark NLP jar for interop tests
    if jars:
        builder = builder.config("spark.jars", jars)
    return builder


@pytest.fixture(scope="session")
def service():
    """One loaded ModelService (serve_support.tiny_service) for every serving test module."""
    from serve_support import tiny_service

    svc = tiny_service()
    svc.load()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def spark():
    """The one shared local[2] SparkSession of the test run."""
    session = _spark_builder().getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# a file: one "seconds<TAB>phase<TAB>test id<TAB>outcome" line per test phase (absolute: tests chdir)
_DURATIONS = (
    os.path.abspath(os.environ["SPARKASR_TEST_DURATIONS"]) if os.environ.get("SPARKASR_TEST_DURATIONS") else None
)


def pytest_runtest_logreport(report):
    # Written as each phase ends, so a run that is stopped or times out still shows where its time went.
    if _DURATIONS:
        try:
            with open(_DURATIONS, "a") as fh:
                fh.write(f"{report.duration:.1f}\t{report.when}\t{report.nodeid}\t{report.outcome}\n")
        except OSError as e:  # the record of times must never stop the run
            print(f"conftest: durations not written to {_DURATIONS}: {e}", file=sys.stderr)
