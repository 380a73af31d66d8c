//! Signals and processes: signal masks and signalfd, sessions and process groups,
//! pidfds, waiting for exit ([`ExitKind`]), `RLIMIT_NOFILE` and `fork`.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::{check, owned};

/// Blocks `signals` in the calling thread (threads created later inherit the mask).
pub fn block_signals(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: set is a valid sigset_t.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: set is valid; the old mask is not needed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(set)
}

/// A non-blocking signalfd for `set` (the signals must be blocked).
pub fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: set is a valid sigset_t.
    Ok(owned(check(unsafe { libc::signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?))
}

/// Reads one pending signal number from a signalfd, if any.
pub fn signalfd_read(fd: RawFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let n = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most n bytes into si.
    let r = unsafe { libc::read(fd, (&mut si as *mut libc::signalfd_siginfo).cast(), n) };
    if r as usize == n { Some(si.ssi_signo as i32) } else { None }
}

/// Gives `signals` their default disposition (a signal ignored by whoever started us,
/// `nohup` for SIGHUP, would otherwise be discarded before a signalfd could see it).
pub fn default_signals(signals: &[i32]) {
    for &s in signals {
        // SAFETY: setting a disposition to SIG_DFL is always sound.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
}

/// `setsid(2)`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// Ignores SIGPIPE (writes to closed pipes and sockets then fail with EPIPE).
pub fn ignore_sigpipe() {
    // SAFETY: setting a disposition to SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// `killpg(2)`.
pub fn killpg(pgid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain system call; callers guarantee the group id cannot have been reused.
    check(unsafe { libc::killpg(pgid, sig) }).map(|_| ())
}

/// `setpgid(2)`.
pub fn setpgid(pid: i32, pgid: i32) -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::setpgid(pid, pgid) }).map(|_| ())
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
}

impl ExitKind {
    /// Shell convention: the code, or 128 + signal.
    pub fn status(self) -> i32 {
        match self {
            ExitKind::Exited(c) => c,
            ExitKind::Signaled(s) => 128 + s,
        }
    }
    pub fn signal(self) -> i32 {
        match self {
            ExitKind::Exited(_) => 0,
            ExitKind::Signaled(s) => s,
        }
    }
}

/// `waitid(P_PIDFD, WEXITED | WNOHANG [| WNOWAIT])`: `None` while the process runs.
/// With `keep`, the zombie stays (its pid and process group id cannot be reused).
pub fn waitid_pidfd(pidfd: RawFd, keep: bool, block: bool) -> io::Result<Option<ExitKind>> {
    // SAFETY: siginfo_t is plain data filled by the kernel.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut flags = libc::WEXITED;
    if keep {
        flags |= libc::WNOWAIT;
    }
    if !block {
        flags |= libc::WNOHANG;
    }
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: si is a valid out pointer.
    check(unsafe { libc::waitid(P_PIDFD, pidfd as libc::id_t, &mut si, flags) })?;
    // SAFETY: reading the union fields waitid filled (si_pid is 0 when nothing changed).
    let (pid, code, status) = unsafe { (si.si_pid(), si.si_code, si.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if code == libc::CLD_EXITED { ExitKind::Exited(status) } else { ExitKind::Signaled(status) }))
}

/// `fork(2)`.
///
/// # Safety
/// In a multi-threaded process the child may only call async-signal-safe functions (the
/// `raw` module) until it execs or exits.
pub unsafe fn fork() -> io::Result<i32> {
    // SAFETY: the caller upholds the child's restrictions.
    check(unsafe { libc::fork() })
}
