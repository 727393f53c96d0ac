#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md (NOT RUN YET: no GPU was lent to the session that wrote this).
# On a machine with one CUDA GPU and the project's venv (torch with CUDA):
#   bash bench/gpu.sh                 # MiniLM (packaged, offline), batches 32/64/128, largest batch
#   BACKBONE=/models/deberta-v3-small bash bench/gpu.sh   # the production encoder from a local folder
# Prints prediction words/s and training samples/s in bf16 with length-bucketed batches, MFU against
# the encoder's FLOP count, and the largest training batch that fits. Budget: about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch has no CUDA here'; print('torch', torch.__version__)"
timeout 600 "$PYTHON" bench/gpu.py --device cuda --backbone "${BACKBONE:-minilm}" \
  --batch-sizes ${BATCH_SIZES:-32 64 128} --texts "${TEXTS:-2048}" --steps "${STEPS:-30}" \
  --peak-tflops "${PEAK_TFLOPS:-989}"
