//! The libc calls the interposers make, each a small safe function around one call (or a
//! few that belong together) with its safety argument. No allocation and no locks: every
//! buffer is the caller's, on its stack; errors are the raw return values or `None`.

use std::ffi::CStr;

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

/// The types of the real libc functions the interposers call through (`rt` holds them).
pub(crate) type ConnectFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
pub(crate) type SendtoFn =
    unsafe extern "C" fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
pub(crate) type SendmsgFn = unsafe extern "C" fn(c_int, *const msghdr, c_int) -> ssize_t;
pub(crate) type GetAffinityFn = unsafe extern "C" fn(libc::pid_t, size_t, *mut libc::cpu_set_t) -> c_int;
pub(crate) type SetAffinityFn = unsafe extern "C" fn(libc::pid_t, size_t, *const libc::cpu_set_t) -> c_int;
pub(crate) type FstatFn = unsafe extern "C" fn(c_int, *mut libc::stat64) -> c_int;

/// The calling thread's errno.
pub(crate) fn errno() -> c_int {
    // SAFETY: errno location of the calling thread.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: errno location of the calling thread.
    unsafe { *libc::__errno_location() = e };
}

/// `close(2)` of a descriptor this library opened or received and no longer uses.
pub(crate) fn close(fd: c_int) {
    // SAFETY: plain system call on a descriptor we own.
    unsafe { libc::close(fd) };
}

/// `open(2)`; None when it fails (errno says why).
pub(crate) fn open(path: &CStr, flags: c_int) -> Option<c_int> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    (fd >= 0).then_some(fd)
}

/// `read(2)` into `buf`.
pub(crate) fn read(fd: c_int, buf: &mut [u8]) -> isize {
    // SAFETY: buf is writable for its length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// `flock(2)`.
pub(crate) fn flock(fd: c_int, op: c_int) -> c_int {
    // SAFETY: plain system call.
    unsafe { libc::flock(fd, op) }
}

/// `getdents64(2)` into `buf`: the bytes it filled, None at the end or on error.
pub(crate) fn getdents64(fd: c_int, buf: &mut [u64; 512]) -> Option<&[u8]> {
    // SAFETY: buf is writable for the size passed.
    let got = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), std::mem::size_of_val(buf)) };
    if got <= 0 {
        return None;
    }
    // SAFETY: the kernel filled the first `got` bytes (at most the buffer's size) of buf.
    Some(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), got as usize) })
}

/// `fstat(2)`.
pub(crate) fn fstat(fd: c_int) -> Option<libc::stat> {
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// The inode number of `fd`.
pub(crate) fn inode(fd: c_int) -> Option<u64> {
    fstat(fd).map(|st| st.st_ino)
}

/// The `f_type` of the file system holding `fd` (`fstatfs(2)`).
pub(crate) fn fs_type(fd: c_int) -> Option<i64> {
    // SAFETY: statfs is plain data, filled by fstatfs.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: sfs is writable.
    (unsafe { libc::fstatfs(fd, &mut sfs) } == 0).then_some(sfs.f_type as i64)
}

/// `fgetxattr(2)` of `name` into `buf`: its length, or -1.
pub(crate) fn fgetxattr(fd: c_int, name: &CStr, buf: &mut [u8]) -> isize {
    // SAFETY: name is NUL-terminated; fgetxattr writes at most buf.len() bytes.
    unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
}

/// `fcntl(fd, cmd)` for a query (F_GETFL, F_GETFD).
pub(crate) fn fcntl_get(fd: c_int, cmd: c_int) -> c_int {
    // SAFETY: plain system call without a pointer argument.
    unsafe { libc::fcntl(fd, cmd) }
}

/// `fcntl(fd, cmd, arg)` with an integer argument (F_SETFL).
pub(crate) fn fcntl_set(fd: c_int, cmd: c_int, arg: c_int) {
    // SAFETY: plain system call without a pointer argument.
    unsafe { libc::fcntl(fd, cmd, arg) };
}

/// `dup3(2)`.
pub(crate) fn dup3(old: c_int, new: c_int, flags: c_int) {
    // SAFETY: plain system call on descriptors the caller and we own.
    unsafe { libc::dup3(old, new, flags) };
}

/// An integer socket option.
pub(crate) fn sock_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut l = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: v/l describe a writable int.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut l) };
    (r == 0).then_some(v)
}

/// Sets an integer socket option (4 bytes).
pub(crate) fn set_sock_int(fd: c_int, level: c_int, name: c_int, v: c_int) {
    // SAFETY: v is a readable int of the size passed.
    unsafe { libc::setsockopt(fd, level, name, (&v as *const c_int).cast(), 4) };
}

/// A `timeval` socket option of `SOL_SOCKET` (SO_RCVTIMEO, SO_SNDTIMEO) and its length.
pub(crate) fn sock_timeval(fd: c_int, opt: c_int) -> Option<(libc::timeval, socklen_t)> {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut l = std::mem::size_of::<libc::timeval>() as socklen_t;
    // SAFETY: tv/l describe a writable timeval.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut tv as *mut libc::timeval).cast(), &mut l) };
    (r == 0).then_some((tv, l))
}

/// Sets a `timeval` socket option of `SOL_SOCKET`, passing `len` bytes of `tv`.
pub(crate) fn set_sock_timeval(fd: c_int, opt: c_int, tv: &libc::timeval, len: socklen_t) {
    let len = len.min(std::mem::size_of::<libc::timeval>() as socklen_t);
    // SAFETY: tv is readable for len bytes (at most its size).
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (tv as *const libc::timeval).cast(), len) };
}

/// The length `getsockname(2)` reports for `fd`, None when it fails.
pub(crate) fn sockname_len(fd: c_int) -> Option<socklen_t> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut l = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
    // SAFETY: sa/l describe a writable address buffer of the size passed.
    let r = unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut l) };
    (r == 0).then_some(l)
}

/// Whether `getpeername(2)` succeeds on `fd` (the socket is connected).
pub(crate) fn has_peer(fd: c_int) -> bool {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut l = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
    // SAFETY: sa/l describe a writable address buffer of the size passed.
    (unsafe { libc::getpeername(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut l) }) == 0
}

/// The working directory, NUL-terminated, into `out`; false when it does not fit.
pub(crate) fn getcwd(out: &mut [u8]) -> bool {
    // SAFETY: getcwd writes at most out.len() bytes, NUL-terminated.
    !unsafe { libc::getcwd(out.as_mut_ptr().cast(), out.len()) }.is_null()
}

/// Whether `pid` is this process or one of its threads (`tgkill` with signal 0 only
/// checks).
pub(crate) fn is_own_thread(pid: libc::pid_t) -> bool {
    // SAFETY: getpid and tgkill with signal 0 only check that `pid` is one of our threads.
    unsafe {
        let me = libc::getpid();
        pid == me || libc::syscall(libc::SYS_tgkill, me, pid, 0) == 0
    }
}

/// A `SOCK_SEQPACKET` socket to udsproxyd's request socket `sa`, connected with the real
/// `connect`, with a receive timeout of `secs` (and a send timeout when `send_timeout`),
/// after `req` was sent on it; None (and nothing left open) on any failure.
pub(crate) fn request_socket(
    real_connect: ConnectFn,
    sa: &libc::sockaddr_un,
    secs: i64,
    send_timeout: bool,
    req: &[u8],
) -> Option<c_int> {
    // SAFETY: plain system call without a pointer argument.
    let s = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return None;
    }
    let tv = libc::timeval { tv_sec: secs, tv_usec: 0 };
    set_sock_timeval(s, libc::SO_RCVTIMEO, &tv, 16);
    if send_timeout {
        set_sock_timeval(s, libc::SO_SNDTIMEO, &tv, 16);
    }
    let sl = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
    // SAFETY: real_connect is libc's connect; sa is a valid sockaddr_un of the size passed.
    let connected = unsafe { real_connect(s, (sa as *const libc::sockaddr_un).cast(), sl) } == 0;
    if !connected || send(s, req) != req.len() as isize {
        close(s);
        return None;
    }
    Some(s)
}

/// `send(2)` of `buf` without SIGPIPE.
pub(crate) fn send(s: c_int, buf: &[u8]) -> isize {
    // SAFETY: buf is readable for its length.
    unsafe { libc::send(s, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) }
}

/// `recv(2)` into `buf`, repeated on EINTR.
pub(crate) fn recv_retry(s: c_int, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: buf is writable for its length.
        let r = unsafe { libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if r >= 0 || errno() != libc::EINTR {
            return r;
        }
    }
}

/// One `recvmsg(2)` into `buf` with room for passed descriptors (`MSG_CMSG_CLOEXEC`) in
/// `cbuf`: (its result, the control bytes it filled).
pub(crate) fn recvmsg(s: c_int, buf: &mut [u8], cbuf: &mut [u64; 8]) -> (isize, usize) {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data.
    let mut m: msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(cbuf);
    // SAFETY: m points at iov and cbuf, both writable for the lengths it gives.
    let got = unsafe { libc::recvmsg(s, &mut m, libc::MSG_CMSG_CLOEXEC) };
    (got, m.msg_controllen as usize)
}

/// The first descriptor of the SCM_RIGHTS message at the start of `cbuf` (of which
/// `recvmsg` filled `len` bytes), closing any others; -1 when there is none.
pub(crate) fn take_first_fd(cbuf: &mut [u64; 8], len: usize) -> c_int {
    // SAFETY: msghdr is plain data.
    let mut m: msghdr = unsafe { std::mem::zeroed() };
    m.msg_control = cbuf.as_mut_ptr().cast();
    m.msg_controllen = len.min(std::mem::size_of_val(cbuf)) as _;
    let mut newfd = -1;
    // SAFETY: m's control buffer is cbuf, of which the kernel filled `len` bytes; the
    // CMSG macros stay within msg_controllen and the descriptors are read unaligned.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&m);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
            let p = libc::CMSG_DATA(c) as *const c_int;
            for i in 0..k {
                let f = std::ptr::read_unaligned(p.add(i));
                if i == 0 { newfd = f } else { close(f) }
            }
        }
    }
    newfd
}

/// Calls `f` with every descriptor of the SCM_RIGHTS messages of the caller's `msg`, in
/// order, until it returns an error.
pub(crate) fn for_each_passed_fd(msg: &msghdr, mut f: impl FnMut(c_int) -> Result<(), c_int>) -> Result<(), c_int> {
    // SAFETY: msg is the caller's valid msghdr (sendmsg's contract) with msg_controllen
    // bytes of control messages; the CMSG macros stay within them and the descriptors are
    // read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const c_int;
                for i in 0..k {
                    f(std::ptr::read_unaligned(p.add(i)))?;
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    Ok(())
}
