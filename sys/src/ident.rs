//! Identity: our own ids and groups, and a thread's temporary file system identity
//! ([`FsIdentity`], [`as_user`]) through the raw per-thread `setfsuid`/`setfsgid`/
//! `setgroups` system calls (libc: rustix does not offer the per-thread raw forms).

use std::io;

use crate::{check, check_l};

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

/// The thread's supplementary groups, by the raw (per-thread) system call.
fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: per-thread raw syscall; groups is valid for its length.
    check_l(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(|_| ())
}

/// The thread's fsgid then fsuid, by the raw (per-thread) system calls; they return the
/// previous ids and never fail loudly.
fn set_thread_fs_ids(uid: u32, gid: u32) {
    // SAFETY: per-thread raw syscalls with integer arguments.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
}

/// The thread's current (fsuid, fsgid).
fn thread_fs_ids() -> (u32, u32) {
    // SAFETY: an invalid id (-1) changes nothing and returns the current one.
    let (fu, fg) = unsafe { (libc::syscall(libc::SYS_setfsuid, -1), libc::syscall(libc::SYS_setfsgid, -1)) };
    (fu as u32, fg as u32)
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
    /// Takes the identity; EPERM (and the old identity back) if the kernel did not.
    pub fn enter(uid: u32, gid: u32, groups: &[u32]) -> io::Result<FsIdentity> {
        let (ouid, ogid) = euid_egid();
        let saved = FsIdentity { uid: ouid, gid: ogid, groups: getgroups()? };
        set_thread_groups(groups)?;
        set_thread_fs_ids(uid, gid);
        if thread_fs_ids() != (uid, gid) {
            drop(saved);
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(saved)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // Back to the saved identity (the uid first: it brings the capabilities back).
        // SAFETY: per-thread raw syscalls with integer arguments.
        unsafe {
            libc::syscall(libc::SYS_setfsuid, self.uid);
            libc::syscall(libc::SYS_setfsgid, self.gid);
        }
        if let Err(error) = set_thread_groups(&self.groups) {
            tracing::error!(%error, "cannot restore the thread's groups");
        }
    }
}

/// Runs `f` with this thread's file system identity set to uid/gid/groups, then switches
/// back to root's with no supplementary groups (for a daemon running as root; uid 0
/// runs `f` as it is). Best effort, like the calls themselves: see [`FsIdentity`] for a
/// checked, restoring guard.
pub fn as_user<R>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> R) -> R {
    if uid == 0 {
        return f();
    }
    let _ = set_thread_groups(groups);
    set_thread_fs_ids(uid, gid);
    let r = f();
    // SAFETY: per-thread raw syscalls with integer arguments; uid first, as in Drop.
    unsafe {
        libc::syscall(libc::SYS_setfsuid, 0);
        libc::syscall(libc::SYS_setfsgid, 0);
    }
    let _ = set_thread_groups(&[]);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_our_own_identity_changes_nothing() {
        let (u, g) = euid_egid();
        let groups = getgroups().unwrap();
        if u != 0 {
            return; // setgroups needs CAP_SETGID
        }
        {
            let _id = FsIdentity::enter(u, g, &groups).unwrap();
            assert_eq!(thread_fs_ids(), (u, g));
        }
        assert_eq!(getgroups().unwrap(), groups);
        assert_eq!(as_user(0, 0, &[], || 7), 7);
    }
}
