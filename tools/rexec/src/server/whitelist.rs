//! `/etc/rexec/whitelist`: the binaries rexec_server may run.
//!
//! Format (compatible with the original): one entry per line, compared byte for byte
//! with the BINARY argument of rexec as given (so `/usr/bin/kill` and `kill` are different
//! entries); trailing control characters (newline, CR, tabs…) are stripped. Extensions:
//! empty lines and lines starting with `#` are ignored. Limits: at most 4,096 entries of
//! at most 4,095 bytes each. The file must not be writable by group or others (the
//! original intended 0400 but never checked), and must hold at least one entry.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const MAX_ENTRIES: usize = 4096;
pub const MAX_ENTRY: usize = 4095;

#[derive(Debug, Clone, Default)]
pub struct Whitelist {
    pub path: PathBuf,
    entries: HashSet<Vec<u8>>,
}

impl Whitelist {
    pub fn load(path: &Path) -> Result<Whitelist> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("whitelist {}", path.display()), e))?;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(Error::Usage(format!(
                "whitelist {} is writable by group or others (mode {:o}); chmod 0400 it",
                path.display(),
                meta.permissions().mode() & 0o7777
            )));
        }
        let text = std::fs::read(path).map_err(|e| Error::io(format!("whitelist {}", path.display()), e))?;
        let wl = Whitelist::parse(&text).map_err(|e| Error::Usage(format!("whitelist {}: {e}", path.display())))?;
        Ok(Whitelist { path: path.to_path_buf(), ..wl })
    }

    pub fn parse(text: &[u8]) -> std::result::Result<Whitelist, String> {
        let mut entries = HashSet::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let mut l = line;
            while let Some((&last, rest)) = l.split_last() {
                if last < 0x20 || last == 0x7f {
                    l = rest;
                } else {
                    break;
                }
            }
            if l.is_empty() || l[0] == b'#' {
                continue;
            }
            if l.len() > MAX_ENTRY {
                return Err(format!("line {} is longer than {MAX_ENTRY} bytes", i + 1));
            }
            entries.insert(l.to_vec());
            if entries.len() > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
        }
        if entries.is_empty() {
            return Err("no entries (rexec_server refuses to run without at least one)".into());
        }
        Ok(Whitelist { path: PathBuf::new(), entries })
    }

    pub fn allows(&self, binary: &[u8]) -> bool {
        self.entries.contains(binary)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_exact_with_trailing_controls_stripped() {
        let wl = Whitelist::parse(b"/usr/bin/qemu-kvm\r\n# comment\n\nkill\t \n/bin/true").unwrap();
        assert!(wl.allows(b"/usr/bin/qemu-kvm"));
        assert!(wl.allows(b"/bin/true"));
        assert!(!wl.allows(b"/usr/bin/kill"));
        // Only trailing control characters are stripped: "kill\t " keeps its space.
        assert!(wl.allows(b"kill\t "));
        assert!(!wl.allows(b"kill"));
        assert!(!wl.allows(b"/usr/bin/qemu-kvm\r"));
        assert!(Whitelist::parse(b"\n# only a comment\n").is_err());
        assert!(Whitelist::parse(&vec![b'a'; 5000]).is_err());
    }
}
