#!/usr/bin/env bash
# The pyspark 3.5 leg of scripts/test.sh: a second environment, .venv-spark35, with pyspark 3.5.9,
# Spark NLP 5.5.3 (Python package + the spark-nlp_2.12:5.5.3 jar from Maven Central) and sparkasr
# installed without its `spark` extra, running the Spark NLP interop tests and a representative set
# of the Spark tests (the list below says why each is here). Extra arguments go to pytest;
# `--prepare` alone makes the environment and fetches the jar, then stops.
#
# Needs: python3 >= 3.10, Java 17, Maven (for the jar), and .venv with torch from
# `scripts/setup.sh --all` (SPARKASR_TORCH_PYTHON, default .venv/bin/python, builds the tiny CTC
# test models; the 3.5 environment has no torch).
# In CI (CI=true) a jar that cannot be fetched, a model that cannot be built, or any skipped test
# fails the leg; elsewhere the tests concerned skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-spark35
CI_RUN=0; [[ "${CI:-}" == "true" ]] && CI_RUN=1
say() { echo "test_spark35: $*"; }

# pyspark 3.5 wants numpy < 2 (its metadata says so); pandas 2.2 and pyarrow 17 are the newest
# lines released while 3.5 was Spark's current version.
REQUIREMENTS=(
  "pyspark==3.5.9" "spark-nlp==5.5.3"
  "numpy>=1.24,<2" "pandas>=2.0,<2.3" "pyarrow>=15,<18"
  "onnxruntime>=1.17"                                   # Wav2Vec2ForCTC / HubertForCTC on executors
  "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6.100" "whisper-normalizer>=0.1.10"
  "jiwer>=4.0,<5"                                       # the test extra's reference for WER counts
)
stamp="$(printf '%s\n' "${REQUIREMENTS[@]}" | cat - pyproject.toml | sha256sum | cut -c1-16)"
if [[ ! -f "$VENV/.sparkasr-$stamp" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/pip" install -q -e . "${REQUIREMENTS[@]}"
  rm -f "$VENV"/.sparkasr-* && touch "$VENV/.sparkasr-$stamp"
fi
"$VENV/bin/python" -c "import numpy, pandas, pyarrow, pyspark, sparknlp; print('test_spark35: pyspark', pyspark.__version__, 'spark-nlp', sparknlp.version(), 'numpy', numpy.__version__, 'pandas', pandas.__version__, 'pyarrow', pyarrow.__version__)"
if [[ "${1:-}" == "--prepare" ]]; then
  # only the environment and the Spark NLP jar (scripts/test.sh makes them while setup.sh makes .venv)
  SPARKNLP_VERSION=5.5.3 SPARKNLP_ARTIFACT=spark-nlp_2.12 bash scripts/fetch_sparknlp_jar.sh >/dev/null || true
  say "prepared in ${SECONDS}s"
  exit 0
fi

unset SPARK_HOME  # pyspark's own Spark 3.5.9, never another installation's
export PYSPARK_PYTHON="$PWD/$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$PWD/$VENV/bin/python"
export PYTHONPATH="$PWD/python"  # Spark's Python workers import this checkout

unavailable() {  # a missing prerequisite: fatal in CI, a reason to skip elsewhere
  if [[ $CI_RUN == 1 ]]; then say "CI=true: $1"; exit 1; fi
  say "$1 (the tests that need it will skip)"
}

# The Spark NLP jar for Spark 3.x (Scala 2.12), with its runtime dependencies.
if jars="$(SPARKNLP_VERSION=5.5.3 SPARKNLP_ARTIFACT=spark-nlp_2.12 bash scripts/fetch_sparknlp_jar.sh 2>"$VENV/fetch.err")"; then
  export SPARKASR_TEST_JARS="$jars"
else
  export SPARKASR_SPARKNLP_FETCH_ERROR="$(tail -n 1 "$VENV/fetch.err")"
  unavailable "Spark NLP jar not fetched: $SPARKASR_SPARKNLP_FETCH_ERROR"
fi

# The tiny CTC models, built with torch in .venv; the 3.5 environment only runs their ONNX files.
models="$(mktemp -d)"
trap 'rm -rf "$models"' EXIT
if "${SPARKASR_TORCH_PYTHON:-.venv/bin/python}" -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from fixtures.make_ctc_models import build; build(Path(sys.argv[1]))" "$models" >"$VENV/ctc.log" 2>&1; then
  export SPARKASR_TEST_CTC_MODELS="$models"
else
  unavailable "tiny CTC models not built with ${SPARKASR_TORCH_PYTHON:-.venv/bin/python} (scripts/setup.sh --all): $(tail -n 1 "$VENV/ctc.log")"
fi

# What runs on 3.5, and why: everything that touches a pyspark API whose behaviour could differ
# between 3.5 and 4.x. The engine-only tests (no pyspark) and the slow cluster/notebook/long-audio
# tests, which use the same APIs as these, run in the 4.x leg only.
TESTS=(
  tests/test_sparknlp_interop.py            # Spark NLP's jar both ways, mixed save/load, LightPipeline
  tests/test_spark_whisper.py               # Whisper pipeline on real clips, mapInArrow, reader, assembler, persistence
  # (but the two whose pyspark calls the others make too: the reader's reference rows and the assembler's
  # resampling are engine code behind the same mapInArrow)
  --deselect tests/test_spark_whisper.py::test_read_audio_references_transcribe_like_samples
  --deselect tests/test_spark_whisper.py::test_assembler_resamples_and_downmixes
  "tests/test_ctc_spark.py::test_pipeline_on_real_audio"  # CTC pipeline on real clips, error rows, save/load
  tests/test_eval_spark.py                  # Evaluator, CrossValidator/TrainValidationSplit, pandas UDF, grouped mapInArrow
  # (but its two property tests over many partitionings, over a quarter of this leg's test time: the same
  # aggregation runs in test_same_result_as_pure_python_including_substitutions and the group_by test)
  --deselect tests/test_eval_spark.py::test_distributed_totals_equal_jiwer_across_partitionings
  --deselect tests/test_eval_spark.py::test_grouped_normalised_totals_and_substitutions_across_partitionings
  # the job CLI on a directory and a manifest, with its records, summary and report (the rest of
  # tests/test_cli.py, resume and subtitles included, runs in the 4.x leg: same job code, and the CI's
  # time is short)
  "tests/test_cli.py::test_transcribe_dir_and_manifest"
  tests/test_arrow.py                       # Arrow glue on this pyarrow
  tests/test_compat.py                      # the pyspark versions accepted
  "tests/test_params.py::test_stage_params_are_exactly_the_table"          # declare_params on 3.5's Params
  "tests/test_params.py::test_a_param_reaches_its_engine_field_through_keyword_and_setter"
  "tests/test_params.py::test_bad_values_fail_naming_the_param_and_the_allowed_values"
)
report="$VENV/junit.xml"
rc=0
# (pyspark 3.5 itself warns on every LooseVersion it makes: not ours, left out of the report)
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$report" \
  -W "ignore:distutils Version classes are deprecated:DeprecationWarning" "${TESTS[@]}" "$@" || rc=$?
if [[ $rc == 0 && $CI_RUN == 1 ]]; then
  # Every test of this leg must have run: a skip here means the leg tested less than it says.
  "$VENV/bin/python" - "$report" <<'PY' || rc=1
import sys
import xml.etree.ElementTree as ET

skipped = [
    f"{case.get('classname')}::{case.get('name')}: {skip.get('message', '')}"
    for case in ET.parse(sys.argv[1]).iter("testcase")
    for skip in case.findall("skipped")
]
if skipped:
    print("test_spark35: CI=true and %d test(s) skipped:\n  %s" % (len(skipped), "\n  ".join(skipped)))
    sys.exit(1)
PY
fi
say "done in ${SECONDS}s (rc $rc)"
exit $rc
