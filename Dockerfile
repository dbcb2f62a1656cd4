# muster as a container: the sidecar of a compose stack (`muster serve`), and
# the image agents run `muster check` / `muster demo-agent` from.
#
# Two ways to build it (docs/readme/ship.md has both in full):
#
#   online, from source (the default target, `release`):
#     docker build -t muster:latest .
#
#   with no registry, from a binary built on this machine and a base image
#   made locally (scripts/build-base-image.sh: debootstrap + docker import):
#     cargo build --locked --release
#     docker build --target host-binary \
#       --build-arg BASE_IMAGE=muster-base/debian:bookworm -t muster:latest .
#   (scripts/build-image.sh does both steps.)
#
# Stages are ordered for the legacy builder too (Docker 20.10 without buildx
# builds every stage up to the target, in file order): `runtime` and
# `host-binary` come before the Rust builder, so `--target host-binary` never
# needs the Rust image. With BuildKit only the target's stages are built anyway.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.89-slim-bookworm

# --- runtime: everything but the binary ---------------------------------------
FROM ${BASE_IMAGE} AS runtime
# A fixed non-root user; give it the Docker socket's group with `group_add`.
RUN groupadd --system --gid 10001 muster \
 && useradd --system --uid 10001 --gid muster --home-dir /var/lib/muster \
      --create-home --shell /usr/sbin/nologin muster \
 && mkdir -p /stack
# The health endpoint must be reachable from outside the container.
ENV MUSTER_LISTEN=0.0.0.0:8686 \
    HOME=/var/lib/muster \
    XDG_STATE_HOME=/var/lib/muster
EXPOSE 8686
# Mount the stack's compose file(s) here; `muster serve` finds compose.yaml.
WORKDIR /stack
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["muster", "check", "--self"]
CMD ["muster", "serve"]

# --- host-binary: a binary built outside Docker -------------------------------
FROM runtime AS host-binary
# Relative to the build context; .dockerignore lets only this file of target/
# in. (No --chmod: the legacy builder refuses it; cargo output is 0755.)
ARG MUSTER_BINARY=target/release/muster
COPY ${MUSTER_BINARY} /usr/local/bin/muster

# --- builder: cargo, for the online build -------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY protocol protocol
COPY benches benches
COPY src src
RUN cargo build --locked --release --bin muster \
 && install -m 0755 target/release/muster /muster

# --- release: the default target ----------------------------------------------
FROM runtime AS release
COPY --from=builder /muster /usr/local/bin/muster
