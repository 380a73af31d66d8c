//! The per-operation whitelist: the original's INI file format, with its defects fixed.
//!
//! ```ini
//! [Mount]
//! Path=/var/lib/libvirt;/home/VMs
//! [Open]
//! Path=/var/lib/libvirt/qemu;/home/VMs
//! [Kill]
//! Path=qemu-kvm
//! ```
//!
//! - Fourteen groups (`Open` … `Udsconnect`); a missing group denies its operations.
//! - Path entries are absolute HOST paths matched as *component prefixes*: `/a/b` matches
//!   `/a/b` and `/a/b/c`, never `/a/bc`; a trailing `/` is ignored (so `/var/lib/libvirt/`
//!   works, unlike the original). `Kill` entries are process names matched exactly.
//! - A duplicate entry is skipped with a warning; the rest of its group still loads.
//! - At most 64 entries per group, each 1..4095 bytes.
//! - Indices are positions in the group in file order; ADD appends; DEL removes one entry
//!   and the entries after it move up by one.
//! - Matching happens on the *resolved* path of the object the engine acts on, so a
//!   symlink inside an export cannot reach a directory the whitelist excludes.

use std::path::Path;

use qtfs_proto::consts::{WL_MAX_ENTRIES, WlType};
use qtfs_proto::{MAX_PATH, errno};

/// The entries of every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    groups: [Vec<Vec<u8>>; 14],
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WlError {
    /// Empty, too long, relative, or containing NUL / `..`.
    #[error("invalid entry {0:?}")]
    Invalid(String),
    /// Already present.
    #[error("duplicate entry {0:?}")]
    Duplicate(String),
    /// The group holds 64 entries.
    #[error("group {0} is full (64 entries)")]
    Full(&'static str),
    /// No entry at that index.
    #[error("no entry {1} in group {0}")]
    NoIndex(&'static str, u32),
}

impl WlError {
    pub fn errno(&self) -> i32 {
        match self {
            WlError::Invalid(_) => errno::EINVAL,
            WlError::Duplicate(_) => errno::EEXIST,
            WlError::Full(_) => errno::ENOSPC,
            WlError::NoIndex(..) => errno::ENOENT,
        }
    }
}

fn normalize(t: WlType, raw: &[u8]) -> Result<Vec<u8>, WlError> {
    let bad = || WlError::Invalid(String::from_utf8_lossy(raw).into_owned());
    let s = raw.trim_ascii();
    if s.is_empty() || s.len() > MAX_PATH || s.contains(&0) {
        return Err(bad());
    }
    if !t.is_path() {
        return if s.len() <= 255 { Ok(s.to_vec()) } else { Err(bad()) };
    }
    if s[0] != b'/' {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(s.len());
    for comp in s.split(|&c| c == b'/').filter(|c| !c.is_empty() && *c != b".") {
        if comp == b".." {
            return Err(bad());
        }
        out.push(b'/');
        out.extend_from_slice(comp);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// Whether `entry` (normalised) covers the absolute path `path`.
#[inline]
pub fn prefix_match(entry: &[u8], path: &[u8]) -> bool {
    if entry == b"/" {
        return path.first() == Some(&b'/');
    }
    path.starts_with(entry) && (path.len() == entry.len() || path[entry.len()] == b'/')
}

impl Whitelist {
    /// Parses the INI text. Problems with single entries are returned as warnings; the
    /// rest loads.
    pub fn parse(text: &str) -> (Whitelist, Vec<String>) {
        let mut wl = Whitelist::default();
        let mut warnings = Vec::new();
        let mut group: Option<WlType> = None;
        for (lineno, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                group = WlType::parse(name.trim());
                if group.is_none() {
                    warnings.push(format!("line {}: unknown group [{name}] ignored", lineno + 1));
                }
                continue;
            }
            let Some(t) = group else { continue };
            let Some((k, v)) = l.split_once('=') else {
                warnings.push(format!("line {}: expected Path=…", lineno + 1));
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("path") {
                warnings.push(format!("line {}: unknown key {:?} ignored", lineno + 1, k.trim()));
                continue;
            }
            for item in v.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                if let Err(e) = wl.add(t, item.as_bytes()) {
                    warnings.push(format!("[{}] {e}; skipped", t.section()));
                }
            }
        }
        (wl, warnings)
    }

    pub fn load(path: &Path) -> std::io::Result<(Whitelist, Vec<String>)> {
        Ok(Whitelist::parse(&std::fs::read_to_string(path)?))
    }

    pub fn entries(&self, t: WlType) -> &[Vec<u8>] {
        &self.groups[t as usize]
    }

    /// Appends an entry; returns its index.
    pub fn add(&mut self, t: WlType, raw: &[u8]) -> Result<u32, WlError> {
        let e = normalize(t, raw)?;
        let g = &mut self.groups[t as usize];
        if g.contains(&e) {
            return Err(WlError::Duplicate(String::from_utf8_lossy(&e).into_owned()));
        }
        if g.len() >= WL_MAX_ENTRIES {
            return Err(WlError::Full(t.section()));
        }
        g.push(e);
        Ok(g.len() as u32 - 1)
    }

    /// Removes entry `index`; later entries move up by one.
    pub fn delete(&mut self, t: WlType, index: u32) -> Result<Vec<u8>, WlError> {
        let g = &mut self.groups[t as usize];
        if index as usize >= g.len() {
            return Err(WlError::NoIndex(t.section(), index));
        }
        Ok(g.remove(index as usize))
    }

    /// Whether an absolute HOST path is allowed for group `t`.
    #[inline]
    pub fn allows(&self, t: WlType, path: &[u8]) -> bool {
        if path.windows(3).any(|w| w == b"/..") && path.split(|&c| c == b'/').any(|c| c == b"..") {
            return false;
        }
        self.groups[t as usize].iter().any(|e| prefix_match(e, path))
    }

    /// Whether a process name is in `[Kill]`.
    pub fn allows_comm(&self, comm: &[u8]) -> bool {
        self.groups[WlType::Kill as usize].iter().any(|e| e == comm)
    }

    /// The file text for this whitelist: `base` with every group's `Path=` line
    /// replaced (comments, other keys and the order of groups are kept; missing groups
    /// are appended).
    pub fn render(&self, base: &str) -> String {
        let mut out = String::new();
        let mut done = [false; 14];
        let mut group: Option<WlType> = None;
        let line_for = |t: WlType| {
            let items: Vec<String> =
                self.groups[t as usize].iter().map(|e| String::from_utf8_lossy(e).into_owned()).collect();
            format!("Path={}\n", items.join(";"))
        };
        for line in base.lines() {
            let l = line.trim();
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if let Some(t) = group
                    && !done[t as usize]
                {
                    out.push_str(&line_for(t));
                    done[t as usize] = true;
                }
                group = WlType::parse(name.trim());
                out.push_str(line);
                out.push('\n');
                continue;
            }
            if let Some(t) = group
                && let Some((k, _)) = l.split_once('=')
                && k.trim().eq_ignore_ascii_case("path")
            {
                if !done[t as usize] {
                    out.push_str(&line_for(t));
                    done[t as usize] = true;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if let Some(t) = group
            && !done[t as usize]
        {
            out.push_str(&line_for(t));
            done[t as usize] = true;
        }
        for t in WlType::ALL {
            if !done[t as usize] && !self.groups[t as usize].is_empty() {
                out.push_str(&format!("[{}]\n{}", t.section(), line_for(t)));
            }
        }
        out
    }

    /// Writes the whitelist back to `path` atomically (temp file + rename), keeping the
    /// file's comments and layout.
    pub fn persist(&self, path: &Path) -> std::io::Result<()> {
        let base = std::fs::read_to_string(path).unwrap_or_default();
        let text = self.render(&base);
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("wl"),
            std::process::id()
        ));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        if let Ok(m) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, m.permissions());
        }
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let (wl, warn) = Whitelist::parse(
            "# comment\n[Mount]\nPath=/var/lib/libvirt/;/home/VMs\n[Open]\nPath=/home/VMs;/home/VMs;/srv\n[Kill]\nPath=qemu-kvm\n[Bogus]\nPath=/x\n",
        );
        assert_eq!(warn.len(), 2, "{warn:?}"); // duplicate + unknown group
        assert!(wl.allows(WlType::Mount, b"/var/lib/libvirt"));
        assert!(wl.allows(WlType::Mount, b"/var/lib/libvirt/qemu/x"), "trailing slash entry matches sub-paths");
        assert!(!wl.allows(WlType::Mount, b"/var/lib/libvirtx"));
        assert!(wl.allows(WlType::Open, b"/srv/a"), "a duplicate does not truncate the group");
        assert!(!wl.allows(WlType::Open, b"/home/VMs/../etc/shadow"));
        assert!(!wl.allows(WlType::Write, b"/home/VMs/a"), "missing group denies");
        assert!(wl.allows_comm(b"qemu-kvm"));
        assert!(!wl.allows_comm(b"qemu-kvm2"));
    }

    #[test]
    fn add_delete_indices() {
        let mut wl = Whitelist::default();
        assert_eq!(wl.add(WlType::Open, b"/a").unwrap(), 0);
        assert_eq!(wl.add(WlType::Open, b"/b/").unwrap(), 1);
        assert_eq!(wl.add(WlType::Open, b"/c").unwrap(), 2);
        assert_eq!(wl.add(WlType::Open, b"/b").unwrap_err(), WlError::Duplicate("/b".into()));
        assert!(matches!(wl.add(WlType::Open, b"rel"), Err(WlError::Invalid(_))));
        assert!(matches!(wl.add(WlType::Open, b"/a/../b"), Err(WlError::Invalid(_))));
        assert_eq!(wl.delete(WlType::Open, 0).unwrap(), b"/a");
        assert_eq!(wl.entries(WlType::Open), &[b"/b".to_vec(), b"/c".to_vec()]);
        assert!(matches!(wl.delete(WlType::Open, 5), Err(WlError::NoIndex(..))));
        for i in 0..62 {
            wl.add(WlType::Open, format!("/d{i}").as_bytes()).unwrap();
        }
        assert_eq!(wl.add(WlType::Open, b"/full").unwrap_err(), WlError::Full("Open"));
        assert!(wl.add(WlType::Open, &vec![b'a'; 5000]).is_err());
    }

    #[test]
    fn render_keeps_comments() {
        let base = "# qtfs whitelist\n[Mount]\n# the exports\nPath=/a\n[Open]\nPath=/a\n";
        let (mut wl, _) = Whitelist::parse(base);
        wl.add(WlType::Open, b"/b").unwrap();
        wl.add(WlType::Rename, b"/a").unwrap();
        let text = wl.render(base);
        assert!(text.contains("# qtfs whitelist\n[Mount]\n# the exports\nPath=/a\n"));
        assert!(text.contains("[Open]\nPath=/a;/b\n"));
        assert!(text.contains("[Rename]\nPath=/a\n"));
        let (again, w) = Whitelist::parse(&text);
        assert!(w.is_empty());
        assert_eq!(again, wl);
    }

    #[test]
    fn root_entry() {
        let (wl, _) = Whitelist::parse("[Open]\nPath=/\n");
        assert!(wl.allows(WlType::Open, b"/anything/at/all"));
    }
}
