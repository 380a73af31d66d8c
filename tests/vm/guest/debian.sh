#!/bin/sh
# tests/vm/guest/debian.sh: the checks of the Debian guest (tests/vm/run --debian; dash).
# The guest runs a Debian bookworm userland (tests/vm/lib.sh: vm_debian_rootfs) instead of
# busybox: the module is loaded and mounted by guest/test.sh's own checks, then ordinary
# user tools work on the mount (sqlite3, python3, perl's prove, util-linux flock, fio), and
# the POSIX conformance suites (guest/conformance.sh: the project's own, pjdfstest) run on
# the qtfs.ko mount and on the guest's tmpfs, side by side.
# Markers as guest/test.sh: VMTEST: PASS|FAIL|INFO|SUITE|CONF ..., VMTEST: DONE at the end.
#   debian.sh            everything
#   debian.sh one FUNC   one check function
# VM_CONFORMANCE (vmtest.conf): full (every test of both suites) or a list of filters
# "own:NAME,NAME pjdfstest:NAME,NAME" (the subset).
. "${VM_CONF:-/vmtest/vmtest.conf}"
M=${VM_MNT:-/mnt}
T=/vmtest/test.sh
. "$(dirname "$0")/common.sh"

# --- the ordinary tools of a user, on the mount ---------------------------------------------
d_userland() {
  for t in python3 perl prove sqlite3 flock fio setpriv; do
    command -v $t > /dev/null || die "$t missing from the Debian guest"
  done
  echo "VMTEST: INFO userland: $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 --version), perl $(perl -e 'print $^V'), sqlite3 $(sqlite3 --version | cut -d' ' -f1), $(fio --version), $(flock --version | head -1), $(ls --version | head -1)"
}

d_sqlite() {
  d=$M/userland; mkdir -p $d || die "mkdir $d"
  for jm in delete wal; do
    db=$d/rows-$jm.db
    rm -f $db $db-journal $db-wal $db-shm
    {
      echo "PRAGMA journal_mode=$jm;"
      echo "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
      echo "BEGIN;"
      i=0; while [ $i -lt 2000 ]; do echo "INSERT INTO t (v) VALUES ('row $i');"; i=$((i + 1)); done
      echo "COMMIT;"
      # and 50 small transactions (journal or WAL each time)
      i=0; while [ $i -lt 50 ]; do echo "UPDATE t SET v = v || '+' WHERE id = $((i + 1));"; i=$((i + 1)); done
    } | sqlite3 $db > /tmp/sq.out 2>&1 || die "sqlite3 ($jm): $(tail -2 /tmp/sq.out)"
    [ $jm = wal ] && sqlite3 $db 'PRAGMA wal_checkpoint(TRUNCATE);' > /dev/null
    dropc
    eq "$jm: rows" "$(sqlite3 $db 'SELECT count(*) FROM t;')" 2000
    eq "$jm: updated rows" "$(sqlite3 $db "SELECT count(*) FROM t WHERE v LIKE '%+';")" 50
    eq "$jm: integrity_check" "$(sqlite3 $db 'PRAGMA integrity_check;')" ok
  done
}

d_python() {
  python3 - "$M/userland" <<'EOF' || exit 1
import hashlib, os, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
p = os.path.join(d, "py.bin")
data = os.urandom(3 * 1024 * 1024 + 123)
with open(p, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
fd = os.open(p, os.O_RDWR)
os.pwrite(fd, b"XYZ", 4096 * 100 + 7)
assert os.pread(fd, 3, 4096 * 100 + 7) == b"XYZ"
os.ftruncate(fd, 2 * 1024 * 1024)
os.close(fd)
want = bytearray(data[: 2 * 1024 * 1024]); want[4096 * 100 + 7 : 4096 * 100 + 10] = b"XYZ"
open("/proc/sys/vm/drop_caches", "w").write("3")
got = open(p, "rb").read()
assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), "read back differs"
os.rename(p, p + ".moved")
assert not os.path.exists(p) and os.stat(p + ".moved").st_size == 2 * 1024 * 1024
for i in range(100):
    open(os.path.join(d, "n%03d" % i), "w").write(str(i))
names = sorted(n for n in os.listdir(d) if n.startswith("n"))
assert names == ["n%03d" % i for i in range(100)], names[:5]
with os.scandir(d) as it:
    assert sum(1 for e in it if e.is_file()) >= 101
for i in range(100):
    os.unlink(os.path.join(d, "n%03d" % i))
os.unlink(p + ".moved")
print("python3 file operations ok")
EOF
}

d_prove() {
  mkdir -p /tmp/t
  cat > /tmp/t/qtfs.t <<'EOF'
use strict; use warnings;
use Test::More tests => 9;
use Fcntl qw(:flock SEEK_SET);
my $d = "$ENV{M}/userland/perl";
ok(mkdir($d) || -d $d, "mkdir");
open(my $w, ">", "$d/f") or die; print $w "line $_\n" for 1..1000; close($w);
is(-s "$d/f", 8893, "size");
open(my $r, "<", "$d/f") or die; my @l = <$r>; close($r);
is(scalar(@l), 1000, "lines"); is($l[999], "line 1000\n", "last line");
open(my $a, ">>", "$d/f") or die; print $a "appended\n"; close($a);
is(-s "$d/f", 8902, "append");
open(my $l, "<", "$d/f") or die; ok(flock($l, LOCK_EX | LOCK_NB), "flock"); close($l);
ok(rename("$d/f", "$d/g"), "rename");
opendir(my $dh, $d) or die; my @n = grep { !/^\./ } readdir($dh); closedir($dh);
is_deeply(\@n, ["g"], "readdir");
ok(unlink("$d/g") && rmdir($d), "unlink, rmdir");
EOF
  M=$M prove /tmp/t/qtfs.t > /tmp/prove.out 2>&1 || die "prove: $(tail -5 /tmp/prove.out | tr '\n' ' ')"
  grep -q '^Result: PASS' /tmp/prove.out || die "prove: $(tail -3 /tmp/prove.out | tr '\n' ' ')"
  echo "VMTEST: INFO prove: $(grep '^Files=' /tmp/prove.out)"
}

d_flock() {
  f=$M/userland/lock
  : > $f || die "cannot create $f"
  flock -n $f -c 'echo held > /tmp/fl.held; sleep 4' &
  h=$!
  i=0; while [ ! -s /tmp/fl.held ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  [ -s /tmp/fl.held ] || die "the holder did not get the lock"
  flock -n $f true && die "flock -n got a lock another process holds"
  flock -s -n $f true && die "flock -s -n got a lock another process holds exclusively"
  # a waiting flock gets it when the holder ends
  flock -w 20 $f true || die "flock -w 20 did not get the lock after the holder ended"
  wait $h
  flock -n $f true || die "flock -n after the holder ended"
  rm -f $f /tmp/fl.held
}

d_fio() {
  fio --name=deb-verify --directory=$M/userland --size=8m --bs=4k --rw=randrw --ioengine=psync \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --numjobs=2 --group_reporting \
    --output-format=terse > /tmp/fio.out 2>&1 || die "fio: $(tail -3 /tmp/fio.out | tr '\n' ' ')"
  rm -f $M/userland/deb-verify*
}

# Warm 4k random reads: a file read once (cat) must serve later 4k random reads from the
# guest's page cache (fio --invalidate=0), at a rate near tmpfs's, with (almost) no READ
# request to the HOST; fio's default (--invalidate=1: POSIX_FADV_DONTNEED first, as
# perf/vm-compare's jobs run) starts cold. Figures: VMTEST: INFO warm-randread ...
qt_reads() { timeout 20 /usr/local/bin/qtinfo --target kmod:/dev/qtfs_client -a 2>/dev/null | awk '$1 == "READ" { print $2; exit }'; }
fio_iops() { # fio_iops DIR INVALIDATE: 3 s of 4k random reads (QD1, psync) of DIR/warm.dat
  fio --name=warm --directory="$1" --filename=warm.dat --size=16m --rw=randread --bs=4k --ioengine=psync \
    --invalidate="$2" --time_based --runtime=3 --output-format=terse 2>/dev/null | awk -F';' '{ printf "%d", $8 }'
}
d_warm_read() {
  for fs in qtfs:$M/userland tmpfs:/tmp/warm; do
    d=${fs#*:}; mkdir -p "$d"
    fio --name=lay --directory="$d" --filename=warm.dat --size=16m --rw=write --bs=1M --end_fsync=1 > /dev/null 2>&1 ||
      die "fio layout on $d failed"
    cat "$d/warm.dat" > /dev/null
    r0=$(qt_reads)
    w=$(fio_iops "$d" 0)
    r1=$(qt_reads)
    c=$(fio_iops "$d" 1)
    r2=$(qt_reads)
    eval "${fs%%:*}_warm=\$w ${fs%%:*}_cold=\$c"
    [ "${fs%%:*}" = qtfs ] && reqs_warm=$((${r1:-0} - ${r0:-0})) reqs_cold=$((${r2:-0} - ${r1:-0}))
    rm -f "$d/warm.dat"
  done
  echo "VMTEST: INFO warm-randread: 4k QD1 IOPS, warm (read once, --invalidate=0): qtfs.ko $qtfs_warm, tmpfs $tmpfs_warm (ratio $(awk "BEGIN { printf \"%.2f\", $qtfs_warm / ($tmpfs_warm + 0.001) }")), READ requests to the HOST $reqs_warm; cold (--invalidate=1): qtfs.ko $qtfs_cold, tmpfs $tmpfs_cold, READ requests $reqs_cold"
  [ "${qtfs_warm:-0}" -gt 0 ] || die "no warm figure for qtfs.ko"
  # every 4k read a request would be at most ~1/20 of tmpfs's rate under TCG
  [ $((qtfs_warm * 4)) -ge "$tmpfs_warm" ] || die "warm reads on qtfs.ko at $qtfs_warm IOPS, tmpfs $tmpfs_warm: not from the page cache ($reqs_warm READ requests)"
  [ "$reqs_warm" -le $((qtfs_warm * 3 / 100 + 10)) ] || die "$reqs_warm READ requests during 3 s of warm reads ($qtfs_warm IOPS)"
}

# --- conformance ------------------------------------------------------------------------------
# the suites on the mount and on the guest's tmpfs (VM_CONFORMANCE: which tests)
C=/vmtest/conformance.sh
d_own_qtfs() { sh $C run own qtfs $M/conformance/own; }
d_own_tmpfs() { sh $C run own tmpfs /tmp/conformance/own; }
d_pjd_qtfs() { sh $C run pjdfstest qtfs $M/conformance/pjdfstest; }
d_pjd_tmpfs() { sh $C run pjdfstest tmpfs /tmp/conformance/pjdfstest; }
d_own_compare() { sh $C compare own; }
d_pjd_compare() { sh $C compare pjdfstest; }

# --- runner -----------------------------------------------------------------------------------
if [ "${1:-}" = one ]; then "$2"; exit $?; fi
# run NAME TIMEOUT SCRIPT FUNC: one check (a function of SCRIPT) in its own process
# VM_CHECKS (tests/vm/run --checks a,b): only those checks (name prefixes), plus the ones
# everything needs
run() {
  if [ -n "${VM_CHECKS:-}" ]; then
    w=0
    for c in $(echo "$VM_CHECKS,reach,insmod,devnode,mount,umount,rmmod,kernel-log-clean" | tr ',' ' '); do
      case $1 in "$c"*) w=1;; esac
    done
    [ $w = 1 ] || return 0
  fi
  echo "VMTEST: RUN $1 t=$(cut -d' ' -f1 /proc/uptime)"
  timeout -k 5 "$2" sh "$3" one "$4" > /tmp/check.out 2>&1
  report "$1" "$2" $?
}
D=/vmtest/debian.sh
run userland 30 $D d_userland
run reach 20 $T t_reach
run insmod 30 $T t_insmod || finish
run devnode 10 $T t_devnode
if run mount 70 $T t_mount; then
  run sqlite3 180 $D d_sqlite
  run python3 120 $D d_python
  run perl-prove 60 $D d_prove
  run flock 60 $D d_flock
  run fio-verify 180 $D d_fio
  run warm-randread 120 $D d_warm_read
  tmo=${VM_CONFORMANCE_TIMEOUT:-900}
  run conformance-own-qtfs "$tmo" $D d_own_qtfs
  run conformance-own-tmpfs "$tmo" $D d_own_tmpfs
  run conformance-own-compare 60 $D d_own_compare
  run conformance-pjdfstest-qtfs "$tmo" $D d_pjd_qtfs
  run conformance-pjdfstest-tmpfs "$tmo" $D d_pjd_tmpfs
  run conformance-pjdfstest-compare 60 $D d_pjd_compare
  run umount 40 $T t_umount
else
  echo "VMTEST: FAIL userland checks: skipped (mount failed)"
fi
mounted && umount "$M" 2>/dev/null
run rmmod 40 $T t_rmmod
run kernel-log-clean 10 $T t_kernel_log
finish
