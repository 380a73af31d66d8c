//! Processes and limits: pidfds and signalling through them, and the open descriptor
//! limit (`RLIMIT_NOFILE`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::{check_l, rx};

/// `pidfd_open(2)`; EINVAL for a pid that is not positive.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    rx(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()))
}

/// `pidfd_send_signal(2)`: signals exactly the process of the pidfd, never a reused pid.
/// libc: `sig` is any number (0 probes, real-time signals come from the wire), which
/// rustix's `Signal` does not take without an unchecked conversion.
pub fn pidfd_send_signal(pidfd: impl AsRawFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo is allowed.
    check_l(unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    })
    .map(|_| ())
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return (1024, 1024);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Sets the soft `RLIMIT_NOFILE` (at most the hard limit).
pub fn set_nofile_soft(soft: u64) {
    let (_, hard) = nofile_limit();
    let r = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
    // SAFETY: r is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
}

/// Raises the soft descriptor limit to `want` (or the hard limit, if lower; never
/// lowers it): every channel and open handle holds a descriptor. Returns the soft limit
/// now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let (soft, _) = nofile_limit();
    if soft < want {
        set_nofile_soft(want);
    }
    nofile_limit().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pidfd_of_ourselves_takes_signal_zero() {
        let p = pidfd_open(std::process::id() as i32).unwrap();
        pidfd_send_signal(p.as_fd(), 0).unwrap();
        assert_eq!(pidfd_open(0).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn nofile_is_raised_not_lowered() {
        let (soft, hard) = nofile_limit();
        assert!(soft <= hard);
        assert_eq!(raise_nofile(0), soft);
    }
}
