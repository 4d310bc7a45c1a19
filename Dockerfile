# The pipeline on a GPU host: `docker build -t fcrn-depth .`, then
# `docker run --rm --gpus all fcrn-depth` runs `dvc repro` (docs/operations.md, "Docker").
#
# CUDA 13.0 to match torch 2.14.1+cu130. The `base` flavour (CUDA runtime only) is enough: the
# nvidia-* wheels pinned in requirements.lock are the cuBLAS/cuDNN/NCCL that torch loads, so a
# `cudnn-runtime` base would ship a second copy of them (GBs) that nothing uses. What the NVIDIA
# base adds over plain Ubuntu is the container-toolkit contract: NVIDIA_DRIVER_CAPABILITIES
# includes `compute` (else `--gpus` mounts no libcuda) and NVIDIA_REQUIRE_CUDA refuses to start on
# a host driver too old for CUDA 13.0.
FROM nvidia/cuda:13.0.2-base-ubuntu24.04

ARG DEBIAN_FRONTEND=noninteractive

# Python 3.11, the lock's interpreter (Ubuntu 24.04 ships 3.12), from the deadsnakes PPA; git for
# DVC when a checkout is mounted at /app. Apt versions float with the distribution's updates;
# add-apt-repository gets its recommends (gpg-agent imports the PPA key) and leaves with them.
# hadolint ignore=DL3008,DL3015
RUN apt-get update \
    && apt-get install -y software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git python3.11 python3.11-venv \
    && apt-get purge -y --auto-remove software-properties-common \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=False

# The exact pins, before the code is copied: a code change reuses this multi-GB layer. The venv
# is root's, so the pipeline cannot change its own dependencies at run time.
COPY requirements.lock /tmp/requirements.lock
RUN python3.11 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# A non-root user that owns the working tree. UID is a build argument so that files written into a
# mounted checkout belong to the host user (`--build-arg UID="$(id -u)"`); the base image's
# `ubuntu` user is removed because it holds 1000, the usual first host UID.
ARG UID=1000
RUN userdel --remove ubuntu \
    && useradd --create-home --uid "$UID" --shell /bin/bash fcrn \
    && install -d -o fcrn -g fcrn /app
WORKDIR /app
COPY --chown=fcrn:fcrn . .
# Editable, as `make` installs it: stage scripts import `pipeline` from /app, also when a checkout
# is mounted over it.
RUN pip install --no-cache-dir --no-deps -e .

# Numeric, so that a runtime can verify it is not root (Kubernetes' runAsNonRoot).
USER $UID
# The build context has no .git (.dockerignore), so DVC runs this copy without SCM; a mounted
# checkout brings its own .git and .dvc/ and this local setting is not seen.
RUN dvc config --local core.no_scm true

CMD ["dvc", "repro"]
