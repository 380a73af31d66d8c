#!/usr/bin/env bash
# HOST side of the libvirt offload: the engine (file system and unix-socket channels for
# the DPU) and rexec_server (runs the VMs' qemu). Every step is checked; a failure ends
# the script with a non-zero status and the reason. Install first: install.sh host.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: host-start.sh --listen ADDR (--psk FILE | --insecure-test-mode) [options]
  --listen ADDR        where the engine listens for the DPU: vsock:any[:PORT] (production)
                       or tcp:IP:PORT (labs)
  --psk FILE           pre-shared key file (the DPU uses the same key)
  --insecure-test-mode no key (loopback tests only)
  --qemu-group GROUP   the group libvirt runs qemu as (qemu.conf `group`); members may ask
                       rexec_server to run whitelisted binaries, as themselves (default:
                       libvirt-qemu on Debian, qemu on openEuler, whichever exists)
  --eof-grace SECS     rexec_server --eof-grace: how long a VM survives its proxied
                       connection ending (an engine restart); 0 = at once (default 0)
  --engine-args ARGS   more engine arguments (e.g. "--cores 4"), split on spaces
  --dry-run            print the commands without running them
Files: /etc/qtfs/whitelist (engine), /etc/rexec/whitelist (rexec_server),
/etc/qtfs/libvirt.conf (EMULATOR= the HOST's qemu); install.sh host installs all three.
Logs: /var/run/qtfs/engine.log, /var/run/rexec/rexec_server.log. Stop: host-stop.sh.
USAGE
}
LISTEN= PSK= INSECURE= DRY= GROUP= EOF_GRACE=0 ENGINE_ARGS=
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=$2; shift 2 ;;
    --psk) PSK=$2; shift 2 ;;
    --insecure-test-mode) INSECURE=1; shift ;;
    --qemu-group) GROUP=$2; shift 2 ;;
    --eof-grace) EOF_GRACE=$2; shift 2 ;;
    --engine-args) ENGINE_ARGS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "host-start.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
die() { echo "host-start.sh: $*" >&2; exit 1; }
[ -n "$LISTEN" ] || { echo "host-start.sh: --listen is required" >&2; usage >&2; exit 2; }
[ -n "$PSK" ] || [ -n "$INSECURE" ] || { echo "host-start.sh: --psk FILE or --insecure-test-mode" >&2; exit 2; }
run() { echo "+ $*"; [ -n "$DRY" ] || "$@" || die "failed: $*"; }
if [ -z "$GROUP" ]; then
  for g in libvirt-qemu qemu; do getent group "$g" >/dev/null && { GROUP=$g; break; }; done
  [ -n "$GROUP" ] || die "no libvirt-qemu or qemu group on this HOST; pass --qemu-group (qemu.conf's group)"
fi
getent group "$GROUP" >/dev/null || die "group $GROUP does not exist"
for f in /etc/qtfs/whitelist /etc/rexec/whitelist /etc/qtfs/libvirt.conf; do
  [ -e "$f" ] || [ -n "$DRY" ] || die "$f is missing (run usecases/libvirt/install.sh host)"
done
for b in engine rexec_server; do command -v "$b" >/dev/null || [ -n "$DRY" ] || die "$b is not in PATH (install.sh host)"; done
emu=$(sed -n 's/^EMULATOR=//p' /etc/qtfs/libvirt.conf 2>/dev/null | tail -n 1)
[ -x "$emu" ] || [ -n "$DRY" ] || die "EMULATOR=$emu in /etc/qtfs/libvirt.conf is not an executable"

# Exports and state directories exist on the HOST (the DPU mounts them).
run mkdir -p /home/VMs /var/lib/libvirt/qemu /var/run/qtfs /var/run/rexec
# rexec_server's directory: traversable by the qemu group, nothing else.
run chgrp "$GROUP" /var/run/rexec
run chmod 0710 /var/run/rexec

# wait_for WHAT TEST...: up to 10 s for a condition, else the log says why.
wait_for() {
  local what=$1 log=$2 pid=$3; shift 3
  [ -n "$DRY" ] && return 0
  for _ in $(seq 100); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$what exited (log: $log)"; }
    sleep 0.1
  done
  tail -n 20 "$log" >&2; die "$what did not come up in 10 s (log: $log)"
}

args=(--listen "$LISTEN" --whitelist /etc/qtfs/whitelist)
# The kernel client mounts the HOST's /dev/pts for consoles: its ptys (136-143) and ptmx
# may be opened there, no other device node anywhere.
for major in 136 137 138 139 140 141 142 143; do args+=(--allow-devices "/dev/pts:c:$major:*"); done
args+=(--allow-devices "/dev/pts:c:5:2")
# libvirtd's sched_{get,set}affinity on the domain pid and the vCPU thread ids (vcpuinfo,
# vcpupin, emulatorpin) reach qemu through libudsproxy.so and udsproxyd: SCHED_* are
# served only to processes started through rexec_server whose name is in [Kill] (qemu).
args+=(--allow-kill)
[ -n "$PSK" ] && args+=(--psk-file "$PSK")
[ -n "$INSECURE" ] && args+=(--insecure-test-mode)
# shellcheck disable=SC2206 # extra engine arguments are words on purpose
[ -n "$ENGINE_ARGS" ] && args+=($ENGINE_ARGS)
echo "+ engine ${args[*]} &"
if [ -z "$DRY" ]; then
  setsid engine "${args[@]}" </dev/null >/var/run/qtfs/engine.log 2>&1 &
  echo $! > /var/run/qtfs/engine.pid
  wait_for engine /var/run/qtfs/engine.log "$!" test -S /var/run/qtfs/engine.sock
fi
rargs=(--whitelist /etc/rexec/whitelist --allow-group "$GROUP" --eof-grace "$EOF_GRACE")
echo "+ rexec_server ${rargs[*]} &"
if [ -z "$DRY" ]; then
  setsid rexec_server "${rargs[@]}" </dev/null >/var/run/rexec/rexec_server.log 2>&1 &
  echo $! > /var/run/rexec/rexec_server.pid
  wait_for rexec_server /var/run/rexec/rexec_server.log "$!" test -S /var/run/rexec/rexec_uds.sock
fi
echo "HOST ready: engine on $LISTEN, rexec_server for group $GROUP, emulator $emu"
