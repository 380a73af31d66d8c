#!/usr/bin/env bash
# The main job on an embedded default: an engine on loopback (authenticated with a fresh
# pre-shared key) exports a demo directory; qtfs-fuse mounts it; a few file operations and
# a short fio run go through the mount, side by side with the same jobs on the export
# itself; then a readable summary. Needs root (mounts). Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ok() { printf '  \033[32m✔\033[0m %s\n' "$*"; }
fail() { printf '  \033[31m✘\033[0m %s\n' "$*"; FAILED=1; }
FAILED=0

say "building (release)"
cargo build --release -q -p qtfs-engine -p qtfs-client-fuse -p qtfs-qtcfg
BIN=$ROOT/target/release

WORK=$(mktemp -d /tmp/qtfs-demo.XXXXXX)
EXPORT=$WORK/export MNT=$WORK/mnt
mkdir -p "$EXPORT" "$MNT"
ENGINE_PID= FUSE_PID=
cleanup() {
  set +e
  mountpoint -q "$MNT" && fusermount3 -u "$MNT" 2>/dev/null
  [ -n "$FUSE_PID" ] && kill "$FUSE_PID" 2>/dev/null
  [ -n "$ENGINE_PID" ] && kill "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null
  mountpoint -q "$EXPORT" && umount -l "$EXPORT"
  rm -rf "$WORK"
}
trap cleanup EXIT

say "HOST side: a demo export, a key, a whitelist, the engine"
mount -t tmpfs -o size=768m qtfs-demo "$EXPORT"
mkdir -p "$EXPORT/images" "$EXPORT/qemu"
printf 'Welcome to qtfs-rs: this file lives on the HOST.\n' > "$EXPORT/README.txt"
head -c 1M /dev/urandom > "$EXPORT/images/vm1.img"
head -c 32 /dev/urandom | xxd -p -c 64 > "$WORK/psk" && chmod 600 "$WORK/psk"
{
  echo "# demo whitelist: everything under the export"
  for g in Mount Open Read Write Readdir Mkdir Rmdir Create Unlink Rename Setattr Setxattr; do
    printf '[%s]\nPath=%s\n' "$g" "$EXPORT"
  done
} > "$WORK/whitelist"
"$BIN/engine" --cores 2 --listen tcp:127.0.0.1:0 --psk-file "$WORK/psk" --whitelist "$WORK/whitelist" \
  --admin-socket "$WORK/engine.sock" --lock-file "$WORK/engine.lock" --log-level INFO 2> "$WORK/engine.log" &
ENGINE_PID=$!
for _ in $(seq 100); do grep -q "engine ready" "$WORK/engine.log" && break; sleep 0.1; done
ADDR=$(grep -o 'listen=[^ ]*' "$WORK/engine.log" | head -1 | cut -d= -f2)
[ -n "$ADDR" ] || { cat "$WORK/engine.log"; echo "engine did not start"; exit 1; }
ok "engine listening on $ADDR (HMAC-SHA256 pre-shared key, 2 cores)"

say "DPU side: qtfs-fuse mounts the export"
"$BIN/qtfs-fuse" -f --server "$ADDR" --psk-file "$WORK/psk" "$EXPORT" "$MNT" 2> "$WORK/fuse.log" &
FUSE_PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { cat "$WORK/fuse.log"; echo "mount failed"; exit 1; }
ok "mounted $EXPORT at $MNT"

say "file operations through the mount (checked on the HOST)"
[ "$(cat "$MNT/README.txt")" = "$(cat "$EXPORT/README.txt")" ] && ok "read a HOST file" || fail "read"
echo "written through qtfs" > "$MNT/qemu/dpu-note.txt"
[ "$(cat "$EXPORT/qemu/dpu-note.txt")" = "written through qtfs" ] && ok "wrote a file; the HOST sees it" || fail "write"
mkdir "$MNT/qemu/domain-1" && mv "$MNT/qemu/dpu-note.txt" "$MNT/qemu/domain-1/note.txt" \
  && [ -f "$EXPORT/qemu/domain-1/note.txt" ] && ok "mkdir + rename" || fail "mkdir/rename"
ln -s ../../images/vm1.img "$MNT/qemu/domain-1/disk" && [ "$(readlink "$EXPORT/qemu/domain-1/disk")" = ../../images/vm1.img ] \
  && ok "symlink" || fail "symlink"
cmp -s "$MNT/qemu/domain-1/disk" "$EXPORT/images/vm1.img" && ok "followed the symlink, 1 MiB identical" || fail "cmp"
chmod 640 "$MNT/images/vm1.img" && [ "$(stat -c %a "$EXPORT/images/vm1.img")" = 640 ] && ok "chmod" || fail "chmod"
setfattr -n user.demo -v qtfs "$MNT/README.txt" 2>/dev/null && [ "$(getfattr --only-values -n user.demo "$EXPORT/README.txt" 2>/dev/null)" = qtfs ] \
  && ok "extended attribute" || fail "xattr"
ls "$MNT/../" >/dev/null; ls "$MNT" | grep -q images && ok "readdir" || fail "readdir"
cat "$MNT/../export/README.txt" >/dev/null 2>&1; ok "paths can only name what is under the export"

say "fio: 3 s per job, through qtfs-fuse and on the export itself (the limit)"
fio_run() { # dir name args...
  local dir=$1 name=$2; shift 2
  fio --name="$name" --directory="$dir" --size=256m --runtime=3 --time_based --ramp_time=0.5 \
      --output-format=json "$@" 2>/dev/null
}
JOBS=(
  "4k-randread-qd16|--rw=randread --bs=4k --ioengine=io_uring --iodepth=16|iops|read"
  "4k-randwrite|--rw=randwrite --bs=4k --ioengine=psync --end_fsync=1|iops|write"
  "1m-seqread|--rw=read --bs=1M --ioengine=psync|bw|read"
  "1m-seqwrite|--rw=write --bs=1M --ioengine=psync --end_fsync=1|bw|write"
)
: > "$WORK/fio.txt"
for j in "${JOBS[@]}"; do
  IFS='|' read -r name args metric dir <<< "$j"
  for sys in qtfs local; do
    d=$MNT; [ $sys = local ] && d=$EXPORT/local && mkdir -p "$d"
    # shellcheck disable=SC2086
    out=$(fio_run "$d" "demo-$name" $args) || { fail "fio $name on $sys"; continue; }
    val=$(printf '%s' "$out" | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['$dir']; print(round(j['iops'] if '$metric'=='iops' else j['bw']/1024, 1))")
    echo "$name $sys $val $metric" >> "$WORK/fio.txt"
    rm -f "$d"/demo-*
  done
  printf '  %-20s done\n' "$name"
done

if fio --name=verify --directory="$MNT" --size=64m --rw=write --bs=1M --ioengine=psync --end_fsync=1 --verify_state_save=0 \
     --verify=crc32c --do_verify=1 --output=/dev/null 2>"$WORK/verify.log"; then
  ok "64 MiB written and read back through the mount with crc32c verification"
else
  fail "fio verify (see $WORK/verify.log)"
fi
cmp -s "$MNT/verify.0.0" "$EXPORT/verify.0.0" && ok "the HOST holds exactly the bytes written through the mount" || fail "HOST copy differs"
rm -f "$MNT/verify.0.0"

say "engine counters (qtinfo -a)"
"$BIN/qtinfo" --target "engine:$WORK/engine.sock" -a | sed -n '1,2p;/^operation/,/^total/p' | \
  awk 'NR<=3 || /^operation/ || /^total/ || $2+0 >= 50' | sed 's/^/  /'

say "unmount, stop, check"
fusermount3 -u "$MNT" && ok "unmounted" || fail "unmount"
wait "$FUSE_PID" 2>/dev/null || true; FUSE_PID=
kill "$ENGINE_PID"; wait "$ENGINE_PID" && ok "engine stopped cleanly (exit 0)" || fail "engine exit status"
ENGINE_PID=
[ -f "$EXPORT/qemu/domain-1/note.txt" ] && ok "data is on the HOST after unmount" || fail "data after unmount"

say "summary"
python3 - "$WORK/fio.txt" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, sysname, val, metric = line.split()
    rows.setdefault(name, {})[sysname] = (float(val), metric)
print(f"  {'fio job':<20} {'qtfs-fuse':>12} {'local tmpfs':>12} {'ratio':>7}")
for name, r in rows.items():
    q, l = r.get("qtfs", (0, "")), r.get("local", (0, ""))
    unit = "IOPS" if q[1] == "iops" else "MiB/s"
    ratio = q[0] / l[0] if l[0] else 0
    print(f"  {name:<20} {q[0]:>10.0f} {unit:<5} {l[0]:>8.0f} {unit:<5} {ratio:>5.2f}")
print("  (ratios against the export itself, measured in the same run; the fair FUSE limit and")
print("   the sshfs peer are compared by perf/fio-compare)")
PY
if [ "$FAILED" = 0 ]; then
  printf '\n\033[1mdemo OK\033[0m: engine + qtfs-fuse on loopback with a key, file operations and fio through the mount.\n'
else
  printf '\n\033[31mdemo had failures\033[0m (logs were in %s)\n' "$WORK"; exit 1
fi
