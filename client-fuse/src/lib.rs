//! # qtfs-fuse — the qtfs client in user space
//!
//! Mounts a directory exported by a qtfs engine through FUSE, for machines that cannot
//! load the kernel module and to test and benchmark the file system on any Linux box.
//! `qtfs-fuse --help` documents the command line.
//!
//! ## The FUSE layer
//!
//! [`kernel`] speaks the kernel's FUSE protocol itself (no libfuse, no `fuser`): the ABI,
//! mounting (mount(2) as root, `fusermount3` otherwise), INIT, and N worker threads each
//! on its own cloned `/dev/fuse` descriptor (`FUSE_DEV_IOC_CLONE`) with a `&self` file
//! system. That is the libfuse multi-threaded model that bindfs (our FUSE limit) uses,
//! and the simplest way to have many requests in flight: every worker blocks in its
//! engine request while the others keep reading `/dev/fuse`, so fio at iodepth 16 has 16
//! requests on the wire, each worker on its own engine connection of the shared session
//! ([`direct`]). Owning the wire gives flock(2) (`FUSE_LK_FLOCK`, which `fuser` 0.18
//! dropped) and FUSE over io_uring (`-o io_uring=auto|on|off`, [`kernel::ring`]): where
//! the kernel offers it, requests come through one ring per possible CPU, whose threads
//! serve the requests that wait only for the engine themselves, as tasks (many in flight
//! per thread on one engine connection, [`ringconn`]), and hand the others (locks,
//! relays) to a pool of `threads` workers running the same parsing and dispatch; two
//! `/dev/fuse` workers stay for FORGET, INTERRUPT and notifications. `-o dev_ring=on`
//! gives `/dev/fuse` the same shape where io_uring is not used: a ring thread per CPU
//! reading its own descriptor clones, tasks, the same pool.
//!
//! ## Data path and caching (the coherence contract)
//!
//! - READ/WRITE up to 1 MiB (`max_read`/`max_write`, the engine's limit) and readahead of
//!   up to 1 MiB (`-o readahead_kb`, default 1024), so sequential I/O moves in 1 MiB
//!   requests.
//! - Attributes and names are cached by the kernel for `-o attr_timeout` /
//!   `entry_timeout` (default 1 s each), and so are negative entries (a name found
//!   missing) unless `-o noinval` (then only with `-o negative_timeout`, default 0 there).
//!   **A change made on the HOST or through another
//!   client is seen within milliseconds** where the engine offers `feat::INVAL`: it
//!   reports changed paths, and [`inval`] drops the kernel's attributes, pages and names
//!   for them (a file this mount locked a moment ago hears of it at the end of the
//!   lock's [`fences`] hold). The attribute timeout stays the fallback: the kernel re-validates
//!   attributes when they expire, and with `FUSE_AUTO_INVAL_DATA` a changed mtime or size
//!   drops the cached pages of that file.
//! - File pages stay cached across opens only while the file's (mtime, size) is what it
//!   was at the previous open (`FOPEN_KEEP_CACHE`), i.e. close-to-open coherence as NFS.
//! - Writes are write-through by default: `write(2)` returns after the engine has written
//!   the data into the HOST file, so every acknowledged write is on the HOST (in its page
//!   cache; `fsync` makes it durable there).
//! - `-o writeback_cache` lets the kernel gather writes in its page cache and send them
//!   in large batches (much faster small writes). Trade-off: data reaches the HOST only
//!   on `fsync`, `close` (the kernel flushes before FLUSH) or memory pressure, and the
//!   kernel then trusts its own size and mtime for cached regular files, so a size or
//!   content change made *on the HOST* to a file this client holds in cache is not seen
//!   until that file leaves the cache. Use it for a single writer; it is off by default
//!   and never used to meet the benchmark targets.
//!
//! - Files of pseudo file systems (procfs, sysfs, cgroupfs, debugfs …; the HOST file
//!   system's type, per device) bypass the page cache with `FOPEN_DIRECT_IO`: their
//!   sizes say nothing about their content ([`pseudo`]).
//! - `-o proc` mounts the HOST's `/proc` with the DPU's own processes kept: `self`, the
//!   DPU's pids (served from the local `/proc`), a local rexec's pid as its HOST process
//!   (the rexec pid map), every other number the HOST's. The rule is in [`procfs`].
//! - HOST cgroups: through `-o proc`, `/proc/<pid>/mounts` and `mountinfo` show the HOST's
//!   cgroup file systems beneath a qtfs-fuse mount with their HOST type; process numbers
//!   written into `cgroup.procs`/`tasks`/`cgroup.threads` of a HOST cgroup are translated
//!   (a local rexec's pid to its HOST pid, a HOST thread of one as it is, a DPU-only
//!   process refused). The rules are in [`cgroups`].
//!
//! - `-o relay` presents the HOST's character devices and FIFOs as size-0 regular files
//!   whose opens, reads, writes and polls are relayed to the HOST object (a VM's
//!   console pty): [`relay`].
//!
//! ## Where the time goes (measured, `perf/fio-compare`)
//!
//! An uncached 4 KiB request costs one FUSE round trip (as for bindfs) plus one engine
//! round trip over TCP loopback: two more thread wake-ups and four socket system calls.
//! On the 2-vCPU test machine that engine round trip alone (client library PING) takes
//! 17-70 µs depending on load, against about 20 µs for a whole bindfs request, so 4k
//! random I/O stays well below bindfs. What paid off: one engine connection per worker
//! (no reader-thread hand-off, about 2x on 4k writes), `FUSE_HANDLE_KILLPRIV_V2` (the
//! kernel stopped asking for `security.capability` before every write, 2x), 1 MiB
//! requests and readahead. What did not: answering READs asynchronously from the
//! session's reader thread (no measurable gain at QD16, so not kept). Rejected as
//! distorting: pushing prefetched pages into the page cache (`NOTIFY_STORE`) on random
//! reads, and any caching that would hide HOST-side changes beyond the timeouts.
//!
//! ## Names and node ids
//!
//! The engine is path-based; [`nodes`] maps FUSE node ids to HOST inodes and their names
//! (hard links share a node; renames move whole subtrees). `st_ino` as seen through the
//! mount is the node id (stable while the kernel knows the file; equal for hard links).
//!
//! ## Identity
//!
//! Every path request carries the caller's uid/gid from the FUSE request and its
//! supplementary groups from `/proc/PID/status` (cached for a second, [`creds`]); the
//! mount uses `default_permissions`, so the kernel checks permissions with the same
//! attributes the engine enforces with the caller's identity on the HOST.
//!
//! ## Engine restarts
//!
//! See [`remote`]: the session reconnects, the export is mounted again, open files are
//! re-opened by path, idempotent requests are retried, and a request whose outcome is
//! unknown (an append, a create) fails with EIO instead of being guessed. No request
//! waits longer than `-o reconnect_timeout` (then ETIMEDOUT), a signal to its caller
//! ends the wait (EINTR), and the re-mount runs on its own thread under no lock that a
//! request needs.

pub mod cgmounts;
pub mod cgroups;
pub mod creds;
pub mod daemon;
pub mod direct;
pub mod error;
pub mod fences;
pub mod fs;
pub mod inval;
pub mod kernel;
pub mod locks;
pub mod nodes;
pub mod options;
pub mod procfs;
pub mod pseudo;
pub mod relay;
pub mod remote;
mod ringconn;

pub use error::FuseError;
pub use fs::{FsConfig, QtfsFs};
pub use options::{Cli, MountConfig};
