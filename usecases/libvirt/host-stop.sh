#!/usr/bin/env bash
# HOST side: stops rexec_server and the engine started by host-start.sh, and waits for
# them to end. rexec_server leaves running commands alone on SIGTERM; stop the VMs first
# (virsh destroy on the DPU) unless you mean to keep them.
set -uo pipefail
DRY=
case "${1:-}" in
  --dry-run) DRY=1 ;;
  -h|--help) echo "Usage: host-stop.sh [--dry-run]"; exit 0 ;;
  "") ;;
  *) echo "host-stop.sh: unknown argument $1" >&2; exit 2 ;;
esac
fail=0
# stop NAME PIDFILE: SIGTERM, then up to 10 s for the process to go (a zombie counts as gone).
stop() {
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  echo "+ kill -TERM $pid ($name)"
  [ -n "$DRY" ] && return 0
  kill -TERM "$pid" 2>/dev/null || { rm -f "$pf"; return 0; }
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
    echo "host-stop.sh: $name ($pid) did not stop in 10 s" >&2; fail=$((fail + 1)); return
  fi
  rm -f "$pf"
}
stop rexec_server /var/run/rexec/rexec_server.pid
stop engine /var/run/qtfs/engine.pid
exit $fail
