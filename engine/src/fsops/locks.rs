//! Locks: LOCK_GET, LOCK_SET and CANCEL.
//!
//! A lock is taken on the HOST open file description of the client's handle, so it
//! conflicts with HOST processes and with every other client exactly as a local lock
//! would: byte ranges are OFD locks (`F_OFD_SETLK`/`F_OFD_GETLK`; they conflict with
//! classic POSIX locks and OFD locks of HOST processes), `LOCK_F_FLOCK` is `flock(2)` on
//! the same description. Every OPEN/CREATE is its own `openat2`/re-open on the HOST, so
//! each client handle is its own description: two handles (of one client or of two)
//! conflict, and the locks of a handle go away when it is closed (CLOSE, or the session
//! ending), because the kernel drops OFD and flock locks with their description.
//!
//! Attempts are non-blocking system calls made inline (they never sleep). A waiting
//! request (`LOCK_F_WAIT`) that finds the lock taken is parked ([`super::waiter`]) and
//! retried when its timer fires: every 5 ms doubling to 100 ms, and at once after a lock
//! was released through the engine, on any core (LOCK_SET with `LOCK_UN`/`LOCK_RD`,
//! CLOSE). A waiting
//! request ends with the lock (success), with EINTR when the client sends CANCEL for it
//! or its connection closes, with EBADF when its handle is closed meanwhile, and
//! ENOLCK when its session already has `parked::MAX_PER_SESSION` waits on this core.
//!
//! Identity: locking needs no permission beyond the handle's access mode (a write lock
//! needs a handle open for writing: EBADF otherwise), so no identity is switched.
//!
//! This module owns the lock requests' state machine; sockets and the ring stay with
//! `ring`, the parked-request table with `waiter`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use qtfs_proto::consts::{self, errno};
use qtfs_proto::*;

use super::common::{Req, fail, finish_empty};
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{LockWait, Step};
use super::waiter::{self, Class};
use crate::session::Session;

fn ltype_local(t: u32) -> Result<libc::c_short, i32> {
    match t {
        consts::LOCK_RD => Ok(libc::F_RDLCK as libc::c_short),
        consts::LOCK_WR => Ok(libc::F_WRLCK as libc::c_short),
        consts::LOCK_UN => Ok(libc::F_UNLCK as libc::c_short),
        _ => Err(errno::EINVAL),
    }
}

fn ltype_wire(t: libc::c_short) -> u32 {
    match t as i32 {
        libc::F_RDLCK => consts::LOCK_RD,
        libc::F_WRLCK => consts::LOCK_WR,
        _ => consts::LOCK_UN,
    }
}

fn flock_of(ltype: u32, start: u64, len: u64) -> Result<libc::flock, i32> {
    let start = i64::try_from(start).map_err(|_| errno::EINVAL)?;
    let len = i64::try_from(len).map_err(|_| errno::EINVAL)?;
    // SAFETY: `struct flock` is plain data; all-zero is a valid value (l_pid must be 0
    // for OFD requests).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype_local(ltype)?;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    Ok(fl)
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(errno::EIO)
}

/// One non-blocking attempt; `Err(EAGAIN)` when a conflicting lock is held.
fn try_lock(fd: RawFd, ltype: u32, flags: u32, start: u64, len: u64) -> Result<(), i32> {
    if flags & consts::LOCK_F_FLOCK != 0 {
        let op = match ltype {
            consts::LOCK_RD => libc::LOCK_SH,
            consts::LOCK_WR => libc::LOCK_EX,
            consts::LOCK_UN => libc::LOCK_UN,
            _ => return Err(errno::EINVAL),
        };
        // SAFETY: flock on a descriptor the caller keeps open; LOCK_NB never sleeps.
        if unsafe { libc::flock(fd, op | libc::LOCK_NB) } < 0 {
            let e = last_errno();
            return Err(if e == libc::EWOULDBLOCK { errno::EAGAIN } else { e });
        }
        return Ok(());
    }
    let fl = flock_of(ltype, start, len)?;
    // SAFETY: F_OFD_SETLK reads the flock record we own; it never sleeps.
    if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl as *const libc::flock) } < 0 {
        let e = last_errno();
        return Err(if e == libc::EACCES { errno::EAGAIN } else { e });
    }
    Ok(())
}

/// The first lock that would conflict with `m` on `fd`.
fn get_lock(fd: RawFd, m: &LockReq) -> Result<LockRsp, i32> {
    if m.flags & consts::LOCK_F_FLOCK != 0 || m.ltype == consts::LOCK_UN {
        return Err(errno::EINVAL);
    }
    let mut fl = flock_of(m.ltype, m.start, m.len)?;
    // SAFETY: F_OFD_GETLK reads and rewrites the flock record we own; it never sleeps.
    if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl as *mut libc::flock) } < 0 {
        return Err(last_errno());
    }
    let t = ltype_wire(fl.l_type);
    if t == consts::LOCK_UN {
        return Ok(LockRsp { start: 0, len: 0, ltype: t, pid: 0 });
    }
    Ok(LockRsp { start: fl.l_start.max(0) as u64, len: fl.l_len.max(0) as u64, ltype: t, pid: fl.l_pid })
}

/// LOCK_GET.
pub(super) fn lock_get(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<LockReq>(core) else { return };
    let r = match rq.session.file(m.handle) {
        Some(f) => get_lock(f.raw(), &m),
        None => Err(errno::EBADF),
    };
    rq.reply(core, r);
}

/// LOCK_SET: an attempt now; a waiting one that finds the lock taken is parked.
pub(super) fn lock_set(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<LockReq>(core) else { return };
    let session = &rq.session;
    let Some(f) = session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    match try_lock(f.raw(), m.ltype, m.flags, m.start, m.len) {
        Err(errno::EAGAIN) if m.flags & consts::LOCK_F_WAIT != 0 && m.ltype != consts::LOCK_UN => {
            if !core.fs.waiters.admit(session.id) {
                crate::log_limited!(
                    tracing::Level::WARN,
                    session = format_args!("{:x}", session.id),
                    "session has too many waiting locks on this core; refused with ENOLCK"
                );
                return rq.reply_err(core, libc::ENOLCK);
            }
            let mut r = rq.begin(core);
            r.file = Some(f);
            let w = LockWait {
                handle: m.handle,
                start: m.start,
                len: m.len,
                ltype: m.ltype,
                flags: m.flags,
                delay: waiter::FIRST_DELAY,
            };
            park(core, r, w);
        }
        r => {
            let released = r.is_ok() && m.ltype != consts::LOCK_WR;
            rq.reply(core, r.map(|_| Empty {}));
            if released {
                waiter::wake(core, Class::Lock);
            }
        }
    }
}

/// Parks a waiting LOCK_SET for `w.delay` ([`Step::LockWait`]).
fn park(core: &mut Ctx, mut r: Box<FsReq>, w: LockWait) {
    r.step = Step::LockWait(w);
    waiter::park(core, r, Class::Lock, w.handle, w.delay);
}

/// CANCEL: ends the waiting request `m.id` of this connection (answered EINTR).
pub(super) fn cancel(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<CancelReq>(core) else { return };
    let r = if waiter::cancel(core, rq.key, m.id) { Ok(Empty {}) } else { Err(errno::ENOENT) };
    rq.reply(core, r);
}

/// A handle is being closed: its waiting requests on this core end (EBADF), and its
/// locks go with its description, so the others retry now.
pub(super) fn handle_closed(core: &mut Ctx, session: &Session, handle: u64) {
    waiter::cancel_object(core, session.id, Class::Lock, handle);
    waiter::wake(core, Class::Lock);
}

/// The timer of a parked LOCK_SET completed: retry, park again, or end it.
pub(super) fn wait_done(core: &mut Ctx, r: Box<FsReq>, w: LockWait, res: i32) {
    let woken = waiter::unpark(core, r.conn, r.id);
    let handle = w.handle;
    // The handle must still be the one the wait began on (closed meanwhile: EBADF).
    let current = match (&r.session, &r.file) {
        (Some(s), Some(f)) => s.file(handle).is_some_and(|g| Arc::ptr_eq(&g, f)),
        _ => false,
    };
    if !current {
        return fail(core, r, errno::EBADF);
    }
    if res == -libc::ECANCELED {
        // CANCEL, or the connection is closing.
        tracing::debug!(conn = r.conn, id = r.id, "lock wait ended by cancel");
        return fail(core, r, errno::EINTR);
    }
    let fd = r.file.as_ref().map_or(-1, |f| f.raw());
    match try_lock(fd, w.ltype, w.flags, w.start, w.len) {
        Ok(()) => finish_empty(core, r),
        Err(errno::EAGAIN) => {
            let prev = if woken { Duration::ZERO } else { w.delay };
            park(core, r, LockWait { delay: waiter::next_delay(prev), ..w });
        }
        Err(e) => fail(core, r, e),
    }
}
