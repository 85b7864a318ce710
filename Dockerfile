# StackVault sidecar image: `stackvault daemon` with the Docker socket mounted.
#
# Two ways to build it:
#   - Where a registry is reachable (BuildKit, the default builder since Docker 23):
#         docker build -t stackvault .
#     builds the binary in the Swift image (stage `build`) and runs it on Debian slim (stage `runtime`).
#   - Without a registry (the CI machines): scripts/build-image.sh. It builds the runtime base from Debian packages
#     with mmdebstrap, builds the binary on the host, and builds the target `prebuilt` with the legacy builder,
#     which stops at that stage and so never needs the Swift image.
#
# The binary is linked with --static-swift-stdlib: the Swift runtime and Foundation are inside it; the image only
# needs the C libraries it links (libcurl, libzstd, libxxhash, OpenSSL, libarchive), CA certificates for HTTPS targets and
# the tz database for TZ.
#
# It runs as root: the Docker socket gives root on the host to whoever can use it anyway, and a non-root user
# would need the socket's group id of each host. See docs/operations.md "Security" for what that means.

ARG BASE_IMAGE=debian:bookworm-slim
ARG SWIFT_IMAGE=swift:6.1-bookworm

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

# The binary (and, for a debug build, its Swift runtime libraries) from the build context's rootfs/.
FROM runtime-base AS prebuilt
COPY rootfs/ /
RUN stackvault --version

FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4-openssl-dev libzstd-dev libxxhash-dev libssl-dev libarchive-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --static-swift-stdlib --product stackvault \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/stackvault" /rootfs/usr/local/bin/stackvault \
    && strip /rootfs/usr/local/bin/stackvault

FROM runtime-base AS runtime
COPY --from=build /rootfs/ /
RUN stackvault --version
