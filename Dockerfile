# StackVault sidecar image: `stackvault daemon` with the Docker socket mounted.
#
# Two ways to build it (README "Quick start" step 1 says what each needs):
#   - Where Docker Hub and Debian's mirrors are reachable, with BuildKit or the legacy builder (Docker 20.10):
#         docker build -t stackvault .
#     builds the binary in the Swift image (stage `build`, scripts/build-binary.sh) and runs it on Debian slim
#     (stage `runtime`). Nothing but Docker is needed on the host.
#   - Without a registry (the CI machines): scripts/build-image.sh. It builds the runtime base from Debian packages
#     with mmdebstrap, builds the binary on the host, builds this file's target `runtime-base` on that base with the
#     legacy builder (which stops at the target, so the Swift image is never pulled) and adds the binary with
#     scripts/prebuilt.Dockerfile.
#
# The binary is linked with --static-swift-stdlib: the Swift runtime and Foundation are inside it; the image only
# needs the C libraries it links (libcurl, libzstd, libxxhash, OpenSSL, libarchive), CA certificates for HTTPS targets and
# the tz database for TZ.
#
# It runs as root: the Docker socket gives root on the host to whoever can use it anyway, and a non-root user
# would need the socket's group id of each host. See docs/operations.md "Security" for what that means.

ARG BASE_IMAGE=debian:bookworm-slim
# The toolchain CI builds and tests with (Package.swift allows 6.1 or newer).
ARG SWIFT_IMAGE=swift:6.3-bookworm

FROM ${BASE_IMAGE} AS runtime-base
# A base built by scripts/build-image.sh has these already; a plain Debian image gets them from apt.
RUN packages="libcurl4 libzstd1 libxxhash0 libssl3 libarchive13 ca-certificates tzdata"; \
    if ! dpkg -s $packages >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends $packages && rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /var/lib/stackvault /backups
# `./backups` (the default target) is /backups; mount a volume there, or set BACKUP_TARGET / S3_BUCKET_URL.
WORKDIR /
ENV STATE_FILE=/var/lib/stackvault/state.json
# stackvault handles SIGTERM itself (it is PID 1 and starts no child processes, so no init is needed).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1m --timeout=30s --start-period=1m --retries=1 CMD ["stackvault", "health"]
ENTRYPOINT ["stackvault"]
CMD ["daemon"]
LABEL org.opencontainers.image.title="StackVault" \
      org.opencontainers.image.description="Backup sidecar for Docker Compose stacks"

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN bash scripts/install-deps.sh --build-only
COPY . .
RUN bash scripts/build-binary.sh /rootfs/usr/local/bin/stackvault

FROM runtime-base AS runtime
COPY --from=build /rootfs/ /
RUN stackvault --version
