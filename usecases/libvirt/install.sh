#!/usr/bin/env bash
# Installs one side of the libvirt offload from a built tree (cargo build --release).
#   install.sh host   engine, rexec_server, qtcfg/qtinfo, the HOST emulator launcher,
#                     /etc/qtfs/whitelist and /etc/rexec/whitelist (kept if present),
#                     /etc/qtfs/libvirt.conf (the HOST emulator, kept if present)
#   install.sh dpu    qtfs-fuse, udsproxyd, libudsproxy.so, rexec, qtcfg/qtinfo and the
#                     qemu-kvm trampoline that libvirt's <emulator> names
# Options: --prefix DIR (default /usr/local), --bin DIR (built binaries, default
# target/release of this tree), --emulator PATH (host: the real qemu; default: the first
# of /usr/libexec/qemu-kvm, /usr/bin/qemu-kvm, /usr/bin/qemu-system-$(uname -m)),
# --force (overwrite configuration files), --dry-run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
SIDE= PREFIX=/usr/local BIN=${CARGO_TARGET_DIR:-$HERE/../../target}/release EMULATOR= FORCE= DRY=
while [ $# -gt 0 ]; do
  case "$1" in
    host|dpu) SIDE=$1; shift ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --emulator) EMULATOR=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$SIDE" ] || { echo "install.sh: say which side: host or dpu" >&2; usage >&2; exit 2; }
run() { echo "+ $*"; [ -n "$DRY" ] || "$@"; }
need_bin() {
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || [ -n "$DRY" ] || {
      echo "install.sh: $BIN/$b is missing: build first (cargo build --release --workspace)" >&2; exit 1; }
  done
}
# Copies $1 to $2 with @PREFIX@ replaced, mode $3.
subst() { echo "+ install $1 -> $2 (mode $3)"; [ -n "$DRY" ] || {
  sed "s|@PREFIX@|$PREFIX|g" "$1" > "$2.tmp" && chmod "$3" "$2.tmp" && mv "$2.tmp" "$2"; }; }
# Installs a configuration file unless one is there (or --force).
conf() {
  if [ -e "$2" ] && [ -z "$FORCE" ]; then echo "  keeping $2 (use --force to replace it)"; return; fi
  subst "$1" "$2" "$3"
}
LIBEXEC=$PREFIX/libexec/qtfs
run mkdir -p "$PREFIX/bin" "$LIBEXEC"
if [ "$SIDE" = host ]; then
  need_bin engine rexec_server qtcfg qtinfo
  for b in engine rexec_server qtcfg qtinfo; do run install -m 0755 "$BIN/$b" "$PREFIX/bin/$b"; done
  subst "$HERE/qemu-host" "$LIBEXEC/qemu-host" 0755
  run mkdir -p /etc/qtfs /etc/rexec
  conf "$HERE/qtfs-whitelist" /etc/qtfs/whitelist 0644
  conf "$HERE/rexec-whitelist" /etc/rexec/whitelist 0400
  if [ -z "$EMULATOR" ]; then
    for e in /usr/libexec/qemu-kvm /usr/bin/qemu-kvm "/usr/bin/qemu-system-$(uname -m)"; do
      [ -x "$e" ] && { EMULATOR=$e; break; }
    done
  fi
  [ -n "$EMULATOR" ] || { echo "install.sh: no qemu found on this HOST; install it or pass --emulator PATH" >&2; exit 1; }
  if [ -e /etc/qtfs/libvirt.conf ] && [ -z "$FORCE" ]; then
    echo "  keeping /etc/qtfs/libvirt.conf ($(grep '^EMULATOR=' /etc/qtfs/libvirt.conf || echo 'no EMULATOR='))"
  else
    echo "+ write /etc/qtfs/libvirt.conf: EMULATOR=$EMULATOR"
    [ -n "$DRY" ] || printf '%s\n' "# HOST side of the libvirt offload: the emulator the DPU's qemu-kvm trampoline runs." \
      "# Read by $LIBEXEC/qemu-host (the only libvirt entry of /etc/rexec/whitelist)." \
      "EMULATOR=$EMULATOR" > /etc/qtfs/libvirt.conf
  fi
else
  need_bin qtfs-fuse udsproxyd rexec qtcfg qtinfo libudsproxy.so
  for b in qtfs-fuse udsproxyd rexec qtcfg qtinfo; do run install -m 0755 "$BIN/$b" "$PREFIX/bin/$b"; done
  run mkdir -p "$PREFIX/lib/qtfs"
  run install -m 0755 "$BIN/libudsproxy.so" "$PREFIX/lib/qtfs/libudsproxy.so"
  subst "$HERE/qemu-kvm" "$LIBEXEC/qemu-kvm" 0755
  echo "Domain XML on this DPU: <emulator>$LIBEXEC/qemu-kvm</emulator>"
fi
