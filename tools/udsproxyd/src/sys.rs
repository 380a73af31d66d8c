//! Thin safe wrappers over the system calls udsproxyd makes. Every `unsafe` of the crate
//! lives here; errors keep their raw errno.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_sz(r: isize) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just created for us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The errno of an error (EIO when it has none).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    Ok(own(check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?))
}

pub fn epoll_add(ep: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event for the call.
    check(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
}

pub fn epoll_del(ep: RawFd, fd: RawFd) {
    // SAFETY: plain syscall; a descriptor already gone is fine.
    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

/// Waits for events; returns how many entries of `evs` were filled (0 on EINTR).
pub fn epoll_wait(ep: RawFd, evs: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
    // SAFETY: evs is writable for evs.len() entries.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
    n.max(0) as usize
}

pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    Ok(own(check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?))
}

pub fn eventfd_kick(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; an overflowing counter is harmless.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// A connected pair of unix sockets of `ty`, close-on-exec.
pub fn socketpair(ty: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    check(unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    Ok((own(fds[0]), own(fds[1])))
}

pub fn unix_socket(ty: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    Ok(own(check(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?))
}

/// Waits up to `timeout` for `fd` to become readable; false on timeout.
pub fn wait_readable(fd: RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((own(fds[0]), own(fds[1])))
}

pub fn get_fl(fd: RawFd) -> io::Result<i32> {
    // SAFETY: plain syscall.
    check(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    let fl = get_fl(fd)?;
    let nfl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
    if nfl != fl {
        // SAFETY: plain syscall.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, nfl) })?;
    }
    Ok(())
}

/// A `sockaddr_un` for a path or an abstract name (leading NUL).
pub fn sockaddr_un(path: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let abs = path.first() == Some(&0);
    if path.is_empty() || path.len() + usize::from(!abs) > sa.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + path.len() + usize::from(!abs);
    Ok((sa, len as libc::socklen_t))
}

/// `connect(2)` of a unix socket to a path or abstract name.
pub fn connect_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    let (sa, len) = sockaddr_un(path)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    check(unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

pub fn bind_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    let (sa, len) = sockaddr_un(path)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    check(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// Binds to a kernel-chosen abstract name.
pub fn autobind_unix(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: a family-only address requests autobind.
    check(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// The bound name of a unix socket (abstract names keep their leading NUL).
pub fn unix_local_name(fd: RawFd) -> io::Result<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa/len describe a writable sockaddr_un.
    check(unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) })?;
    let n = (len as usize).saturating_sub(std::mem::offset_of!(libc::sockaddr_un, sun_path)).min(sa.sun_path.len());
    let mut out: Vec<u8> = sa.sun_path[..n].iter().map(|&c| c as u8).collect();
    if out.first() != Some(&0)
        && let Some(z) = out.iter().position(|&c| c == 0)
    {
        out.truncate(z);
    }
    Ok(out)
}

pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::listen(fd, backlog) }).map(|_| ())
}

/// `accept4` with close-on-exec and non-blocking set on the new socket.
pub fn accept(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the peer address is not wanted.
    let r = unsafe {
        libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
    };
    Ok(own(check(r)?))
}

pub fn shutdown(fd: RawFd, how: i32) {
    // SAFETY: plain syscall; errors (ENOTCONN) do not matter here.
    unsafe { libc::shutdown(fd, how) };
}

fn getsockopt_int(fd: RawFd, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: v/len describe a writable int.
    check(unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut i32).cast(), &mut len) })?;
    Ok(v)
}

pub fn sock_type(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SO_TYPE)
}

pub fn sock_domain(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SO_DOMAIN)
}

pub fn sock_listening(fd: RawFd) -> bool {
    getsockopt_int(fd, libc::SO_ACCEPTCONN).is_ok_and(|v| v != 0)
}

/// `SO_PEERCRED`: (pid, uid, gid).
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    // SAFETY: ucred is plain data.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len describe a writable ucred.
    check(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `SO_PEERGROUPS`: the peer's supplementary groups (at most 64 are kept).
pub fn peer_groups(fd: RawFd) -> Vec<u32> {
    let mut g = [0u32; 256];
    let mut len = std::mem::size_of_val(&g) as libc::socklen_t;
    // SAFETY: g/len describe a writable gid array.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERGROUPS, g.as_mut_ptr().cast(), &mut len) };
    if r < 0 {
        return Vec::new();
    }
    g[..(len as usize / 4).min(64)].to_vec()
}

/// Sends `data` with descriptors (SCM_RIGHTS), non-blocking, without SIGPIPE.
pub fn send_with_fds(fd: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let mut cmsg = [0u64; 160];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    let fds = &fds[..fds.len().min(253)];
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_* macros on a buffer large enough for 253 descriptors, which the
        // header is written into before CMSG_DATA is used.
        unsafe {
            m.msg_control = cmsg.as_mut_ptr().cast();
            m.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut RawFd, fds.len());
        }
    }
    // SAFETY: m points at live buffers for the duration of the call.
    check_sz(unsafe { libc::sendmsg(fd, &m, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) })
}

/// What one `recvmsg` returned.
pub struct Received {
    /// Bytes received (for messages: the message's true length, which may exceed the
    /// buffer when MSG_TRUNC was set).
    pub len: usize,
    pub fds: Vec<OwnedFd>,
    /// Control data was truncated (descriptors lost).
    pub ctrunc: bool,
}

/// Non-blocking `recvmsg` into `buf`, collecting passed descriptors (close-on-exec).
/// `trunc` asks for the true length of a longer message.
pub fn recv_with_fds(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>], trunc: bool) -> io::Result<Received> {
    let mut cmsg = [0u64; 160];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cmsg.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&cmsg);
    let mut flags = libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
    if trunc {
        flags |= libc::MSG_TRUNC;
    }
    // SAFETY: m points at live buffers; the kernel writes at most their sizes.
    let n = check_sz(unsafe { libc::recvmsg(fd, &mut m, flags) })?;
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const RawFd;
                for i in 0..k {
                    let fd = std::ptr::read_unaligned(p.add(i));
                    if fd >= 0 {
                        fds.push(own(fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
    Ok(Received { len: n, fds, ctrunc: m.msg_flags & libc::MSG_CTRUNC != 0 })
}

/// Non-blocking `read(2)` into spare capacity.
pub fn read_into(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: buf is writable for its length.
    check_sz(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `write(2)`.
pub fn write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is readable for its length.
    check_sz(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) })
}

/// Non-blocking `send(2)` without SIGPIPE.
pub fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is readable for its length.
    check_sz(unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) })
}

/// Non-blocking `recv(2)`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is writable for its length.
    check_sz(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn lseek_cur(fd: RawFd) -> u64 {
    // SAFETY: plain syscall.
    let r = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    r.max(0) as u64
}

pub fn lseek_set(fd: RawFd, off: u64) {
    // SAFETY: plain syscall.
    unsafe { libc::lseek(fd, off as libc::off_t, libc::SEEK_SET) };
}

/// The path of an open descriptor (`/proc/self/fd/N`).
pub fn fd_path(fd: RawFd) -> io::Result<Vec<u8>> {
    let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    let mut buf = vec![0u8; 4096];
    // SAFETY: link is NUL-terminated; buf is writable for its length.
    let n = unsafe { libc::readlink(link.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(check_sz(n)?);
    Ok(buf)
}

/// `openat2(2)` of an absolute path that must not traverse a symlink or magic link.
pub fn open_nofollow(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; zeroed, then set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: NUL-terminated path and a valid open_how of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(own(r as RawFd))
}

pub fn open(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated path.
    Ok(own(check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?))
}

/// Runs `f` with this thread's file system identity set to uid/gid/groups (raw
/// per-thread syscalls; the kernel drops the file-system capabilities while the fsuid is
/// not 0 and restores them when it returns to 0), then switches back to root.
pub fn as_user<R>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> R) -> R {
    if uid == 0 {
        return f();
    }
    // SAFETY: per-thread raw syscalls; the groups pointer is valid for its length.
    unsafe {
        libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
    let r = f();
    // SAFETY: as above; back to root's file system identity and no extra groups.
    unsafe {
        libc::syscall(libc::SYS_setfsuid, 0);
        libc::syscall(libc::SYS_setfsgid, 0);
        libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<u32>());
    }
    r
}

/// Exclusive `flock` on a lock file; the file stays locked while it is open.
pub fn lock_file(path: &std::path::Path) -> io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock on a descriptor we own.
    check(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })?;
    Ok(f)
}

/// Sets the process umask.
pub fn umask(m: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(m) };
}

/// Raises the soft descriptor limit to `want` (or the hard limit, if lower): every
/// channel holds a socket. Returns the limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit on our own process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        r.rlim_cur
    }
}
