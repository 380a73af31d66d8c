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

// Shared with udsproxyd, which uses the decoding half.
#[allow(dead_code)]
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

type ConnectFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type SendtoFn = unsafe extern "C" fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
type SendmsgFn = unsafe extern "C" fn(c_int, *const msghdr, c_int) -> ssize_t;
type GetAffinityFn = unsafe extern "C" fn(libc::pid_t, size_t, *mut libc::cpu_set_t) -> c_int;
type SetAffinityFn = unsafe extern "C" fn(libc::pid_t, size_t, *const libc::cpu_set_t) -> c_int;

static REAL_CONNECT: AtomicUsize = AtomicUsize::new(0);
static REAL_SENDTO: AtomicUsize = AtomicUsize::new(0);
static REAL_SENDMSG: AtomicUsize = AtomicUsize::new(0);
static REAL_GETAFFINITY: AtomicUsize = AtomicUsize::new(0);
static REAL_SETAFFINITY: AtomicUsize = AtomicUsize::new(0);
static REAL_FSTAT: AtomicUsize = AtomicUsize::new(0);
static REAL_FSTAT64: AtomicUsize = AtomicUsize::new(0);
static DISABLED: AtomicBool = AtomicBool::new(false);
/// `$UDSPROXY_SOCKET` (or the default), NUL-padded, read once at load time.
static SOCKET_PATH: [AtomicU64; 14] = [const { AtomicU64::new(0) }; 14];
const DEFAULT_SOCKET: &[u8] = b"/var/run/qtfs/remote_uds.sock";
/// `$REXEC_PIDS_DIR` (or the default; rexec's own variable), NUL-padded, read at load time.
static PIDS_DIR: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
const DEFAULT_PIDS_DIR: &[u8] = b"/var/run/rexec/pids";
/// How long a requester waits for udsproxyd (the engine connects within this).
const ANSWER_TIMEOUT_S: i64 = 30;
/// How long an affinity request waits for the HOST's answer.
const AFFINITY_TIMEOUT_S: i64 = 10;

/// Descriptors that are proxied channels: (inode of the socket, hash of the target), so
/// a later `sendto()` to the same target is recognised and a reused number is not.
const TABLE: usize = 65536;
static TABLE_INO: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];
static TABLE_HASH: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    resolve();
    // The proxy must never proxy itself.
    let mut comm = [0u8; 32];
    // SAFETY: the path is NUL-terminated; the buffer is writable for its length.
    unsafe {
        let fd = libc::open(c"/proc/self/comm".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let n = libc::read(fd, comm.as_mut_ptr().cast(), comm.len());
            libc::close(fd);
            if n > 0 && comm[..n as usize].strip_suffix(b"\n").unwrap_or(&comm[..n as usize]) == b"udsproxyd" {
                DISABLED.store(true, Ordering::Relaxed);
            }
        }
    }
    // A socket path has at most 107 bytes and its NUL.
    store_env(&SOCKET_PATH, c"UDSPROXY_SOCKET", DEFAULT_SOCKET, 107);
    store_env(&PIDS_DIR, c"REXEC_PIDS_DIR", DEFAULT_PIDS_DIR, 200);
}

/// Stores `$var` (or `default`), cut to `max` bytes and NUL-padded, in `slots`.
fn store_env(slots: &[AtomicU64], var: &std::ffi::CStr, default: &[u8], max: usize) {
    let mut path = [0u8; 256];
    let cap = max.min(slots.len() * 8 - 1);
    // SAFETY: getenv at load time (before the program's threads); the result, if any,
    // is a NUL-terminated string that we copy.
    unsafe {
        let p = libc::getenv(var.as_ptr());
        let src: &[u8] = if p.is_null() { default } else { std::ffi::CStr::from_ptr(p).to_bytes() };
        let n = src.len().min(cap);
        path[..n].copy_from_slice(&src[..n]);
    }
    for (i, w) in slots.iter().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&path[i * 8..i * 8 + 8]);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Copies what `store_env` stored into `out`; returns its length (up to the first NUL).
fn load_env(slots: &[AtomicU64], out: &mut [u8]) -> usize {
    let mut n = 0;
    for w in slots {
        for b in w.load(Ordering::Relaxed).to_ne_bytes() {
            if b == 0 || n == out.len() {
                return n;
            }
            out[n] = b;
            n += 1;
        }
    }
    n
}

fn resolve() {
    for (slot, name) in [
        (&REAL_CONNECT, c"connect"),
        (&REAL_SENDTO, c"sendto"),
        (&REAL_SENDMSG, c"sendmsg"),
        (&REAL_GETAFFINITY, c"sched_getaffinity"),
        (&REAL_SETAFFINITY, c"sched_setaffinity"),
        (&REAL_FSTAT, c"fstat"),
        (&REAL_FSTAT64, c"fstat64"),
    ] {
        if slot.load(Ordering::Acquire) == 0 {
            // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds libc's definition.
            let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
            slot.store(p, Ordering::Release);
        }
    }
}

fn real<T: Copy>(slot: &AtomicUsize) -> Option<T> {
    let mut p = slot.load(Ordering::Acquire);
    if p == 0 {
        // Called before our constructor (from another library's constructor).
        resolve();
        p = slot.load(Ordering::Acquire);
    }
    // SAFETY: a non-zero slot holds the address dlsym returned for a function of type T.
    (p != 0).then(|| unsafe { std::mem::transmute_copy::<usize, T>(&p) })
}

fn errno() -> c_int {
    // SAFETY: errno location of the calling thread.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: errno location of the calling thread.
    unsafe { *libc::__errno_location() = e };
}

/// The target of an AF_UNIX address as an absolute path in `out`; None for other
/// families, abstract names, malformed addresses or over-long paths.
fn target_path(addr: *const sockaddr, len: socklen_t, out: &mut [u8; wire::MAX_PATH + 1]) -> Option<usize> {
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    if addr.is_null() || (len as usize) <= base || (len as usize) > std::mem::size_of::<libc::sockaddr_un>() {
        return None;
    }
    // SAFETY: the caller passed `len` readable bytes at `addr` (the kernel accepted them
    // for the real call, which only got here by failing with ENOENT/ECONNREFUSED).
    let bytes = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len as usize) };
    if u16::from_ne_bytes([bytes[0], bytes[1]]) != libc::AF_UNIX as u16 {
        return None;
    }
    let raw = &bytes[base..];
    let raw = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
    if raw.is_empty() {
        return None; // abstract or unnamed
    }
    let mut n = 0;
    if raw[0] != b'/' {
        // SAFETY: getcwd writes at most out.len() bytes, NUL-terminated.
        let p = unsafe { libc::getcwd(out.as_mut_ptr().cast(), out.len()) };
        if p.is_null() {
            return None;
        }
        n = out.iter().position(|&c| c == 0)?;
        if n == 0 || out[n - 1] != b'/' {
            *out.get_mut(n)? = b'/';
            n += 1;
        }
    }
    if n + raw.len() > wire::MAX_PATH {
        return None;
    }
    out[n..n + raw.len()].copy_from_slice(raw);
    Some(n + raw.len())
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3)).max(1)
}

fn sock_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut l = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: v/l describe a writable int.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut l) };
    (r == 0).then_some(v)
}

fn inode(fd: c_int) -> Option<u64> {
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

enum Outcome {
    /// Not proxied: the caller's own error stands.
    Pass,
    /// `fd` is now connected through the proxy.
    Connected,
    /// The HOST side answered with this errno.
    Failed(c_int),
}

/// udsproxyd's request socket address.
fn request_addr() -> libc::sockaddr_un {
    let mut sa: libc::sockaddr_un = {
        // SAFETY: sockaddr_un is plain data.
        unsafe { std::mem::zeroed() }
    };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, w) in SOCKET_PATH.iter().enumerate() {
        for (k, b) in w.load(Ordering::Relaxed).to_ne_bytes().into_iter().enumerate() {
            if i * 8 + k < sa.sun_path.len() {
                sa.sun_path[i * 8 + k] = b as libc::c_char;
            }
        }
    }
    sa
}

/// Asks udsproxyd for a channel of `kind` to `path` and installs it on `fd`.
fn proxy(fd: c_int, kind: u16, path: &[u8]) -> Outcome {
    let Some(real_connect) = real::<ConnectFn>(&REAL_CONNECT) else { return Outcome::Pass };
    let sa = request_addr();
    let mut req = [0u8; wire::REQ_MAX];
    let Some(n) = wire::encode_request(&mut req, wire::OP_CONNECT, kind, path) else { return Outcome::Pass };
    // SAFETY: plain socket calls on a descriptor we own and close on every path; the
    // buffers passed live on this stack frame.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Outcome::Pass;
        }
        let tv = libc::timeval { tv_sec: ANSWER_TIMEOUT_S, tv_usec: 0 };
        libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), 16);
        let sl = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
        if real_connect(s, (&sa as *const libc::sockaddr_un).cast(), sl) != 0
            || libc::send(s, req.as_ptr().cast(), n, libc::MSG_NOSIGNAL) != n as isize
        {
            libc::close(s);
            return Outcome::Pass;
        }
        let mut ans = [0u8; wire::RSP_LEN];
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec { iov_base: ans.as_mut_ptr().cast(), iov_len: ans.len() };
        let mut m: msghdr = std::mem::zeroed();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = std::mem::size_of_val(&cbuf);
        let got = libc::recvmsg(s, &mut m, libc::MSG_CMSG_CLOEXEC);
        libc::close(s);
        let mut newfd = -1;
        let c = libc::CMSG_FIRSTHDR(&m);
        if got > 0 && !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
            let p = libc::CMSG_DATA(c) as *const c_int;
            for i in 0..k {
                let f = std::ptr::read_unaligned(p.add(i));
                if i == 0 {
                    newfd = f
                } else {
                    libc::close(f);
                }
            }
        }
        let status = if got == wire::RSP_LEN as isize { wire::decode_answer(&ans) } else { None };
        match status {
            Some(0) if newfd >= 0 => {
                install(fd, newfd);
                if (fd as usize) < TABLE
                    && let Some(ino) = inode(fd)
                {
                    TABLE_INO[fd as usize].store(ino, Ordering::Relaxed);
                    TABLE_HASH[fd as usize].store(fnv(path), Ordering::Relaxed);
                }
                Outcome::Connected
            }
            other => {
                if newfd >= 0 {
                    libc::close(newfd);
                }
                match other {
                    Some(e) if e > 0 => Outcome::Failed(e),
                    _ => Outcome::Pass,
                }
            }
        }
    }
}

/// Puts the connected socket `newfd` in place of `fd`, keeping what the caller set on
/// `fd`: O_NONBLOCK, FD_CLOEXEC, send/receive timeouts, SO_PASSCRED.
fn install(fd: c_int, newfd: c_int) {
    // SAFETY: fcntl/getsockopt/setsockopt/dup3/close on descriptors the caller and we
    // own; option buffers live on this frame.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        let fdfl = libc::fcntl(fd, libc::F_GETFD);
        for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
            let mut tv: libc::timeval = std::mem::zeroed();
            let mut l = std::mem::size_of::<libc::timeval>() as socklen_t;
            if libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut tv as *mut libc::timeval).cast(), &mut l) == 0
                && (tv.tv_sec != 0 || tv.tv_usec != 0)
            {
                libc::setsockopt(newfd, libc::SOL_SOCKET, opt, (&tv as *const libc::timeval).cast(), l);
            }
        }
        if let Some(v) = sock_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED)
            && v != 0
        {
            libc::setsockopt(newfd, libc::SOL_SOCKET, libc::SO_PASSCRED, (&v as *const c_int).cast(), 4);
        }
        let cloexec = fdfl >= 0 && fdfl & libc::FD_CLOEXEC != 0;
        libc::dup3(newfd, fd, if cloexec { libc::O_CLOEXEC } else { 0 });
        libc::close(newfd);
        if fl >= 0 && fl & libc::O_NONBLOCK != 0 {
            let nfl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, nfl | libc::O_NONBLOCK);
        }
    }
}

fn kind_of(fd: c_int) -> Option<u16> {
    match sock_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)? {
        libc::SOCK_STREAM => Some(wire::KIND_STREAM),
        libc::SOCK_SEQPACKET => Some(wire::KIND_SEQPACKET),
        libc::SOCK_DGRAM => Some(wire::KIND_DGRAM),
        _ => None,
    }
}

/// # Safety
/// Same contract as `connect(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real_connect) = real::<ConnectFn>(&REAL_CONNECT) else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let saved = errno();
    // SAFETY: forwarded unchanged to the real connect.
    let r = unsafe { real_connect(fd, addr, len) };
    if r == 0 || DISABLED.load(Ordering::Relaxed) {
        return r;
    }
    let err = errno();
    if err != libc::ENOENT && err != libc::ECONNREFUSED {
        return r;
    }
    let mut path = [0u8; wire::MAX_PATH + 1];
    let outcome = match (target_path(addr, len, &mut path), kind_of(fd)) {
        (Some(n), Some(kind)) => proxy(fd, kind, &path[..n]),
        _ => Outcome::Pass,
    };
    match outcome {
        Outcome::Connected => {
            set_errno(saved);
            0
        }
        Outcome::Failed(e) => {
            set_errno(e);
            -1
        }
        Outcome::Pass => {
            set_errno(err);
            -1
        }
    }
}

/// Whether `fd` is a channel we installed for the target `path` (same socket inode).
fn is_channel_to(fd: c_int, path: &[u8]) -> bool {
    (fd as usize) < TABLE
        && fd >= 0
        && TABLE_HASH[fd as usize].load(Ordering::Relaxed) == fnv(path)
        && inode(fd).is_some_and(|i| i == TABLE_INO[fd as usize].load(Ordering::Relaxed))
}

fn is_channel(fd: c_int) -> bool {
    (fd as usize) < TABLE
        && fd >= 0
        && TABLE_INO[fd as usize].load(Ordering::Relaxed) != 0
        && inode(fd).is_some_and(|i| i == TABLE_INO[fd as usize].load(Ordering::Relaxed))
}

/// After a datagram send to a path failed locally: whether it may go over a channel
/// (existing, or new when the socket is unconnected and unbound). Ok(true) = `fd` is now
/// (or already was) a channel to that target.
fn dgram_retarget(fd: c_int, dest: *const sockaddr, dlen: socklen_t) -> Result<bool, c_int> {
    if DISABLED.load(Ordering::Relaxed) || kind_of(fd) != Some(wire::KIND_DGRAM) {
        return Ok(false);
    }
    let mut path = [0u8; wire::MAX_PATH + 1];
    let Some(n) = target_path(dest, dlen, &mut path) else { return Ok(false) };
    let path = &path[..n];
    if is_channel_to(fd, path) {
        return Ok(true);
    }
    // SAFETY: address buffers live on this frame and their sizes are passed.
    let fresh = unsafe {
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        let mut l = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
        let unbound = libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut l) == 0
            && l as usize <= std::mem::size_of::<libc::sa_family_t>();
        let mut l2 = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
        let unconnected = libc::getpeername(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut l2) != 0;
        unbound && unconnected
    };
    if !fresh {
        return Ok(false);
    }
    match proxy(fd, wire::KIND_DGRAM, path) {
        Outcome::Connected => Ok(true),
        Outcome::Failed(e) => Err(e),
        Outcome::Pass => Ok(false),
    }
}

/// # Safety
/// Same contract as `sendto(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    dest: *const sockaddr,
    dlen: socklen_t,
) -> ssize_t {
    let Some(real_sendto) = real::<SendtoFn>(&REAL_SENDTO) else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: forwarded unchanged to the real sendto.
    let r = unsafe { real_sendto(fd, buf, len, flags, dest, dlen) };
    if r >= 0 || dest.is_null() {
        return r;
    }
    let err = errno();
    if err != libc::ENOENT && err != libc::ECONNREFUSED {
        return r;
    }
    match dgram_retarget(fd, dest, dlen) {
        // SAFETY: the same buffer, now without a destination (the socket is connected).
        Ok(true) => unsafe { real_sendto(fd, buf, len, flags, std::ptr::null(), 0) },
        Ok(false) => {
            set_errno(err);
            -1
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// Refuses descriptors that cannot cross to the HOST (EOPNOTSUPP) before a proxied
/// socket sends them.
fn check_passed_fds(msg: &msghdr) -> Result<(), c_int> {
    // SAFETY: walking the caller's control messages within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const c_int;
                for i in 0..k {
                    let f = std::ptr::read_unaligned(p.add(i));
                    let mut st: libc::stat = std::mem::zeroed();
                    if libc::fstat(f, &mut st) != 0 {
                        return Err(libc::EBADF);
                    }
                    let ok = match st.st_mode & libc::S_IFMT {
                        libc::S_IFREG => st.st_nlink > 0,
                        libc::S_IFIFO => true,
                        libc::S_IFSOCK => {
                            sock_int(f, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
                                && sock_int(f, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(1)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(libc::EOPNOTSUPP);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    Ok(())
}

/// # Safety
/// Same contract as `sendmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let Some(real_sendmsg) = real::<SendmsgFn>(&REAL_SENDMSG) else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    if !msg.is_null() && !DISABLED.load(Ordering::Relaxed) {
        // SAFETY: the caller passes a valid msghdr.
        let m = unsafe { &*msg };
        if m.msg_controllen > 0
            && !m.msg_control.is_null()
            && is_channel(fd)
            && let Err(e) = check_passed_fds(m)
        {
            set_errno(e);
            return -1;
        }
    }
    // SAFETY: forwarded unchanged to the real sendmsg.
    let r = unsafe { real_sendmsg(fd, msg, flags) };
    if r >= 0 || msg.is_null() {
        return r;
    }
    let err = errno();
    // SAFETY: as above.
    let m = unsafe { &*msg };
    if (err != libc::ENOENT && err != libc::ECONNREFUSED) || m.msg_name.is_null() {
        return r;
    }
    match dgram_retarget(fd, m.msg_name.cast(), m.msg_namelen) {
        Ok(true) => {
            let mut m2 = *m;
            m2.msg_name = std::ptr::null_mut();
            m2.msg_namelen = 0;
            // SAFETY: the caller's message without its destination.
            unsafe { real_sendmsg(fd, &m2, flags) }
        }
        Ok(false) => {
            set_errno(err);
            -1
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

// ------------------------------------------------------------------ CPU affinity

/// Where a pid/tid named by the caller lives (see the module comment for the rule).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    /// Rule 1 or 4: the real function.
    Local,
    /// Rule 2: a local rexec's pid, standing for this HOST pid.
    Mapped(i32),
    /// Rule 3: the HOST decides whether the number is one of its rexec processes/threads.
    Ask(i32),
}

/// Appends the decimal digits of `v` (> 0) to `out` at `n`; the new length.
fn put_decimal(out: &mut [u8], mut n: usize, v: i32) -> Option<usize> {
    let mut digits = [0u8; 12];
    let mut k = 0;
    let mut v = v as u32;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n + k >= out.len() {
        return None;
    }
    for d in digits[..k].iter().rev() {
        out[n] = *d;
        n += 1;
    }
    Some(n)
}

/// The HOST pid in the live pid-map entry `<dir>/<pid>`, if there is one. An entry no
/// rexec holds locked any more (its rexec died; the next rexec removes it) is ignored.
fn pidmap_entry(pid: i32) -> Option<i32> {
    let mut path = [0u8; 256];
    let mut n = load_env(&PIDS_DIR, &mut path);
    if n == 0 {
        return None;
    }
    path[n] = b'/';
    n = put_decimal(&mut path, n + 1, pid)?;
    path[n] = 0;
    let mut buf = [0u8; 24];
    // SAFETY: the path is NUL-terminated on this stack; the descriptor is closed on every
    // path; the read goes into a stack buffer of the given length.
    let got = unsafe {
        let fd =
            libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK);
        if fd < 0 {
            return None;
        }
        // Held by its rexec (LOCK_EX) while that lives: a shared lock must not be granted.
        if libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) == 0 {
            libc::flock(fd, libc::LOCK_UN);
            libc::close(fd);
            return None;
        }
        let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        r
    };
    if got <= 0 {
        return None;
    }
    let txt = &buf[..got as usize];
    let txt = txt.strip_suffix(b"\n").unwrap_or(txt);
    if txt.is_empty() || txt.len() > 10 || !txt.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = txt.iter().fold(0u64, |a, &d| a * 10 + (d - b'0') as u64);
    (v > 0 && v <= i32::MAX as u64).then_some(v as i32)
}

/// Whether the pid map has any entry (a directory we may not list counts as non-empty:
/// the HOST then decides).
fn pidmap_nonempty() -> bool {
    let mut path = [0u8; 256];
    let n = load_env(&PIDS_DIR, &mut path);
    if n == 0 {
        return false;
    }
    path[n] = 0;
    // SAFETY: NUL-terminated path on this stack; getdents64 fills the stack buffer up to
    // its length and the records are walked within what it returned; closed on every path.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd < 0 {
            return *libc::__errno_location() == libc::EACCES;
        }
        let mut buf = [0u64; 512];
        let mut found = false;
        loop {
            let got = libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), std::mem::size_of_val(&buf));
            if got <= 0 {
                break;
            }
            let bytes = std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), got as usize);
            let mut off = 0;
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
            while off + 19 < bytes.len() {
                let reclen = u16::from_ne_bytes([bytes[off + 16], bytes[off + 17]]) as usize;
                if reclen == 0 {
                    break;
                }
                let name = &bytes[off + 19..(off + reclen).min(bytes.len())];
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
                if name != b"." && name != b".." {
                    found = true;
                    break;
                }
                off += reclen;
            }
            if found {
                break;
            }
        }
        libc::close(fd);
        found
    }
}

/// Applies the decision rule of the module comment to `pid`.
fn classify(pid: libc::pid_t) -> Target {
    if pid <= 0 || DISABLED.load(Ordering::Relaxed) {
        return Target::Local;
    }
    // SAFETY: getpid and tgkill with signal 0 only check that `pid` is one of our threads.
    let own = unsafe {
        let me = libc::getpid();
        pid == me || libc::syscall(libc::SYS_tgkill, me, pid, 0) == 0
    };
    if own {
        return Target::Local;
    }
    if let Some(host) = pidmap_entry(pid) {
        return Target::Mapped(host);
    }
    if pidmap_nonempty() { Target::Ask(pid) } else { Target::Local }
}

/// What the HOST said about an affinity request.
enum Answer {
    /// Not asked (no udsproxyd, no engine, caller not allowed): act locally.
    Pass,
    /// Done; for GET, the HOST's mask is the first `usize` bytes of the buffer.
    Done(usize),
    /// The HOST's errno.
    Failed(c_int),
}

/// One affinity exchange with udsproxyd. `mask` is empty for GET; a GET's answer goes to
/// `out`.
fn ask_affinity(which: u16, pid: i32, mask: &[u8], out: &mut [u8; wire::MASK_MAX]) -> Answer {
    let Some(real_connect) = real::<ConnectFn>(&REAL_CONNECT) else { return Answer::Pass };
    let sa = request_addr();
    let mut req = [0u8; wire::AFF_REQ_MAX];
    let Some(n) = wire::encode_affinity(&mut req, which, pid, mask) else { return Answer::Failed(libc::EINVAL) };
    let mut ans = [0u8; wire::AFF_RSP_MAX];
    // SAFETY: plain socket calls on a descriptor we own and close on every path; the
    // buffers live on this stack frame and their lengths are passed.
    let got = unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Answer::Pass;
        }
        let tv = libc::timeval { tv_sec: AFFINITY_TIMEOUT_S, tv_usec: 0 };
        libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), 16);
        libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&tv as *const libc::timeval).cast(), 16);
        let sl = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
        if real_connect(s, (&sa as *const libc::sockaddr_un).cast(), sl) != 0
            || libc::send(s, req.as_ptr().cast(), n, libc::MSG_NOSIGNAL) != n as isize
        {
            libc::close(s);
            return Answer::Pass;
        }
        let got = loop {
            let r = libc::recv(s, ans.as_mut_ptr().cast(), ans.len(), 0);
            if r >= 0 || *libc::__errno_location() != libc::EINTR {
                break r;
            }
        };
        libc::close(s);
        got
    };
    if got < 0 {
        // Sent, never answered: the HOST may have acted; do not act locally too.
        return Answer::Failed(libc::ETIMEDOUT);
    }
    match wire::decode_affinity_answer(&ans[..got as usize]) {
        Some((0, m)) => {
            out[..m.len()].copy_from_slice(m);
            Answer::Done(m.len())
        }
        Some((wire::PASS, _)) => Answer::Pass,
        Some((e, _)) if e > 0 => Answer::Failed(e),
        // udsproxyd went away mid-request (EOF) or answered nonsense.
        _ => Answer::Failed(libc::EIO),
    }
}

/// Sends the request to the HOST per the rule: None = act locally, else the HOST's
/// outcome (for GET, the mask's length in `out`).
fn remote_affinity(
    target: Target,
    which: u16,
    mask: &[u8],
    out: &mut [u8; wire::MASK_MAX],
) -> Option<Result<usize, c_int>> {
    let (pid, local_on) = match target {
        Target::Local => return None,
        Target::Mapped(host) => (host, &[][..]),
        Target::Ask(n) => (n, &[libc::ESRCH, libc::EPERM][..]),
    };
    match ask_affinity(which, pid, mask, out) {
        Answer::Pass => None,
        Answer::Done(n) => Some(Ok(n)),
        Answer::Failed(e) if local_on.contains(&e) => None,
        Answer::Failed(e) => Some(Err(e)),
    }
}

/// # Safety
/// Same contract as `sched_getaffinity(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sched_getaffinity(pid: libc::pid_t, size: size_t, set: *mut libc::cpu_set_t) -> c_int {
    let Some(real_get) = real::<GetAffinityFn>(&REAL_GETAFFINITY) else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let saved = errno();
    let target = classify(pid);
    let mut mask = [0u8; wire::MASK_MAX];
    let answer = remote_affinity(target, wire::AFF_GET, &[], &mut mask);
    set_errno(saved);
    match answer {
        None => {
            // SAFETY: forwarded unchanged to the real function.
            unsafe { real_get(pid, size, set) }
        }
        Some(Ok(n)) => {
            // As the kernel: the caller's set must be whole words and hold every CPU the
            // HOST reports; glibc clears what the kernel did not write.
            let fits = mask[n.min(size)..n].iter().all(|&b| b == 0);
            if !size.is_multiple_of(std::mem::size_of::<libc::c_ulong>()) || !fits {
                set_errno(libc::EINVAL);
                return -1;
            }
            if set.is_null() {
                set_errno(libc::EFAULT);
                return -1;
            }
            // SAFETY: the caller passes `size` writable bytes at `set`.
            let dst = unsafe { std::slice::from_raw_parts_mut(set.cast::<u8>(), size) };
            let k = n.min(size);
            dst[..k].copy_from_slice(&mask[..k]);
            dst[k..].fill(0);
            0
        }
        Some(Err(e)) => {
            set_errno(e);
            -1
        }
    }
}

/// # Safety
/// Same contract as `sched_setaffinity(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sched_setaffinity(pid: libc::pid_t, size: size_t, set: *const libc::cpu_set_t) -> c_int {
    let Some(real_set) = real::<SetAffinityFn>(&REAL_SETAFFINITY) else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let saved = errno();
    let target = classify(pid);
    if target == Target::Local || set.is_null() {
        set_errno(saved);
        // SAFETY: forwarded unchanged to the real function.
        return unsafe { real_set(pid, size, set) };
    }
    // SAFETY: the caller passes `size` readable bytes at `set`.
    let src = unsafe { std::slice::from_raw_parts(set.cast::<u8>(), size) };
    // Only the words up to the highest CPU set travel (at least one word); a set naming
    // CPUs beyond what the wire carries is refused as the kernel refuses an impossible one.
    let word = std::mem::size_of::<libc::c_ulong>();
    let used = src.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let len = used.div_ceil(word).max(1) * word;
    if len > wire::MASK_MAX {
        set_errno(libc::EINVAL);
        return -1;
    }
    let mut mask = [0u8; wire::MASK_MAX];
    mask[..used].copy_from_slice(&src[..used]);
    let mut out = [0u8; wire::MASK_MAX];
    let answer = remote_affinity(target, wire::AFF_SET, &mask[..len], &mut out);
    set_errno(saved);
    match answer {
        None => {
            // SAFETY: forwarded unchanged to the real function.
            unsafe { real_set(pid, size, set) }
        }
        Some(Ok(_)) => 0,
        Some(Err(e)) => {
            set_errno(e);
            -1
        }
    }
}

// ---------------------------------------------------------------- fstat (qtfs-fuse relay)

type FstatFn = unsafe extern "C" fn(c_int, *mut libc::stat64) -> c_int;

/// `FUSE_SUPER_MAGIC`.
const FUSE_MAGIC: i64 = 0x6573_5546;

/// The type a relayed qtfs-fuse file stands for: (`S_IFCHR` or `S_IFIFO`, rdev), from
/// its `user.qtfs.relay` attribute ("c MAJOR:MINOR" or "p"). None for anything else.
fn relay_kind(fd: c_int) -> Option<(u32, u64)> {
    let mut v = [0u8; 32];
    // SAFETY: fstatfs and fgetxattr write at most the sizes given into our buffers.
    let n = unsafe {
        let mut sfs: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(fd, &mut sfs) != 0 || sfs.f_type as i64 != FUSE_MAGIC {
            return None;
        }
        libc::fgetxattr(fd, c"user.qtfs.relay".as_ptr(), v.as_mut_ptr().cast(), v.len())
    };
    let v = v.get(..usize::try_from(n).ok()?)?;
    parse_relay(v)
}

fn parse_relay(v: &[u8]) -> Option<(u32, u64)> {
    if v == b"p" {
        return Some((libc::S_IFIFO, 0));
    }
    let s = std::str::from_utf8(v.strip_prefix(b"c ")?).ok()?;
    let (ma, mi) = s.split_once(':')?;
    Some((libc::S_IFCHR, libc::makedev(ma.parse().ok()?, mi.parse().ok()?)))
}

/// Rewrites a successful `fstat` result of a relayed file; errno is left as it was.
fn relay_fixup(fd: c_int, mode: &mut u32, size: i64, rdev: &mut u64) {
    if *mode & libc::S_IFMT != libc::S_IFREG || size != 0 || DISABLED.load(Ordering::Relaxed) {
        return;
    }
    let saved = errno();
    if let Some((kind, dev)) = relay_kind(fd) {
        *mode = (*mode & !libc::S_IFMT) | kind;
        *rdev = dev;
    }
    set_errno(saved);
}

fn fstat_common(slot: &AtomicUsize, fd: c_int, buf: *mut libc::stat64) -> c_int {
    let r = match real::<FstatFn>(slot) {
        // SAFETY: forwarded unchanged to the real function.
        Some(f) => unsafe { f(fd, buf) },
        // glibc before 2.33 exports no fstat (programs call __fxstat): the system call,
        // whose result has glibc's 64-bit layout on the 64-bit targets we build for.
        // SAFETY: the caller passes a writable struct stat.
        None => unsafe { libc::syscall(libc::SYS_newfstatat, fd, c"".as_ptr(), buf, libc::AT_EMPTY_PATH) as c_int },
    };
    if r == 0 && !buf.is_null() {
        // SAFETY: the call succeeded, so `buf` holds a struct stat we may change.
        let st = unsafe { &mut *buf };
        relay_fixup(fd, &mut st.st_mode, st.st_size, &mut st.st_rdev);
    }
    r
}

/// # Safety
/// Same contract as `fstat(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int {
    fstat_common(&REAL_FSTAT64, fd, buf)
}

/// # Safety
/// Same contract as `fstat(2)` (on 64-bit glibc `struct stat` is `struct stat64`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    fstat_common(&REAL_FSTAT, fd, buf.cast())
}

#[cfg(test)]
mod relay_tests {
    use super::*;

    #[test]
    fn relay_markers() {
        assert_eq!(parse_relay(b"p"), Some((libc::S_IFIFO, 0)));
        assert_eq!(parse_relay(b"c 136:4"), Some((libc::S_IFCHR, libc::makedev(136, 4))));
        assert_eq!(parse_relay(b"c 136"), None);
        assert_eq!(parse_relay(b"x"), None);
        assert_eq!(parse_relay(b""), None);
    }
}
