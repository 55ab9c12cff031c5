#!/usr/bin/env bash
# Issue #19 in one go, on a machine with an NVIDIA GPU: the service's tests on CUDA, then the
# inference, serving and training benchmarks on CUDA; every table and log into $OUT.
#
#   scripts/cuda-check.sh                   # on a GPU machine with the project installed (make setup; .venv)
#   DEVICE=cpu QUICK=1 scripts/cuda-check.sh   # the dry run on a CPU: the same steps, sized down, to time them
#
# On a machine that reaches no package index (the lent H200: Python 3.12 with torch already there),
# run scripts/cuda-carry.sh first where pip works and carry .whl and .gpu-data: the wheels are put
# on PYTHONPATH and the MNIST files unpacked here. Each step runs even if one before it failed;
# $OUT/steps.txt says how each ended and how long it took (the GPU time is scarce: size by it).
#
# On the lent machine (its files come back from $OUT, at most 8): after scripts/cuda-carry.sh here,
#   run(command="OUT=/tmp/cuda scripts/cuda-check.sh; tar czf $OUT/cuda.tgz -C /tmp cuda",
#       carry=[".whl", ".gpu-data"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-results/cuda}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 AE_TEST_DEVICE=$DEVICE

if ! "$PYTHON" -c "import fastapi" 2>/dev/null && [ -d .whl ]; then  # carried wheels: what the machine's Python lacks
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ae-site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/ae-site:$PWD
fi
if [ -z "${AE_DATA_DIR:-}" ] && [ -d .gpu-data/MNIST ]; then  # carried MNIST, gzipped
  mkdir -p /tmp/ae-data/MNIST/raw
  for archive in .gpu-data/MNIST/raw/*.gz; do
    gunzip -c "$archive" > "/tmp/ae-data/MNIST/raw/$(basename "$archive" .gz)"
  done
  export AE_DATA_DIR=/tmp/ae-data
fi
if [ -x .gpu-data/bin/wrk ]; then  # carried wrk (bench/loadgen.py falls back to a Python client without it)
  export PATH=$PWD/.gpu-data/bin:$PATH
fi

step() {  # step NAME COMMAND...: run it, its output into $OUT/NAME.log, its status and seconds into steps.txt
  local name=$1 started status
  shift
  started=$(date +%s)
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  status=$?
  printf '%-10s exit %3d  %4d s  %s\n' "$name" "$status" "$(( $(date +%s) - started ))" "$*" | tee -a "$OUT/steps.txt"
}

: > "$OUT/steps.txt"
step machine bash -c "nvidia-smi; $PYTHON -c 'import torch; print(torch.__version__, torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"no GPU\")'; nproc; free -g"

# The CUDA-specific tests and the service's tests, end to end too, on $DEVICE. Left out: what needs tools
# the GPU machine lacks (a browser, schemathesis, tritonclient, nginx) and the slow fault and load tests.
step tests "$PYTHON" -m pytest -q -p no:cacheprovider -x \
  tests/service/test_settings_and_device.py tests/service/test_core.py tests/service/test_batching.py \
  tests/service/test_endpoints.py tests/service/test_v2.py tests/service/test_reload.py \
  tests/service/test_live.py tests/service/test_lifecycle_live.py tests/service/test_shutdown.py \
  tests/models

if [ -n "$QUICK" ]; then
  step inference "$PYTHON" -m bench.inference --device "$DEVICE" --configs mlp2-p16 mlp4-p2 --repeats 1 --out "$OUT"
  step serving "$PYTHON" -m bench.serving --device "$DEVICE" --servers default off naive ceiling \
    --endpoints reconstruct --bodies raw json --concurrency 64 --many-concurrency 16 --repeats 1 --seconds 2 --out "$OUT"
  step training "$PYTHON" -m bench.train_speed --device "$DEVICE" --configs mlp2-p16 --out "$OUT"
else
  step inference "$PYTHON" -m bench.inference --device "$DEVICE" --repeats 2 --out "$OUT"
  # batching on (2 ms) and off, one and two forward workers; the naive server and the echo ceiling beside them
  step serving "$PYTHON" -m bench.serving --device "$DEVICE" --servers default on off 1w naive ceiling \
    --endpoints reconstruct --bodies raw json --concurrency 1 16 64 --many-concurrency 16 --repeats 2 --seconds 2 \
    --out "$OUT"
  # seconds per epoch on the GPU; time to the reference's test MSE from the shipped runs' histories
  step training "$PYTHON" -m bench.train_speed --device "$DEVICE" --out "$OUT"
fi
cat "$OUT/steps.txt"
