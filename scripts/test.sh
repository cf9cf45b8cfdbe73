#!/usr/bin/env bash
# Set up everything and run the whole test suite (one shared local[2] SparkSession).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --all
export PYSPARK_PYTHON="$PWD/.venv/bin/python"
# Spark NLP interop tests need its jar (Maven Central); they skip with the reason if it cannot be fetched.
if [[ -x scripts/fetch_sparknlp_jar.sh ]]; then
  if JAR=$(timeout 300 scripts/fetch_sparknlp_jar.sh 2>/dev/null | tail -1) && [[ -f "$JAR" ]]; then
    export SPARKASR_TEST_JARS="$JAR"
  else
    echo "test: Spark NLP jar not available; interop tests will skip" >&2
  fi
fi
exec .venv/bin/python -m pytest -q -rs "$@"
