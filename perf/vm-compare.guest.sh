#!/bin/sh
# perf/vm-compare.guest.sh: the guest side of perf/vm-compare (busybox sh, run by the
# initramfs's /init as /vmtest/test.sh). Mounts the five systems, then runs each fio job
# on each system in turn (job by job, round by round: A, B, C, D, E, A, B, ...), and
# prints one line per run on the console:
#   VMPERF: JSON <case> <system> <round> <fio's JSON output on one line>
# and VMPERF: DONE at the end. Parameters: /vmtest/vmtest.conf (written by perf/vm-compare).
. /vmtest/vmtest.conf
KEYCTL=/usr/bin/keyctl
say() { echo "VMPERF: $*"; }
B=/bench
mkdir -p $B/tmpfs $B/qtfs $B/virtiofs $B/9p
mount -t tmpfs -o size=1g tmpfs $B/tmpfs || say "ERROR tmpfs mount"
mount -t virtiofs vfs $B/virtiofs || say "ERROR virtiofs mount: $(dmesg | tail -2)"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=$P9_MSIZE,cache=$P9_CACHE p9 $B/9p ||
  say "ERROR 9p mount: $(dmesg | tail -2)"
$KEYCTL add user qtfs:psk "$VM_PSK" @u > /dev/null

QT=none
# qtfs_on vsock|tcp: qtfs.ko loaded for that transport and mounted on $B/qtfs
qtfs_on() {
  [ "$QT" = "$1" ] && return 0
  if [ "$QT" != none ]; then umount $B/qtfs; rmmod qtfs; fi
  if [ "$1" = tcp ]; then
    insmod /modules/qtfs.ko qtfs_server_ip=$VM_SERVER qtfs_server_port=$VM_PORT qtfs_conn_max_conn=$QT_CONNS
  else
    insmod /modules/qtfs.ko qtfs_server_vsock_cid=2 qtfs_server_vsock_port=$VM_VSOCK_PORT qtfs_conn_max_conn=$QT_CONNS
  fi || { say "ERROR insmod $1"; return 1; }
  mount -t qtfs "$VM_EXPORT" $B/qtfs || { say "ERROR qtfs mount $1: $(dmesg | tail -2)"; return 1; }
  QT=$1
}
# use SYSTEM: sets d, the directory SYSTEM's runs use (each its own subdirectory of the
# export); for qtfs, loads and mounts the module for that transport (not in a subshell:
# QT must persist)
use() {
  case $1 in
    tmpfs) d=$B/tmpfs/tmpfs;;
    qtfs-vsock) qtfs_on vsock && d=$B/qtfs/qtfs-vsock;;
    qtfs-tcp) qtfs_on tcp && d=$B/qtfs/qtfs-tcp;;
    virtiofs) d=$B/virtiofs/virtiofs;;
    9p) d=$B/9p/9p;;
  esac
}
# job CASE: fio's arguments for CASE
job() {
  case $1 in
    4k-randread-qd1) echo "--rw=randread --bs=4k --ioengine=psync --iodepth=1";;
    4k-randread-qd16) echo "--rw=randread --bs=4k --ioengine=io_uring --iodepth=16";;
    4k-randwrite) echo "--rw=randwrite --bs=4k --ioengine=psync --end_fsync=1";;
    1m-seqread) echo "--rw=read --bs=1M --ioengine=psync";;
    1m-seqwrite) echo "--rw=write --bs=1M --ioengine=psync --end_fsync=1";;
  esac
}
# one fio run, its JSON on one line
report() { say "JSON $1 $2 $3 $(tr -d '\n\r' < /tmp/fio.json)"; }
# runfio ARGS: fio under a timeout (a stalled transport must not stop the whole comparison)
runfio() {
  rm -f /tmp/fio.json
  timeout $((DUR * 5 + 60)) fio --output-format=json --output=/tmp/fio.json "$@" > /tmp/fio.err 2>&1 && return 0
  say "ERROR fio $*: $(tail -2 /tmp/fio.err | tr '\n' ' ')"
  for p in /proc/[0-9]*; do
    case $(cat "$p/stack" 2>/dev/null) in *qtfs*) say "INFO stuck ${p#/proc/}: $(sed 's/+0x.*//; s/^\[<.*>\] //' "$p/stack" | tr '\n' ' ')";; esac
  done
  return 1
}
BROKEN=" "

# lay out the data file of every system once (buffered write, fsync), then read it warm
for s in $SYSTEMS; do
  use $s || continue
  mkdir -p "$d/meta" || { BROKEN="$BROKEN$s "; continue; }
  runfio --name=layout --directory="$d" --filename=fio.dat --size=$SIZE --rw=write --bs=1M --end_fsync=1 --fallocate=none ||
    { BROKEN="$BROKEN$s "; say "ERROR $s: laying out the data file failed: left out"; }
done
say "INFO layout done t=$(cut -d' ' -f1 /proc/uptime)"
for c in $CASES; do
  r=1
  while [ $r -le $ROUNDS ]; do
    for s in $SYSTEMS; do
      case $BROKEN in *" $s "*) continue;; esac
      use $s || continue
      case $c in
        meta)
          for e in filecreate filestat filedelete; do
            runfio --name=meta --directory="$d/meta" --ioengine=$e --nrfiles=$META_N --filesize=4k \
              --openfiles=1 --fallocate=none --filename_format='f.$filenum' && report "meta-${e#file}" $s $r
          done;;
        *)
          # shellcheck disable=SC2046
          runfio --name=$c --directory="$d" --filename=fio.dat --size=$SIZE --direct=0 --time_based \
            --runtime=$DUR --ramp_time=1 --fallocate=none $(job $c) && report $c $s $r;;
      esac
    done
    r=$((r + 1))
  done
  say "INFO case $c done t=$(cut -d' ' -f1 /proc/uptime)"
done
[ "$QT" != none ] && umount $B/qtfs 2>/dev/null
say "DONE"
