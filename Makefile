# The two entry points of the README. Both install what they need.
.PHONY: demo test test-full vm-debian bench perf gen libvirt-e2e libvirt-bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# everything of `make test`, plus sqlite with 10,000 rows over two qtfs-fuse mounts and
# the HOST, and the kernel module's full matrix in QEMU (6.1 and 6.12
# over TCP and vsock, compile-only builds against more header sets, and the Debian guest
# with the full POSIX conformance run on qtfs.ko and tmpfs; tests/vm/README.md)
test-full:
	scripts/test.sh full

# the Debian guest alone (a Debian bookworm userland built with mmdebstrap, cached in
# ~/.cache/qtfs-vm): user tools on a qtfs.ko mount, warm reads, and the POSIX conformance
# suites (the project's own and pjdfstest) on qtfs.ko beside the guest's tmpfs
vm-debian:
	tests/vm/run --debian --kernel 6.12 --only vsock

# criterion benches (see benches/README.md)
bench:
	cargo bench -p qtfs-benches

# side-by-side comparisons (see perf/README.md)
perf:
	perf/run --quick

# regenerate qtp.h, golden vectors and the tables of proto/PROTOCOL.md
gen:
	cargo run -q -p qtfs-proto --bin qtp-gen

# the libvirt use case on one machine (also part of `make test`), and its benchmark
libvirt-e2e:
	usecases/libvirt/e2e

libvirt-bench:
	usecases/libvirt/e2e --bench 10
