//! The node table: FUSE node ids for the engine's path-based world.
//!
//! The engine names files by export-relative paths, the kernel by node ids. Each node is
//! one HOST inode (keyed by `(dev, ino)`), so hard links share a node, and it remembers
//! the names (`(parent node, name)` links) through which it was reached: its path is
//! rebuilt by walking up the first link, so renaming a directory renames everything
//! below it at no cost. Lookup counts follow the FUSE rules (every entry reply adds one,
//! FORGET subtracts); a node goes when its count reaches zero.
//!
//! Owns only this bookkeeping; it sends nothing to the engine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use qtfs_proto::Attr;

/// The root's node id (fixed by FUSE).
pub const ROOT: u64 = 1;

/// A file's identity on the HOST.
pub type Key = (u64, u64);

#[derive(Debug)]
struct Node {
    /// Names of this inode, most recently used first.
    links: Vec<(u64, Vec<u8>)>,
    key: Key,
    nlookup: u64,
    /// (mtime, size) when the kernel last opened it with cached pages kept.
    cache_stamp: Option<(i64, u32, u64)>,
    /// What replies told of its set-id bits and extended attributes ([`Meta`]).
    meta: Option<Box<Meta>>,
    /// Bumped whenever `meta` is dropped: an answer to a request sent before is not
    /// learnt (it may predate the change that dropped it).
    meta_gen: u64,
}

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
    /// A listing by root found no extended attribute at all.
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
}

/// The most names a directory's [`Meta::names`] holds; beyond, the directory is treated
/// as any other (every LOOKUP asks the engine).
pub const MAX_KNOWN_NAMES: usize = 16384;

impl Meta {
    fn new() -> Meta {
        Meta { since: Instant::now(), mode: None, no_xattrs: false, absent: Vec::new(), dir: None, names: None }
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

/// Node ids, lookup counts and names.
#[derive(Debug)]
pub struct Nodes {
    nodes: HashMap<u64, Node>,
    by_key: HashMap<Key, u64>,
    dentries: HashMap<(u64, Vec<u8>), u64>,
    next: u64,
    /// Bumped by [`Nodes::unlearn_all`] (see `Node::meta_gen`).
    meta_epoch: u64,
    /// Invalidations of paths the table did not know ([`Nodes::missed_inval`]): one may
    /// concern a directory made meanwhile, before its node was linked.
    missed: u64,
    /// Directories given [`Meta::names`], oldest first, with when: past their timeout the
    /// sets are freed ([`Nodes::sweep_names`]), so a large tree made through the mount
    /// keeps only the names of the last timeout's directories, not all of them until the
    /// kernel forgets the nodes.
    named: VecDeque<(u64, Instant)>,
}

impl Nodes {
    /// A table holding only the root, which is the export root with HOST key `root_key`.
    pub fn new(root_key: Key) -> Nodes {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node { links: Vec::new(), key: root_key, nlookup: 1, cache_stamp: None, meta: None, meta_gen: 0 },
        );
        let mut by_key = HashMap::new();
        by_key.insert(root_key, ROOT);
        Nodes {
            nodes,
            by_key,
            dentries: HashMap::new(),
            next: ROOT + 1,
            meta_epoch: 0,
            missed: 0,
            named: VecDeque::new(),
        }
    }

    /// After an engine restart the export root may be another inode (a new directory at
    /// the same path): re-key the root.
    pub fn rekey_root(&mut self, key: Key) {
        let old = self.nodes[&ROOT].key;
        if old != key {
            self.by_key.remove(&old);
            self.by_key.insert(key, ROOT);
            self.nodes.get_mut(&ROOT).expect("root").key = key;
        }
    }

    /// The export-relative path of a node (empty for the root), or None if the node is
    /// unknown or has no name left (unlinked while open).
    pub fn path(&self, id: u64) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        // Depth bound: a cycle can only come from a bug, never loop forever on one.
        for _ in 0..4096 {
            if cur == ROOT {
                let mut p = Vec::new();
                for (i, part) in parts.iter().rev().enumerate() {
                    if i > 0 {
                        p.push(b'/');
                    }
                    p.extend_from_slice(part);
                }
                return Some(p);
            }
            let n = self.nodes.get(&cur)?;
            let (parent, name) = n.links.first()?;
            parts.push(name);
            cur = *parent;
        }
        None
    }

    /// The name the node was last known by (without its directory).
    pub fn name(&self, id: u64) -> Option<&[u8]> {
        self.nodes.get(&id).and_then(|n| n.links.first()).map(|(_, name)| &name[..])
    }

    /// The path of `name` in directory `parent`.
    pub fn child_path(&self, parent: u64, name: &[u8]) -> Option<Vec<u8>> {
        let mut p = self.path(parent)?;
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        Some(p)
    }

    /// Records that `parent/name` is the inode `key` and counts one lookup; returns the
    /// node id.
    pub fn link(&mut self, parent: u64, name: &[u8], key: Key) -> u64 {
        let id = self.bind(parent, name, key);
        self.nodes.get_mut(&id).expect("bound node").nlookup += 1;
        id
    }

    /// Like `link` without counting a lookup (for names the kernel does not learn).
    fn bind(&mut self, parent: u64, name: &[u8], key: Key) -> u64 {
        let dkey = (parent, name.to_vec());
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.next;
                self.next += 1;
                self.nodes.insert(
                    id,
                    Node { links: Vec::new(), key, nlookup: 0, cache_stamp: None, meta: None, meta_gen: 0 },
                );
                self.by_key.insert(key, id);
                id
            }
        };
        if let Some(old) = self.dentries.insert(dkey.clone(), id)
            && old != id
        {
            // The name now leads to another inode (changed on the HOST): drop the stale link.
            if let Some(n) = self.nodes.get_mut(&old) {
                n.links.retain(|l| *l != dkey);
            }
        }
        let n = self.nodes.get_mut(&id).expect("node");
        if let Some(i) = n.links.iter().position(|l| *l == dkey) {
            if i != 0 {
                let l = n.links.remove(i);
                n.links.insert(0, l);
            }
        } else {
            n.links.insert(0, dkey);
        }
        id
    }

    /// The parent directory of a node (through its first name).
    pub fn parent(&self, id: u64) -> Option<u64> {
        self.nodes.get(&id)?.links.first().map(|l| l.0)
    }

    /// The node id that `parent/name` is known to lead to.
    pub fn lookup_name(&self, parent: u64, name: &[u8]) -> Option<u64> {
        self.dentries.get(&(parent, name.to_vec())).copied()
    }

    /// The node an export-relative path leads to through names the table knows (None:
    /// a name on the way is not known, so the kernel caches nothing under it).
    pub fn resolve(&self, path: &[u8]) -> Option<u64> {
        let mut cur = ROOT;
        for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
            cur = self.lookup_name(cur, name)?;
        }
        Some(cur)
    }

    /// Every node id and every known name `(parent, name)`: what "drop everything" drops.
    pub fn snapshot(&self) -> (Vec<u64>, Vec<(u64, Vec<u8>)>) {
        (self.nodes.keys().copied().collect(), self.dentries.keys().cloned().collect())
    }

    /// The HOST identity of a node.
    pub fn key(&self, id: u64) -> Option<Key> {
        self.nodes.get(&id).map(|n| n.key)
    }

    /// The node id of a HOST inode if the kernel knows it.
    pub fn by_key(&self, key: Key) -> Option<u64> {
        self.by_key.get(&key).copied()
    }

    /// `parent/name` is gone (unlink, rmdir, or found missing).
    pub fn unlink(&mut self, parent: u64, name: &[u8]) {
        if let Some(s) = self.names_of(parent) {
            s.remove(name);
        }
        let dkey = (parent, name.to_vec());
        if let Some(id) = self.dentries.remove(&dkey)
            && let Some(n) = self.nodes.get_mut(&id)
        {
            n.links.retain(|l| *l != dkey);
        }
    }

    /// Mirrors a successful rename with rename(2)'s `flags`. (The new name was added to
    /// `p2`'s [`Meta::names`] before the request went out; the old one stays there after
    /// an exchange, and after RENAME_WHITEOUT, which leaves a whiteout in its place.)
    pub fn rename(&mut self, p1: u64, n1: &[u8], p2: u64, n2: &[u8], flags: u32) {
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if !exchange
            && flags & libc::RENAME_WHITEOUT == 0
            && let Some(s) = self.names_of(p1)
        {
            s.remove(n1);
        }
        let k1 = (p1, n1.to_vec());
        let k2 = (p2, n2.to_vec());
        let a = self.dentries.remove(&k1);
        let b = self.dentries.remove(&k2);
        let relink = |id: u64, from: &(u64, Vec<u8>), to: &(u64, Vec<u8>), nodes: &mut HashMap<u64, Node>| {
            if let Some(n) = nodes.get_mut(&id) {
                n.links.retain(|l| l != from && l != to);
                n.links.insert(0, to.clone());
            }
        };
        if let Some(a) = a {
            relink(a, &k1, &k2, &mut self.nodes);
            self.dentries.insert(k2.clone(), a);
        }
        match b {
            Some(b) if exchange => {
                relink(b, &k2, &k1, &mut self.nodes);
                self.dentries.insert(k1, b);
            }
            Some(b) => {
                // Replaced: the old target keeps living only while the kernel holds it.
                if let Some(n) = self.nodes.get_mut(&b) {
                    n.links.retain(|l| *l != k2);
                }
            }
            None => {}
        }
    }

    /// Subtracts `n` lookups; forgets the node when none are left.
    pub fn forget(&mut self, id: u64, n: u64) {
        if id == ROOT {
            return;
        }
        let gone = match self.nodes.get_mut(&id) {
            Some(node) => {
                node.nlookup = node.nlookup.saturating_sub(n);
                node.nlookup == 0
            }
            None => false,
        };
        if gone {
            let node = self.nodes.remove(&id).expect("node");
            if self.by_key.get(&node.key) == Some(&id) {
                self.by_key.remove(&node.key);
            }
            for l in node.links {
                if self.dentries.get(&l) == Some(&id) {
                    self.dentries.remove(&l);
                }
            }
        }
    }

    /// Decides whether the kernel may keep a file's cached pages on open: yes if the
    /// file's (mtime, size) is what it was at the previous open, so a change made on the
    /// HOST in between drops the cache (close-to-open coherence).
    pub fn keep_cache(&mut self, id: u64, stamp: (i64, u32, u64)) -> bool {
        match self.nodes.get_mut(&id) {
            Some(n) => {
                let keep = n.cache_stamp == Some(stamp);
                n.cache_stamp = Some(stamp);
                keep
            }
            None => false,
        }
    }

    /// Forgets the cache stamp (after a write through this client changed the file, the
    /// pages in the kernel are current but the stamp is not).
    pub fn set_cache_stamp(&mut self, id: u64, stamp: Option<(i64, u32, u64)>) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.cache_stamp = stamp;
        }
    }

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

    /// The names directory `dir` is known to hold at most, if it is.
    fn names_of(&mut self, dir: u64) -> Option<&mut HashSet<Box<[u8]>>> {
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
            }
            n.meta_gen += 1;
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

    /// Number of nodes (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn lookup_count(&self, id: u64) -> u64 {
        self.nodes.get(&id).map_or(0, |n| n.nlookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn paths_follow_renames_of_ancestors() {
        let mut t = Nodes::new((1, 2));
        let a = t.link(ROOT, b"a", (1, 10));
        let b = t.link(a, b"b", (1, 11));
        let c = t.link(b, b"c", (1, 12));
        assert_eq!(t.path(c).unwrap(), b"a/b/c");
        t.rename(ROOT, b"a", ROOT, b"z", 0);
        assert_eq!(t.path(c).unwrap(), b"z/b/c");
        assert_eq!(t.lookup_name(ROOT, b"z"), Some(a));
        assert_eq!(t.lookup_name(ROOT, b"a"), None);
        assert_eq!(t.path(ROOT).unwrap(), b"");
    }

    /// A table with `a`, then `b`, linked in the root to HOST inodes `inos` (device 1).
    fn root_with(a: &[u8], b: &[u8], inos: (u64, u64)) -> (Nodes, u64, u64) {
        let mut t = Nodes::new((1, 2));
        let x = t.link(ROOT, a, (1, inos.0));
        let y = t.link(ROOT, b, (1, inos.1));
        (t, x, y)
    }

    #[test]
    fn hard_links_share_a_node_and_survive_unlink_of_one_name() {
        let (mut t, x, y) = root_with(b"x", b"y", (20, 20));
        assert_eq!(x, y);
        assert_eq!(t.lookup_count(x), 2);
        assert_eq!(t.path(x).unwrap(), b"y");
        t.unlink(ROOT, b"y");
        assert_eq!(t.path(x).unwrap(), b"x");
        t.unlink(ROOT, b"x");
        assert_eq!(t.path(x), None, "unlinked everywhere: no path");
        t.forget(x, 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn exchange_swaps_and_replace_drops_the_target() {
        let (mut t, a, b) = root_with(b"a", b"b", (30, 31));
        t.rename(ROOT, b"a", ROOT, b"b", libc::RENAME_EXCHANGE);
        assert_eq!(t.path(a).unwrap(), b"b");
        assert_eq!(t.path(b).unwrap(), b"a");
        t.rename(ROOT, b"a", ROOT, b"b", 0);
        assert_eq!(t.path(b).unwrap(), b"b");
        assert_eq!(t.path(a), None);
    }

    #[test]
    fn a_name_reused_for_another_inode_moves() {
        let (mut t, a, b) = root_with(b"f", b"f", (40, 41));
        assert_ne!(a, b);
        assert_eq!(t.path(a), None);
        assert_eq!(t.path(b).unwrap(), b"f");
        t.forget(a, 1);
        assert_eq!(t.lookup_name(ROOT, b"f"), Some(b));
    }

    #[test]
    fn keep_cache_only_when_unchanged() {
        let mut t = Nodes::new((1, 2));
        let a = t.link(ROOT, b"f", (1, 40));
        assert!(!t.keep_cache(a, (5, 0, 10)));
        assert!(t.keep_cache(a, (5, 0, 10)));
        assert!(!t.keep_cache(a, (6, 0, 10)));
    }
}
