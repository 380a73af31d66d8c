#!/usr/bin/env bash
# HOST side: stops rexec_server and the engine. Running VMs are left alone (rexec_server
# exits on SIGTERM without touching its commands, like the unit's KillMode=process).
set -uo pipefail
DRY=
[ "${1:-}" = --dry-run ] && DRY=1
run() { echo "+ $*"; [ -n "$DRY" ] || "$@"; }
if command -v systemctl >/dev/null && systemctl is-active -q rexec.service 2>/dev/null; then
  run systemctl stop rexec.service
elif [ -f /var/run/rexec/rexec_server.pid ]; then
  run kill -TERM "$(cat /var/run/rexec/rexec_server.pid)"
  [ -n "$DRY" ] || rm -f /var/run/rexec/rexec_server.pid
fi
if [ -f /var/run/qtfs/engine.pid ]; then
  run kill -TERM "$(cat /var/run/qtfs/engine.pid)"
  [ -n "$DRY" ] || rm -f /var/run/qtfs/engine.pid
fi
