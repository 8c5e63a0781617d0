#!/bin/bash
# Local stand-ins for the Dockerfile's base images, for hosts that cannot reach Docker Hub:
#   baler-base/debian:bookworm   debootstrap --variant=minbase bookworm (≈ debian:bookworm-slim)
#   baler-base/node:20-bookworm  that plus this host's Node 20 (≈ node:20-bookworm-slim)
# Idempotent: the rootfs tarball is made once (debootstrap needs only Debian's mirror) and kept
# in $BALER_BASE_CACHE; images the engine already has are left alone.
#
# Node: Debian 12 ships Node 18, and NodeSource is not reachable from here, so the node image
# gets a copy of the host's node binary and npm (the host is Debian 12 too; the binary needs
# only glibc, libstdc++ and libgcc_s, which the minbase rootfs has, and this is checked).
#
# Usage: scripts/docker/base-images.sh        (uses `docker`, honours DOCKER_HOST)
# Environment: BALER_BASE_CACHE (default <repo>/.cache/docker-base), DEBIAN_MIRROR,
#   BALER_DEBIAN_IMAGE, BALER_NODE_IMAGE (the tags; the Dockerfile's DEBIAN_IMAGE/NODE_IMAGE args),
#   BALER_BASE_EXTRA_CA (glob of PEM files node trusts beside its own CAs; default: the
#   host's /usr/local/share/ca-certificates/*.crt).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${BALER_BASE_CACHE:-$root/.cache/docker-base}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_image=${BALER_DEBIAN_IMAGE:-baler-base/debian:bookworm}
node_image=${BALER_NODE_IMAGE:-baler-base/node:20-bookworm}
tarball=$cache/debian-bookworm-minbase.tar
extra_ca_glob=${BALER_BASE_EXTRA_CA:-/usr/local/share/ca-certificates/*.crt}

say() { echo "[base-images] $*" >&2; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

work=
cleanup() {
  [ -n "$work" ] || return 0
  # debootstrap mounts /proc and /sys in the target; a failed run can leave them
  if [ -d "$work" ]; then
    { findmnt -rn -o TARGET | grep -F "$work/" | sort -r || true; } | while read -r mp; do umount -l "$mp" || true; done
    rm -rf "$work"
  fi
}
trap cleanup EXIT

mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  work=$(mktemp -d "$cache/.rootfs-XXXXXX")
  say "debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  rootfs=$work/rootfs
  # As the official images: updates and security too, no recommends, no package caches kept.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat >"$rootfs/etc/apt/apt.conf.d/90baler-image" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Binary::apt::APT::Keep-Downloaded-Packages "false";
APT
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar -C "$rootfs" --numeric-owner --xattrs -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  say "rootfs tarball: $tarball ($(du -h "$tarball" | cut -f1))"
  cleanup
  work=
fi

if ! has_image "$debian_image"; then
  say "importing $debian_image"
  docker import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$debian_image" >/dev/null
fi

if ! has_image "$node_image"; then
  node=$(command -v node)
  version=$("$node" --version)
  case "$version" in v20.*) ;; *) say "the host's node is $version, not Node 20"; exit 1 ;; esac
  # Only the C/C++ runtime the minbase rootfs has: anything else would be missing in the image.
  extra=$(ldd "$node" | awk '{print $1}' | grep -Ev '^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|lib(c|m|dl|pthread|rt)\.so\.[0-9]+|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$' || true)
  [ -z "$extra" ] || { say "the host's node needs libraries the base image lacks: $extra"; exit 1; }
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  work=$(mktemp -d "$cache/.node-XXXXXX")
  cp "$node" "$work/node"
  cp -a "$npm_dir" "$work/npm"
  # CAs this host adds to Debian's (e.g. a TLS-intercepting egress proxy's): npm in the image
  # builds must trust the registry as the host's npm does. Only in these local stand-ins.
  cat /dev/null $extra_ca_glob >"$work/extra-ca.pem"
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM $debian_image
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY extra-ca.pem /usr/local/share/baler/extra-ca.pem
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/baler/extra-ca.pem
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
CMD ["node"]
DOCKERFILE
  say "building $node_image (node $version from this host)"
  DOCKER_BUILDKIT=0 docker build -q -t "$node_image" "$work" >/dev/null
fi
say "ready: $debian_image $node_image"
