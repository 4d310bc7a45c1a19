#!/bin/sh
# The image's entry point: check the working tree (/app: the image's copy, or a checkout mounted
# over it) before running the command, so that a bad mount ends in one `error:` line that says
# what to do (the stages' convention, pipeline/stage.py) instead of DVC's or git's complaints.
set -eu
here=$(pwd)
if [ ! -f dvc.yaml ]; then
  echo "error: $here has no dvc.yaml: mount a checkout of the project there" \
    "(-v \"\$PWD\":$here), or mount nothing to use the image's copy" >&2
  exit 1
fi
owner=$(stat -c %u .)
if [ "$owner" != "$(id -u)" ]; then
  if [ "$owner" = 0 ]; then  # the image's user is never root: the checkout must change hands
    fix="chown -R $(id -u) the checkout, or build the image with --build-arg UID=<its owner>"
  else
    fix="run it with --user $owner, or build the image with --build-arg UID=$owner"
  fi
  echo "error: $here belongs to uid $owner, this container runs as uid $(id -u): $fix" >&2
  exit 1
fi
if [ ! -w . ]; then
  echo "error: $here is not writable: mount the checkout read-write (no :ro)" >&2
  exit 1
fi
exec "$@"
