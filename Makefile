# The two entry points of the README. Both install what they need.
.PHONY: demo test bench perf gen

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# criterion benches (see benches/README.md)
bench:
	cargo bench -p qtfs-benches

# side-by-side comparisons (see perf/README.md)
perf:
	perf/run --quick

# regenerate qtp.h, golden vectors and the tables of proto/PROTOCOL.md
gen:
	cargo run -q -p qtfs-proto --bin qtp-gen
