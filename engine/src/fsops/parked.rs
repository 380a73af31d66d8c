//! The parked-request table of one core: which requests wait on a ring timer, for what
//! (`Class`, object) and for which session, with the per-session bound. Data only — the
//! core's state holds it, `waiter` parks, wakes and cancels through it — so it imports
//! no other module of `fsops`.

use std::collections::HashMap;

use io_uring::types;

/// Requests one session may have parked on one core (well below a connection's
/// `max_inflight`, so that a client whose waits are parked can still send CANCEL).
pub(crate) const MAX_PER_SESSION: u32 = 64;

/// What a parked request waits for; `waiter::wake` wakes one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Lock,
}

impl Class {
    /// Its kick reason for the other cores ([`crate::wakeup::Wakeups::kick`]).
    pub(super) fn reason(self) -> u32 {
        match self {
            Class::Lock => 1,
        }
    }
}

/// (connection, request id): a parked request.
pub(super) type Key = (usize, u64);

#[derive(Debug)]
struct Parked {
    /// user_data of the parked timer.
    ud: u64,
    session: u64,
    class: Class,
    /// What it waits on (a handle).
    object: u64,
    /// Its timer was fired early.
    woken: bool,
}

/// The parked requests of one core, by (connection, request id).
#[derive(Debug)]
pub(crate) struct Waiters {
    parked: HashMap<Key, Parked>,
    per_session: HashMap<u64, u32>,
    /// The (almost) zero delay given to a timer fired early; the kernel reads it when
    /// the update is submitted, so it lives as long as the core.
    now: Box<types::Timespec>,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            parked: HashMap::new(),
            per_session: HashMap::new(),
            now: Box::new(types::Timespec::new().nsec(1_000)),
        }
    }
}

impl Waiters {
    /// Whether `session` may park one more request.
    pub(crate) fn admit(&self, session: u64) -> bool {
        self.per_session.get(&session).copied().unwrap_or(0) < MAX_PER_SESSION
    }

    /// Records `key` as parked on timer `ud`; returns how many are parked.
    pub(super) fn insert(&mut self, key: Key, ud: u64, session: u64, class: Class, object: u64) -> usize {
        if self.parked.insert(key, Parked { ud, session, class, object, woken: false }).is_none() {
            *self.per_session.entry(session).or_default() += 1;
        }
        self.parked.len()
    }

    /// Forgets `key`: whether it was parked and fired early, and how many stay parked.
    pub(super) fn remove(&mut self, key: Key) -> (Option<bool>, usize) {
        let Some(p) = self.parked.remove(&key) else { return (None, self.parked.len()) };
        if let Some(n) = self.per_session.get_mut(&p.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_session.remove(&p.session);
            }
        }
        (Some(p.woken), self.parked.len())
    }

    /// Marks every parked request of `class` not fired yet as fired early; returns their
    /// timers.
    pub(super) fn fire(&mut self, class: Class) -> Vec<u64> {
        let mut uds = Vec::new();
        for p in self.parked.values_mut().filter(|p| p.class == class && !p.woken) {
            p.woken = true;
            uds.push(p.ud);
        }
        uds
    }

    /// The timer of `key`, if it is parked.
    pub(super) fn timer(&self, key: Key) -> Option<u64> {
        self.parked.get(&key).map(|p| p.ud)
    }

    /// The timers of `session`'s requests parked on `object` in `class`.
    pub(super) fn timers_on(&self, session: u64, class: Class, object: u64) -> Vec<u64> {
        self.parked
            .values()
            .filter(|p| p.session == session && p.class == class && p.object == object)
            .map(|p| p.ud)
            .collect()
    }

    /// The zero delay a timer fired early is updated to (stable address).
    pub(super) fn now(&self) -> *const types::Timespec {
        &*self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_bounded_and_counted_back_down() {
        let mut w = Waiters::default();
        for id in 0..MAX_PER_SESSION as u64 {
            assert!(w.admit(7));
            w.insert((1, id), 100 + id, 7, Class::Lock, 9);
        }
        assert!(!w.admit(7), "the bound holds");
        assert!(w.admit(8), "per session");
        // Parking the same request again (a retry) counts once.
        assert_eq!(w.insert((1, 0), 100, 7, Class::Lock, 9), MAX_PER_SESSION as usize);
        assert!(!w.admit(7));
        assert_eq!(w.remove((1, 0)), (Some(false), MAX_PER_SESSION as usize - 1));
        assert!(w.admit(7));
        assert_eq!(w.remove((1, 0)).0, None, "gone once");
    }

    #[test]
    fn firing_marks_each_timer_once_and_cancelling_finds_by_object() {
        let mut w = Waiters::default();
        w.insert((1, 1), 11, 7, Class::Lock, 9);
        w.insert((1, 2), 12, 7, Class::Lock, 10);
        w.insert((2, 1), 21, 8, Class::Lock, 9);
        let mut fired = w.fire(Class::Lock);
        fired.sort();
        assert_eq!(fired, [11, 12, 21]);
        assert!(w.fire(Class::Lock).is_empty(), "a timer is fired early once");
        assert_eq!(w.timers_on(7, Class::Lock, 9), [11]);
        assert_eq!(w.timer((2, 1)), Some(21));
        assert_eq!(w.remove((1, 2)), (Some(true), 2), "it was fired early");
    }
}
