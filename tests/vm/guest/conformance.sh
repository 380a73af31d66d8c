#!/bin/sh
# tests/vm/guest/conformance.sh: POSIX conformance suites against a directory, in the test
# guest (Debian or busybox userland; POSIX sh).
#
#   conformance.sh run SUITE LABEL DIR
#     SUITE  own:       the project's POSIX suite (client-fuse/tests/posix.rs, its cargo
#                       test binary as /usr/local/bin/qtfs-posix), run with
#                       QTFS_POSIX_DIRS=REF:DIR: every scenario runs in DIR and in a
#                       reference directory on the guest's tmpfs (/tmp/posix-ref), and the
#                       two logs must be identical step by step
#            pjdfstest: the pjdfstest crate (crates.io, cargo install; third-party,
#                       never committed) as /usr/local/bin/pjdfstest, with
#                       /vmtest/pjdfstest.toml; absolute expectations
#     LABEL  a name for the file system (qtfs, tmpfs), in the output
#     DIR    an empty directory on the file system under test (made if missing)
#     Which tests: VM_CONFORMANCE (environment, else /vmtest/vmtest.conf): "full" (or
#     unset): all; else "own:FILTER,FILTER pjdfstest:FILTER,..." (test-name substrings)
#   conformance.sh compare SUITE
#     after runs labelled qtfs and tmpfs: fails (exit 1) when a test fails on qtfs but
#     passes on tmpfs, unless /vmtest/conformance-known.txt lists it ("SUITE GLOB  # why")
#
# `run` prints, on stdout:
#   VMTEST: CONF SUITE LABEL NAME FAILED    one line per test that failed (own: every
#                                           test, ok or FAILED, and its seconds)
#   VMTEST: SUITE SUITE LABEL passed=N failed=M skipped=K total=T seconds=S
# and keeps the names of the failed tests in /tmp/conf-SUITE-LABEL.failed and the whole
# output in /tmp/conf-SUITE-LABEL.out. Exits 0 when the suite ran (whatever it counted),
# 2 when it could not run.
[ -n "${VM_CONFORMANCE+x}" ] || { [ -f /vmtest/vmtest.conf ] && . /vmtest/vmtest.conf; }
if [ "${1:-}" = compare ]; then
  s=$2
  [ -f /tmp/conf-$s-qtfs.out ] && [ -f /tmp/conf-$s-tmpfs.out ] || { echo "$s did not run on both"; exit 1; }
  # SUITE PATTERN (a shell glob) lines of the known list, then one awk pass over the names
  grep -v '^#' /vmtest/conformance-known.txt 2>/dev/null | awk -v s="$s" '$1 == s { print $2 }' > /tmp/conf-known.$s
  # (not grep -vxFf: busybox's grep matches every line with an empty pattern file)
  awk -v t=/tmp/conf-$s-tmpfs.failed 'BEGIN { while ((getline l < t) > 0) ok[l] = 1 } !($0 in ok)' \
    /tmp/conf-$s-qtfs.failed > /tmp/conf-only.$s
  bad= known=
  while read -r n; do
    k=0
    while read -r pat; do
      # shellcheck disable=SC2254
      case $n in $pat) k=1; break;; esac
    done < /tmp/conf-known.$s
    if [ $k = 1 ]; then known="$known $n"; else bad="$bad $n"; fi
  done < /tmp/conf-only.$s
  # shellcheck disable=SC2086
  [ -n "$known" ] && echo "VMTEST: INFO $s: $(echo $known | wc -w) fail on qtfs.ko only, known (tests/vm/conformance-known.txt): $(echo $known | tr ' ' '\n' | head -6 | tr '\n' ' ')..."
  [ -z "$bad" ] || { echo "fail on qtfs.ko but pass on tmpfs:$bad"; exit 1; }
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: conformance.sh run SUITE LABEL DIR | compare SUITE"; exit 2; }
suite=$2 label=$3 dir=$4
set --
if [ "${VM_CONFORMANCE:-full}" != full ]; then
  for w in $VM_CONFORMANCE; do
    case $w in "$suite":*) for flt in $(echo "${w#*:}" | tr ',' ' '); do set -- "$@" "$flt"; done;; esac
  done
  [ $# -gt 0 ] || { echo "VMTEST: INFO $suite: not in VM_CONFORMANCE"; exit 0; }
fi
out=/tmp/conf-$suite-$label.out failed=/tmp/conf-$suite-$label.failed
mkdir -p "$dir" || { echo "cannot make $dir"; exit 2; }
: > "$failed"
t0=$(cut -d. -f1 /proc/uptime)
p=0 f=0 s=0
case $suite in
  own)
    ref=/tmp/posix-ref
    mkdir -p "$ref"
    [ -x /usr/local/bin/qtfs-posix ] || { echo "/usr/local/bin/qtfs-posix missing"; exit 2; }
    # one test at a time (its own process: a time per test, and a crash stays its own);
    # the filters pick tests by substring, as the test harness does
    /usr/local/bin/qtfs-posix --list 2>/dev/null | sed -n 's/: test$//p' > /tmp/conf-own.list
    : > "$out"
    for name in $(cat /tmp/conf-own.list); do
      if [ $# -gt 0 ]; then
        m=0; for flt in "$@"; do case $name in *"$flt"*) m=1;; esac; done
        [ $m = 1 ] || continue
      fi
      a=$(cut -d' ' -f1 /proc/uptime)
      QTFS_POSIX_DIRS=$ref:$dir RUST_BACKTRACE=0 /usr/local/bin/qtfs-posix --exact --test-threads=1 "$name" > /tmp/conf-own.one 2>&1
      res=FAILED; grep -aq "^test $name \.\.\. ok" /tmp/conf-own.one && res=ok
      b=$(cut -d' ' -f1 /proc/uptime)
      cat /tmp/conf-own.one >> "$out"
      echo "VMTEST: CONF own $label $name $res $(awk "BEGIN { printf \"%.1f\", $b - $a }") s"
      if [ $res = ok ]; then p=$((${p:-0} + 1)); else
        f=$((${f:-0} + 1)); echo "$name" >> "$failed"
        # the first lines of the failure's message (the step that differed)
        grep -a -A14 "^---- .* stdout ----" /tmp/conf-own.one | grep -av '^----\|^--$\|^note:\|^ *$' | head -12 |
          sed "s/^/VMTEST: INFO own $label $name: /"
      fi
    done
    s=0
    [ -s /tmp/conf-own.list ] || { echo "qtfs-posix --list gave no test"; exit 2; }
    ;;
  pjdfstest)
    [ -x /usr/local/bin/pjdfstest ] || { echo "/usr/local/bin/pjdfstest missing"; exit 2; }
    # a second file system for the EXDEV cases: a tmpfs of its own
    sec=/tmp/conf-second
    mkdir -p "$sec" && { grep -q " $sec " /proc/mounts || mount -t tmpfs second "$sec"; }
    (cd "$dir" && NO_COLOR=1 RUST_BACKTRACE=0 /usr/local/bin/pjdfstest -c /vmtest/pjdfstest.toml \
      -p "$dir" -s "$sec" "$@") > "$out" 2>&1
    # "name   ok|FAILED|skipped|failed as expected"
    sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -a -E '^[a-z_0-9]+::[^ ]* +(ok|FAILED|skipped|failed as expected)$' |
      while read -r name res; do
        case $res in
          ok | "failed as expected") ;;
          FAILED) echo "VMTEST: CONF pjdfstest $label $name FAILED"; echo "$name" >> "$failed";;
        esac
      done
    sum=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -a '^Summary:' | tail -1)
    [ -n "$sum" ] || { tail -5 "$out"; exit 2; }
    # Summary: F failed, S skipped, P passed, E expected failures, T total
    f=$(echo "$sum" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    s=$(echo "$sum" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
    p=$(echo "$sum" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
    e=$(echo "$sum" | sed -n 's/.* \([0-9]*\) expected failures.*/\1/p')
    p=$((p + ${e:-0}))
    ;;
  *) echo "unknown suite $suite"; exit 2;;
esac
t1=$(cut -d. -f1 /proc/uptime)
echo "VMTEST: SUITE $suite $label passed=${p:-0} failed=${f:-0} skipped=${s:-0} total=$((${p:-0} + ${f:-0} + ${s:-0})) seconds=$((t1 - t0))"
exit 0
