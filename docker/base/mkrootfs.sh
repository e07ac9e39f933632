#!/usr/bin/env bash
# Builds the root filesystem of Tornado's offline base image as a tar file, from a Debian mirror
# (no container registry needed). `tornado image build-base` runs it and `docker import`s the tar.
#
#   docker/base/mkrootfs.sh OUT.tar SUITE MIRROR
#
# MIRROR is required (no default): build-base passes $TORNADO_DEBIAN_MIRROR, its --mirror, or the
# Debian archive named by this machine's apt sources.
#
# Uses mmdebstrap (fast, streams a tar) and falls back to debootstrap. Needs root (both tools
# chroot). Packages: python3, python3-venv, ca-certificates, tini; docs, man pages and locales
# are left out; apt lists are removed.
set -euo pipefail

if [ -z "${1:-}" ] || [ -z "${2:-}" ] || [ -z "${3:-}" ]; then
  echo "usage: mkrootfs.sh OUT.tar SUITE MIRROR" >&2
  if [ -z "${3:-}" ]; then
    echo "no Debian mirror given: set TORNADO_DEBIAN_MIRROR or pass --mirror to 'tornado image build-base'" >&2
  fi
  exit 2
fi
out=$1
suite=$2
mirror=$3
packages=python3,python3-venv,ca-certificates,tini

if command -v mmdebstrap >/dev/null 2>&1; then
  exec mmdebstrap --quiet --variant=apt --include="$packages" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$suite" "$out" "$mirror"
fi

if command -v debootstrap >/dev/null 2>&1; then
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/tornado-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,info,locale}/*
  tar --numeric-owner -C "$rootfs" -cf "$out" .
  exit 0
fi

echo "neither mmdebstrap nor debootstrap is installed: apt-get install mmdebstrap (as root)" >&2
exit 127
