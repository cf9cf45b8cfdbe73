#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) and install sparkasr into it.
#   scripts/setup.sh            core + Spark (enough for the demo job)
#   scripts/setup.sh --all      + CTC (onnxruntime, pyctcdecode, kenlm), conversion (torch, transformers),
#                                 Whisper base model, report and test tools
# Needs: python3 >= 3.10 and Java 17 (for Spark). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ALL=0; [[ "${1:-}" == "--all" ]] && ALL=1

command -v java >/dev/null || { echo "setup: Java 17 is needed by Spark 4 (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ $ALL == 1 ]]; then
  .venv/bin/pip install -q -e ".[spark,ctc,report,convert,torch,base-model,test]"
  # pyctcdecode 0.5 pins numpy<2 in its metadata but runs on numpy 2; pyarrow (Spark) needs numpy 2.
  .venv/bin/pip install -q --no-deps "pyctcdecode==0.5.0" && .venv/bin/pip install -q "pygtrie>=2.1,<3"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null  # notebooks tests
  # The Scala parity tests run the Python CTC engine on ONNX Runtime 1.29.0, the version ONNX Runtime
  # Java is served at, beside (not instead of) the venv's own onnxruntime.
  [[ -d .venv/onnxruntime-1.29.0/onnxruntime ]] || \
    .venv/bin/pip install -q --no-deps --target .venv/onnxruntime-1.29.0 "onnxruntime==1.29.0"
else
  .venv/bin/pip install -q -e ".[spark]"
fi
.venv/bin/python -c "import numpy, pyarrow, pyspark, faster_whisper, sparkasr; print('setup: ok (numpy', numpy.__version__, 'pyspark', pyspark.__version__, ')')"
