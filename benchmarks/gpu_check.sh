#!/usr/bin/env bash
# The prepared GPU check, one command of at most about 10 minutes on a lent GPU machine:
#   1. every notebook's homework (02-07) in full mode, fp16 forced (a T4's path, with the
#      gradient scaler) and bf16: images/s, peak memory, seconds, test accuracy against the
#      full-mode minimum (benchmarks/gpu_check.py);
#   2. fit against the plain lecture loop on ResNet-50 at 224, with achieved FLOP/s against
#      the measured matmul peak (benchmarks/plain_vs_fit.py).
# Writes $OUT (or ./gpu_check_out) /gpu_check.{json,md} and plain_vs_fit.json.
#
#   benchmarks/gpu_check.sh              on the GPU machine (COURSE_DATA: MNIST + CIFAR-10)
#   benchmarks/gpu_check.sh --dry-run    here, on the CPU: smoke sizes, same code paths
#
# The GPU machine has torch, torchvision, matplotlib, numpy and tqdm but no torchinfo:
# carry its wheel in .whl/ (see /work/.library/device/README.md) and it is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check_out}
mkdir -p "$out"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if ! $PY -c "import torchinfo" 2>/dev/null && ls .whl/torchinfo-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/torchinfo-*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
start=$SECONDS
status=0
if [ "${1:-}" = "--dry-run" ]; then
  $PY benchmarks/gpu_check.py --dry-run --out "$out/gpu_check" 02_lenet 06_resnet || status=$?
  COURSE_SMOKE=1 $PY benchmarks/plain_vs_fit.py --model lenet5 --dataset mnist \
    --image-size 32 --subset 512 --test-subset 256 --json "$out/plain_vs_fit.json" || status=$?
else
  timeout 420 $PY benchmarks/gpu_check.py --out "$out/gpu_check" || status=$?
  timeout 150 $PY benchmarks/plain_vs_fit.py --model resnet50 --dataset cifar10 \
    --image-size 224 --subset 12800 --test-subset 2000 --json "$out/plain_vs_fit.json" \
    || status=$?
fi
echo "gpu_check: $((SECONDS - start)) s, exit status $status; report in $out/"
exit $status
