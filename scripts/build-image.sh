#!/usr/bin/env bash
# Builds the StackVault sidecar image locally, without a container registry:
#   1. the runtime base ($STACKVAULT_RUNTIME_BASE, default stackvault/runtime-base:<suite>): Debian's essential
#      packages (no apt, no perl: variant "essential" with merged /usr set up by mmdebstrap's hook instead of the
#      usrmerge package) plus libcurl4 libzstd1 libxxhash0 libssl3 libarchive13 ca-certificates tzdata, made with mmdebstrap
#      | docker import from the mirrors apt on this machine uses (read at run time; STACKVAULT_DEBIAN_MIRROR=<uri>
#      overrides). <suite> is this machine's release (the binary is built here, so its libraries' versions must
#      match). Cached: rebuilt only
#      when the tag is missing or was made from another recipe.
#   2. the binary: `swift build -c release --static-swift-stdlib` (scratch path .build/image), stripped; or, with
#      --binary PATH, an existing build (stripped of debug info), plus the libraries it needs that the base lacks
#      (a debug build's Swift runtime), at the paths its RUNPATH names.
#   3. `docker build --target prebuilt` of the repository's Dockerfile, --build-arg BASE_IMAGE=<base>, with the
#      legacy builder (it stops at that stage, so the Swift image of the `build` stage is never pulled). Cached:
#      skipped when the tag exists and was built from the same binary, libraries, Dockerfile and base.
# Usage: scripts/build-image.sh [--tag TAG] [--binary PATH] [--base-only]
#   --tag TAG      image tag (default $STACKVAULT_IMAGE or stackvault:latest)
#   --binary PATH  use this stackvault binary instead of building one (the integration tests pass their build)
#   --base-only    only step 1 (scripts/testbed/up.sh runs this while the tests compile)
# FORCE_REBUILD=1 rebuilds everything. Prints what it did and how long it took.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

tag="${STACKVAULT_IMAGE:-stackvault:latest}" binary="" base_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --base-only) base_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
docker info >/dev/null 2>&1 || die "no Docker daemon answers at $DOCKER_HOST"
suite="${STACKVAULT_IMAGE_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
base="${STACKVAULT_RUNTIME_BASE:-stackvault/runtime-base:$suite}"
packages=(libcurl4 libzstd1 libxxhash0 libssl3 libarchive13 ca-certificates tzdata)
t0=$SECONDS

label_of() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# The apt sources to build from: an override, else this machine's own sources files (mmdebstrap pastes each into
# the new system's sources).
apt_sources() {
  local mirror="${STACKVAULT_DEBIAN_MIRROR:-${STACKVAULT_TEST_DEBIAN_MIRROR:-}}" f
  if [ -n "$mirror" ]; then echo "deb $mirror $suite main"; return; fi
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && grep -qE '^[[:space:]]*(deb[[:space:]]|Types:)' "$f" && echo "$f"
  done
  return 0
}

build_base() {
  local recipe dir tarball log imported
  recipe="$( { echo "$suite ${packages[*]}"; declare -f build_base; } | sha256sum | cut -c1-16)"
  if [ "${FORCE_REBUILD:-0}" != 1 ] && [ "$(label_of "$base" org.stackvault.runtime-base.recipe)" = "$recipe" ]; then
    say "runtime base $base is up to date"
    return
  fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
  mapfile -t sources < <(apt_sources)
  [ "${#sources[@]}" -gt 0 ] || die "found no apt sources in /etc/apt (set STACKVAULT_DEBIAN_MIRROR)"
  dir="$(mktemp -d)"; tarball="$dir/rootfs.tar"; log="$dir/mmdebstrap.log"
  say "building runtime base $base ($suite: ${packages[*]}) with mmdebstrap ..."
  # To a file, not a pipe, and in its own session: on a write error mmdebstrap signals its whole process group.
  local merged=()
  [ -d /usr/share/mmdebstrap/hooks/merged-usr ] && merged=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  if ! setsid --wait mmdebstrap --variant=essential "${merged[@]}" --mode=root \
        --include="$(IFS=,; echo "${packages[*]}")" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log' \
        "$suite" "$tarball" "${sources[@]}" >"$log" 2>&1 </dev/null; then
    tail -n 30 "$log" >&2; rm -rf "$dir"; die "mmdebstrap failed"
  fi
  imported="$(docker import -m "stackvault runtime base ($suite)" "$tarball")"
  printf 'FROM %s\nLABEL org.stackvault.runtime-base.recipe=%s\nCMD ["/bin/bash"]\n' "$imported" "$recipe" \
    | DOCKER_BUILDKIT=0 docker build -q -t "$base" - >/dev/null 2>"$log.build" \
    || { cat "$log.build" >&2; die "docker build of $base failed"; }
  rm -rf "$dir"
  say "built $base in $((SECONDS - t0))s ($(docker image inspect --format '{{.Size}}' "$base" \
    | awk '{printf "%d MB", $1/1e6}'))"
}

build_base
[ "$base_only" = 1 ] && exit 0

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin"
if [ -z "$binary" ]; then
  say "swift build -c release --static-swift-stdlib ..."
  (cd "$repo" && swift build -c release --static-swift-stdlib --product stackvault --scratch-path .build/image >&2)
  binary="$(cd "$repo" && swift build -c release --static-swift-stdlib --scratch-path .build/image \
              --show-bin-path)/stackvault"
fi
[ -x "$binary" ] || die "$binary is not an executable"
cp "$binary" "$context/rootfs/usr/local/bin/stackvault"
if command -v strip >/dev/null; then strip --strip-debug "$context/rootfs/usr/local/bin/stackvault"; fi
# Libraries the binary needs that the base does not have (none for a static-stdlib build).
mapfile -t libraries < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
if [ "${#libraries[@]}" -gt 0 ]; then
  mapfile -t missing < <(docker run --rm --network none "$base" sh -c 'for f; do [ -e "$f" ] || echo "$f"; done' \
                           sh "${libraries[@]}")
  for library in "${missing[@]}"; do install -D -m 0644 "$library" "$context/rootfs$library"; done
  [ "${#missing[@]}" -eq 0 ] || say "adding ${#missing[@]} libraries the base lacks: ${missing[*]##*/}"
fi
cp "$repo/Dockerfile" "$context/Dockerfile"

inputs="$( { (cd "$context" && find . -type f | LC_ALL=C sort | xargs sha256sum);
             docker image inspect --format '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)"
if [ "${FORCE_REBUILD:-0}" != 1 ] && [ "$(label_of "$tag" org.stackvault.image.inputs)" = "$inputs" ]; then
  say "image $tag is up to date ($((SECONDS - t0))s)"
  exit 0
fi
old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
DOCKER_BUILDKIT=0 docker build -q --target prebuilt --build-arg "BASE_IMAGE=$base" \
  --label "org.stackvault.image.inputs=$inputs" -t "$tag" "$context" >/dev/null 2>"$context.log" \
  || { cat "$context.log" >&2; rm -f "$context.log"; die "docker build of $tag failed"; }
rm -f "$context.log"
if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true   # the previous build, now untagged
fi
size="$(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}')"
say "built $tag in $((SECONDS - t0))s ($size)"
