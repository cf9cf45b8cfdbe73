#!/usr/bin/env bash
# Set up everything and run the whole test suite (one shared local[2] SparkSession).
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
.venv/bin/python -m sparkasr.params --check
# Spark NLP interop tests need its jar + dependencies from Maven Central; they skip, with the
# reason, when it cannot be fetched (spark-nlp_2.13:7.0.0 is not on the Maven Central we reach).
if jars="$(bash scripts/fetch_sparknlp_jar.sh 2>/tmp/sparknlp_fetch.err)"; then
  export SPARKASR_TEST_JARS="$jars"
else
  export SPARKASR_SPARKNLP_FETCH_ERROR="$(tail -n 1 /tmp/sparknlp_fetch.err)"
  echo "test: Spark NLP jar not fetched: $SPARKASR_SPARKNLP_FETCH_ERROR (interop tests will skip)"
fi
exec .venv/bin/python -m pytest -q -rs "$@"
