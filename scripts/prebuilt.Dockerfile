# The sidecar image from a binary built on the host: scripts/build-image.sh builds the `runtime-base` stage of the
# repository's Dockerfile (all of the image's setup) and passes its image ID as RUNTIME_BASE; the build context
# holds rootfs/ with usr/local/bin/stackvault and, for a debug build, the Swift runtime libraries it needs.
# A file of its own because the legacy builder (Docker 20.10) runs every stage of a Dockerfile up to the target:
# a stage copying rootfs/ in the main Dockerfile breaks `docker build .` there.
ARG RUNTIME_BASE
FROM ${RUNTIME_BASE}
COPY rootfs/ /
RUN stackvault --version
