#!/bin/sh
# GPU figures for issue 10 in one short run (< 5 minutes on an H100): model-only vs end-to-end
# img/s on 12 MP JPEGs, nvJPEG vs CPU decoders, GPU-path agreement, a one-process NCCL DDP step.
#
#   sh bench/gpu.sh [--n 4096] [--compile] [--json gpu.json]
#
# Needs a CUDA machine where this repository's dependencies import (`pip install -e .`).
# Record what it prints in docs/benchmarks.md ("GPU") with the date and the card.
set -eu
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
df -h /dev/shm /tmp 2>/dev/null | tail -n +2 || true
exec python3 -m bench.gpu "$@"
