#!/usr/bin/env bash
# Runs StackVault from the source tree: installs the C libraries it builds against when missing (Debian, as
# root), builds in release mode, and runs `stackvault` with the given arguments (default: `backup`, which backs
# up every labelled stack on this host into ./backups unless BACKUP_TARGET / S3_BUCKET_URL say otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in libcurl4-openssl-dev libzstd-dev libssl-dev libarchive-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "run.sh: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
swift build -c release --product stackvault >&2
if [ "$#" -eq 0 ]; then set -- backup; fi
exec "$(swift build -c release --show-bin-path)/stackvault" "$@"
