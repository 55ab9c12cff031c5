#!/usr/bin/env bash
# Prepare what scripts/cuda-check.sh needs on a GPU machine that cannot reach a package index,
# such as the lent H200 (Python 3.12 with torch, torchvision, numpy, pillow, matplotlib,
# scikit-learn, safetensors, prometheus-client, httpx, uvloop and pytest already installed):
#
#   .whl/       wheels of what the service and its tests need beyond that, at the versions this
#               project's .venv runs (so the GPU runs the code CI tests), for CPython 3.12 on x86-64
#   .gpu-data/  the MNIST files, gzipped (cuda-check.sh unpacks them there), and wrk with its LuaJIT
#               library where this machine has wrk (built for glibc 2.36: it runs on newer ones)
#
# Both are ignored by git; name them in the run's carry list (together well under 64 MiB).
# Usage: scripts/cuda-carry.sh   (from the repository root, with the project's .venv installed)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DATA=${AE_DATA_DIR:-../shared/data}
PACKAGES=(
  fastapi starlette annotated-doc opentelemetry-api pydantic pydantic-core pydantic-settings python-dotenv
  annotated-types typing-inspection typing-extensions orjson python-multipart fastapi-offline
  uvicorn httptools watchfiles asgi-lifespan sniffio httpx2 httpcore2 truststore idna
)

pins=()
for name in "${PACKAGES[@]}"; do
  version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  pins+=("$name==$version")
done
rm -rf .whl && mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"

rm -rf .gpu-data && mkdir -p .gpu-data/MNIST/raw
for file in "$DATA"/MNIST/raw/*-ubyte; do
  gzip -c "$file" > ".gpu-data/MNIST/raw/$(basename "$file").gz"
done
if wrk=$(command -v wrk); then  # the load generator, with the one library it needs that Ubuntu lacks by default
  mkdir -p .gpu-data/bin .gpu-data/lib
  cp "$wrk" .gpu-data/lib/wrk
  cp "$(ldd "$wrk" | awk '/libluajit/ {print $3}')" .gpu-data/lib/
  printf '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")/../lib\nLD_LIBRARY_PATH=$here exec "$here/wrk" "$@"\n' \
    > .gpu-data/bin/wrk
  chmod +x .gpu-data/bin/wrk
fi
du -sh .whl .gpu-data
