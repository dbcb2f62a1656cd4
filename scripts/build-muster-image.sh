#!/usr/bin/env bash
# Builds muster:dev (FROM scratch, no registry): the muster binary with the
# libraries ldd lists, plus busybox for a shell. Usage: build-muster-image.sh BINARY [TAG]
set -euo pipefail
bin=${1:?usage: build-muster-image.sh BINARY [TAG]}
tag=${2:-muster:dev}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/usr/local/bin" "$root/tmp" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for applet in sh cat echo sleep ls; do ln -sf busybox "$root/bin/$applet"; done
cp -L "$bin" "$root/usr/local/bin/muster"
ldd "$bin" | grep -oE '/[^ ]+' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
echo 'muster:x:10001:10001:muster:/tmp:/bin/sh' >"$root/etc/passwd"
echo 'muster:x:10001:' >"$root/etc/group"
cat >"$work/Dockerfile" <<'DOCKER'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin
USER 10001:10001
ENTRYPOINT []
CMD ["muster", "--help"]
DOCKER
docker build -q -t "$tag" --label muster.test=1 "$work" >/dev/null 2>&1
echo "built $tag"
