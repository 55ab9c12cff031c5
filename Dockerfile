# The autoencoder service: one uvicorn process per container (it holds the models and one
# batch queue per model version), so scale out with replicas, never with workers.
#
#   docker build -t mnist-autoencoders .                           # the service (target serve)
#   docker build --target train -t mnist-autoencoders:train .     # ae-train and ae-report
#
# The serving image holds only what serves: the runtime dependencies, models/ and service/, and
# the shipped checkpoints; the training image adds the [train] extra and training/.
#
# Build arguments:
#   BASE_IMAGE       any Debian/Ubuntu image with python >= 3.11 and pip on PATH. For CUDA, an
#                    nvidia/cuda *runtime* image with Python installed. The default slim image
#                    serves on a GPU too: torch's Linux wheels on the default index bundle their
#                    CUDA libraries, the host only needs the NVIDIA driver and container toolkit.
#   TORCH_INDEX_URL  empty by default; when set, passed to pip as --extra-index-url, e.g. the
#                    PyTorch CPU-only wheel index for a much smaller CPU image.
#
# The process runs as the non-root user `app`, uid:gid 1000:1000 (numeric, so a runtime can check
# it is not root); a container that writes to a bind mount needs that owner or a `--user` override.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS base

ARG TORCH_INDEX_URL=""

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    AE_STORE=/app/checkpoints

RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --no-log-init --create-home --shell /usr/sbin/nologin app

WORKDIR /app

# The runtime dependencies first, in their own layer: read from pyproject.toml alone, so editing
# the code does not reinstall torch. (The versions are pinned in pyproject.toml.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt


# Training: `docker compose --profile train run --rm train`.
FROM base AS train
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['train'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY models ./models
COPY training ./training
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info
USER 1000:1000
CMD ["ae-train", "--all", "--store", "/app/checkpoints"]


# Serving, the default target: the code installed without touching the dependencies.
FROM base AS serve
COPY models ./models
COPY service ./service
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# The shipped model versions; compose mounts ./checkpoints over it read-only instead.
COPY checkpoints ./checkpoints

USER 1000:1000

EXPOSE 8000

# curl is not in slim images; python's urllib is. urlopen raises (exit 1) on any non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["ae-serve", "--host", "0.0.0.0", "--port", "8000"]
