//! Wire paths: validation, splitting into parent and final component, and the HOST path
//! used for whitelist checks.
//!
//! A wire path is relative to its export: no leading `/`, no empty, `.` or `..`
//! components; the empty path is the export root. Resolution beneath the export root is
//! the kernel's job (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`); this check
//! only rejects spellings that have no business on the wire. The resolve flags it uses
//! ([`SAFE`]) are here too.

// Reached by bytes from untrusted peers: a slip must fail a request, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

use qtfs_proto::errno;

/// `openat2` resolve flags (`RESOLVE_*` of linux/openat2.h).
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_CACHED: u64 = 0x20;
/// How every wire path is resolved: beneath the export root, no magic links.
pub(crate) const SAFE: u64 = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

/// Validates a wire path; returns it unchanged or an errno.
pub fn check(p: &[u8]) -> Result<&[u8], i32> {
    if p.is_empty() {
        return Ok(p);
    }
    if p.first() == Some(&b'/') || p.contains(&0) {
        return Err(errno::EINVAL);
    }
    for c in p.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." || c == b".." {
            return Err(errno::EINVAL);
        }
        if c.len() > qtfs_proto::MAX_NAME {
            return Err(errno::ENAMETOOLONG);
        }
    }
    Ok(p)
}

/// Splits a non-empty wire path into (parent, name); the parent of a top-level name is
/// `.` (the export root).
pub fn split(p: &[u8]) -> Result<(&[u8], &[u8]), i32> {
    let p = check(p)?;
    if p.is_empty() {
        // The root has no parent inside the export.
        return Err(errno::EBUSY);
    }
    Ok(match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (p.get(..i).unwrap_or_default(), p.get(i + 1..).unwrap_or_default()),
        None => (b".", p),
    })
}

/// `dir/name` as a HOST path, for whitelist checks.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(dir.len() + 1 + name.len());
    v.extend_from_slice(dir);
    if name.is_empty() {
        return v;
    }
    if v.last() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(check(b"").is_ok());
        assert!(check(b"a/b/c").is_ok());
        for bad in [&b"/etc"[..], b"a//b", b"a/./b", b"../x", b"a/..", b"a/", b"a\0b"] {
            assert!(check(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(check(&[b'x'; 256]).unwrap_err(), errno::ENAMETOOLONG);
    }

    #[test]
    fn splitting() {
        assert_eq!(split(b"a").unwrap(), (&b"."[..], &b"a"[..]));
        assert_eq!(split(b"a/b/c").unwrap(), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"").unwrap_err(), errno::EBUSY);
        assert_eq!(join(b"/srv", b"x"), b"/srv/x");
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/srv", b""), b"/srv");
    }
}
