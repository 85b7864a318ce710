#!/usr/bin/env bash
# Runs StackVault from the source tree: installs the C libraries it builds against when missing (Debian, as
# root), builds in release mode, and runs `stackvault` with the given arguments (default: `backup`, which backs
# up every labelled stack on this host into ./backups unless BACKUP_TARGET / S3_BUCKET_URL say otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --build-only >&2
swift build -c release --product stackvault >&2
if [ "$#" -eq 0 ]; then set -- backup; fi
exec "$(swift build -c release --show-bin-path)/stackvault" "$@"
