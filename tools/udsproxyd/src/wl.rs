//! The udsconnect whitelist held by udsproxyd: which socket paths a DPU program may
//! reach on the HOST. The same rules as the engine's `[Udsconnect]` group, so `qtcfg`
//! behaves identically against both: absolute paths matched as component prefixes
//! (`/a/b` covers `/a/b` and `/a/b/c`, never `/a/bc`), a trailing `/` ignored, `.`
//! and `//` collapsed, `..` refused, at most 64 entries of 1..4095 bytes, indices are
//! positions in insertion order. An empty whitelist proxies nothing (the original's
//! preload library proxied every failing connect).
//!
//! This module owns the entries; it must not touch sockets.

use qtfs_proto::consts::WL_MAX_ENTRIES;
use qtfs_proto::{MAX_PATH, errno};

/// Normalises an absolute path: collapses `//` and `.`; None for `..`, NUL, relative or
/// over-long paths.
pub fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.first() != Some(&b'/') || raw.len() > MAX_PATH || raw.contains(&0) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&c| c == b'/').filter(|c| !c.is_empty() && *c != b".") {
        if comp == b".." {
            return None;
        }
        out.push(b'/');
        out.extend_from_slice(comp);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

fn prefix_match(entry: &[u8], path: &[u8]) -> bool {
    if entry == b"/" {
        return path.first() == Some(&b'/');
    }
    path.starts_with(entry) && (path.len() == entry.len() || path[entry.len()] == b'/')
}

/// The udsconnect entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    entries: Vec<Vec<u8>>,
}

impl Whitelist {
    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    /// Adds an entry; returns its index, or an errno (EINVAL, EEXIST, ENOSPC).
    pub fn add(&mut self, raw: &[u8]) -> Result<u32, i32> {
        let e = normalize(raw.trim_ascii()).ok_or(errno::EINVAL)?;
        if self.entries.contains(&e) {
            return Err(errno::EEXIST);
        }
        if self.entries.len() >= WL_MAX_ENTRIES {
            return Err(errno::ENOSPC);
        }
        self.entries.push(e);
        Ok(self.entries.len() as u32 - 1)
    }

    /// Deletes entry `index`; later entries move up by one.
    pub fn delete(&mut self, index: u32) -> Result<Vec<u8>, i32> {
        if (index as usize) < self.entries.len() { Ok(self.entries.remove(index as usize)) } else { Err(errno::ENOENT) }
    }

    /// Whether a (normalised) absolute path is covered.
    pub fn allows(&self, path: &[u8]) -> bool {
        self.entries.iter().any(|e| prefix_match(e, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_prefixes_and_normalisation() {
        let mut w = Whitelist::default();
        assert!(!w.allows(b"/var/lib/libvirt/qemu/x.sock"), "empty proxies nothing");
        assert_eq!(w.add(b"/var/lib/libvirt/"), Ok(0));
        assert_eq!(w.add(b"/var//lib/./libvirt"), Err(errno::EEXIST));
        assert!(w.allows(b"/var/lib/libvirt/qemu/x.sock"));
        assert!(w.allows(b"/var/lib/libvirt"));
        assert!(!w.allows(b"/var/lib/libvirtd/x.sock"));
        assert_eq!(w.add(b"relative"), Err(errno::EINVAL));
        assert_eq!(w.add(b"/a/../b"), Err(errno::EINVAL));
        assert_eq!(w.add(b"/run/x.sock"), Ok(1));
        assert_eq!(w.delete(0).unwrap(), b"/var/lib/libvirt");
        assert_eq!(w.entries(), &[b"/run/x.sock".to_vec()]);
        assert_eq!(w.delete(5), Err(errno::ENOENT));
        assert_eq!(normalize(b"/a//b/./c/"), Some(b"/a/b/c".to_vec()));
        assert_eq!(normalize(b"/a/../etc"), None);
        for i in 0..63 {
            w.add(format!("/e{i}").as_bytes()).unwrap();
        }
        assert_eq!(w.add(b"/full"), Err(errno::ENOSPC));
    }
}
