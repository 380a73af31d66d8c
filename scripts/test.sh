#!/usr/bin/env bash
# Runs every test of the project: format, lints, unit/integration/property tests
# (including the C golden-vector test and real FUSE mounts), then the kernel module in
# QEMU when tests/vm/run exists (Debian's 6.1 and 6.12 cloud kernels, each over TCP and
# vsock; `scripts/test.sh full`, i.e. `make test-full`: also compile-only builds against
# further header sets), then the libvirt use case end to end
# (usecases/libvirt/e2e: stock libvirt on a one-machine HOST/DPU split). Prints a summary; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
fail=0
skipped=()
skip() {
  echo "==> $1"; echo "    skipped: $1 ($2)"; skipped+=("$1 ($2)")
}
step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "==> $name"
  if "$@"; then echo "    ok: $name ($((SECONDS - t0)) s)"; else echo "    FAILED: $name"; fail=$((fail + 1)); fi
}
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -q -- -D warnings
step "generated files (qtp.h, golden vectors, PROTOCOL.md)" cargo run -q -p qtfs-proto --bin qtp-gen -- --check
step "cargo test (FUSE mounts over /dev/fuse)" cargo test --workspace -q
# The client-fuse suite again with its mounts served through FUSE over io_uring
# (QTFS_FUSE_TRANSPORT=uring: the rig mounts with -o io_uring=on and checks qtfs-fuse's
# transport line). The kernel offers it only while the fuse module's enable_uring is Y:
# set for the step, the previous value put back afterwards, whatever happens.
uring_suite() (
  local p=/sys/module/fuse/parameters/enable_uring prev
  prev=$(cat "$p") || return 1
  trap 'echo "$prev" > "$p"' EXIT
  trap 'exit 1' INT TERM HUP
  echo Y > "$p" || return 1
  QTFS_FUSE_TRANSPORT=uring cargo test -q -p qtfs-client-fuse
)
modprobe fuse 2>/dev/null || true
if [ -w /sys/module/fuse/parameters/enable_uring ]; then
  step "cargo test -p qtfs-client-fuse (FUSE mounts over io_uring)" uring_suite
else
  skip "cargo test -p qtfs-client-fuse (FUSE mounts over io_uring)" \
    "no writable /sys/module/fuse/parameters/enable_uring: kernel without FUSE over io_uring (6.14+)"
fi
# And with /dev/fuse served by ring threads (-o dev_ring=on: tasks on one thread per CPU).
step "cargo test -p qtfs-client-fuse (FUSE mounts over /dev/fuse ring threads)" \
  env QTFS_FUSE_TRANSPORT=devring cargo test -q -p qtfs-client-fuse
if [ "${1:-}" = full ]; then
  # issue 14's size: sqlite writers on two qtfs-fuse mounts and the HOST, 10,000 rows in
  # rollback-journal mode and in WAL mode (minutes; `cargo test` runs them with fewer
  # rows): sqlite_rollback_journal_10000_rows, sqlite_wal_10000_rows; and 400 rounds of
  # three writers starting together on a new database under load (40 unloaded in
  # `cargo test`; the lock fences of client-fuse/src/fences.rs)
  step "sqlite 10,000 rows and 400 starts over two mounts and the HOST" \
    cargo test -q -p qtfs-client-fuse --test locks -- --ignored 10000_rows 400_rounds
fi
# A stateful fuzzer against a live engine (testkit/src/bin/livefuzz.rs); longer on demand:
# cargo run -p qtfs-testkit --bin livefuzz -- --seconds 600 [--seed S]
step "live fuzzer against the engine (60 s)" cargo run -q -p qtfs-testkit --bin livefuzz -- --seconds 60
if [ -x tests/vm/run ]; then
  if [ "${1:-}" = full ]; then
    step "kernel module in QEMU, full matrix (tests/vm/run --full)" tests/vm/run --full
  else
    step "kernel module in QEMU (tests/vm/run)" tests/vm/run
  fi
fi
step "libvirt offload end to end (usecases/libvirt/e2e)" usecases/libvirt/e2e
for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
if [ $fail -eq 0 ]; then
  echo "ALL TESTS PASSED${skipped[0]:+ (${#skipped[@]} step(s) skipped, see above)}"
else
  echo "$fail STEP(S) FAILED"; exit 1
fi
