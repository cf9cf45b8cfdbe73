#!/usr/bin/env bash
# Set up everything and run the whole test suite: the Scala tests (sbt), then the Python tests
# (one shared local[2] SparkSession).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --all
# The evaluation corpus for tests/test_accuracy.py: Debian's Asterisk prompts, downloaded once with
# apt-get (no root) into a cache outside the repository; it says why and stops where it cannot.
scripts/fetch_eval_corpus.sh
export PYSPARK_PYTHON="$PWD/.venv/bin/python"
# Format and lint first (configured in pyproject.toml), then the option table's derived files.
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/python -m sparkasr.generated --check
# The JVM side: compile, run the Scala tests (they run Python fixtures from .venv) and build the user
# jar that tests/test_scala_jar.py runs in spark-shell.
scripts/sbt test assembly
# pyspark 4.x leg (.venv): the whole suite but the Spark NLP interop tests, which run in the 3.5 leg:
# Spark NLP's Spark 4 jar (spark-nlp_2.13:7.0.0) is not on the Maven Central CI reaches.
# It includes the Spark Connect leg (tests/test_connect.py, marker `connect`: one Connect server from
# pyspark's sbin/start-connect-server.sh on 127.0.0.1 for the module, next to the shared classic
# session; `-m connect` runs it alone, `-m "not connect"` skips it) and tests/test_readme.py (the
# README's Python snippet run as written, in a fresh process).
rc=0
.venv/bin/python -m pytest -q -rs --ignore=tests/test_sparknlp_interop.py "$@" || rc=$?
# pyspark 3.5.9 leg (.venv-spark35): the interop tests on the real spark-nlp_2.12:5.5.3 jar and a
# representative set of the Spark tests; on a full run only (no pytest arguments).
if [[ $# -eq 0 ]]; then scripts/test_spark35.sh || rc=1; fi
exit $rc
