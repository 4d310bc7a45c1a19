#!/usr/bin/env bash
# The image's base where no image registry can be reached (`make image` runs it): Debian 12 with
# its Python 3.11 and git, built from Debian's packages with debootstrap (needs root and a Debian
# mirror) and loaded with `docker import`. Nothing is done when IMAGE already exists.
#   deploy/debian-base.sh IMAGE    (DOCKER: the client; DEBIAN_MIRROR: the mirror)
set -euo pipefail
image=${1:?usage: deploy/debian-base.sh IMAGE}
docker=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if "$docker" image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "error: debootstrap not found: apt-get install debootstrap (or build with a BASE_IMAGE from a registry)" >&2
  exit 1
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/debian-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
# python3-venv: the image's venv; git: DVC in a mounted checkout; ca-certificates: pip and git.
debootstrap --variant=minbase --include=python3,python3-venv,git,ca-certificates \
  bookworm "$root/rootfs" "$mirror" >"$root/debootstrap.log" 2>&1 ||
  { tail -n 20 "$root/debootstrap.log" >&2; exit 1; }
rm -rf "$root"/rootfs/var/lib/apt/lists/* "$root"/rootfs/var/cache/apt/*
tar -C "$root/rootfs" -c . |
  "$docker" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
