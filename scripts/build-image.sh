#!/usr/bin/env bash
# Builds the muster image from the Dockerfile with no registry: the final
# stage's base comes from scripts/build-base-image.sh (debootstrap + docker
# import) and the binary from this machine (`--target host-binary`).
#
#   bash scripts/build-image.sh [BINARY] [TAG]
#
# BINARY defaults to target/release/muster, built with `cargo build --locked
# --release` first; TAG to muster:latest (the image compose/agents.yaml uses).
# The binary is copied into a small build context and stripped there when
# `strip` is available. An image of TAG built from the same binary on the same
# base is kept (FORCE=1 rebuilds). BASE_IMAGE picks another base; the default
# is this machine's distribution made by scripts/build-base-image.sh
# (muster-base/debian:bookworm here), built first when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-}
tag=${2:-muster:latest}
# shellcheck disable=SC1091
. /etc/os-release
base=${BASE_IMAGE:-muster-base/${ID}:${VERSION_CODENAME}}

if [ -z "$bin" ]; then
  echo "build-image: cargo build --locked --release"
  cargo build --locked --release --quiet --bin muster
  bin=target/release/muster
fi
[ -x "$bin" ] || {
  echo "build-image: $bin is not an executable file" >&2
  exit 1
}

if ! docker image inspect "$base" >/dev/null 2>&1; then
  case $base in
    muster-base/*) bash scripts/build-base-image.sh "$base" ;;
    *) echo "build-image: base image $base not found (no registry here?)" >&2; exit 1 ;;
  esac
fi

# What the image is made of: the binary and the base it sits on.
stamp="$(sha256sum "$bin" | cut -d' ' -f1)/$(docker image inspect --format '{{.Id}}' "$base")"
if [ "${FORCE:-0}" != 1 ] &&
  [ "$(docker image inspect --format '{{index .Config.Labels "muster.build-stamp"}}' "$tag" 2>/dev/null)" = "$stamp" ]; then
  echo "kept $tag (same binary and base; FORCE=1 rebuilds)"
  exit 0
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/target/release"
cp -L "$bin" "$ctx/target/release/muster"
if command -v strip >/dev/null 2>&1; then
  strip "$ctx/target/release/muster"
fi
cp Dockerfile "$ctx/Dockerfile"

# The legacy builder (no buildx here) prints a deprecation notice: show the
# output only when the build fails.
if ! docker build --target host-binary \
  --build-arg BASE_IMAGE="$base" \
  --label "muster.build-stamp=$stamp" \
  -t "$tag" "$ctx" >"$ctx.log" 2>&1; then
  cat "$ctx.log" >&2
  rm -f "$ctx.log"
  echo "build-image: docker build failed" >&2
  exit 1
fi
rm -f "$ctx.log"
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'), base $base)"
