# `make repro` and `make test` are the two commands in the README; each builds .venv if missing.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# No telemetry from our runs (DVC, MLflow, Great Expectations).
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := False

.PHONY: repro test test-fast lint docs lock hooks dvc mlflow fcrn-predict team-up team-down image

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

repro: $(STAMP)
	dvc repro

# The venv's tools without activating it: `make dvc ARGS="exp show"`, `make mlflow ARGS=ui`.
dvc mlflow fcrn-predict: $(STAMP)
	$@ $(ARGS)

lint: $(STAMP)
	ruff check .
	ruff format --check .

# The docs site (docs/*.md, API reference from docstrings); a broken reference or link fails.
docs: $(STAMP)
	sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Workers (pytest-xdist): as many as cores, each with its share of torch's threads, taking whole
# modules, the longest first (conftest.py). XDIST=0 runs it in one process.
XDIST ?= auto
test: lint
	pytest -n $(XDIST) --dist loadscope --no-loadscope-reorder

test-fast: $(STAMP)
	pytest -n $(XDIST) --dist loadscope --no-loadscope-reorder -m "not slow"

# Git hooks of .pre-commit-config.yaml: ruff, the dvc.yaml deps and dvc.lock checks, DVC's hooks.
hooks: $(STAMP)
	pre-commit install

# Re-pin every dependency (transitive ones included) after editing pyproject.toml; constraints.txt
# keeps the pins installable on every Python 3.11 patch release.
lock: $(STAMP)
	pip-compile --quiet --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		-c constraints.txt -o requirements.lock pyproject.toml

# The team stack on this machine (docs/team.md): PostgreSQL, SeaweedFS S3 and an authenticated
# MLflow server on 127.0.0.1, data in FCRN_TEAM_DIR (.team). Needs MLFLOW_AUTH_ADMIN_PASSWORD.
team-up: $(STAMP)
	python -m pipeline.team up

team-down: $(STAMP)
	python -m pipeline.team down

# The image `fcrn-depth` (docs/operations.md, "Docker"); needs a Docker engine, not the venv.
# BASE_IMAGE: a Debian 12 with Python 3.11. The default is built here from Debian's packages when
# the engine lacks it (deploy/debian-base.sh; root and debootstrap), so no image registry is
# needed; with one, e.g. `make image BASE_IMAGE=python:3.11-slim-bookworm` (the Dockerfile's own
# default). CA_BUNDLE, when the file exists, is the CA bundle pip trusts inside the build (what a
# TLS-intercepting proxy needs), passed as a BuildKit secret: never in a layer. IMAGE_UID owns a
# mounted checkout's new files: yours, or 1000 when you are root. DOCKER: a client with BuildKit
# (Debian's docker.io, or Docker with the buildx plugin).
DOCKER ?= docker
IMAGE ?= fcrn-depth
BASE_IMAGE ?= fcrn-base:bookworm
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_UID ?= $(patsubst 0,1000,$(shell id -u))
CA_SECRET = --secret id=ca,src="$(CA_BUNDLE)"
image:
	if [ "$(BASE_IMAGE)" = fcrn-base:bookworm ]; then DOCKER="$(DOCKER)" deploy/debian-base.sh "$(BASE_IMAGE)"; fi
	DOCKER_BUILDKIT=1 $(DOCKER) build --network host --progress plain \
		--build-arg BASE_IMAGE="$(BASE_IMAGE)" --build-arg UID="$(IMAGE_UID)" \
		$(if $(wildcard $(CA_BUNDLE)),$(CA_SECRET)) -t "$(IMAGE)" .
