#!/usr/bin/env bash
# DPU side of the libvirt offload (our equivalent of the original's virt_start.sh):
# qtfs mounts of the HOST's libvirt state, images, /proc, /sys, /dev/pts, /dev/vfio into
# the libvirt root, DPU-local proc/sys/dev, and udsproxyd for libvirt's and rexec's unix
# sockets. Every step is printed; --dry-run only prints. See README.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: dpu-start.sh --host ADDR [options]
  --host ADDR          the HOST engine: vsock:CID[:PORT] or tcp:IP:PORT (required)
  --psk FILE           pre-shared key file (required unless --insecure-test-mode)
  --insecure-test-mode talk to the engine without a key (loopback tests only)
  --root DIR           root of libvirt's view (default /root/new_root)
  --client fuse|kmod   qtfs client: qtfs-fuse (default) or the qtfs.ko kernel module
  --ko PATH            qtfs.ko to insmod (with --client kmod; default: modprobe qtfs)
  --kmod-args ARGS     module parameters naming the HOST, passed verbatim to insmod/modprobe
  --dry-run            print the commands without running them
USAGE
}

HOST= PSK= INSECURE= ROOT=/root/new_root CLIENT=fuse KO= KMOD_ARGS= DRY=
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST=$2; shift 2 ;;
    --psk) PSK=$2; shift 2 ;;
    --insecure-test-mode) INSECURE=1; shift ;;
    --root) ROOT=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --ko) KO=$2; shift 2 ;;
    --kmod-args) KMOD_ARGS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dpu-start.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$HOST" ] || { echo "dpu-start.sh: --host is required" >&2; usage >&2; exit 2; }
[ -n "$PSK" ] || [ -n "$INSECURE" ] || { echo "dpu-start.sh: --psk FILE or --insecure-test-mode" >&2; exit 2; }
case "$CLIENT" in fuse|kmod) ;; *) echo "dpu-start.sh: --client fuse|kmod" >&2; exit 2 ;; esac

run() { echo "+ $*"; [ -n "$DRY" ] || "$@"; }
auth=(); [ -n "$PSK" ] && auth=(--psk-file "$PSK"); [ -n "$INSECURE" ] && auth+=(--insecure-test-mode)

# qtfs mount of HOST directory $1 at $ROOT$2 (extra options after).
qmount() {
  local remote=$1 local=$ROOT$2; shift 2
  run mkdir -p "$local"
  if [ "$CLIENT" = kmod ]; then
    run mount -t qtfs "$@" "$remote" "$local"
  else
    run qtfs-fuse --server "$HOST" "${auth[@]}" "$@" "$remote" "$local"
  fi
}

# 1. the qtfs client
if [ "$CLIENT" = kmod ]; then
  # shellcheck disable=SC2086 # module parameters are words on purpose
  if [ -n "$KO" ]; then run insmod "$KO" $KMOD_ARGS; else run modprobe qtfs $KMOD_ARGS; fi
fi
# 2. no competing native libvirtd
if command -v systemctl >/dev/null; then run systemctl stop libvirtd || true; fi
# 3-5. DPU-local proc and sys inside the root
run mkdir -p "$ROOT/local_proc" "$ROOT/local/proc" "$ROOT/local/sys"
run mount -t proc proc "$ROOT/local_proc"
run mount -t proc proc "$ROOT/local/proc"
run mount -t sysfs sysfs "$ROOT/local/sys"
# 6. shared sockets (libvirt, rexec pid files, qtfs/udsproxyd sockets), caches, config
for d in /var/run /var/lib /var/cache /etc; do
  run mkdir -p "$ROOT$d"
  run mount --bind "$d" "$ROOT$d"
done
# 7-8. images and libvirt state live on the HOST
qmount /home/VMs /home/VMs
qmount /var/lib/libvirt /var/lib/libvirt
# 9. DPU-local device tree
run mkdir -p "$ROOT/dev"
run mount -t devtmpfs devtmpfs "$ROOT/dev"
run mkdir -p "$ROOT/dev/hugepages" "$ROOT/dev/mqueue" "$ROOT/dev/shm"
run mount -t hugetlbfs hugetlbfs "$ROOT/dev/hugepages"
run mount -t mqueue mqueue "$ROOT/dev/mqueue"
run mount -t tmpfs tmpfs "$ROOT/dev/shm"
# 10-14. the HOST's /proc (kmod: with local-process redirection), /sys (cgroups of the
# VMs), /dev/pts (virsh console) and /dev/vfio
if [ "$CLIENT" = kmod ]; then qmount /proc /proc -o proc; else qmount /proc /proc; fi
qmount /sys /sys
qmount /dev/pts /dev/pts
qmount /dev/vfio /dev/vfio
# 15. the unix-socket proxy, with libvirt's view of the file system: libvirt's sockets
# under /var/lib/libvirt and rexec_server's socket are on the HOST.
run mkdir -p /var/run/qtfs
if [ -n "$DRY" ]; then
  echo "+ chroot $ROOT udsproxyd --server $HOST ${auth[*]} --udsconnect /var/lib/libvirt --udsconnect /var/run/rexec &"
else
  echo "+ chroot $ROOT udsproxyd --server $HOST ${auth[*]} --udsconnect /var/lib/libvirt --udsconnect /var/run/rexec &"
  chroot "$ROOT" udsproxyd --server "$HOST" "${auth[@]}" --udsconnect /var/lib/libvirt --udsconnect /var/run/rexec \
    >/var/run/qtfs/udsproxyd.log 2>&1 &
  echo $! > /var/run/qtfs/udsproxyd.pid
fi
cat <<NEXT
DPU ready. Start libvirt inside the root:
  chroot $ROOT
  LD_PRELOAD=/usr/lib64/libudsproxy.so virtlogd -d
  LD_PRELOAD=/usr/lib64/libudsproxy.so libvirtd -d
with /usr/bin/qemu-kvm (and /usr/libexec/qemu-kvm) being usecases/libvirt/qemu-kvm.
NEXT
