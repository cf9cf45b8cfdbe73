#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) and install sparkasr into it.
#   scripts/setup.sh            core + Spark (enough for the demo job)
#   scripts/setup.sh --all      + Spark Connect client, CTC (onnxruntime, pyctcdecode, kenlm), conversion (torch, transformers),
#                                 diarization (scipy; Resemblyzer's voice encoder converted to ONNX),
#                                 Whisper base model, serving (FastAPI, uvicorn, gradio), report and test tools,
#                                 and for the serving tests Debian's chromium + chromium-driver (apt) and
#                                 tests/js's npm client (npm ci)
# Needs: python3 >= 3.10 and Java 17 (for Spark). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ALL=0; [[ "${1:-}" == "--all" ]] && ALL=1

command -v java >/dev/null || { echo "setup: Java 17 is needed by Spark 4 (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ $ALL == 1 ]]; then
  .venv/bin/pip install -q -e ".[spark,connect,ctc,report,convert,torch,base-model,serve,diarize,test]"
  # the speaker model: Resemblyzer's wheel holds its weights (resemblyzer/pretrained.pt); its own dependencies
  # are not needed (the file is read, never imported). Converted once to ONNX into the model cache.
  .venv/bin/pip install -q --no-deps "resemblyzer==0.1.4"
  .venv/bin/python -c "from sparkasr.diarize.models import resolve_voice_encoder as r; r()" >/dev/null
  # pyctcdecode 0.5 pins numpy<2 in its metadata but runs on numpy 2; pyarrow (Spark) needs numpy 2.
  .venv/bin/pip install -q --no-deps "pyctcdecode==0.5.0" && .venv/bin/pip install -q "pygtrie>=2.1,<3"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null  # notebooks tests
  # serving tests: a real browser (Debian's, Playwright drives it; no browser download) and the npm client
  if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
      echo "setup: the demo's browser tests need Debian's chromium: apt-get install chromium chromium-driver" >&2
    fi
  fi
  if command -v npm >/dev/null && ! cmp -s tests/js/package-lock.json tests/js/node_modules/.installed-lock.json; then
    (cd tests/js && npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.installed-lock.json)
  fi
else
  .venv/bin/pip install -q -e ".[spark]"
fi
.venv/bin/python -c "import numpy, pyarrow, pyspark, faster_whisper, sparkasr; print('setup: ok (numpy', numpy.__version__, 'pyspark', pyspark.__version__, ')')"
