//! `/etc/rexec/whitelist`: the binaries rexec_server may run.
//!
//! Format (compatible with the original): one entry per line, compared byte for byte
//! with the BINARY argument of rexec as given (so `/usr/bin/kill` and `kill` are different
//! entries); trailing control characters (newline, CR, tabs…) are stripped. Extensions:
//! empty lines and lines starting with `#` are ignored. Limits: at most 4,096 entries of
//! at most 4,095 bytes each. The file must not be writable by group or others (the
//! original intended 0400 but never checked), and must hold at least one entry.
//!
//! What an entry names is fixed when the file is loaded (at start and on SIGHUP): an
//! absolute entry is resolved through its symbolic links (realpath), a bare name is looked
//! up in the fixed search path (`--path`, never the client's PATH) and then resolved. A
//! request spelled as an entry runs the file the entry resolved to at load, whatever the
//! entry's symlinks point to by then. A spelling that is not an entry is refused even when
//! it resolves to a whitelisted file: the spelling becomes argv[0], and some programs act
//! on argv[0] (busybox, multi-call coreutils), so a caller's symlink named `rm` to a
//! whitelisted busybox must not run. Any other entry (relative with a `/`, or not found)
//! stays in the list and fails with "not found" until it resolves at a reload.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const MAX_ENTRIES: usize = 4096;
pub const MAX_ENTRY: usize = 4095;

/// What an entry names: the resolved path, or why it does not resolve (an errno).
pub type Target = std::result::Result<PathBuf, i32>;

#[derive(Debug, Clone, Default)]
pub struct Whitelist {
    pub path: PathBuf,
    entries: HashMap<Vec<u8>, Target>,
}

/// Resolves a BINARY the way rexec_server runs it: an absolute path through its symbolic
/// links, a bare name through `search` (the first directory holding an executable regular
/// file of that name, as execvp would pick). Anything else is ENOENT.
pub fn resolve(binary: &[u8], search: &str) -> Target {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::ENOENT);
    if binary.first() == Some(&b'/') {
        return std::fs::canonicalize(OsStr::from_bytes(binary)).map_err(errno);
    }
    if binary.is_empty() || binary.contains(&b'/') || binary == b"." || binary == b".." {
        return Err(libc::ENOENT);
    }
    let mut found_other = false;
    for dir in search.split(':').filter(|d| d.starts_with('/')) {
        let p = Path::new(dir).join(OsStr::from_bytes(binary));
        match std::fs::metadata(&p) {
            Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => {
                return std::fs::canonicalize(&p).map_err(errno);
            }
            Ok(_) => found_other = true,
            Err(_) => {}
        }
    }
    Err(if found_other { libc::EACCES } else { libc::ENOENT })
}

impl Whitelist {
    /// Reads, checks and resolves the file (`search`: the fixed PATH for bare names).
    pub fn load(path: &Path, search: &str) -> Result<Whitelist> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("whitelist {}", path.display()), e))?;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(Error::Usage(format!(
                "whitelist {} is writable by group or others (mode {:o}); chmod 0400 it",
                path.display(),
                meta.permissions().mode() & 0o7777
            )));
        }
        let text = std::fs::read(path).map_err(|e| Error::io(format!("whitelist {}", path.display()), e))?;
        let wl =
            Whitelist::parse(&text, search).map_err(|e| Error::Usage(format!("whitelist {}: {e}", path.display())))?;
        for (spelling, target) in &wl.entries {
            let shown = String::from_utf8_lossy(spelling);
            match target {
                Ok(t) if t.as_os_str().as_bytes() != spelling.as_slice() => {
                    tracing::info!(entry = %shown, resolved = %t.display(), "whitelist entry resolved")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    entry = %shown,
                    error = %std::io::Error::from_raw_os_error(*e),
                    "whitelist entry does not resolve: it fails as not found until a reload (SIGHUP) finds it"
                ),
            }
        }
        Ok(Whitelist { path: path.to_path_buf(), ..wl })
    }

    /// Parses the text and resolves every entry (see [`resolve`]).
    pub fn parse(text: &[u8], search: &str) -> std::result::Result<Whitelist, String> {
        let mut entries = HashMap::new();
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
            if !entries.contains_key(l) {
                entries.insert(l.to_vec(), resolve(l, search));
            }
            if entries.len() > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
        }
        if entries.is_empty() {
            return Err("no entries (rexec_server refuses to run without at least one)".into());
        }
        Ok(Whitelist { path: PathBuf::new(), entries })
    }

    /// What the entry spelled exactly `binary` resolved to at load (None: not an entry).
    pub fn lookup(&self, binary: &[u8]) -> Option<&Target> {
        self.entries.get(binary)
    }

    pub fn allows(&self, binary: &[u8]) -> bool {
        self.entries.contains_key(binary)
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
        let wl = Whitelist::parse(b"/usr/bin/qemu-kvm\r\n# comment\n\nkill\t \n/bin/true", "/usr/bin:/bin").unwrap();
        assert!(wl.allows(b"/usr/bin/qemu-kvm"));
        assert!(wl.allows(b"/bin/true"));
        assert!(!wl.allows(b"/usr/bin/kill"));
        // Only trailing control characters are stripped: "kill\t " keeps its space.
        assert!(wl.allows(b"kill\t "));
        assert!(!wl.allows(b"kill"));
        assert!(!wl.allows(b"/usr/bin/qemu-kvm\r"));
        assert!(Whitelist::parse(b"\n# only a comment\n", "/bin").is_err());
        assert!(Whitelist::parse(&vec![b'a'; 5000], "/bin").is_err());
    }

    #[test]
    fn entries_resolve_through_symlinks_and_the_fixed_path_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let tool = dir.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&tool, dir.join("link")).unwrap();
        std::fs::write(dir.join("plain"), "").unwrap();
        let search = format!("/nonexistent:{}", dir.display());
        let text = format!("{0}/link\ntool\nplain\n./tool\nsub/tool\n{0}/missing\n", dir.display());
        let wl = Whitelist::parse(text.as_bytes(), &search).unwrap();
        assert_eq!(wl.lookup(format!("{}/link", dir.display()).as_bytes()), Some(&Ok(tool.clone())));
        assert_eq!(wl.lookup(b"tool"), Some(&Ok(tool.clone())));
        // Not executable: EACCES, as execvp would report; relative paths never resolve.
        assert_eq!(wl.lookup(b"plain"), Some(&Err(libc::EACCES)));
        assert_eq!(wl.lookup(b"./tool"), Some(&Err(libc::ENOENT)));
        assert_eq!(wl.lookup(b"sub/tool"), Some(&Err(libc::ENOENT)));
        assert_eq!(wl.lookup(format!("{}/missing", dir.display()).as_bytes()), Some(&Err(libc::ENOENT)));
        // The bare name is looked up in the given search path only.
        assert_eq!(resolve(b"tool", "/nonexistent"), Err(libc::ENOENT));
        // The spelling of the target itself is not an entry.
        assert!(wl.lookup(tool.as_os_str().as_bytes()).is_none());
    }
}
