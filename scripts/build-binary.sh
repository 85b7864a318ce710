#!/usr/bin/env bash
# Builds the stackvault binary the sidecar image ships and installs it at OUT: `swift build -c release
# --static-swift-stdlib` (the Swift runtime and Foundation inside the binary, so the image needs only Debian's C
# libraries), stripped of its symbol table and debug info (the image has no debugger or symbolicating backtracer
# that could use them). The Dockerfile's `build` stage and scripts/build-image.sh both run it.
# Usage: scripts/build-binary.sh OUT [SCRATCH_PATH]   (SCRATCH_PATH: swift build's --scratch-path, default .build)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT [SCRATCH_PATH]" >&2; exit 2; }
out="$1" scratch="${2:-.build}"
cd "$(dirname "$0")/.."
flags=(-c release --static-swift-stdlib --product stackvault --scratch-path "$scratch")
swift build "${flags[@]}" >&2
install -D -m 0755 "$(swift build "${flags[@]}" --show-bin-path)/stackvault" "$out"
strip --strip-all "$out"
