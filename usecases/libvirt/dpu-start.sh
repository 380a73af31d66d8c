#!/usr/bin/env bash
# DPU side of the libvirt offload (our equivalent of the original's virt_start.sh): builds
# the root libvirtd runs in — the DPU's own file system with the HOST's libvirt state and
# images mounted through qtfs at the same paths — starts udsproxyd in it, configures
# libvirt's qemu driver for a remote qemu, and (--start-libvirt) starts virtlogd and
# libvirtd there. Every step is printed and checked: the first failure ends the script
# with a non-zero status and the reason. --dry-run only prints. See README.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: dpu-start.sh --host ADDR (--psk FILE | --insecure-test-mode) [options]
  --host ADDR          the HOST engine: vsock:CID[:PORT] (production) or tcp:IP:PORT
  --psk FILE           pre-shared key file (the HOST's --psk)
  --insecure-test-mode talk to the engine without a key (loopback tests only)
  --root DIR           the root libvirtd runs in (default /root/new_root). If DIR is not
                       a mount point yet, it becomes a bind mount of this DPU's own /
                       (so libvirt, its configuration and our tools are the DPU's); mount
                       a prepared root file system there first to use another one
  --client fuse|kmod   qtfs client: qtfs-fuse (default) or the qtfs.ko kernel module
  --ko PATH            qtfs.ko to insmod (with --client kmod; default: modprobe qtfs)
  --kmod-args ARGS     module parameters naming the HOST, passed verbatim to insmod/modprobe
  --host-kvm           the HOST has KVM usable by qemu: put a placeholder /dev/kvm into
                       the root's /dev so that libvirt's capability cache agrees with the
                       HOST's probe (otherwise libvirt re-probes qemu on every lookup)
  --prefix DIR         where install.sh dpu put our files (default /usr/local)
  --start-libvirt      also start virtlogd and libvirtd in the root (libudsproxy.so
                       preloaded) and wait for libvirt's socket
  --dry-run            print the commands without running them
Stop with dpu-stop.sh (same --root/--client). Logs: /var/run/qtfs/udsproxyd.log,
/var/log/libvirt/libvirtd.log in the root.
USAGE
}

HOST= PSK= INSECURE= ROOT=/root/new_root CLIENT=fuse KO= KMOD_ARGS= DRY= HOST_KVM= PREFIX=/usr/local START_LIBVIRT=
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST=$2; shift 2 ;;
    --psk) PSK=$2; shift 2 ;;
    --insecure-test-mode) INSECURE=1; shift ;;
    --root) ROOT=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --ko) KO=$2; shift 2 ;;
    --kmod-args) KMOD_ARGS=$2; shift 2 ;;
    --host-kvm) HOST_KVM=1; shift ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --start-libvirt) START_LIBVIRT=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dpu-start.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$HOST" ] || { echo "dpu-start.sh: --host is required" >&2; usage >&2; exit 2; }
[ -n "$PSK" ] || [ -n "$INSECURE" ] || { echo "dpu-start.sh: --psk FILE or --insecure-test-mode" >&2; exit 2; }
case "$CLIENT" in fuse|kmod) ;; *) echo "dpu-start.sh: --client fuse|kmod" >&2; exit 2 ;; esac
ROOT=${ROOT%/}
[ -n "$ROOT" ] || { echo "dpu-start.sh: --root / is not supported (libvirt needs a root of its own)" >&2; exit 2; }

die() { echo "dpu-start.sh: $*" >&2; exit 1; }
run() { echo "+ $*"; [ -n "$DRY" ] || "$@" || die "failed: $*"; }
auth=(); [ -n "$PSK" ] && auth=(--psk-file "$PSK"); [ -n "$INSECURE" ] && auth+=(--insecure-test-mode)
# wait_for WHAT LOG PID TEST...: up to 10 s for a condition; the log says why not.
wait_for() {
  local what=$1 log=$2 pid=$3; shift 3
  [ -n "$DRY" ] && return 0
  for _ in $(seq 100); do
    "$@" && return 0
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$what exited (log: $log)"; }
    sleep 0.1
  done
  tail -n 20 "$log" >&2; die "$what did not come up in 10 s (log: $log)"
}

# qmount REMOTE LOCAL [opts]: qtfs mount of HOST directory REMOTE at $ROOT/LOCAL.
qmount() {
  local remote=$1 local=$ROOT$2; shift 2
  run mkdir -p "$local"
  if [ "$CLIENT" = kmod ]; then
    run mount -t qtfs "$@" "$remote" "$local"
  else
    run qtfs-fuse --server "$HOST" "${auth[@]}" "$@" "$remote" "$local"
  fi
  [ -n "$DRY" ] || mountpoint -q "$local" || die "$local is not mounted after the qtfs mount of $remote"
}

PRELOAD=$PREFIX/lib/qtfs/libudsproxy.so
TRAMPOLINE=$PREFIX/libexec/qtfs/qemu-kvm
if [ -z "$DRY" ]; then
  for b in udsproxyd rexec; do command -v "$b" >/dev/null || die "$b is not in PATH (run install.sh dpu)"; done
  [ "$CLIENT" = kmod ] || command -v qtfs-fuse >/dev/null || die "qtfs-fuse is not in PATH (run install.sh dpu)"
  [ -z "$PSK" ] || [ -r "$PSK" ] || die "cannot read the key file $PSK"
  if mountpoint -q "$ROOT/var/lib/libvirt" 2>/dev/null; then
    die "$ROOT is set up already (run dpu-stop.sh first)"
  fi
fi

# 1. the qtfs client
if [ "$CLIENT" = kmod ]; then
  # shellcheck disable=SC2086 # module parameters are words on purpose
  if [ -n "$KO" ]; then run insmod "$KO" $KMOD_ARGS; else run modprobe qtfs $KMOD_ARGS; fi
fi
# 2. no competing native libvirtd
if [ -d /run/systemd/system ]; then
  echo "+ systemctl stop libvirtd virtqemud"; [ -n "$DRY" ] || systemctl stop libvirtd virtqemud 2>/dev/null || true
fi
# 3. the root: the DPU's own / unless a root file system was mounted there
run mkdir -p "$ROOT"
if [ -n "$DRY" ] || ! mountpoint -q "$ROOT"; then
  run mount --bind / "$ROOT"
  run mount --make-private "$ROOT"
fi
if [ -z "$DRY" ]; then
  for f in /usr/sbin/libvirtd /usr/sbin/virtlogd /etc/libvirt/qemu.conf "${TRAMPOLINE#/}" "${PRELOAD#/}"; do
    [ -e "$ROOT/${f#/}" ] || die "$ROOT/${f#/} is missing: the root needs libvirt's qemu driver and install.sh dpu"
  done
fi
# 4. the DPU's own dev and run inside the root (proc and sys are the HOST's, step 6).
# /var/run is a symlink to /run on Debian and openEuler: bind what it names, once.
run mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
if [ "$CLIENT" = kmod ]; then
  run mkdir -p "$ROOT/local/proc" "$ROOT/local/sys" "$ROOT/local_proc"
  run mount -t proc proc "$ROOT/local_proc"
  run mount -t proc proc "$ROOT/local/proc"
  run mount -t sysfs sysfs "$ROOT/local/sys"
fi
run mount --rbind /dev "$ROOT/dev"
run mount --make-rslave "$ROOT/dev"
RUN=$(readlink -f /var/run)
run mkdir -p "$ROOT$RUN"
run mount --bind "$RUN" "$ROOT$RUN"
# libvirt locks a console's device in /var/lock (-> /run/lock) before `virsh console`;
# systemd-tmpfiles makes it at boot, a bare /run (a container) may lack it
if [ -z "$DRY" ] && [ ! -d "$RUN/lock" ]; then run mkdir -p -m 1777 "$RUN/lock"; fi
# 5. images and libvirt state live on the HOST
qmount /home/VMs /home/VMs
qmount /var/lib/libvirt /var/lib/libvirt
# 6. the HOST's /proc with the DPU's own processes redirected (-o proc: self, the DPU's pids,
# and a local rexec's pid as its HOST process, from the pid map of step 8, which qtfs-fuse
# reads at /var/run/rexec/pids outside the root: the same directory) and the HOST's /sys
# (machine facts, the VMs' cgroups). Also the HOST's /dev/pts: qemu's console ptys, which
# `virsh console` opens by the HOST path QMP reports (qtfs-fuse -o relay relays them; it
# also hides the DPU's own ptmx inside the root, so run virsh console with a terminal made
# outside it). Kernel client: also /dev/vfio.
qmount /proc /proc -o proc
qmount /sys /sys
if [ "$CLIENT" = kmod ]; then
  qmount /dev/pts /dev/pts
  qmount /dev/vfio /dev/vfio
else
  qmount /dev/pts /dev/pts -o relay
fi
# 7. /dev/kvm tells libvirt whether the HOST's qemu can use KVM
if [ -n "$HOST_KVM" ]; then
  if [ -n "$DRY" ] || [ ! -e "$ROOT/dev/kvm" ]; then
    run mknod -m 0660 "$ROOT/dev/kvm" c 10 232
    run chgrp kvm "$ROOT/dev/kvm"
  fi
elif [ -z "$DRY" ] && [ -e "$ROOT/dev/kvm" ]; then
  echo "dpu-start.sh: warning: this DPU has /dev/kvm but --host-kvm was not given; libvirt may re-probe qemu on every lookup" >&2
fi
# 8. rexec's pid map (local rexec pid -> HOST pid), writable by the qemu user
run mkdir -p "$ROOT$RUN/rexec/pids"
run chmod 1733 "$ROOT$RUN/rexec/pids"
# 9. libvirt's qemu driver with a remote qemu: no per-domain mount namespace (it would be
# the DPU's, and qemu is not here). Cgroups are the HOST's: libvirt finds them in the
# mount table that -o proc shows (the HOST's cgroup mounts beneath the qtfs /sys), makes
# the domain's cgroups there and writes pids that qtfs-fuse translates (the local rexec's
# pid to the HOST qemu's; client-fuse/src/cgroups.rs). The controllers that work through
# files: cpu, cpuacct, cpuset, memory, blkio ("devices" would need the HOST's device
# numbers, and is BPF on cgroup v2). The DPU's qemu.conf is kept; a copy with these two
# settings is bound over it.
CGROUP_CONTROLLERS='[ "cpu", "cpuacct", "cpuset", "memory", "blkio" ]'
run mkdir -p "$RUN/qtfs"
echo "+ $RUN/qtfs/qemu.conf = $ROOT/etc/libvirt/qemu.conf + namespaces = [ ], cgroup_controllers = $CGROUP_CONTROLLERS"
if [ -z "$DRY" ]; then
  { grep -Ev '^[[:space:]]*(namespaces|cgroup_controllers)[[:space:]]*=' "$ROOT/etc/libvirt/qemu.conf" || true
    printf '%s\n' "# dpu-start.sh: qemu runs on the HOST" "namespaces = [ ]" "cgroup_controllers = $CGROUP_CONTROLLERS"
  } > "$RUN/qtfs/qemu.conf" || die "cannot write $RUN/qtfs/qemu.conf"
fi
run mount --bind "$RUN/qtfs/qemu.conf" "$ROOT/etc/libvirt/qemu.conf"
# 10. the unix-socket proxy, with libvirt's view of the file system: libvirt's sockets
# under /var/lib/libvirt and rexec_server's socket are on the HOST
uargs=(--server "$HOST" "${auth[@]}" --udsconnect /var/lib/libvirt --udsconnect /var/run/rexec)
echo "+ chroot $ROOT udsproxyd ${uargs[*]} &"
if [ -z "$DRY" ]; then
  rm -f "$RUN/qtfs/remote_uds.sock"
  setsid chroot "$ROOT" udsproxyd "${uargs[@]}" </dev/null >"$RUN/qtfs/udsproxyd.log" 2>&1 &
  echo $! > "$RUN/qtfs/udsproxyd.pid"
  wait_for udsproxyd "$RUN/qtfs/udsproxyd.log" "$!" test -S "$RUN/qtfs/remote_uds.sock"
fi
# 11. libvirt
if [ -n "$START_LIBVIRT" ]; then
  lv=(env "LD_PRELOAD=$PRELOAD" "LIBVIRT_LOG_OUTPUTS=3:file:/var/log/libvirt/libvirtd.log")
  run chroot "$ROOT" env "LD_PRELOAD=$PRELOAD" "LIBVIRT_LOG_OUTPUTS=3:file:/var/log/libvirt/virtlogd.log" virtlogd -d
  run chroot "$ROOT" "${lv[@]}" libvirtd -d
  wait_for libvirtd "$ROOT/var/log/libvirt/libvirtd.log" "" test -S "$RUN/libvirt/libvirt-sock"
  echo "DPU ready: libvirtd runs in $ROOT; use: chroot $ROOT virsh -c qemu:///system ..."
else
  cat <<NEXT
DPU ready. Start libvirt inside the root:
  chroot $ROOT env LD_PRELOAD=$PRELOAD virtlogd -d
  chroot $ROOT env LD_PRELOAD=$PRELOAD libvirtd -d
(or run dpu-start.sh with --start-libvirt). Domains name <emulator>$TRAMPOLINE</emulator>.
NEXT
fi
