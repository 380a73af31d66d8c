#!/usr/bin/env bash
# Installs what builds and tests need on a fresh Debian machine (idempotent, quiet when
# everything is present). Usage: scripts/setup.sh [test|demo|vm]
set -euo pipefail
want=(build-essential pkg-config fio fuse3 libfuse3-dev socat bindfs sshfs openssh-server openssh-client
      python3 keyutils iproute2 util-linux xxd attr acl libfontconfig1-dev fonts-dejavu-core)
if [ "${1:-}" = vm ] || [ "${1:-}" = test ]; then
  # dwarves: pahole, which Kbuild runs to add BTF to a module built against kernel
  # headers that ship vmlinux (Debian's 6.12 cloud headers do since 6.12.118).
  want+=(qemu-system-x86 busybox-static cpio kmod bc qemu-utils dwarves)
fi
missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
[ -e /dev/fuse ] || { mknod /dev/fuse c 10 229 && chmod 666 /dev/fuse; } 2>/dev/null || true
# Users mount through the set-uid fusermount3, which opens /dev/fuse as the user: it is
# 0666 wherever udev made it (Debian, openEuler); a container may have made it 0600.
if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
  echo "setup: /dev/fuse is mode $(stat -c %a /dev/fuse); making it 0666 as udev does"
  chmod 666 /dev/fuse || true
fi
