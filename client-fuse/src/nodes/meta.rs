//! What this client learnt of nodes from the engine's replies ([`Meta`]): set-id bits
//! and absent extended attributes, a directory's attributes after a change, the names of
//! a directory made through this mount, a directory's last listing — each kept only as
//! long as the kernel may keep attributes or missing names, dropped by invalidations and
//! by changes through this mount, and refused when it answers a request sent before one
//! ([`Ticket`]). Owns only this knowledge; the table it hangs on is [`super::Nodes`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qtfs_client::DirEntryOwned;
use qtfs_proto::Attr;

use super::Nodes;

/// What this client learnt from replies about a node's mode and extended attributes,
/// so that the questions the kernel asks around every write (is there a
/// `security.capability` to drop, are there set-id bits to clear) need no round trip.
/// Dropped on any INVAL of the node, on changes made through this mount, on "drop
/// everything", and ignored once older than the attribute timeout: the same promise as
/// the kernel's attribute cache (README, "Coherence").
#[derive(Debug, Clone)]
pub struct Meta {
    /// When the oldest fact here was learnt; they expire together.
    since: Instant,
    /// Type, permission and set-id bits.
    pub mode: Option<u32>,
    /// The file has no extended attribute at all: a listing by root found none, or the
    /// answer to root's OPEN or CREATE said so (`feat::XATTR_NONE`).
    pub no_xattrs: bool,
    /// Names asked for and found absent (ENODATA).
    pub absent: Vec<Box<[u8]>>,
    /// A directory's attributes as the engine read them right after a change made through
    /// this mount (`feat::DIR_ATTR`), and when they came: they answer the GETATTR the
    /// kernel sends next (its permission check after the change dropped its copy) once.
    pub dir: Option<(Attr, Instant)>,
    /// A directory this mount made: every name it may hold — those made in it through
    /// this mount since, as each request was sent — so that a LOOKUP of any other name
    /// is answered "absent" without the engine (the LOOKUP the kernel sends before every
    /// create). Set only where a name found missing may be cached (invalidations reach
    /// it); dropped with the rest by an invalidation of the directory, and with the
    /// table's knowledge of names when it would outgrow [`MAX_KNOWN_NAMES`].
    pub names: Option<HashSet<Box<[u8]>>>,
    /// A directory's whole listing as the engine sent it, and when: a program that opens
    /// the directory again soon (`rm -r` opens each one twice) is served from it. Names
    /// only: the attributes in it may be older than changes made through this mount to
    /// the files since. Dropped with [`Meta::dir`] by every change of a name in the
    /// directory, and by an invalidation of it.
    listing: Option<(Arc<Vec<DirEntryOwned>>, Instant)>,
}

/// The most names a directory's [`Meta::names`] holds; beyond, the directory is treated
/// as any other (every LOOKUP asks the engine).
pub const MAX_KNOWN_NAMES: usize = 16384;

/// A name found missing is looked for in a kept listing of at most this many entries.
const SEARCHED_MAX: usize = 4096;

/// The most directory entries kept in listings ([`Meta::listing`]) at once, over all
/// directories; a longer listing is not kept.
const MAX_KEPT_ENTRIES: usize = 65536;

impl Meta {
    fn new() -> Meta {
        Meta {
            since: Instant::now(),
            mode: None,
            no_xattrs: false,
            absent: Vec::new(),
            dir: None,
            names: None,
            listing: None,
        }
    }

    /// Keeps `a` as the directory's attributes unless those kept are newer (a later
    /// ctime); two that differ with the same ctime cannot be ordered, so neither is kept.
    pub fn keep_dir(&mut self, a: Attr) {
        let ct = |a: &Attr| (a.ctime_sec, a.ctime_nsec);
        self.dir = match self.dir.take() {
            Some((old, t)) if ct(&old) > ct(&a) => Some((old, t)),
            Some((old, _)) if ct(&old) == ct(&a) && old != a => None,
            _ => Some((a, Instant::now())),
        };
    }
}

/// Proof that no invalidation of a node happened since it was taken ([`Nodes::ticket`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket(u64, u64);

impl Nodes {
    /// What is known of node `id` and learnt within `ttl`.
    pub fn meta(&self, id: u64, ttl: Duration) -> Option<&Meta> {
        self.nodes.get(&id)?.meta.as_deref().filter(|m| m.since.elapsed() < ttl)
    }

    /// Taken before a request whose answer is to be learnt ([`Nodes::learn`]).
    pub fn ticket(&self, id: u64) -> Ticket {
        Ticket(self.meta_epoch, self.nodes.get(&id).map_or(u64::MAX, |n| n.meta_gen))
    }

    /// Records what a reply said of node `id` (`f` on its knowledge), unless the node was
    /// invalidated since `t` was taken. Knowledge older than `ttl` is started afresh.
    pub fn learn(&mut self, id: u64, t: Ticket, ttl: Duration, f: impl FnOnce(&mut Meta)) {
        if t.0 != self.meta_epoch || ttl.is_zero() {
            return;
        }
        let Some(n) = self.nodes.get_mut(&id) else { return };
        if n.meta_gen != t.1 {
            return;
        }
        let m = match &mut n.meta {
            Some(m) if m.since.elapsed() < ttl => m,
            slot => slot.insert(Box::new(Meta::new())),
        };
        f(m);
    }

    /// Counts an invalidation of a path the table does not know.
    pub fn missed_inval(&mut self) {
        self.missed += 1;
    }

    /// Taken before a MKDIR whose new directory is to be known empty
    /// ([`Nodes::learn_new_dir`]).
    pub fn new_dir_ticket(&self) -> Ticket {
        Ticket(self.meta_epoch, self.missed)
    }

    /// Records that directory `id`, just made through this mount, holds no name — unless
    /// an invalidation since `t` may have concerned it (everything dropped, or a path the
    /// table did not know yet) — for `ttl`. Replaces what a node of a reused inode number
    /// knew, and refuses answers to requests sent before about it.
    pub fn learn_new_dir(&mut self, id: u64, t: Ticket, ttl: Duration) {
        self.sweep_names(ttl);
        if t != self.new_dir_ticket() {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            let m = Meta { names: Some(HashSet::new()), ..Meta::new() };
            self.named.push_back((id, m.since));
            n.meta = Some(Box::new(m));
            n.meta_gen += 1;
        }
    }

    /// Frees the name sets learnt longer than `ttl` ago (they answer nothing any more).
    fn sweep_names(&mut self, ttl: Duration) {
        while let Some(&(id, since)) = self.named.front() {
            if since.elapsed() < ttl {
                break;
            }
            self.named.pop_front();
            // Only the set learnt then: the node may have learnt a newer one since.
            if let Some(m) = self.nodes.get_mut(&id).and_then(|n| n.meta.as_deref_mut())
                && m.since == since
            {
                m.names = None;
            }
        }
    }

    /// Whether `name` is known absent from directory `dir` ([`Meta::names`], learnt within
    /// `ttl`).
    pub fn known_absent(&self, dir: u64, name: &[u8], ttl: Duration) -> bool {
        self.meta(dir, ttl).and_then(|m| m.names.as_ref()).is_some_and(|s| !s.contains(name))
    }

    /// `name` may exist in `dir` from now on (a request that makes it is about to go out);
    /// name sets older than `ttl` are freed.
    pub fn may_hold(&mut self, dir: u64, name: &[u8], ttl: Duration) {
        self.sweep_names(ttl);
        let Some(m) = self.nodes.get_mut(&dir).and_then(|n| n.meta.as_deref_mut()) else { return };
        if let Some(s) = &mut m.names {
            s.insert(name.into());
            if s.len() > MAX_KNOWN_NAMES {
                m.names = None;
            }
        }
    }

    /// A listing of directory `dir` from the engine: a name in it that this table did
    /// not expect means a change it was not told of; the directory's names are then no
    /// longer known.
    pub fn listed<'a>(&mut self, dir: u64, mut names: impl Iterator<Item = &'a [u8]>) {
        let Some(m) = self.nodes.get_mut(&dir).and_then(|n| n.meta.as_deref_mut()) else { return };
        if m.names.as_ref().is_some_and(|s| names.any(|n| !s.contains(n))) {
            m.names = None;
        }
    }

    /// `name` left directory `dir` (unlink, rmdir, found missing): it is no longer among
    /// the names the directory may hold, and a kept listing that names it is stale (one
    /// too long to search is dropped whatever it holds).
    pub(super) fn name_gone(&mut self, dir: u64, name: &[u8]) {
        if let Some(m) = self.nodes.get_mut(&dir).and_then(|n| n.meta.as_deref_mut()) {
            if let Some(s) = &mut m.names {
                s.remove(name);
            }
            if m.listing.as_ref().is_some_and(|(l, _)| l.len() > SEARCHED_MAX || l.iter().any(|e| *e.name == *name)) {
                m.listing = None;
            }
        }
    }

    /// The names directory `dir` is known to hold at most, if it is.
    pub(super) fn names_of(&mut self, dir: u64) -> Option<&mut HashSet<Box<[u8]>>> {
        self.nodes.get_mut(&dir)?.meta.as_deref_mut()?.names.as_mut()
    }

    /// The attributes kept for directory `id` ([`Meta::dir`]) if younger than `ttl`, with
    /// their age; taken, so they answer once.
    pub fn take_dir(&mut self, id: u64, ttl: Duration) -> Option<(Attr, Duration)> {
        let m = self.nodes.get_mut(&id)?.meta.as_deref_mut()?;
        let (a, t) = m.dir.take()?;
        let age = t.elapsed();
        (age < ttl && m.since.elapsed() < ttl).then_some((a, age))
    }

    /// Forgets the directory attributes kept for `id` ([`Meta::dir`]) — it is about to
    /// change, or may have — and refuses what answers to requests sent before would teach
    /// (tickets taken before are stale). Other facts stay: no change of a directory's
    /// attributes or names adds or removes an extended attribute.
    pub fn drop_dir(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if let Some(m) = n.meta.as_deref_mut() {
                m.dir = None;
                m.listing = None;
            }
            n.meta_gen += 1;
        }
    }

    /// Directory `dir`'s listing ([`Meta::listing`]) if kept within `ttl`; listings older
    /// than `ttl` are freed.
    pub fn listing(&mut self, dir: u64, ttl: Duration) -> Option<Arc<Vec<DirEntryOwned>>> {
        if ttl.is_zero() {
            return None;
        }
        self.sweep_kept(ttl, 0);
        let (list, at) = self.nodes.get(&dir)?.meta.as_deref()?.listing.as_ref()?;
        (at.elapsed() < ttl).then(|| list.clone())
    }

    /// Keeps `list`, the listing of directory `dir` the engine sent after ticket `t` was
    /// taken, for `ttl` — unless the directory was invalidated or changed since, or the
    /// listing is longer than [`MAX_KEPT_ENTRIES`]. Older listings make room for it.
    pub fn keep_listing(&mut self, dir: u64, t: Ticket, ttl: Duration, list: Arc<Vec<DirEntryOwned>>) {
        let n = list.len();
        if ttl.is_zero() || n > MAX_KEPT_ENTRIES {
            return;
        }
        self.sweep_kept(ttl, n);
        let at = Instant::now();
        let mut kept = false;
        self.learn(dir, t, ttl, |m| {
            m.listing = Some((list, at));
            kept = true;
        });
        if kept {
            self.kept.push_back((dir, at, n));
            self.kept_entries += n;
        }
    }

    /// Frees the listings kept longer than `ttl`, and the oldest ones until `room` more
    /// entries fit within [`MAX_KEPT_ENTRIES`].
    fn sweep_kept(&mut self, ttl: Duration, room: usize) {
        while let Some(&(id, at, n)) = self.kept.front() {
            if at.elapsed() < ttl && self.kept_entries + room <= MAX_KEPT_ENTRIES {
                break;
            }
            self.kept.pop_front();
            self.kept_entries -= n;
            // Only the listing kept then: the node may have kept a newer one since.
            if let Some(m) = self.nodes.get_mut(&id).and_then(|n| n.meta.as_deref_mut())
                && m.listing.as_ref().is_some_and(|l| l.1 == at)
            {
                m.listing = None;
            }
        }
    }

    /// Forgets what was learnt of node `id` (it changed, or may have).
    pub fn unlearn(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.meta = None;
            n.meta_gen += 1;
        }
    }

    /// Forgets what was learnt of every node.
    pub fn unlearn_all(&mut self) {
        self.meta_epoch += 1;
        for n in self.nodes.values_mut() {
            n.meta = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::ROOT;

    #[test]
    fn directory_attributes_keep_the_newest_answer_once_and_are_dropped_by_an_invalidation() {
        let ttl = Duration::from_secs(60);
        let a = |ctime_sec, nlink| Attr { ctime_sec, nlink, mode: libc::S_IFDIR | 0o755, ..Default::default() };
        let mut n = Nodes::new((1, 1));
        let t = n.ticket(ROOT);
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(10, 3)));
        // An answer that left the engine earlier, arriving later, does not replace it.
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(9, 2)));
        assert_eq!(n.take_dir(ROOT, ttl).map(|(x, _)| x.nlink), Some(3));
        assert!(n.take_dir(ROOT, ttl).is_none(), "they answer once");
        // Two different answers of the same instant cannot be ordered: neither is kept.
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(11, 3)));
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(11, 4)));
        assert!(n.take_dir(ROOT, ttl).is_none());
        // An invalidation drops them, and an answer to a request sent before it is not kept.
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(12, 3)));
        n.unlearn(ROOT);
        assert!(n.take_dir(ROOT, ttl).is_none());
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(13, 3)));
        assert!(n.take_dir(ROOT, ttl).is_none());
        // A change of the directory itself drops them, and refuses answers sent before,
        // but keeps the rest of what was learnt.
        let t = n.ticket(ROOT);
        n.learn(ROOT, t, ttl, |m| {
            m.keep_dir(a(20, 3));
            m.no_xattrs = true;
        });
        n.drop_dir(ROOT);
        assert!(n.take_dir(ROOT, ttl).is_none());
        assert!(n.meta(ROOT, ttl).is_some_and(|m| m.no_xattrs));
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(21, 3)));
        assert!(n.take_dir(ROOT, ttl).is_none());
        // Nor beyond the attribute timeout.
        let t = n.ticket(ROOT);
        n.learn(ROOT, t, ttl, |m| m.keep_dir(a(14, 3)));
        assert!(n.take_dir(ROOT, Duration::ZERO).is_none());
    }

    #[test]
    fn a_listing_is_kept_until_a_change_an_invalidation_or_its_timeout_and_within_a_bound() {
        let ttl = Duration::from_secs(60);
        let list = |n: usize| {
            Arc::new(
                (0..n)
                    .map(|i| DirEntryOwned {
                        name: format!("f{i}").into_bytes(),
                        ino: 10 + i as u64,
                        cookie: i as u64,
                        dtype: 8,
                        attr: None,
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let mut n = Nodes::new((1, 1));
        let d = n.link(ROOT, b"d", (1, 5));
        let kept = |n: &mut Nodes, id| n.listing(id, ttl).map(|l| l.len());
        let t = n.ticket(d);
        n.keep_listing(d, t, ttl, list(3));
        assert_eq!(kept(&mut n, d), Some(3));
        assert!(n.listing(d, Duration::ZERO).is_none(), "not beyond the timeout");
        assert_eq!(kept(&mut n, d), Some(3), "a look without a timeout (a pseudo file system) frees nothing");
        // Every change of a name in it drops it (the name operations call drop_dir before
        // their request goes out), and so does a name found missing.
        // A name it does not hold found missing changes nothing.
        n.unlink(d, b"other");
        assert_eq!(kept(&mut n, d), Some(3));
        for change in [Nodes::drop_dir as fn(&mut Nodes, u64), Nodes::unlearn, |n: &mut Nodes, d| n.unlink(d, b"f1")] {
            let t = n.ticket(d);
            n.keep_listing(d, t, ttl, list(3));
            change(&mut n, d);
            assert!(n.listing(d, ttl).is_none());
        }
        // A listing the engine sent for a request made before a change is not kept.
        let t = n.ticket(d);
        n.drop_dir(d);
        n.keep_listing(d, t, ttl, list(3));
        assert!(n.listing(d, ttl).is_none());
        let t = n.ticket(d);
        n.unlearn_all();
        n.keep_listing(d, t, ttl, list(3));
        assert!(n.listing(d, ttl).is_none());
        // Too long to keep.
        let t = n.ticket(d);
        n.keep_listing(d, t, ttl, list(MAX_KEPT_ENTRIES + 1));
        assert!(n.listing(d, ttl).is_none());
        // Within the bound, the oldest listings make room for a new one.
        let e = n.link(ROOT, b"e", (1, 6));
        let t = n.ticket(d);
        n.keep_listing(d, t, ttl, list(MAX_KEPT_ENTRIES / 2));
        let t = n.ticket(e);
        n.keep_listing(e, t, ttl, list(MAX_KEPT_ENTRIES / 2 + 1));
        assert!(n.listing(d, ttl).is_none(), "the oldest freed");
        assert_eq!(kept(&mut n, e), Some(MAX_KEPT_ENTRIES / 2 + 1));
        assert!(n.kept_entries <= MAX_KEPT_ENTRIES);
        // Listings past their timeout are freed by the next look.
        let short = Duration::from_millis(20);
        std::thread::sleep(short);
        assert!(n.listing(d, short).is_none());
        assert!(n.kept.is_empty() && n.kept_entries == 0);
        assert!(n.nodes[&e].meta.as_ref().is_some_and(|m| m.listing.is_none()), "the memory is freed");
    }

    #[test]
    fn a_new_directory_knows_its_names_until_an_invalidation() {
        let ttl = Duration::from_secs(60);
        let mut n = Nodes::new((1, 1));
        let t = n.new_dir_ticket();
        let d = n.link(ROOT, b"d", (1, 5));
        n.learn_new_dir(d, t, ttl);
        assert!(n.known_absent(d, b"x", ttl));
        assert!(!n.known_absent(d, b"x", Duration::ZERO), "not beyond the timeout");
        assert!(!n.known_absent(ROOT, b"x", ttl), "only a directory made here");
        // Names made through this mount may exist from the moment their request goes out.
        n.may_hold(d, b"x", ttl);
        n.may_hold(d, b"y", ttl);
        assert!(!n.known_absent(d, b"x", ttl) && !n.known_absent(d, b"y", ttl));
        n.link(d, b"x", (1, 6));
        n.may_hold(d, b"z", ttl);
        n.rename(d, b"x", d, b"z", 0);
        assert!(n.known_absent(d, b"x", ttl), "renamed away");
        n.may_hold(d, b"w", ttl);
        n.rename(d, b"w", d, b"y", libc::RENAME_EXCHANGE);
        assert!(!n.known_absent(d, b"w", ttl), "an exchange keeps both names");
        n.may_hold(d, b"v", ttl);
        n.rename(d, b"y", d, b"v", libc::RENAME_WHITEOUT);
        assert!(!n.known_absent(d, b"y", ttl), "a whiteout stands at the old name");
        n.rename(d, b"v", d, b"y", 0);
        n.unlink(d, b"y");
        assert!(n.known_absent(d, b"y", ttl));
        // A listing with only expected names keeps the knowledge; an unexpected one drops it.
        n.listed(d, [&b"z"[..], b"w"].into_iter());
        assert!(n.known_absent(d, b"q", ttl));
        n.listed(d, [&b"z"[..], b"q"].into_iter());
        assert!(!n.known_absent(d, b"r", ttl));
        let t = n.new_dir_ticket();
        n.learn_new_dir(d, t, ttl);
        // Another change of the directory (its attributes) keeps the names.
        n.drop_dir(d);
        assert!(n.known_absent(d, b"q", ttl));
        // An invalidation of the directory drops the knowledge.
        n.unlearn(d);
        assert!(!n.known_absent(d, b"q", ttl));
        // An invalidation of a path the table did not know yet, between the MKDIR and the
        // link of its node, may be of a name made in it: nothing is learnt.
        let t = n.new_dir_ticket();
        n.missed_inval();
        let e = n.link(ROOT, b"e", (1, 7));
        n.learn_new_dir(e, t, ttl);
        assert!(!n.known_absent(e, b"q", ttl));
        // Nor across "drop everything".
        let t = n.new_dir_ticket();
        n.unlearn_all();
        n.learn_new_dir(e, t, ttl);
        assert!(!n.known_absent(e, b"q", ttl));
        // A directory outgrowing the bound is treated as any other.
        let t = n.new_dir_ticket();
        n.learn_new_dir(e, t, ttl);
        for i in 0..=MAX_KNOWN_NAMES {
            n.may_hold(e, format!("n{i}").as_bytes(), ttl);
        }
        assert!(!n.known_absent(e, b"q", ttl));
        // Sets past their timeout are freed by the next learning, a newer one kept.
        let short = Duration::from_millis(20);
        let t = n.new_dir_ticket();
        n.learn_new_dir(d, t, short);
        n.may_hold(d, b"a", short);
        std::thread::sleep(short);
        let f = n.link(ROOT, b"f", (1, 8));
        let t = n.new_dir_ticket();
        n.learn_new_dir(f, t, short);
        assert!(n.nodes[&d].meta.as_ref().is_some_and(|m| m.names.is_none()), "an old set is freed");
        assert!(n.known_absent(f, b"q", short));
        assert_eq!(n.named.len(), 1);
    }

    #[test]
    fn meta_is_not_learnt_across_an_invalidation_and_expires() {
        let ttl = Duration::from_secs(60);
        let mut t = Nodes::new((1, 2));
        let a = t.link(ROOT, b"a", (1, 10));
        let tk = t.ticket(a);
        t.learn(a, tk, ttl, |m| m.mode = Some(0o100644));
        assert_eq!(t.meta(a, ttl).and_then(|m| m.mode), Some(0o100644));
        assert!(t.meta(a, Duration::ZERO).is_none());
        // An INVAL between the request and its answer: the answer is not learnt.
        let tk = t.ticket(a);
        t.unlearn(a);
        t.learn(a, tk, ttl, |m| m.no_xattrs = true);
        assert!(t.meta(a, ttl).is_none());
        // Nor across "drop everything".
        let tk = t.ticket(a);
        t.unlearn_all();
        t.learn(a, tk, ttl, |m| m.no_xattrs = true);
        assert!(t.meta(a, ttl).is_none());
        let tk = t.ticket(a);
        t.learn(a, tk, ttl, |m| m.no_xattrs = true);
        assert!(t.meta(a, ttl).is_some_and(|m| m.no_xattrs));
        // Unknown nodes learn nothing; a forgotten node takes its knowledge along.
        t.learn(99, t.ticket(99), ttl, |m| m.no_xattrs = true);
        assert!(t.meta(99, ttl).is_none());
        t.forget(a, 1);
        assert!(t.meta(a, ttl).is_none());
    }
}
