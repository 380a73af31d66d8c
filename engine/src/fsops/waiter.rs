//! Parked requests: the generic wait of a request for a condition that io_uring cannot
//! announce (a lock held by someone else has no readiness to poll). Such a request is
//! *parked* on a ring timer (`IORING_OP_TIMEOUT`, never an io-wq worker, never a
//! blocking system call on the core) and retried by its owner when the timer fires.
//! The delay doubles from [`FIRST_DELAY`] to [`MAX_DELAY`]; [`wake`] makes every parked
//! timer of a class fire at once (`IORING_OP_TIMEOUT_REMOVE` with `TIMEOUT_UPDATE`),
//! e.g. when a lock is released through the engine, and the retry then starts again at
//! the shortest delay. A wake reaches the other cores too: each publishes how many
//! requests it has parked, and the waking core kicks those that have some through their
//! eventfd ([`crate::wakeup`]); each fires its own timers on that wake-up ([`on_wake`]).
//!
//! Ending a wait: the parked timer is an ordinary request step in the file service's `ops`,
//! so closing its connection cancels it like any other in-flight request (the owner sees
//! `-ECANCELED`); [`cancel`] does the same for one request (QTP CANCEL), and
//! [`cancel_object`] for every request parked on one object (a handle being closed).
//! A session may have at most `parked::MAX_PER_SESSION` requests parked on one core.
//!
//! Users: lock waits (`locks`). FIFO/pty readiness waits that cannot use a poll (none
//! today: `fifo` polls its descriptor) would park here with a class of their own.
//!
//! This module owns parking, waking and cancelling; the table of parked requests is
//! `parked::Waiters` (data, held by the core's state); what is retried and what a wake
//! means belongs to the user.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use io_uring::{opcode, types};

pub(crate) use super::parked::Class;
use super::req::FsReq;
use super::state::Ctx;
use crate::ring::UD_IGNORE;

/// First retry delay of a parked request (and the delay after a [`wake`]).
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay: a condition changed by something that does not wake us (a HOST
/// process) is noticed within this long.
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(100);
/// The delay after `prev`: doubled, between [`FIRST_DELAY`] and [`MAX_DELAY`].
pub(crate) fn next_delay(prev: Duration) -> Duration {
    prev.saturating_mul(2).clamp(FIRST_DELAY, MAX_DELAY)
}

/// Parks request `r` (its step set by the owner) for `delay`. Its owner's completion
/// handler gets it back (with `-ETIME` when the timer fired or was woken, `-ECANCELED`
/// when cancelled) and must call [`unpark`] first.
pub(crate) fn park(core: &mut Ctx, mut r: Box<FsReq>, class: Class, object: u64, delay: Duration) {
    r.ts = types::Timespec::from(delay);
    let ts: *const types::Timespec = &r.ts;
    let key = (r.conn, r.id);
    let session = r.session.as_ref().map_or(0, |s| s.id);
    // The timespec lives in the boxed request, which `Fs::ops` owns (unmoved)
    // until the completion arrives.
    let ud = core.submit_req_now(opcode::Timeout::new(ts).build(), r);
    let n = core.fs.waiters.insert(key, ud, session, class, object);
    core.r.shared.wakeups.set_parked(core.r.idx, n);
}

/// Forgets the parked request `(conn, id)` whose timer completed; returns whether it was
/// woken early by [`wake`].
pub(crate) fn unpark(core: &mut Ctx, conn: usize, id: u64) -> bool {
    let (woken, n) = core.fs.waiters.remove((conn, id));
    if woken.is_some() {
        core.r.shared.wakeups.set_parked(core.r.idx, n);
    }
    woken.unwrap_or(false)
}

/// Makes every parked timer of `class` fire now, on this core and (through their
/// eventfds) on the others that have requests parked.
pub(crate) fn wake(core: &mut Ctx, class: Class) {
    wake_here(core, class);
    core.r.shared.wakeups.kick_parked(core.r.idx, class.reason());
}

/// This core was kicked: fires the parked timers of the classes another core woke.
pub(crate) fn on_wake(core: &mut Ctx) {
    for class in [Class::Lock] {
        if core.r.shared.wakeups.take(core.r.idx, class.reason()) {
            wake_here(core, class);
        }
    }
}

/// Makes every parked timer of `class` on this core fire now. Safe against races: a
/// timer whose completion is queued but not handled yet still owns its `ops` slot (its
/// user_data cannot be reused), and updating it then fails harmlessly with ENOENT.
fn wake_here(core: &mut Ctx, class: Class) {
    let now = core.fs.waiters.now();
    for ud in core.fs.waiters.fire(class) {
        core.r.push(opcode::TimeoutUpdate::new(ud, now).build().user_data(UD_IGNORE));
    }
}

/// Cancels the parked request `(conn, id)` (its owner sees `-ECANCELED`); false when no
/// such request is parked on this core.
pub(crate) fn cancel(core: &mut Ctx, conn: usize, id: u64) -> bool {
    let Some(ud) = core.fs.waiters.timer((conn, id)) else { return false };
    core.r.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    true
}

/// Cancels every request of `session` parked on `object` in `class` on this core.
pub(crate) fn cancel_object(core: &mut Ctx, session: u64, class: Class, object: u64) {
    for ud in core.fs.waiters.timers_on(session, class, object) {
        core.r.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_bounds() {
        assert_eq!(next_delay(Duration::ZERO), FIRST_DELAY);
        assert_eq!(next_delay(FIRST_DELAY), Duration::from_millis(10));
        assert_eq!(next_delay(Duration::from_millis(80)), MAX_DELAY);
        assert_eq!(next_delay(MAX_DELAY), MAX_DELAY);
    }
}
