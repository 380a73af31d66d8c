# tests/vm/export.sh: sourced by tests/vm/run. The HOST side of one boot: fill an export
# with known files (populate_export), write the guest's configuration (write_conf), and
# after the boot check what the guest left in the export (host_checks). Uses the
# runner's pass/fail tally.

HELLO_TEXT='hello from the qtfs HOST
second line: 0123456789
'
HELLO_MTIME=981173106 # 2001-02-03 04:05:06 UTC

# populate_export EXPORT OUTSIDE: OUTSIDE is a HOST directory beside the export, holding a
# secret that no path through the mount may reach.
populate_export() {
  local e=$1 o=$2 i
  mkdir -p "$e" "$o"
  printf 'HOST-SECRET outside the export\n' > "$o/secret"
  printf '%s' "$HELLO_TEXT" > "$e/hello.txt"
  chmod 0640 "$e/hello.txt"
  chown 4321:4322 "$e/hello.txt"
  setfattr -n user.host -v hostval "$e/hello.txt"
  touch -d "@$HELLO_MTIME" "$e/hello.txt"
  head -c 1048576 /dev/urandom > "$e/random.bin"
  mkdir "$e/many"
  for i in $(seq -w 0 299); do echo "$((10#$i))" > "$e/many/f$i"; done
  mkdir -p "$e/tree/a/b/c" "$e/etc"
  echo "deep in the tree" > "$e/tree/a/b/c/deep.txt"
  echo one > "$e/tree/a/one.txt"
  echo two > "$e/tree/a/b/two.txt"
  printf 'root:x:0:0:EXPORT-PASSWD-MARKER:/root:/bin/sh\n' > "$e/etc/passwd"
  ln -s hello.txt "$e/link_to_hello"
  # links that lead out of the export when resolved on the HOST
  ln -s /etc/passwd "$e/escape_abs"
  ln -s "$o/secret" "$e/escape_secret"
  ln -s "../../$(basename "$o")/secret" "$e/tree/escape_rel"
  ln -s "$o" "$e/dirlink"
  ln -s .. "$e/updir"
  mkdir "$e/nonempty" && echo keep > "$e/nonempty/keep.txt"
  echo "delete me" > "$e/to_delete.txt"
  echo "rename me" > "$e/to_rename.txt"
  echo source > "$e/rename_src.txt"
  echo destination > "$e/rename_dst.txt"
  mkdir "$e/out" && chmod 0777 "$e/out"
  # HOST FIFOs for the relay checks (-o relay): HOST to guest, guest to HOST, poll, epoll,
  # a read interrupted by a signal
  mkdir "$e/relay" && mkfifo "$e/relay/h2g" "$e/relay/g2h" "$e/relay/poll" "$e/relay/epoll" "$e/relay/sig"
}

sha_of() { sha256sum | cut -d' ' -f1; }

# write_conf MODE EXPORT FILE: the guest's /vmtest/vmtest.conf (sourced by busybox sh)
write_conf() {
  local mode=$1 e=$2 f=$3 blocks bsize
  read -r blocks bsize < <(stat -f -c '%b %S' "$e")
  {
    echo "VM_MODE=$mode"
    echo "VM_NOMOD=$NOMOD"
    echo "VM_SERVER=10.0.2.2"
    echo "VM_PORT=$TCP_PORT"
    echo "VM_VSOCK_PORT=$VSOCK_PORT"
    echo "VM_ACT_PORT=${ACT_PORT:-}"
    echo "VM_PSK=$(cat "$D/psk")"
    echo "VM_WRONG_PSK=$(head -c 32 /dev/urandom | xxd -p -c 64)"
    echo "VM_EXPORT=$e"
    echo "VM_HELLO_SIZE=$(stat -c %s "$e/hello.txt")"
    echo "VM_HELLO_SHA=$(sha_of < "$e/hello.txt")"
    echo "VM_HELLO_MTIME=$HELLO_MTIME"
    echo "VM_RANDOM_SHA=$(sha_of < "$e/random.bin")"
    echo "VM_SLICE_SHA=$(dd if="$e/random.bin" bs=4096 skip=100 count=1 status=none | sha_of)"
    echo "VM_ODD_SHA=$(tail -c +123458 "$e/random.bin" | head -c 1000 | sha_of)"
    echo "VM_TAIL_SHA=$(tail -c 100 "$e/random.bin" | sha_of)"
    echo "VM_HOST_PASSWD_SHA=$(sha_of < /etc/passwd)"
    echo "VM_FS_BYTES=$((blocks * bsize))"
    # the relay-pty check's HOST pty (tests/vm/pty-host.py): /dev/pts/$VM_PTY
    echo "VM_PTY=${PTY_NAME:-}"
    # the proc-host check: the HOST's /proc read through -o proc must say the same
    echo "VM_HOST_NPROC=$(grep -c '^processor' /proc/cpuinfo)"
    echo "VM_HOST_MEMTOTAL='$(grep '^MemTotal:' /proc/meminfo)'"
    echo "VM_HOST_OSRELEASE=$(cat /proc/sys/kernel/osrelease)"
  } > "$f"
}

pattern() { seq 1 100000 | head -c "$1"; }

# hc NAME DETAIL-IF-FAILED CONDITION...: one HOST check of boot $LABEL
hc() {
  local name=$1 detail=$2; shift 2
  if "$@" >/dev/null 2>&1; then pass "${LABEL:-$MODE} host: $name"; else fail "${LABEL:-$MODE} host: $name: $detail"; fi
}
is() { [ "$1" = "$2" ]; }
same_inode_nlink2() {
  local a b
  a=$(stat -c '%i %h' "$1") && b=$(stat -c '%i %h' "$2") && [ "$a" = "$b" ] && [ "${a#* }" = 2 ]
}
dir_without() { [ -d "$1" ] && [ ! -e "$1/$2" ]; }
# moved OLD NEW CONTENT: OLD is gone, NEW holds CONTENT
moved() { [ ! -e "$1" ] && [ "$(cat "$2")" = "$3" ]; }

# host_checks MODE EXPORT SERIAL-LOG [LABEL]: what the guest left in the export, seen on
# the HOST; results are named "LABEL host: ..." (default: MODE)
host_checks() {
  local MODE=$1 e=$2 log=$3 LABEL=${4:-$1} o
  o=$e/out
  local g=$o/guest.txt
  hc "guest.txt content" "$(head -c 200 "$g" 2>&1)" is "$(cat "$g" 2>/dev/null)" "written by the guest over $MODE"
  hc "guest.txt mode 0604" "$(stat -c %a "$g" 2>&1)" is "$(stat -c %a "$g" 2>/dev/null)" 604
  hc "guest.txt owner 1234:1234" "$(stat -c %u:%g "$g" 2>&1)" is "$(stat -c %u:%g "$g" 2>/dev/null)" 1234:1234
  hc "guest.txt xattr user.origin" "$(getfattr --absolute-names -d "$g" 2>&1 | tr '\n' ' ')" \
    is "$(getfattr --only-values -n user.origin "$g" 2>/dev/null)" "guest-$MODE"
  local want
  want=$(tr -d '\r' < "$log" | sed -n 's/.*VMTEST: INFO out-sha256 \([0-9a-f]*\).*/\1/p' | tail -1)
  hc "random2m.bin sha256 as the guest wrote it" "want '${want:-none reported}'" \
    is "$(sha_of < "$o/random2m.bin" 2>/dev/null)" "${want:-x}"
  hc "appended.txt" "$(head -c 100 "$o/appended.txt" 2>&1)" is "$(tr '\n' , < "$o/appended.txt" 2>/dev/null)" "line1,line2,line3,"
  hc "middle.bin (overwrite at 4000)" "sha differs" is "$(sha_of < "$o/middle.bin" 2>/dev/null)" \
    "$({ head -c 4000 /dev/zero | tr '\0' a; printf XYZ; head -c 4189 /dev/zero | tr '\0' a; } | sha_of)"
  hc "trunc.bin (1000 bytes + 4000 zeros)" "size $(stat -c %s "$o/trunc.bin" 2>&1)" is \
    "$(sha_of < "$o/trunc.bin" 2>/dev/null)" "$({ pattern 1000; head -c 4000 /dev/zero; } | sha_of)"
  hc "direct.bin (O_DIRECT write)" "size $(stat -c %s "$o/direct.bin" 2>&1)" is \
    "$(sha_of < "$o/direct.bin" 2>/dev/null)" "$(pattern 262144 | sha_of)"
  hc "mode.txt mode 0754" "$(stat -c %a "$o/mode.txt" 2>&1)" is "$(stat -c %a "$o/mode.txt" 2>/dev/null)" 754
  hc "owned.txt owner" "$(stat -c %u:%g "$o/owned.txt" 2>&1)" is "$(stat -c %u:%g "$o/owned.txt" 2>/dev/null)" 1234:1234
  hc "touched.txt mtime" "$(stat -c %Y "$o/touched.txt" 2>&1)" is "$(stat -c %Y "$o/touched.txt" 2>/dev/null)" 1577934245
  hc "symlink target" "$(readlink "$o/symlink" 2>&1)" is "$(readlink "$o/symlink")" target-of-link
  hc "hard links share an inode, nlink 2" "$(stat -c '%i %h' "$o/hl1" "$o/hl2" 2>&1 | tr '\n' ' ')" \
    same_inode_nlink2 "$o/hl1" "$o/hl2"
  hc "fifo is a FIFO" "$(stat -c %F "$o/fifo" 2>&1)" test -p "$o/fifo"
  hc "xattr.txt attributes" "$(getfattr --absolute-names -d "$o/xattr.txt" 2>&1 | tr '\n' ' ')" \
    is "$(getfattr --absolute-names -d "$o/xattr.txt" 2>/dev/null | grep '^user\.')" 'user.vmtest="from-guest"'
  hc "newdir/a is a directory, a/b removed" "$(ls -laR "$o/newdir" 2>&1 | tr '\n' ' ')" \
    dir_without "$o/newdir/a" b
  hc "to_delete.txt unlinked" "still there" test ! -e "$e/to_delete.txt"
  hc "to_rename.txt moved to out/renamed.txt" "$(ls "$e" "$o" 2>&1 | tr '\n' ' ')" \
    moved "$e/to_rename.txt" "$o/renamed.txt" "rename me"
  hc "rename over an existing file" "dst=$(cat "$e/rename_dst.txt" 2>&1)" \
    moved "$e/rename_src.txt" "$e/rename_dst.txt" source
  hc "after-restart.txt (written after the engine restart)" "$(head -c 100 "$o/after-restart.txt" 2>&1)" \
    is "$(cat "$o/after-restart.txt" 2>/dev/null)" "written after the engine restart over $MODE"
  hc "nonempty/ survived rmdir" "$(ls "$e/nonempty" 2>&1)" test -f "$e/nonempty/keep.txt"
  hc "HOST files unchanged (hello.txt)" "mode/owner/content changed" \
    is "$(stat -c '%a %u:%g %Y' "$e/hello.txt"):$(sha_of < "$e/hello.txt")" \
    "640 4321:4322 $HELLO_MTIME:$(printf '%s' "$HELLO_TEXT" | sha_of)"
  hc "secret outside the export untouched" "changed" is "$(cat "$(dirname "$e")/outside/secret" 2>/dev/null)" "HOST-SECRET outside the export"
}
