#!/usr/bin/env bash
# Set up (core + Spark) and transcribe the bundled sample audio with the embedded default model
# (Whisper tiny.en), printing one line per file. Output records land in out/demo/current (one per file).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYSPARK_PYTHON="$PWD/.venv/bin/python"
rc=0
.venv/bin/sparkasr transcribe tests/data/librivox tests/data/cards tests/data/goforward.raw \
  --output out/demo --print "$@" || rc=$?
echo "demo: 'source .venv/bin/activate' puts python (with sparkasr), sparkasr and spark-submit on PATH;" \
  "the README's Python example runs with .venv/bin/python"
exit $rc
