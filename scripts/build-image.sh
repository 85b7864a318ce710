#!/usr/bin/env bash
# Builds the StackVault sidecar image locally, without a container registry:
#   1. the runtime base ($STACKVAULT_RUNTIME_BASE, default stackvault/runtime-base:<suite>-<recipe>): Debian's
#      essential packages (no apt: variant "essential" with merged /usr set up by mmdebstrap's hook instead of the
#      usrmerge package) plus libcurl4 libzstd1 libxxhash0 libssl3 libarchive13 ca-certificates tzdata, made with
#      mmdebstrap | docker import from the mirrors apt on this machine uses (read at run time;
#      STACKVAULT_DEBIAN_MIRROR=<uri> overrides), without what nothing in the image uses (docs but copyrights, man
#      pages, message catalogs, perl and debconf, iconv's gconv modules). <suite> is this machine's release (the
#      binary is built here, so its libraries' versions must match). Cached: <recipe> is a hash of this recipe, so
#      the base is built only when its tag is missing (or, for an overridden tag, was made from another recipe).
#   2. the binary: scripts/build-binary.sh (`swift build -c release --static-swift-stdlib`, scratch path
#      .build/image, stripped); or, with --binary PATH, an existing build (stripped of debug info), plus the
#      libraries it needs that the base lacks (a debug build's Swift runtime), at the paths its RUNPATH names.
#   3. the repository's Dockerfile up to its target `runtime-base` on that base, with the legacy builder (it stops
#      at the target, so the Swift image of the `build` stage is never pulled), then scripts/prebuilt.Dockerfile,
#      which adds the binary. Cached: skipped when the tag exists and was built from the same binary, libraries,
#      Dockerfiles and base.
# Prerequisites, checked up front (all that are missing are named at once, with how to get them):
#   always                    a Docker daemon answering at $DOCKER_HOST (default unix:///var/run/docker.sock)
#   when the base is built    root (mmdebstrap --mode=root), mmdebstrap, apt sources (or STACKVAULT_DEBIAN_MIRROR)
#   unless --base-only        strip (binutils)
#   without --binary          Swift (the version Package.swift's swift-tools-version names, or newer) as `swift` on
#                             PATH, pkg-config and the -dev packages of Package.swift's system libraries
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
suite="${STACKVAULT_IMAGE_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
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

# Builds $base. The customize hook removes what nothing in the image runs: perl and debconf (only maintainer
# scripts use them, and the image has no apt) and glibc's gconv modules (iconv to charsets other than the built-in
# UTF-8/UTF-16/UTF-32/ASCII ones; libarchive converts tar names between UTF-8 and the locale's C.UTF-8, and the
# helper image of DockerClient+Helper.swift runs the same binary without them).
build_base() {
  local dir tarball log imported merged=()
  mapfile -t sources < <(apt_sources)
  dir="$(mktemp -d)"; tarball="$dir/rootfs.tar"; log="$dir/mmdebstrap.log"
  say "building runtime base $base ($suite: ${packages[*]}) with mmdebstrap ..."
  # To a file, not a pipe, and in its own session: on a write error mmdebstrap signals its whole process group.
  [ -d /usr/share/mmdebstrap/hooks/merged-usr ] && merged=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  if ! setsid --wait mmdebstrap --variant=essential "${merged[@]}" --mode=root \
        --include="$(IFS=,; echo "${packages[*]}")" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --dpkgopt='path-exclude=/usr/share/bash-completion/*' --dpkgopt='path-exclude=/usr/share/gdb/*' \
        --dpkgopt='path-exclude=/usr/share/gcc/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log \
            "$1"/usr/bin/perl* "$1"/usr/lib/*-linux-gnu/perl-base "$1"/usr/share/perl5 "$1"/var/cache/debconf \
            "$1"/usr/lib/*-linux-gnu/gconv' \
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
recipe="$( { echo "$suite ${packages[*]}"; declare -f build_base; } | sha256sum | cut -c1-12)"
# The recipe in the default tag: worktrees or checkouts with different recipes do not rebuild each other's base.
base="${STACKVAULT_RUNTIME_BASE:-stackvault/runtime-base:$suite-$recipe}"

# Prerequisites, all checked before anything is built; each missing one is named with how to get it.
missing=()
docker_ok=0
if ! command -v docker >/dev/null; then
  missing+=("docker: the Docker CLI and daemon (Debian: apt-get install docker.io)")
elif docker info >/dev/null 2>&1; then
  docker_ok=1
else
  missing+=("a Docker daemon answering at $DOCKER_HOST (start dockerd; run as root or as a member of group docker)")
fi
need_base=1
if [ "$docker_ok" = 1 ] && [ "${FORCE_REBUILD:-0}" != 1 ] \
   && [ "$(label_of "$base" org.stackvault.runtime-base.recipe)" = "$recipe" ]; then
  need_base=0
fi
if [ "$need_base" = 1 ]; then
  [ "$(id -u)" = 0 ] || missing+=("root, to build the runtime base $base (mmdebstrap --mode=root):"\
" sudo env PATH=\"\$PATH\" bash scripts/build-image.sh (env PATH keeps swift on the PATH)")
  command -v mmdebstrap >/dev/null || missing+=("mmdebstrap, to build the runtime base (apt-get install mmdebstrap)")
  [ -n "$(apt_sources)" ] || missing+=("apt sources in /etc/apt for $suite (or set STACKVAULT_DEBIAN_MIRROR=<uri>)")
  command -v setsid >/dev/null || missing+=("setsid (apt-get install util-linux)")
fi
if [ "$base_only" = 0 ]; then
  command -v strip >/dev/null || missing+=("strip (apt-get install binutils)")
  if [ -n "$binary" ]; then
    [ -f "$binary" ] && [ -x "$binary" ] || missing+=("--binary $binary: no such executable file")
  else
    tools="$(sed -n '1s|^// swift-tools-version: *\([0-9.]*\).*|\1|p' "$repo/Package.swift")"
    version="$( (swift --version 2>/dev/null || true) | sed -n 's/.*Swift version \([0-9][0-9.]*\).*/\1/p' | head -n 1)"
    if [ -z "$version" ] || [ "$(printf '%s\n' "$tools" "$version" | sort -V | head -n 1)" != "$tools" ]; then
      missing+=("Swift $tools or newer as \`swift\` on PATH (found: ${version:-none};"\
" https://www.swift.org/install/linux/)")
    fi
    if ! command -v pkg-config >/dev/null; then
      missing+=("pkg-config and the -dev packages Package.swift links (sudo bash scripts/install-deps.sh --build-only)")
    else
      # Package.swift's system libraries: each pkgConfig name with the Debian package that provides it.
      dev="$(awk -F'"' '/pkgConfig:/ { module = $2 }
                        /providers: \[\.apt\(\[/ && module { print module, $2; module = "" }' "$repo/Package.swift" \
             | while read -r module package; do
               pkg-config --exists "$module" || printf '%s ' "$package"; done)"
      [ -z "$dev" ] || missing+=("the -dev packages ${dev% } (sudo bash scripts/install-deps.sh --build-only)")
    fi
  fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "ERROR: missing prerequisites:"
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

if [ "$need_base" = 1 ]; then build_base; else say "runtime base $base is up to date"; fi
[ "$base_only" = 1 ] && exit 0

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin"
if [ -z "$binary" ]; then
  say "scripts/build-binary.sh (swift build -c release --static-swift-stdlib) ..."
  bash "$repo/scripts/build-binary.sh" "$context/rootfs/usr/local/bin/stackvault" .build/image
  binary="$context/rootfs/usr/local/bin/stackvault"
else
  cp "$binary" "$context/rootfs/usr/local/bin/stackvault"
  strip --strip-debug "$context/rootfs/usr/local/bin/stackvault"
fi
# Libraries the binary needs that the base does not have (none for a static-stdlib build).
mapfile -t libraries < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
if [ "${#libraries[@]}" -gt 0 ]; then
  mapfile -t lacking < <(docker run --rm --network none "$base" sh -c 'for f; do [ -e "$f" ] || echo "$f"; done' \
                           sh "${libraries[@]}")
  for library in "${lacking[@]}"; do install -D -m 0644 "$library" "$context/rootfs$library"; done
  [ "${#lacking[@]}" -eq 0 ] || say "adding ${#lacking[@]} libraries the base lacks: ${lacking[*]##*/}"
fi
cp "$repo/Dockerfile" "$context/Dockerfile"
cp "$repo/scripts/prebuilt.Dockerfile" "$context/prebuilt.Dockerfile"

inputs="$( { (cd "$context" && find . -type f | LC_ALL=C sort | xargs sha256sum);
             docker image inspect --format '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)"
if [ "${FORCE_REBUILD:-0}" != 1 ] && [ "$(label_of "$tag" org.stackvault.image.inputs)" = "$inputs" ]; then
  say "image $tag is up to date ($((SECONDS - t0))s)"
  exit 0
fi
old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
# The Dockerfile's setup on the base (no context: the stage copies nothing), then the binary on top of it, by ID so
# that concurrent builds from other checkouts cannot swap it.
runtime_base="$(DOCKER_BUILDKIT=0 docker build -q --target runtime-base --build-arg "BASE_IMAGE=$base" \
                  - <"$context/Dockerfile" 2>"$context.log")" \
  || { cat "$context.log" >&2; rm -f "$context.log"; die "docker build --target runtime-base (Dockerfile) failed"; }
DOCKER_BUILDKIT=0 docker build -q -f "$context/prebuilt.Dockerfile" --build-arg "RUNTIME_BASE=$runtime_base" \
  --label "org.stackvault.image.inputs=$inputs" -t "$tag" "$context" >/dev/null 2>"$context.log" \
  || { cat "$context.log" >&2; rm -f "$context.log"; die "docker build of $tag (scripts/prebuilt.Dockerfile) failed"; }
rm -f "$context.log"
if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true   # the previous build, now untagged
fi
size="$(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}')"
say "built $tag in $((SECONDS - t0))s ($size)"
