//! Identity: the peer credentials and groups of a unix socket, our own ids and groups,
//! group lookup by name, and [`FsIdentity`], a thread's temporary file system identity.

use std::io;
use std::os::fd::RawFd;

use super::{check, check_l};

/// `SO_PEERCRED`: (pid, uid, gid) of the peer of a unix socket.
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid out pointers of the sizes passed.
    check(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `SO_PEERGROUPS` (Linux ≥ 4.13; the libc crate does not name it).
const SO_PEERGROUPS: i32 = 59;

/// `SO_PEERGROUPS`: the supplementary groups of the peer of a unix socket, as they were
/// when it connected.
pub fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let mut v = vec![0u32; 64];
    loop {
        let mut len = (v.len() * 4) as libc::socklen_t;
        // SAFETY: v is valid for writes of len bytes.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_PEERGROUPS, v.as_mut_ptr().cast(), &mut len) };
        if r == 0 {
            v.truncate(len as usize / 4);
            return Ok(v);
        }
        let e = io::Error::last_os_error();
        // ERANGE: len now holds the size needed.
        if e.raw_os_error() == Some(libc::ERANGE) && (len as usize / 4) > v.len() && v.len() < 65536 {
            v.resize(len as usize / 4, 0);
            continue;
        }
        return Err(e);
    }
}

/// Effective uid and gid of this process.
pub fn euid_egid() -> (u32, u32) {
    // SAFETY: plain getters.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Supplementary groups of the calling thread.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: a size of 0 only asks for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut v = vec![0u32; n as usize + 1];
    // SAFETY: v is valid for v.len() gids.
    let n = check(unsafe { libc::getgroups(v.len() as libc::c_int, v.as_mut_ptr()) })?;
    v.truncate(n as usize);
    Ok(v)
}

/// The gid of a group given by name or number (`None`: no such group).
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(Some(n));
    }
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    loop {
        // SAFETY: group is plain data filled by getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid; buf is valid for buf.len() bytes.
        let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut res) };
        if r == libc::ERANGE && buf.len() < (1 << 22) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        return Ok(if res.is_null() { None } else { Some(grp.gr_gid) });
    }
}

/// The calling thread's file system identity (fsuid, fsgid, supplementary groups) set to
/// another user's, for as long as the guard lives.
///
/// Only raw system calls are used: the kernel keeps credentials per thread, and glibc's
/// `setgroups`/`setfsuid` wrappers would change every thread of the process (rexec_server
/// runs one session per thread). While the fsuid is not 0 the kernel also clears the
/// file-system capabilities (DAC override, DAC read search, FOWNER…) from the thread's
/// effective set and gives them back when it returns to 0, so permission checks are
/// exactly the user's.
pub struct FsIdentity {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl FsIdentity {
    pub fn enter(uid: u32, gid: u32, groups: &[u32]) -> io::Result<FsIdentity> {
        let (ouid, ogid) = euid_egid();
        let saved = FsIdentity { uid: ouid, gid: ogid, groups: getgroups()? };
        // SAFETY: per-thread raw syscall; groups is valid for its length.
        check_l(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
        // SAFETY: per-thread raw syscalls; they return the previous id and never fail
        // loudly, hence the check that follows.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        // SAFETY: an invalid id (-1) changes nothing and returns the current one.
        let (fu, fg) = unsafe { (libc::syscall(libc::SYS_setfsuid, -1), libc::syscall(libc::SYS_setfsgid, -1)) };
        if fu as u32 != uid || fg as u32 != gid {
            drop(saved);
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(saved)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: per-thread raw syscalls back to the saved identity (the uid first: it
        // brings the capabilities back).
        let r = unsafe {
            libc::syscall(libc::SYS_setfsuid, self.uid);
            libc::syscall(libc::SYS_setfsgid, self.gid);
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr())
        };
        if r < 0 {
            tracing::error!(error = %io::Error::last_os_error(), "cannot restore the thread's groups");
        }
    }
}
