#!/usr/bin/env bash
# Builds the local test images (there is no container registry on CI machines), each only when
# its tag is missing or was built from an older recipe (label org.stackvault.testbed.recipe holds a
# hash of its build function, flags and the image's files under scripts/testbed/images/<name>/):
#   $STACKVAULT_TEST_POSTGRES_IMAGE  (stackvault-test/postgres:15)     Debian bookworm + postgresql-15
#   $STACKVAULT_TEST_MARIADB_IMAGE   (stackvault-test/mariadb:10.11)   Debian bookworm + mariadb-server
#   $STACKVAULT_TEST_BUSYBOX_IMAGE   (stackvault-test/busybox:latest)  busybox-static + applet links
# The database images are `mmdebstrap --variant=minbase ... | docker import` with an entrypoint
# mimicking the official images (see images/*/docker-entrypoint.sh). The Debian mirror is the one
# apt on this machine uses, read at run time from /etc/apt/sources.list.d/*.sources (or
# /etc/apt/sources.list); set STACKVAULT_TEST_DEBIAN_MIRROR=<uri> to override.
# FORCE_REBUILD=1 rebuilds everything. Prints how long each build took.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
suite=bookworm

# Writes a deb822 sources file for $suite (main, updates, security as configured on the host).
debian_sources() {
  local out="$TESTBED_DIR/debian-$suite.sources"
  if [ -n "${STACKVAULT_TEST_DEBIAN_MIRROR:-}" ]; then
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$STACKVAULT_TEST_DEBIAN_MIRROR" "$suite" >"$out"
  else
    : >"$out"
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      # Keep enabled deb stanzas of this suite (or its -updates/-security) with component main.
      awk -v suite="$suite" 'BEGIN { RS=""; ORS="\n\n" }
        {
          types=""; suites=""; comps=""; enabled="yes"
          n = split($0, lines, "\n")
          for (i = 1; i <= n; i++) {
            l = lines[i]
            if (l ~ /^Types:/)      { sub(/^Types:[ \t]*/, "", l); types = " " l " " }
            if (l ~ /^Suites:/)     { sub(/^Suites:[ \t]*/, "", l); suites = " " l " " }
            if (l ~ /^Components:/) { sub(/^Components:[ \t]*/, "", l); comps = " " l " " }
            if (l ~ /^Enabled:/)    { sub(/^Enabled:[ \t]*/, "", l); enabled = tolower(l) }
          }
          if (types ~ / deb / && comps ~ / main / && enabled != "no" &&
              suites ~ (" " suite "(-updates|-security|/updates)? ")) print
        }' "$f" >>"$out"
    done
    if ! grep -q '^URIs:' "$out" && [ -f /etc/apt/sources.list ]; then
      # One-line style fallback.
      grep -E "^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+[[:space:]]+$suite(-updates|-security)?[[:space:]].*\bmain\b" \
        /etc/apt/sources.list >"$out" || true
    fi
  fi
  [ -s "$out" ] || tb_die "found no Debian $suite mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (set STACKVAULT_TEST_DEBIAN_MIRROR)"
  echo "$out"
}

recipe_hash() {  # recipe_hash NAME: hash of the build code for NAME and its files under images/NAME
  {
    declare -f "build_$1" rootfs_image; declare -p mmdebstrap_common suite
    if [ -d "$here/images/$1" ]; then find "$here/images/$1" -type f | LC_ALL=C sort | xargs cat; fi
  } | sha256sum | cut -c1-16
}

image_is_current() {  # image_is_current TAG HASH
  [ "${FORCE_REBUILD:-0}" = 1 ] && return 1
  local have
  have="$(docker image inspect --format '{{index .Config.Labels "org.stackvault.testbed.recipe"}}' "$1" 2>/dev/null)" || return 1
  [ "$have" = "$2" ]
}

# Common mmdebstrap flags: minimal, no docs/man/locales, no apt lists left behind.
mmdebstrap_common=(
  --variant=minbase --mode=root
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*'
)

# rootfs_image TAG HASH DOCKERFILE_BODY MMDEBSTRAP_ARGS...
# mmdebstrap writes a tarball (never to a pipe: on a write error mmdebstrap SIGHUPs its whole
# process group, hence also setsid), which is `docker import`ed; then a two-line Dockerfile FROM
# the imported id adds the metadata (`docker import --change` cannot set STOPSIGNAL on 20.10).
rootfs_image() {
  local tag="$1" hash="$2" dockerfile="$3"; shift 3
  local name="${tag//[^a-zA-Z0-9_.-]/_}" t0=$SECONDS old base
  local dir="$TESTBED_DIR/build"; mkdir -p "$dir"
  local tarball="$dir/$name.tar" log="$dir/$name.log"
  tb_log "building $tag (mmdebstrap, log: $log) ..."
  old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  if ! setsid --wait mmdebstrap "${mmdebstrap_common[@]}" "$@" "$suite" "$tarball" "$(debian_sources)" \
         >"$log" 2>&1 </dev/null; then
    tb_log "mmdebstrap failed for $tag; log tail:"; tail -n 30 "$log" >&2; rm -f "$tarball"; exit 1
  fi
  base="$(docker import -m "stackvault test rootfs for $tag" "$tarball")"
  rm -f "$tarball"
  printf 'FROM %s\n%s\nLABEL org.stackvault.testbed.recipe=%s\n' "$base" "$dockerfile" "$hash" \
    | DOCKER_BUILDKIT=0 docker build -q -t "$tag" - >/dev/null 2>"$log.build" \
    || { cat "$log.build" >&2; tb_die "docker build of $tag failed"; }
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true   # the previous build, now untagged
  fi
  tb_log "built $tag in $((SECONDS - t0))s ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
}

build_postgres() {
  local tag="$STACKVAULT_TEST_POSTGRES_IMAGE" hash; hash="$(recipe_hash postgres)"
  if image_is_current "$tag" "$hash"; then tb_log "image $tag is up to date"; return; fi
  rootfs_image "$tag" "$hash" \
'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV LANG=C.UTF-8
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]' \
    --include=postgresql-15 \
    --customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15' \
    --customize-hook="copy-in $here/images/postgres/docker-entrypoint.sh /usr/local/bin" \
    --customize-hook='mkdir -p "$1"/docker-entrypoint-initdb.d "$1"/var/lib/postgresql/data && chroot "$1" chown postgres:postgres /var/lib/postgresql/data'
}

build_mariadb() {
  local tag="$STACKVAULT_TEST_MARIADB_IMAGE" hash; hash="$(recipe_hash mariadb)"
  if image_is_current "$tag" "$hash"; then tb_log "image $tag is up to date"; return; fi
  rootfs_image "$tag" "$hash" \
'ENV LANG=C.UTF-8
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]' \
    --include=mariadb-server,mariadb-client \
    --customize-hook='rm -rf "$1"/var/lib/mysql && mkdir -p "$1"/var/lib/mysql "$1"/run/mysqld "$1"/docker-entrypoint-initdb.d && chroot "$1" chown mysql:mysql /var/lib/mysql /run/mysqld' \
    --customize-hook='printf "[mariadbd]\nbind-address = 0.0.0.0\nskip-name-resolve\n" >"$1"/etc/mysql/mariadb.conf.d/99-stackvault-test.cnf' \
    --customize-hook="copy-in $here/images/mariadb/docker-entrypoint.sh /usr/local/bin"
}

build_busybox() {
  local tag="$STACKVAULT_TEST_BUSYBOX_IMAGE" hash bb=/bin/busybox
  [ -x "$bb" ] || tb_die "$bb missing (apt-get install busybox-static)"
  LC_ALL=C grep -qa '/ld-linux' "$bb" && tb_die "$bb is dynamically linked (install busybox-static)"
  hash="$( { recipe_hash busybox; sha256sum "$bb"; } | sha256sum | cut -c1-16)"
  if image_is_current "$tag" "$hash"; then tb_log "image $tag is up to date"; return; fi
  local t0=$SECONDS root old; root="$(mktemp -d)"
  old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$bb" "$root/bin/busybox"
  local applet
  for applet in $("$bb" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/sh"]' \
      --change "LABEL org.stackvault.testbed.recipe=$hash" \
      - "$tag" >/dev/null
  rm -rf "$root"
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true   # the previous build, now untagged
  fi
  tb_log "built $tag in $((SECONDS - t0))s"
}

export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
docker info >/dev/null 2>&1 || tb_die "docker daemon not reachable (run scripts/testbed/start-docker.sh)"
t_all=$SECONDS
build_busybox
build_postgres
build_mariadb
tb_log "images ready in $((SECONDS - t_all))s"
