//! HOST-process operations: KILL, SCHED_GETAFFINITY and SCHED_SETAFFINITY.
//!
//! They carry no caller identity and act with the engine's authority, so each is gated
//! three times ([`with_checked_pid`]): the operator's `--allow-kill`, the target's name in
//! `[Kill]`, and (unless `--kill-any-process`) the target descending from `rexec_server`;
//! a pidfd pins the process across the checks.
//!
//! This module owns these operations; they are not file operations and touch no export.

use std::os::fd::{AsFd, OwnedFd};

use qtfs_proto::consts::errno;
use qtfs_proto::*;

use super::common::Req;
use super::state::Ctx;
use crate::creds;
use crate::sys;

/// KILL: a signal to a HOST process.
pub(super) fn kill(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<KillReq>(core) else { return };
    let r = with_checked_pid(core, m.pid, |pidfd| sys::pidfd_send_signal(pidfd.as_fd(), m.signal)).map(|_| Empty {});
    rq.reply(core, r);
}

/// SCHED_GETAFFINITY: the CPU mask of a HOST thread.
pub(super) fn getaffinity(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<AffinityGetReq>(core) else { return };
    match with_checked_pid(core, m.pid, |_| sys::sched_getaffinity(m.pid)) {
        Ok(mask) => rq.reply(core, Ok(Data { data: Rest(&mask) })),
        Err(e) => rq.reply_err(core, e),
    }
}

/// SCHED_SETAFFINITY: sets the CPU mask of a HOST thread.
pub(super) fn setaffinity(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<AffinitySetReq>(core) else { return };
    if m.mask.is_empty() || m.mask.len() > 1024 {
        return rq.reply_err(core, errno::EINVAL);
    }
    let r = with_checked_pid(core, m.pid, |_| sys::sched_setaffinity(m.pid, m.mask.0)).map(|_| Empty {});
    rq.reply(core, r);
}

/// Process control (KILL, SCHED_*) carries no caller identity and acts with the engine's
/// authority, so it is gated three times: the operator's `--allow-kill`, the target's
/// name in `[Kill]`, and (unless `--kill-any-process`) the target having been started
/// through our stack, i.e. descending from a process named `rexec_server`. Opens a pidfd
/// first and confirms it still names a live process after the checks, so a pid reused in
/// between is never acted on; then runs `f`.
///
/// A thread id (a vCPU thread, as QMP reports it) stands for its process: the name in
/// `[Kill]`, the ancestry and the pidfd are the process's (a vCPU thread is named
/// `CPU 0/KVM`, its process `qemu-system-x86`), and the thread must still belong to that
/// process after the checks. `f` gets the process's pidfd (KILL signals the process, as
/// kill(2) of a thread id does); SCHED_* act on the number as given, i.e. on the thread.
fn with_checked_pid<T>(core: &Ctx, pid: i32, f: impl FnOnce(&OwnedFd) -> std::io::Result<T>) -> Result<T, i32> {
    if pid <= 0 {
        return Err(errno::EINVAL);
    }
    if !core.r.shared.cfg.allow_kill {
        tracing::info!(pid, "process control refused: the engine runs without --allow-kill");
        return Err(errno::EPERM);
    }
    creds::reset();
    let tgid = proc_tgid(pid).ok_or(errno::ESRCH)?;
    let pidfd = sys::pidfd_open(tgid).map_err(|e| sys::errno_of(&e))?;
    let comm = std::fs::read(format!("/proc/{tgid}/comm")).map_err(|e| sys::errno_of(&e))?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    if !core.r.wl.allows_comm(comm) {
        tracing::info!(pid, comm = %String::from_utf8_lossy(comm), "process control denied by [Kill]");
        return Err(errno::EPERM);
    }
    if !core.r.shared.cfg.kill_any_process && !started_by_rexec(pid) {
        tracing::info!(
            pid,
            comm = %String::from_utf8_lossy(comm),
            "process control denied: not started through rexec_server (see --kill-any-process)"
        );
        return Err(errno::EPERM);
    }
    sys::pidfd_send_signal(pidfd.as_fd(), 0).map_err(|e| sys::errno_of(&e))?;
    if pid != tgid && proc_tgid(pid) != Some(tgid) {
        return Err(errno::ESRCH);
    }
    f(&pidfd).map_err(|e| sys::errno_of(&e))
}

/// The command name of the server that starts processes for rexec.
const REXEC_SERVER_COMM: &[u8] = b"rexec_server";

/// Whether `pid` (a process; for a thread id, its process) descends from a process
/// named `rexec_server`. Walks the parent chain in /proc; anything unreadable (a process
/// that exited meanwhile, a hidden /proc) means no. A process re-parented to init or a
/// subreaper after its rexec_server ancestor died no longer counts.
fn started_by_rexec(pid: i32) -> bool {
    let Some(mut cur) = proc_tgid(pid) else { return false };
    // A parent chain is short; the bound only guards against a /proc that lies.
    for _ in 0..4096 {
        let Some((_, ppid)) = proc_comm_ppid(cur) else { return false };
        if ppid <= 0 {
            return false;
        }
        match proc_comm_ppid(ppid) {
            Some((comm, _)) if comm == REXEC_SERVER_COMM => return true,
            Some(_) => cur = ppid,
            None => return false,
        }
    }
    false
}

/// The process (thread-group id) a task id belongs to, from /proc/ID/status.
fn proc_tgid(tid: i32) -> Option<i32> {
    let status = std::fs::read(format!("/proc/{tid}/status")).ok()?;
    status.split(|&b| b == b'\n').find_map(|l| {
        let v = l.strip_prefix(b"Tgid:")?;
        std::str::from_utf8(v).ok()?.trim().parse().ok()
    })
}

/// The command name and parent pid of a process, from /proc/PID/stat: `pid (comm) state
/// ppid …`, where comm may itself hold spaces and parentheses (so it ends at the last `)`).
fn proc_comm_ppid(pid: i32) -> Option<(Vec<u8>, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?.to_vec();
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let ppid = rest.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some((comm, ppid))
}
