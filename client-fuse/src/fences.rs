//! Lock fences: the engine's late invalidations of a file this mount just locked wait.
//!
//! Taking a lock drops the kernel's cached pages and attributes of the file
//! ([`crate::locks`]), so that what the previous holder wrote is read (as NFS does). The
//! engine's INVAL for a change made before the lock was granted often arrives a few
//! milliseconds after the grant: already covered by the lock's invalidation, and harmful
//! when sent then. Every `FUSE_NOTIFY_INVAL_INODE` raises the inode's attribute version,
//! and the kernel drops the answer of a GETATTR that was in flight meanwhile
//! (`fuse_change_attributes`: the answer is older than the invalidation) while the read
//! that asked for it (`fuse_cache_read_iter`, reading past the cached size) goes on
//! with the size it had: a file another client grew reads as shorter, its new pages as
//! missing — sqlite's first page as zeros (SQLITE_NOTADB) right after its lock.
//!
//! So for [`HOLD`] after a lock's invalidation of a node, the `qtfs-inval` thread
//! ([`crate::inval`]) keeps that node's invalidations instead of sending them; another
//! lock invalidation of the node covers (drops) those kept; when the hold ends they are
//! sent. A change made while the lock is held by a party that does not lock (a HOST
//! process ignoring locks) therefore reaches this mount up to [`HOLD`] later.
//!
//! What remains: two processes of this mount locking the same file at the same moment
//! (the second lock's own invalidation may drop the first's GETATTR answer), and a
//! process that asks for the size only after [`HOLD`] while a kept invalidation is sent.
//!
//! Owns the fences (node → end of its hold, the invalidation kept) and the kernel
//! notifications of inodes, for the lock paths and the `qtfs-inval` thread alike: one
//! mutex orders them, so a late invalidation is never sent between a lock's
//! invalidation and the fence it sets.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use crate::kernel::{INodeNo, Notifier};
use parking_lot::Mutex;

/// How long a lock's invalidation of a node holds the later ones back. Long against the
/// microseconds from a lock's grant to the holder's next GETATTR, short against the
/// coherence the invalidations give.
pub const HOLD: Duration = Duration::from_millis(100);

/// Fences past which taking a lock first forgets the ended ones (the `qtfs-inval` thread
/// forgets them too, but only when it runs).
const PRUNE_AT: usize = 256;

#[derive(Debug)]
struct Fence {
    until: Instant,
    /// The invalidation kept: its page offset (0: pages and attributes, -1: attributes).
    kept: Option<i64>,
}

/// The fences of this mount.
#[derive(Debug, Default)]
pub struct Fences {
    map: Mutex<HashMap<u64, Fence>>,
}

impl Fences {
    /// A lock on `node` was granted: drops the kernel's pages and attributes of it now
    /// and holds the engine's invalidations of it back for [`HOLD`] (those kept so far are
    /// covered by this one).
    pub fn lock_taken(&self, n: &Notifier, node: u64) {
        let mut map = self.map.lock();
        let _ = n.inval_inode(INodeNo(node), 0, 0);
        let now = Instant::now();
        if map.len() >= PRUNE_AT {
            // Ended fences that kept nothing (those that did are the qtfs-inval thread's).
            map.retain(|_, f| f.until > now || f.kept.is_some());
        }
        map.insert(node, Fence { until: now + HOLD, kept: None });
    }

    /// The `qtfs-inval` thread's invalidation of `node` (`offset` as
    /// [`Notifier::inval_inode`]'s): sent, or kept while a fence holds the node (`None`).
    pub fn inval_inode(&self, n: &Notifier, node: u64, offset: i64) -> Option<io::Result<()>> {
        let mut map = self.map.lock();
        let mut offset = offset;
        if let Some(f) = map.get_mut(&node) {
            // Pages and attributes (0) include attributes only (-1).
            let merged = if offset >= 0 || f.kept == Some(0) { 0 } else { -1 };
            if f.until > Instant::now() {
                f.kept = Some(merged);
                return None;
            }
            // An ended fence whose kept one is not sent yet: this one carries it.
            if f.kept.is_some() {
                offset = merged;
            }
            map.remove(&node);
        }
        Some(n.inval_inode(INodeNo(node), offset, 0))
    }

    /// Sends the invalidations whose hold has ended and forgets those fences; returns when
    /// the next kept one is due.
    pub fn release_due(&self, n: &Notifier) -> Option<Instant> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let mut next: Option<Instant> = None;
        map.retain(|&node, f| {
            if f.until > now {
                if f.kept.is_some() {
                    next = Some(next.map_or(f.until, |t| t.min(f.until)));
                }
                return true;
            }
            if let Some(off) = f.kept {
                // ENOENT: the kernel forgot the node meanwhile.
                let _ = n.inval_inode(INodeNo(node), off, 0);
            }
            false
        });
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Sender;
    use std::io::IoSlice;
    use std::sync::Arc;

    /// The inode invalidations sent, as (node, offset).
    #[derive(Default)]
    struct Sent(Mutex<Vec<(u64, i64)>>);

    impl Sender for Sent {
        fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
            let msg: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            // The out header (16 bytes), then nodeid, offset, len.
            let word = |i: usize| u64::from_ne_bytes(msg[16 + 8 * i..24 + 8 * i].try_into().unwrap());
            self.0.lock().push((word(0), word(1) as i64));
            Ok(())
        }
    }

    fn rig() -> (Arc<Sent>, Notifier, Fences) {
        let sent = Arc::new(Sent::default());
        let n = Notifier::new(sent.clone());
        (sent, n, Fences::default())
    }

    #[test]
    fn a_late_invalidation_waits_for_the_end_of_the_lock_fence() {
        let (sent, n, f) = rig();
        // No fence: sent at once.
        assert!(f.inval_inode(&n, 7, -1).is_some());
        f.lock_taken(&n, 7);
        assert_eq!(*sent.0.lock(), vec![(7, -1), (7, 0)], "the lock's own invalidation goes at once");
        // Within the fence: kept (attributes, then pages: pages and attributes are kept).
        assert!(f.inval_inode(&n, 7, -1).is_none());
        assert!(f.inval_inode(&n, 7, 0).is_none());
        assert!(f.inval_inode(&n, 7, -1).is_none());
        // Another node is not held.
        assert!(f.inval_inode(&n, 8, 0).is_some());
        assert_eq!(sent.0.lock().len(), 3);
        let due = f.release_due(&n).expect("a kept invalidation is due later");
        assert!(due <= Instant::now() + HOLD);
        // The fence ends: the kept invalidation goes, once, with its pages.
        let end = Instant::now() + Duration::from_secs(10);
        while sent.0.lock().len() == 3 {
            assert!(Instant::now() < end, "the kept invalidation was never sent");
            std::thread::sleep(due.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
            f.release_due(&n);
        }
        assert_eq!(sent.0.lock()[3..], [(7, 0)]);
        assert!(f.release_due(&n).is_none(), "nothing more is due");
        assert!(f.map.lock().is_empty(), "the ended fence is forgotten");
        // After the fence: sent at once again.
        assert!(f.inval_inode(&n, 7, 0).is_some());
    }

    #[test]
    fn an_ended_fence_hands_its_kept_pages_to_the_next_invalidation_and_is_forgotten() {
        let (sent, n, f) = rig();
        f.lock_taken(&n, 5);
        assert!(f.inval_inode(&n, 5, 0).is_none());
        f.map.lock().get_mut(&5).unwrap().until = Instant::now();
        // Attributes only asked for, but the pages kept must go too.
        assert!(f.inval_inode(&n, 5, -1).is_some());
        assert_eq!(sent.0.lock()[1..], [(5, 0)]);
        assert!(f.map.lock().is_empty());
        // Many locked nodes, their fences ended: the next lock forgets them.
        for node in 0..PRUNE_AT as u64 {
            f.lock_taken(&n, 100 + node);
        }
        f.map.lock().values_mut().for_each(|x| x.until = Instant::now());
        f.lock_taken(&n, 1);
        assert_eq!(f.map.lock().len(), 1);
    }

    #[test]
    fn a_new_lock_covers_the_invalidations_kept_before_it() {
        let (sent, n, f) = rig();
        f.lock_taken(&n, 3);
        assert!(f.inval_inode(&n, 3, 0).is_none());
        // The second lock's invalidation drops everything the kept one would have.
        f.lock_taken(&n, 3);
        assert_eq!(*sent.0.lock(), vec![(3, 0), (3, 0)]);
        assert!(f.release_due(&n).is_none(), "nothing kept any more");
        assert_eq!(f.map.lock().get(&3).map(|f| f.kept), Some(None));
    }
}
