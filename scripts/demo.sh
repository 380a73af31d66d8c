#!/usr/bin/env bash
# The main job on an embedded default. At this stage of the project (protocol only) it
# builds everything, proves the Rust and C sides of the protocol agree byte for byte,
# and prints a summary. (It grows into engine + client + fio as those land.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
echo "==> building (release)"
cargo build --release --workspace -q
echo "==> checking generated files"
cargo run -q --release -p qtfs-proto --bin qtp-gen -- --check
echo "==> C mirror vs Rust: golden vectors"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cc -std=c11 -O2 -Wall -Wextra -Werror -Wno-unused-function -I client-kmod/include \
   client-kmod/tests/golden_test.c -o "$work/golden_test"
"$work/golden_test" proto/golden > "$work/dump.txt" 2> "$work/err.txt"
msgs=$(ls proto/golden/*.bin | wc -l)
echo
v=$(grep -m1 'define QTP_VERSION' client-kmod/include/qtp.h | awk '{print $3}')
echo "summary: QTP v$((${v%ULL})),"\
     "$(grep -c '^#define QTP_OP_' client-kmod/include/qtp.h) operations, $msgs golden vectors;"\
     "$(tail -1 "$work/err.txt")"
