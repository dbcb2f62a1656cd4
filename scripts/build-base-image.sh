#!/usr/bin/env bash
# Builds a small base image with no registry: debootstrap --variant=minbase of
# this machine's own distribution and release (so a muster binary built here
# finds the glibc it was linked against), trimmed (no apt caches, docs, man
# pages or locales), then `docker import`ed. The Dockerfile's final stage uses
# it where debian:bookworm-slim cannot be pulled:
#   --build-arg BASE_IMAGE=muster-base/debian:bookworm
#
#   bash scripts/build-base-image.sh [TAG]   (default muster-base/$ID:$VERSION_CODENAME
#                                             from /etc/os-release)
#
# Environment: SUITE (default: this machine's VERSION_CODENAME), MIRROR
# (default http://deb.debian.org/debian on Debian, http://archive.ubuntu.com/ubuntu
# on Ubuntu), FORCE=1 rebuilds an image that exists. Needs root (debootstrap)
# and about 90 s on a 2-core machine with a close Debian mirror.
set -euo pipefail

# shellcheck disable=SC1091
. /etc/os-release
tag=${1:-muster-base/${ID}:${VERSION_CODENAME}}
suite=${SUITE:-$VERSION_CODENAME}
case $ID in
  debian) default_mirror=http://deb.debian.org/debian ;;
  ubuntu) default_mirror=http://archive.ubuntu.com/ubuntu ;;
  *) default_mirror= ;;
esac
mirror=${MIRROR:-$default_mirror}
[ -n "$mirror" ] || {
  echo "build-base-image: no default mirror for $ID; set MIRROR= (and SUITE=)" >&2
  exit 1
}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "kept $tag (exists; FORCE=1 rebuilds)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-base-image: debootstrap needs root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-base-image: installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "build-base-image: debootstrap --variant=minbase $suite from $mirror"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  echo "build-base-image: debootstrap failed (mirror $mirror; set MIRROR=…)" >&2
  exit 1
fi
# Nothing in the image installs packages later: drop what only apt and
# humans read. The image keeps dpkg's database, so `dpkg -l` still lists it.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/var/log/* "$root"/tmp/* "$root"/root/.bash_history
chmod 1777 "$root/tmp"

tar -C "$root" --numeric-owner -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.description=\"$suite minbase (debootstrap from $mirror), built by muster's scripts/build-base-image.sh\"" \
    --message "debootstrap --variant=minbase $suite $mirror" \
    - "$tag" >/dev/null
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
