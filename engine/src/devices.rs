//! Device nodes: `nodev` semantics enforced by the engine.
//!
//! A client holding the key may claim uid 0, and uid 0 runs with the engine's own
//! privileges. Without this module it could `MKNOD` a character device (1:11 is
//! `/dev/kmsg`, 8:0 a disk) inside an export and read the HOST's kernel log or disk
//! through it, or open a device node that already sits in an export. So:
//!
//! - `MKNOD` creates FIFOs, sockets and regular files; character and block nodes only
//!   with `--allow-mknod-devices` ([`mknod_allowed`]).
//! - Every operation that opens an existing object (OPEN, CREATE of an existing name,
//!   SETATTR of a size) first holds it as an `O_PATH` descriptor, which never opens the
//!   device itself, checks its type on that descriptor, and only then reopens exactly
//!   that inode through `/proc/self/fd/N`. A character or block device is refused
//!   (EACCES) unless an `--allow-devices` rule ([`DevRule`]) names it.

use qtfs_proto::errno;

use crate::whitelist::{self, prefix_match};

/// One `--allow-devices PREFIX:KIND:MAJOR:MINOR` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevRule {
    /// Resolved HOST path the node's real path must be under (component prefix, as in
    /// the whitelist); None for `*` (anywhere in any export).
    prefix: Option<Vec<u8>>,
    block: bool,
    major: u32,
    /// None for `*`.
    minor: Option<u32>,
}

impl DevRule {
    /// Parses `PREFIX:KIND:MAJOR:MINOR`: PREFIX an absolute HOST path or `*`, KIND `c` or
    /// `b`, MAJOR a number, MINOR a number or `*`. PREFIX is resolved through symlinks
    /// once, like a whitelist entry.
    pub fn parse(spec: &str) -> Result<DevRule, String> {
        let bad = |why: &str| {
            format!("--allow-devices {spec:?}: {why} (expected PREFIX:KIND:MAJOR:MINOR, e.g. /dev/pts:c:136:*)")
        };
        // From the right: a path may contain ':'.
        let mut it = spec.rsplitn(4, ':');
        let (Some(minor), Some(major), Some(kind), Some(prefix)) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(bad("four fields separated by ':'"));
        };
        let block = match kind {
            "c" => false,
            "b" => true,
            _ => return Err(bad("KIND must be c or b")),
        };
        let major: u32 = major.parse().map_err(|_| bad("MAJOR must be a number"))?;
        let minor = match minor {
            "*" => None,
            m => Some(m.parse::<u32>().map_err(|_| bad("MINOR must be a number or *"))?),
        };
        let prefix = match prefix {
            "*" => None,
            p => match whitelist::lexical(p) {
                Some(n) => Some(whitelist::resolve(&n)),
                None => return Err(bad("PREFIX must be an absolute path or *")),
            },
        };
        Ok(DevRule { prefix, block, major, minor })
    }

    fn matches(&self, real_path: &[u8], block: bool, major: u32, minor: u32) -> bool {
        self.block == block
            && self.major == major
            && self.minor.is_none_or(|m| m == minor)
            && self.prefix.as_ref().is_none_or(|p| prefix_match(p, real_path))
    }
}

/// Whether a device node may be opened: `mode` is its `st_mode`, `real_path` its real
/// HOST path. Anything that is not a character or block device is not this module's
/// business.
pub fn open_allowed(rules: &[DevRule], mode: u32, real_path: &[u8], major: u32, minor: u32) -> bool {
    let block = match mode & libc::S_IFMT {
        libc::S_IFCHR => false,
        libc::S_IFBLK => true,
        _ => return true,
    };
    rules.iter().any(|r| r.matches(real_path, block, major, minor))
}

/// Whether `st_mode` is a character or block device.
pub fn is_device(mode: u32) -> bool {
    matches!(mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK)
}

/// MKNOD's file types: regular files (type 0 is one too), FIFOs and sockets always;
/// devices only with `--allow-mknod-devices` (EPERM otherwise, as for a process without
/// CAP_MKNOD); anything else EINVAL.
pub fn mknod_allowed(mode: u32, allow_devices: bool) -> Result<(), i32> {
    match mode & libc::S_IFMT {
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK => Ok(()),
        libc::S_IFCHR | libc::S_IFBLK if allow_devices => Ok(()),
        libc::S_IFCHR | libc::S_IFBLK => Err(errno::EPERM),
        _ => Err(errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_match() {
        let pts = DevRule::parse("/nonexistent-qtfs/pts:c:136:*").unwrap();
        assert!(pts.matches(b"/nonexistent-qtfs/pts/3", false, 136, 3));
        assert!(!pts.matches(b"/nonexistent-qtfs/ptsx/3", false, 136, 3), "component prefix");
        assert!(!pts.matches(b"/nonexistent-qtfs/pts/3", true, 136, 3), "kind");
        assert!(!pts.matches(b"/nonexistent-qtfs/pts/3", false, 137, 3), "major");
        let null = DevRule::parse("*:c:1:3").unwrap();
        assert!(null.matches(b"/anywhere/null", false, 1, 3));
        assert!(!null.matches(b"/anywhere/zero", false, 1, 5), "minor");
        let slash = DevRule::parse("/nonexistent-qtfs/a/./b/:b:8:0").unwrap();
        assert!(slash.matches(b"/nonexistent-qtfs/a/b/sda", true, 8, 0), "normalised");
        for bad in ["", "c:1:3", "*:x:1:3", "*:c:a:3", "*:c:1:-1", "rel:c:1:3", "/a/../b:c:1:3", "*:c:*:3"] {
            assert!(DevRule::parse(bad).is_err(), "{bad:?}");
        }
        let rules = [null];
        assert!(open_allowed(&rules, libc::S_IFCHR | 0o666, b"/x/null", 1, 3));
        assert!(!open_allowed(&rules, libc::S_IFCHR | 0o666, b"/x/kmsg", 1, 11));
        assert!(!open_allowed(&rules, libc::S_IFBLK | 0o666, b"/x/null", 1, 3));
        assert!(open_allowed(&[], libc::S_IFIFO | 0o666, b"/x/fifo", 0, 0));
    }

    #[test]
    fn mknod_types() {
        assert_eq!(mknod_allowed(libc::S_IFIFO | 0o600, false), Ok(()));
        assert_eq!(mknod_allowed(libc::S_IFSOCK | 0o600, false), Ok(()));
        assert_eq!(mknod_allowed(libc::S_IFREG | 0o600, false), Ok(()));
        assert_eq!(mknod_allowed(0o600, false), Ok(()));
        assert_eq!(mknod_allowed(libc::S_IFCHR | 0o600, false), Err(errno::EPERM));
        assert_eq!(mknod_allowed(libc::S_IFBLK | 0o600, false), Err(errno::EPERM));
        assert_eq!(mknod_allowed(libc::S_IFCHR | 0o600, true), Ok(()));
        assert_eq!(mknod_allowed(libc::S_IFDIR | 0o600, true), Err(errno::EINVAL));
    }
}
