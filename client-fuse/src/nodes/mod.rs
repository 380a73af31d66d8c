//! The node table: FUSE node ids for the engine's path-based world.
//!
//! The engine names files by export-relative paths, the kernel by node ids. Each node is
//! one HOST inode (keyed by `(dev, ino)`), so hard links share a node, and it remembers
//! the names (`(parent node, name)` links) through which it was reached: its path is
//! rebuilt by walking up the first link, so renaming a directory renames everything
//! below it at no cost. Lookup counts follow the FUSE rules (every entry reply adds one,
//! FORGET subtracts); a node goes when its count reaches zero.
//!
//! Owns only this bookkeeping; it sends nothing to the engine. What replies taught of
//! the nodes is in [`meta`].

mod meta;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub use meta::{MAX_KNOWN_NAMES, Meta, Ticket};

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
    /// Listings kept ([`Meta::listing`]), oldest first, with when and their length: past
    /// their timeout, or to make room within `meta::MAX_KEPT_ENTRIES`, they are freed.
    kept: VecDeque<(u64, Instant, usize)>,
    /// Entries counted in `kept` (a listing dropped early is counted until it leaves).
    kept_entries: usize,
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
            kept: VecDeque::new(),
            kept_entries: 0,
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
        self.name_gone(parent, name);
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
