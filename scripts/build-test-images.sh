#!/usr/bin/env bash
# Builds the images muster's tests and example stack use, with no registry:
# every image is FROM scratch with binaries copied from this Debian machine.
#   muster-test/busybox:1   busybox-static (sh, nc, wget, httpd, sleep, …)
#   muster-test/redis:1     redis-server + its libraries (ldd) + busybox
#   muster-test/nats:1      nats-server + busybox
# Re-running is cheap: an image that exists is kept unless FORCE=1.
set -euo pipefail

tag_prefix=${MUSTER_TEST_IMAGE_PREFIX:-muster-test}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

exists() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

# Copies a dynamically linked binary and every library ldd lists into $2/rootfs.
copy_with_libs() {
  local bin=$1 root=$2
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  ldd "$bin" | grep -oE '/[^ ]+' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

busybox_root() {
  local root=$1
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/data"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh ls cat echo sleep nc wget httpd true false test kill ps mkdir rm touch env id date grep sed head tail; do
    ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  echo 'nogroup:x:65534:' >>"$root/etc/group"
}

build() {
  local name=$1 dir=$2
  docker build -q -t "$name" --label muster.test=1 "$dir" >/dev/null
  echo "built $name"
}

img="$tag_prefix/busybox:1"
if ! exists "$img"; then
  d=$work/busybox
  busybox_root "$d/rootfs"
  cat >"$d/Dockerfile" <<'DOCKER'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["sh"]
DOCKER
  build "$img" "$d"
fi

img="$tag_prefix/redis:1"
if ! exists "$img"; then
  d=$work/redis
  busybox_root "$d/rootfs"
  copy_with_libs "$(command -v redis-server)" "$d/rootfs"
  cat >"$d/Dockerfile" <<DOCKER
FROM scratch
COPY rootfs/ /
ENV PATH=/bin:/usr/bin
WORKDIR /data
EXPOSE 6379
CMD ["$(command -v redis-server)", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
DOCKER
  build "$img" "$d"
fi

img="$tag_prefix/nats:1"
if ! exists "$img"; then
  d=$work/nats
  busybox_root "$d/rootfs"
  copy_with_libs "$(command -v nats-server)" "$d/rootfs"
  mkdir -p "$d/rootfs/data/jetstream"
  cat >"$d/Dockerfile" <<DOCKER
FROM scratch
COPY rootfs/ /
ENV PATH=/bin:/usr/bin
EXPOSE 4222 8222
CMD ["$(command -v nats-server)", "-js", "-sd", "/data/jetstream", "-m", "8222"]
DOCKER
  build "$img" "$d"
fi
