#!/usr/bin/env bash
# Builds the demo stack's Python agent image with no registry: the local base
# image (scripts/build-base-image.sh), Debian's python3 and python3-redis
# installed from .deb files fetched on this machine (the docker build itself
# needs no network), the muster_signal wheel built from clients/python and the
# example agent. Its healthcheck is `python3 -m muster_signal check` (the
# Python twin of `muster check --agent`), so the image needs no muster binary.
#
#   bash scripts/build-python-agent-image.sh [TAG]
#     (default TAG muster-demo/python-agent:dev; BASE_IMAGE overrides the base)
#
# Needs root (apt-get download) and the venv scripts/setup.sh makes (target/python).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-muster-demo/python-agent:dev}
# shellcheck disable=SC1091
. /etc/os-release
base=${BASE_IMAGE:-muster-base/${ID}:${VERSION_CODENAME}}
docker image inspect "$base" >/dev/null 2>&1 || bash scripts/build-base-image.sh "$base"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"

# What the base lacks for python3 + python3-redis, resolved by the base's own
# apt (offline, against this machine's package lists) and fetched here.
[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial -e auxfiles)" ] || apt-get update -qq
pkgs=$(docker run --rm --network none -v /var/lib/apt/lists:/var/lib/apt/lists:ro "$base" \
  apt-get install -s --no-install-recommends python3 python3-redis 2>/dev/null |
  awk '/^Inst /{ gsub(/[()]/, "", $3); print $2 "=" $3 }')
[ -n "$pkgs" ] || { echo "build-python-agent-image: could not resolve python3 for $base" >&2; exit 1; }
cache=target/python-agent-debs   # kept between builds
mkdir -p "$cache"
deb_of() { ls "$cache/${1%%=*}_$(echo "${1#*=}" | sed 's/:/%3a/')_"*.deb 2>/dev/null | head -n1; }
missing=()
for p in $pkgs; do [ -n "$(deb_of "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-python-agent-image: fetching ${#missing[@]} Debian packages"
  (cd "$cache" && apt-get download -qq "${missing[@]}" >/dev/null 2>&1) || {
    echo "build-python-agent-image: apt-get download failed: ${missing[*]}" >&2
    exit 1
  }
fi
# dpkg installs them one by one in apt's order (it honours Pre-Depends).
for p in $pkgs; do
  f=$(deb_of "$p")
  [ -n "$f" ] || { echo "build-python-agent-image: $p not downloaded" >&2; exit 1; }
  cp "$f" "$work/debs/"
  basename "$f" >>"$work/debs/order"
done

target/python/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$work" ./clients/python
mv "$work"/muster_signal-*.whl "$work/muster_signal.whl"
cp clients/python/examples/agent.py "$work/python-agent"
cat >"$work/Dockerfile" <<DOCKER
FROM $base
COPY debs/ /tmp/debs/
RUN cd /tmp/debs && for f in \$(cat order); do dpkg -i "\$f" >/dev/null; done && rm -rf /tmp/debs
COPY muster_signal.whl /tmp/
RUN python3 -m zipfile -e /tmp/muster_signal.whl /usr/lib/python3/dist-packages/ \\
 && rm /tmp/muster_signal.whl && python3 -c 'import muster_signal, redis.asyncio'
COPY python-agent /usr/local/bin/
USER 65534:65534
CMD ["python3", "/usr/local/bin/python-agent"]
DOCKER
docker build -q -t "$tag" --label muster.demo=1 "$work" >/dev/null
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
