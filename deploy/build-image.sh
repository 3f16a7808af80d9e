#!/usr/bin/env bash
# Build the tierspayant image without a container registry or a daemon:
#   1. the base image from Debian packages (mmdebstrap: Debian 12 minbase + python3),
#   2. a wheelhouse of the platform and its dependencies (pip wheel, with the machine's
#      own package index settings),
#   3. deploy/Containerfile with buildah (vfs storage, chroot isolation: no daemon, no
#      user namespaces needed).
# Needs: mmdebstrap, buildah (Debian packages), the project's virtualenv.
# Usage: deploy/build-image.sh [TAG]   (default: localhost/tierspayant:<pyproject version>)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/tierspayant-base:bookworm
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
TAG=${1:-localhost/tierspayant:$version}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# python3-async-timeout: redis imports it on Python < 3.11.3 (Debian 12 has 3.11.2); the
# virtualenv sees it through --system-site-packages (deploy/Containerfile).
PACKAGES=python3,python3-venv,python3-async-timeout,ca-certificates,tzdata
built_with=$(buildah inspect --type image --format '{{index .ImageAnnotations "tierspayant.base-packages"}}' "$BASE" 2>/dev/null || true)
if [ "$built_with" != "$PACKAGES" ]; then
  echo "== base image $BASE from Debian packages ($PACKAGES)"
  mmdebstrap --variant=minbase --include="$PACKAGES" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$work/base.tar" "$MIRROR"
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$work/base.tar" /
  buildah config --env LANG=C.UTF-8 --cmd /bin/bash \
    --annotation "tierspayant.base-packages=$PACKAGES" "$ctr"
  buildah commit --rm "$ctr" "$BASE"
fi

echo "== wheelhouse"
# The platform and every dependency, resolved here once; the image installs exactly this
# set with --no-deps (see deploy/Containerfile for why).
rm -rf deploy/.wheelhouse
"$PYTHON" -m pip wheel --quiet --wheel-dir deploy/.wheelhouse .

echo "== image $TAG"
buildah bud --layers=false -f deploy/Containerfile -t "$TAG" .
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$TAG"
