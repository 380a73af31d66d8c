//! # libudsproxy.so — reach HOST unix sockets from the DPU without changing programs
//!
//! `LD_PRELOAD=libudsproxy.so PROGRAM`: the library interposes `connect()`, `sendto()`
//! and `sendmsg()`. Every call first runs the real function; only an `AF_UNIX` call that
//! fails with `ENOENT` or `ECONNREFUSED` (the path does not exist here, or nobody
//! listens) asks udsproxyd (`$UDSPROXY_SOCKET`, default `/var/run/qtfs/remote_uds.sock`)
//! for a channel. udsproxyd decides (its udsconnect whitelist); if it proxies the path
//! it returns a socket already connected to the HOST socket, which is `dup3`'d onto the
//! caller's descriptor with the caller's `O_NONBLOCK`, `FD_CLOEXEC`, timeouts and
//! `SO_PASSCRED` preserved. Otherwise the caller sees exactly the errno of its own
//! attempt. Nothing is written to disk.
//!
//! - `connect()`: `SOCK_STREAM`, `SOCK_SEQPACKET` and `SOCK_DGRAM`.
//! - `sendto()`/`sendmsg()` with an `AF_UNIX` destination on an unconnected, unbound
//!   `SOCK_DGRAM` socket: the socket becomes a channel to that destination (replies come
//!   back on it); later sends to the same destination go over the channel. A second
//!   remote destination on the same socket is not supported (the local error stands).
//! - Abstract addresses (leading NUL) are never proxied: they are local to a network
//!   namespace by nature. Relative paths are made absolute with the caller's working
//!   directory, which must then name the same place on the HOST (as qtfs mounts do).
//! - Passing descriptors (`SCM_RIGHTS`) on a proxied socket: regular files with a path,
//!   pipes/FIFOs and listening unix sockets cross; anything else makes `sendmsg` fail
//!   with `EOPNOTSUPP` before anything is sent.
//! - Not proxied: programs named `udsproxyd` (the proxy itself).
//!
//! ## CPU affinity of HOST processes: `sched_getaffinity()`, `sched_setaffinity()`
//!
//! libvirtd asks for and sets the affinity of the domain's process (its pid is the local
//! `rexec` that started qemu on the HOST) and of qemu's vCPU threads (thread ids that QMP
//! reports, i.e. HOST ids). The library interposes glibc's `sched_getaffinity` and
//! `sched_setaffinity` and decides, for the number `n` the caller names:
//!
//! 1. `n == 0`, `n < 0`, the caller's own pid or one of its threads (`tgkill(getpid(), n,
//!    0)` succeeds): **local** (the real function).
//! 2. `n` has a live entry in the rexec pid map (`$REXEC_PIDS_DIR/<n>`, default
//!    `/var/run/rexec/pids/<n>`, still `flock`ed by its rexec): the call acts on the
//!    **HOST pid** the entry holds, through udsproxyd and the engine. Any error is the
//!    HOST's (ESRCH: the HOST process is gone).
//! 3. otherwise, if the pid map holds at least one entry: the HOST is asked about `n`
//!    itself. The engine acts only on processes started through `rexec_server` and on
//!    their threads (and only with `--allow-kill` and the process's name in `[Kill]`): it
//!    is the authority that says "n is a HOST thread or process of ours". Its refusals
//!    that mean "not such a process" — ESRCH and EPERM — make the call **local**; any
//!    other HOST error (EINVAL for an empty mask …) is returned as is.
//! 4. otherwise (no pid map entry at all: no VM runs through rexec): **local**.
//!
//! Whenever the HOST cannot be asked (no udsproxyd, no engine connection, the caller not
//! allowed by udsproxyd), the call is local, as without the library. A request that was
//! sent but never answered fails with ETIMEDOUT (the HOST may have acted). Consequence
//! of rule 3, by design: a DPU process whose pid equals the thread id of a HOST process
//! started through rexec (a deliberate collision) is not acted on, the HOST thread is; a
//! DPU process whose pid equals a HOST process *not* started through rexec is acted on
//! locally. `pthread_getaffinity_np`/`pthread_setaffinity_np` are not affected: glibc
//! implements them with the system call directly, on the caller's own threads.
//!
//! ## HOST consoles through qtfs-fuse: `fstat()`
//!
//! qtfs-fuse `-o relay` shows a HOST character device or FIFO (a VM's console pty under
//! the HOST's `/dev/pts`) as a regular file of size 0, because FUSE cannot pass such an
//! inode through, and names its real type in the extended attribute `user.qtfs.relay`
//! (`c MAJOR:MINOR` or `p`; `client-fuse/src/relay.rs`). libvirt refuses a read-write
//! stream on a regular file ("Cannot request read and write flags together"), so the
//! library interposes `fstat`/`fstat64`: a size-0 regular file on a FUSE file system
//! whose descriptor carries that attribute is reported as the character device (or FIFO)
//! it stands for. Every other `fstat` is the real one, unchanged (two extra system calls,
//! `fstatfs` and `fgetxattr`, only for size-0 regular files).
//!
//! Implementation rules: no allocation and no locks on these paths (stack buffers,
//! atomics); the real functions are looked up once, at load time (`dlsym(RTLD_NEXT)`),
//! so the interposed calls never enter the dynamic linker; `errno` is saved and restored
//! around everything the library does. Written in Rust with `libc` only; the request
//! format is `wire.rs`, shared byte for byte with udsproxyd.
//!
//! Modules: `rt` (the real functions and the settings read at load time), `sys` (every
//! libc call, each a small function with its safety argument), `uds` (the unix-socket
//! interposers) and `channel` (asking udsproxyd for a channel, installing it, the channel
//! table), `affinity` (the CPU affinity interposers), `relay` (the `fstat` interposers).

// Shared with udsproxyd, which uses the decoding half.
mod affinity;
mod channel;
mod relay;
mod rt;
mod sys;
mod uds;
#[allow(dead_code)]
mod wire;
