#!/usr/bin/env bash
# GPU discovery script for spark.{worker,executor}.resource.gpu.discoveryScript (as Spark's
# examples/src/main/scripts/getGpusResources.sh): prints the visible NVIDIA GPU indices as
#   {"name": "gpu", "addresses": ["0", "1"]}
set -euo pipefail
ADDRS=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/","/g')
echo "{\"name\": \"gpu\", \"addresses\": [\"$ADDRS\"]}"
