#!/usr/bin/env bash
# Set up everything and run the whole test suite: the Scala tests (sbt) and the Python tests (one
# shared local[2] SparkSession), side by side on a full run.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=target/ci-logs
mkdir -p "$logs" && rm -f "$logs"/*.rc "$logs"/durations*.tsv
# A run writes ~13 GB (environments, jars, temporary files): a full disk fails tests far from its cause.
echo "test.sh: free space: $(df -h --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -d ' ') in ${TMPDIR:-/tmp}," \
  "$(df -h --output=avail . | tail -1 | tr -d ' ') here"
if [[ $# -eq 0 ]]; then
  # A full run: the pyspark 3.5 environment and its jars are made while setup.sh makes .venv (pip
  # spends much of its time on one core or waiting on downloads).
  scripts/test_spark35.sh --prepare >"$logs/spark35-prepare.log" 2>&1 &
  prepare=$!
fi
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
# A full run, in two streams that each keep the 2 cores busy about as long as the other (a Spark
# test leaves the cores idle for much of its time: JVM starts, Python workers, servers, subprocess
# jobs; scalac is mostly one thread):
#   side: the JVM leg (compile, the Scala tests, which run Python fixtures from .venv, the user jar),
#         then the user jar's tests (tests/test_scala_jar.py), then the pyspark 3.5 leg, then
#         SIDE_TESTS below (pyspark 4.x, their own pytest process and SparkSession);
#   main: the rest of the pyspark 4.x suite.
# The side stream's output is printed whole once both are done.
# SIDE_TESTS: 4.x modules that start their own processes (a standalone cluster, notebook kernels)
# and share nothing with the rest of the suite.
SIDE_TESTS=(tests/test_cluster.py tests/test_notebooks.py)
wait "$prepare" || true  # a failed preparation is redone, and reported, by the 3.5 leg itself
(
  leg=0; scripts/sbt test assembly >"$logs/sbt.log" 2>&1 || leg=$?
  echo "test.sh: sbt leg done in ${SECONDS}s" >>"$logs/sbt.log"
  echo $leg >"$logs/sbt.rc"
  leg=1
  if [[ $(cat "$logs/sbt.rc") == 0 ]]; then
    leg=0; .venv/bin/python -m pytest -q -rs --durations=10 tests/test_scala_jar.py >"$logs/jar.log" 2>&1 || leg=$?
  else
    echo "test.sh: the JVM leg failed, so the user jar's tests did not run" >"$logs/jar.log"
  fi
  echo "test.sh: user jar tests done in ${SECONDS}s" >>"$logs/jar.log"
  echo $leg >"$logs/jar.rc"
  # pyspark 3.5.9 leg (.venv-spark35): the interop tests on the real spark-nlp_2.12:5.5.3 jar and a
  # representative set of the Spark tests.
  leg=0; { cat "$logs/spark35-prepare.log"; scripts/test_spark35.sh; } >"$logs/spark35.log" 2>&1 || leg=$?
  echo $leg >"$logs/spark35.rc"
  leg=0
  SPARKASR_TEST_DURATIONS="$PWD/$logs/durations-side.tsv" .venv/bin/python -m pytest -q -rs --durations=30 \
    "${SIDE_TESTS[@]}" >"$logs/side.log" 2>&1 || leg=$?
  echo "test.sh: side stream done in ${SECONDS}s" >>"$logs/side.log"
  echo $leg >"$logs/side.rc"
) &
side=$!
# pyspark 4.x (.venv): the whole suite but the Spark NLP interop tests, which run in the 3.5 leg
# (Spark NLP's Spark 4 jar, spark-nlp_2.13:7.0.0, is not on the Maven Central CI reaches), the user
# jar's and SIDE_TESTS. It includes the Spark Connect leg (tests/test_connect.py, marker `connect`:
# one Connect server from pyspark's sbin/start-connect-server.sh on 127.0.0.1 for the module, next to
# the shared classic session; `-m connect` runs it alone, `-m "not connect"` skips it) and
# tests/test_readme.py (the README's Python snippet run as written, in a fresh process).
start=$SECONDS
ignore=(--ignore=tests/test_sparknlp_interop.py --ignore=tests/test_scala_jar.py)
for t in "${SIDE_TESTS[@]}"; do ignore+=(--ignore="$t"); done
SPARKASR_TEST_DURATIONS="$PWD/$logs/durations.tsv" .venv/bin/python -m pytest -q -rs --durations=30 \
  "${ignore[@]}" || rc=$?
leg4=$((SECONDS - start))
echo "test.sh: pyspark 4.x main stream done in ${SECONDS}s"
wait $side || true
for leg in sbt jar spark35 side; do
  echo "=== $leg (output of the side stream) ==="
  cat "$logs/$leg.log"
  [[ "$(cat "$logs/$leg.rc" 2>/dev/null)" == 0 ]] || { echo "test.sh: $leg failed"; rc=1; }
done
# Last, where the time went (what a CI log's tail shows).
.venv/bin/python scripts/durations.py "$logs"/durations*.tsv || true
grep -h "done in" "$logs/sbt.log" "$logs/jar.log" "$logs/spark35.log" "$logs/side.log" || true
echo "test.sh: pyspark 4.x main stream took ${leg4}s"
echo "test.sh: all legs done in ${SECONDS}s (rc $rc)"
exit $rc
