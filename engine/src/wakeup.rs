//! Wake-ups of a core by other threads: one eventfd per core, which that core's ring
//! reads (its services' `on_wake` then runs), and why it was kicked. A core that frees
//! something requests on other cores wait for (a lock released) kicks those cores that
//! have requests parked, so they retry at once instead of on their next timer.
//!
//! This module owns the cores' eventfds and their kick reasons; what a reason means is
//! its user's (`fsops::waiter`). The export watcher (`notify`) and `Engine::stop` kick
//! the same eventfds with their own state.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

struct CoreWake {
    fd: OwnedFd,
    /// Reasons (bits) kicked and not yet taken by the core.
    reasons: AtomicU32,
    /// Requests parked on the core (see `fsops::waiter`): 0 means no kick is needed.
    parked: AtomicU32,
}

/// The wake-ups of every core (index = core).
pub struct Wakeups {
    cores: Vec<CoreWake>,
}

impl Wakeups {
    pub fn new(cores: usize) -> io::Result<Wakeups> {
        let cores = (0..cores)
            .map(|_| Ok(CoreWake { fd: sys::eventfd()?, reasons: AtomicU32::new(0), parked: AtomicU32::new(0) }))
            .collect::<io::Result<_>>()?;
        Ok(Wakeups { cores })
    }

    /// A descriptor of core `core`'s eventfd (for its ring, or another kicker).
    pub fn fd(&self, core: usize) -> io::Result<OwnedFd> {
        self.cores.get(core).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?.fd.try_clone()
    }

    /// Kicks core `core` for `reason`; a kick already pending for it is not repeated.
    pub fn kick(&self, core: usize, reason: u32) {
        if let Some(c) = self.cores.get(core)
            && c.reasons.fetch_or(reason, Ordering::AcqRel) & reason == 0
        {
            sys::eventfd_kick(c.fd.as_raw_fd());
        }
    }

    /// Kicks, for `reason`, every core but `from` that has requests parked.
    pub fn kick_parked(&self, from: usize, reason: u32) {
        for (i, c) in self.cores.iter().enumerate() {
            if i != from && c.parked.load(Ordering::Acquire) > 0 {
                self.kick(i, reason);
            }
        }
    }

    /// Whether core `core` was kicked for `reason` since it last asked (clears it).
    pub fn take(&self, core: usize, reason: u32) -> bool {
        self.cores.get(core).is_some_and(|c| c.reasons.fetch_and(!reason, Ordering::AcqRel) & reason != 0)
    }

    /// Publishes how many requests core `core` has parked.
    pub fn set_parked(&self, core: usize, n: usize) {
        if let Some(c) = self.cores.get(core) {
            c.parked.store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_reach_cores_with_parked_requests_once() {
        let w = Wakeups::new(3).unwrap();
        w.set_parked(2, 1);
        w.kick_parked(0, 1);
        assert!(!w.take(1, 1), "nothing parked on core 1");
        assert!(w.take(2, 1));
        assert!(!w.take(2, 1), "taken once");
        w.kick(0, 2);
        w.kick(0, 2);
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a u64 we own from our eventfd.
        let r = unsafe { libc::read(w.cores[0].fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        assert_eq!((r, n), (8, 1), "a pending kick is not repeated");
    }
}
