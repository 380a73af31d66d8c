#!/usr/bin/env bash
# DPU side: undoes dpu-start.sh (our equivalent of the original's virt_umount.sh). Stop
# libvirtd, virtlogd and the VMs first. Unlike the original, failures are reported (and
# counted in the exit status) instead of being silently ignored.
set -uo pipefail

ROOT=/root/new_root CLIENT=fuse DRY=
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) echo "Usage: dpu-stop.sh [--root DIR] [--client fuse|kmod] [--dry-run]"; exit 0 ;;
    *) echo "dpu-stop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
fail=0
run() { echo "+ $*"; [ -n "$DRY" ] || "$@" || { echo "dpu-stop.sh: failed: $*" >&2; fail=$((fail + 1)); }; }
mounted() { [ -n "$DRY" ] || mountpoint -q "$1"; }
umnt() { if mounted "$1"; then run umount "$1"; fi; }

# The proxy first: nothing new may be relayed while mounts go away.
if [ -f /var/run/qtfs/udsproxyd.pid ]; then
  run kill -TERM "$(cat /var/run/qtfs/udsproxyd.pid)"
  [ -n "$DRY" ] || rm -f /var/run/qtfs/udsproxyd.pid
fi
# Reverse order of dpu-start.sh.
for m in dev/vfio dev/pts sys proc dev/shm dev/mqueue dev/hugepages dev var/lib/libvirt home/VMs \
         etc var/cache var/lib var/run local/sys local/proc local_proc; do
  umnt "$ROOT/$m"
done
if [ "$CLIENT" = kmod ]; then run rmmod qtfs; fi
exit $fail
