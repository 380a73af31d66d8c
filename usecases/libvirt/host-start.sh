#!/usr/bin/env bash
# HOST side: the engine (file system, unix-socket channels) and rexec_server.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: host-start.sh --listen ADDR [--psk FILE] [--insecure-test-mode] [--dry-run]
  --listen ADDR   where the engine listens for DPU clients: vsock:any[:PORT] or tcp:IP[:PORT]
  --psk FILE      pre-shared key file (the DPU uses the same)
Whitelists: /etc/qtfs/whitelist (engine; [Mount] must list /home/VMs;/var/lib/libvirt;
/proc;/sys;/dev/pts;/dev/vfio and [Udsconnect] /var/lib/libvirt;/var/run/rexec) and
/etc/rexec/whitelist (rexec_server; see rexec-whitelist).
USAGE
}
LISTEN= PSK= INSECURE= DRY=
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=$2; shift 2 ;;
    --psk) PSK=$2; shift 2 ;;
    --insecure-test-mode) INSECURE=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "host-start.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$LISTEN" ] || { echo "host-start.sh: --listen is required" >&2; usage >&2; exit 2; }
run() { echo "+ $*"; [ -n "$DRY" ] || "$@"; }
args=(--listen "$LISTEN" --whitelist /etc/qtfs/whitelist)
[ -n "$PSK" ] && args+=(--psk-file "$PSK")
[ -n "$INSECURE" ] && args+=(--insecure-test-mode)
run mkdir -p /var/run/qtfs /var/run/rexec
if [ -n "$DRY" ]; then
  echo "+ engine ${args[*]} &"
else
  engine "${args[@]}" >/var/run/qtfs/engine.log 2>&1 &
  echo $! > /var/run/qtfs/engine.pid
fi
if command -v systemctl >/dev/null && systemctl cat rexec.service >/dev/null 2>&1; then
  run systemctl start rexec.service
elif [ -n "$DRY" ]; then
  echo "+ rexec_server --whitelist /etc/rexec/whitelist &"
else
  rexec_server --whitelist /etc/rexec/whitelist >/var/run/rexec/rexec_server.log 2>&1 &
  echo $! > /var/run/rexec/rexec_server.pid
fi
