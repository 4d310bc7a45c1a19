# The pipeline's image: `make image` (docs/operations.md, "Docker"), then
# `docker run --rm --gpus all -v "$PWD":/app fcrn-depth` runs `dvc repro` on this checkout.
#
# BASE_IMAGE: any Debian 12 with Python 3.11 (every 3.11 patch release installs the lock). The
# default is pulled from Docker Hub; without a registry, `make image` builds one from Debian's
# packages (deploy/debian-base.sh). No CUDA base is needed: the nvidia-* wheels pinned in
# requirements.lock are the CUDA runtime, cuBLAS, cuDNN and NCCL that torch loads, and the NVIDIA
# Container Toolkit mounts the host's driver (libcuda) when the variables below ask for it.
#
# Needs BuildKit (DOCKER_BUILDKIT=1) for the optional secret `ca`: a CA bundle pip trusts instead
# of its own, for a TLS-intercepting proxy (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`).
# It is mounted only while pip runs and never lands in a layer.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# git for DVC in a mounted checkout; python:*-slim lacks it, the air-gapped base has it.
# hadolint ignore=DL3008
RUN if ! command -v git >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# No bytecode: it would land in a mounted checkout's pipeline/, a folder DVC hashes as a stage's
# dependency (a host run imports the same code from its own checkout or venv).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=False \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# The exact pins, before anything else of the project: a code change reuses this multi-GB layer.
# The venv is root's, so the pipeline cannot change its own dependencies at run time.
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv "$VIRTUAL_ENV" \
    && pip install -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# A non-root user that owns the working tree. UID is a build argument so that files written into a
# mounted checkout belong to the host user (`--build-arg UID="$(id -u)"`); a base's user holding
# that UID (python:* has none) is removed first.
# The image's own copy has no .git (.dockerignore): DVC runs it without SCM, a setting in the
# machine-local config that the context never brings. A mounted checkout hides it and brings its
# own .git and .dvc/.
ARG UID=1000
RUN if [ "$UID" = 0 ]; then echo "error: UID=0: the image's user must not be root" >&2; exit 1; fi \
    && if user="$(id -nu "$UID" 2>/dev/null)"; then userdel --remove "$user"; fi \
    && useradd --create-home --uid "$UID" --shell /bin/bash fcrn \
    && install -d -o fcrn -g fcrn /app /app/.dvc \
    && printf '[core]\n    no_scm = true\n' > /app/.dvc/config.local \
    && chown fcrn:fcrn /app/.dvc/config.local
COPY deploy/entrypoint.sh /usr/local/bin/fcrn-entrypoint

# Editable, as `make` installs it, so stage scripts import `pipeline` from /app, also when a
# checkout is mounted over it. Only what the install reads is copied first: a change to the code
# below reruns the last COPY alone. Its build backend (setuptools) comes from the index too.
WORKDIR /app
COPY --chown=fcrn:fcrn pyproject.toml README.md ./
COPY --chown=fcrn:fcrn pipeline/__init__.py pipeline/
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-deps -e . \
    && rm -rf ./*.egg-info

COPY --chown=fcrn:fcrn . .

# Numeric, so that a runtime can verify it is not root (Kubernetes' runAsNonRoot).
USER $UID
ENTRYPOINT ["fcrn-entrypoint"]
CMD ["dvc", "repro"]
