#!/usr/bin/env bash
# Set up (core + Spark) and transcribe the bundled sample audio with the embedded default model
# (Whisper tiny.en), printing one line per file. Output records land in out/demo/current (one per file).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYSPARK_PYTHON="$PWD/.venv/bin/python"
exec .venv/bin/sparkasr transcribe tests/data/librivox tests/data/cards tests/data/goforward.raw \
  --output out/demo --print "$@"
