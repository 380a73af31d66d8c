#!/usr/bin/env bash
# DPU side: undoes dpu-start.sh (our equivalent of the original's virt_umount.sh): stops
# libvirtd and virtlogd if they run in the root (their VMs keep running on the HOST
# unless destroyed first), then udsproxyd, then unmounts in reverse order. Unlike the
# original, failures are reported and counted in the exit status.
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
ROOT=${ROOT%/}
RUN=$(readlink -f /var/run)
fail=0
run() { echo "+ $*"; [ -n "$DRY" ] || "$@" || { echo "dpu-stop.sh: failed: $*" >&2; fail=$((fail + 1)); }; }
mounted() { [ -n "$DRY" ] || mountpoint -q "$1"; }
umnt() { if mounted "$1"; then run umount "$@"; fi; }
gone() { [ ! -d "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# stop NAME PIDFILE: SIGTERM and up to 15 s for the process to go.
stop() {
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if [ -z "$pid" ] || gone "$pid"; then rm -f "$pf"; return 0; fi
  run kill -TERM "$pid"
  [ -n "$DRY" ] && return 0
  for _ in $(seq 150); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || { echo "dpu-stop.sh: $name ($pid) did not stop in 15 s" >&2; fail=$((fail + 1)); return; }
  rm -f "$pf"
}

stop libvirtd "$RUN/libvirtd.pid"
stop virtlogd "$RUN/virtlogd.pid"
# The proxy next: nothing new may be relayed while mounts go away.
stop udsproxyd "$RUN/qtfs/udsproxyd.pid"
# Reverse order of dpu-start.sh.
umnt "$ROOT/etc/libvirt/qemu.conf"
for m in dev/vfio dev/pts sys proc var/lib/libvirt home/VMs; do
  case $m in dev/*) [ "$CLIENT" = kmod ] || continue ;; esac
  umnt "$ROOT/$m"
done
umnt "$ROOT$RUN"
if mounted "$ROOT/dev"; then run umount -R "$ROOT/dev"; fi
for m in local/sys local/proc local_proc sys proc; do umnt "$ROOT/$m"; done
umnt "$ROOT"
if [ "$CLIENT" = kmod ]; then run rmmod qtfs; fi
exit $fail
