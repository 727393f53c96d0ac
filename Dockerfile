# Image for every Ray node (head, CPU and GPU workers), the RayJob submitter and the CronJob.
#
#   CPU:  docker build -t REGISTRY/gliner-selftrain:0.1.0 .
#   GPU:  docker build -t REGISTRY/gliner-selftrain:0.1.0-gpu \
#           --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py310-gpu --build-arg EXTRAS=vllm .
#
# The Ray version of the base image must equal the `ray==` pin in pyproject.toml (a test checks it):
# all nodes of a cluster and the client that submits to it must run the same Ray.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py310
FROM ${RAY_IMAGE}

# Optional extras of the project: "vllm" on GPU images (ray[llm]==2.60.0 pins vllm 0.29.0, torch 2.13.0).
ARG EXTRAS=""
# Installed before the project, as `make` does. A CPU image can pass
# --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> to skip the CUDA libraries (~4 GB).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=""

# The Ray image runs as the unprivileged user `ray` (uid 1000, group users) with its Python in
# /home/ray/anaconda3; stay that user, so pip installs into that environment without root.
USER ray
# Created by `ray` (WORKDIR alone may create it as root), so the build can write its egg-info there.
RUN mkdir -p /home/ray/gliner-selftrain
WORKDIR /home/ray/gliner-selftrain

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC}"

# Project metadata first, then the packages: a code change does not re-resolve the dependencies'
# layer more than needed. Only the packages and their data ship (see .dockerignore): no tests,
# runs, MLflow stores, virtualenvs, and no credentials — tokens and passwords reach the pods as
# environment variables from Kubernetes Secrets at run time.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users gliner_core ./gliner_core
COPY --chown=ray:users synth ./synth
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users sample ./sample
COPY --chown=ray:users infra/config ./infra/config

RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && python -c "import ray, pipelines, jobs; assert ray.__version__ == '2.60.0', ray.__version__"

# Ray's own entrypoint is kept: KubeRay and the cluster launcher run `ray start ...` in it.
