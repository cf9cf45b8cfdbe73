#!/usr/bin/env bash
# Set up everything and run the whole test suite: the Scala tests (sbt) and the Python tests (one
# shared local[2] SparkSession), side by side on a full run.
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
# With pytest arguments: the JVM side first (compile, Scala tests, the user jar), then those tests.
rc=0
if [[ $# -gt 0 ]]; then
  scripts/sbt test assembly
  .venv/bin/python -m pytest -q -rs --durations=30 --ignore=tests/test_sparknlp_interop.py "$@" || rc=$?
  exit $rc
fi
# A full run: the JVM leg (compile, run the Scala tests, which run Python fixtures from .venv, build
# the user jar), then the pyspark 3.5 leg, in the background while the pyspark 4.x leg runs: a Spark
# test leaves the 2 cores idle for much of its time (JVM starts, Python workers, servers, subprocess
# jobs) and scalac is mostly one thread, so the two overlap well. Their output is printed whole once
# both are done; tests/test_scala_jar.py needs the jar, so it runs after them.
logs=target/ci-logs
mkdir -p "$logs" && rm -f "$logs"/*.rc
(
  leg=0; scripts/sbt test assembly >"$logs/sbt.log" 2>&1 || leg=$?
  echo "test.sh: sbt leg done in ${SECONDS}s" >>"$logs/sbt.log"
  echo $leg >"$logs/sbt.rc"
  # pyspark 3.5.9 leg (.venv-spark35): the interop tests on the real spark-nlp_2.12:5.5.3 jar and a
  # representative set of the Spark tests.
  leg=0; scripts/test_spark35.sh >"$logs/spark35.log" 2>&1 || leg=$?
  echo $leg >"$logs/spark35.rc"
) &
side=$!
# pyspark 4.x leg (.venv): the whole suite but the Spark NLP interop tests, which run in the 3.5 leg:
# Spark NLP's Spark 4 jar (spark-nlp_2.13:7.0.0) is not on the Maven Central CI reaches.
# It includes the Spark Connect leg (tests/test_connect.py, marker `connect`: one Connect server from
# pyspark's sbin/start-connect-server.sh on 127.0.0.1 for the module, next to the shared classic
# session; `-m connect` runs it alone, `-m "not connect"` skips it) and tests/test_readme.py (the
# README's Python snippet run as written, in a fresh process).
start=$SECONDS
rm -f "$logs/durations.tsv"
SPARKASR_TEST_DURATIONS="$PWD/$logs/durations.tsv" .venv/bin/python -m pytest -q -rs \
  --ignore=tests/test_sparknlp_interop.py --ignore=tests/test_scala_jar.py || rc=$?
leg4=$((SECONDS - start))
wait $side || true
for leg in sbt spark35; do
  echo "=== $leg leg (output of the background run) ==="
  cat "$logs/$leg.log"
  [[ "$(cat "$logs/$leg.rc" 2>/dev/null)" == 0 ]] || { echo "test.sh: the $leg leg failed"; rc=1; }
done
if [[ "$(cat "$logs/sbt.rc" 2>/dev/null)" == 0 ]]; then
  .venv/bin/python -m pytest -q -rs --durations=10 tests/test_scala_jar.py || rc=$?
fi
# Last, where the time went (what a CI log's tail shows).
.venv/bin/python scripts/durations.py "$logs/durations.tsv" || true
grep -h "sbt leg done in\|test_spark35: done in" "$logs/sbt.log" "$logs/spark35.log" || true
echo "test.sh: pyspark 4.x leg done in ${leg4}s"
echo "test.sh: all legs done in ${SECONDS}s (rc $rc)"
exit $rc
