# tests/vm/guest/common.sh: what guest/test.sh (busybox sh) and guest/debian.sh (dash)
# share; each sources it from its own directory (/vmtest in the guest).
die() { echo "$*"; exit 1; }
# eq WHAT GOT WANT
eq() { [ "$2" = "$3" ] || die "$1: got '$2', want '$3'"; }
mounted() { grep -q " $M qtfs " /proc/mounts; }
# drop the guest's page, dentry and inode caches: what is read next comes from the HOST
dropc() { sync; echo 3 > /proc/sys/vm/drop_caches; }
is_timeout() { [ "$1" = 124 ] || [ "$1" = 137 ] || [ "$1" = 143 ]; }
# report NAME TIMEOUT RC: the end of a check run with its output in /tmp/check.out: its
# VMTEST lines (INFO, ...), then VMTEST: PASS NAME, or FAIL NAME with the output's last
# lines; returns RC
report() {
  grep -a '^VMTEST: ' /tmp/check.out | grep -v '^VMTEST: \(PASS\|FAIL\|DONE\)'
  if [ "$3" -eq 0 ]; then
    echo "VMTEST: PASS $1"
  else
    d=$(grep -av '^VMTEST: ' /tmp/check.out | tail -3 | tr '\n' ' ')
    is_timeout "$3" && d="timed out after $2 s; $d"
    echo "VMTEST: FAIL $1: ${d:-rc=$3}"
  fi
  return "$3"
}
finish() {
  echo "--- guest kernel log since qtfs.ko was loaded (at most 300 lines) ---"
  dmesg | awk '/qtfs/ { on = 1 } on' | tail -300
  echo "VMTEST: DONE"
  exit 0
}
