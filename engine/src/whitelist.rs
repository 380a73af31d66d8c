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
//! - Because that path is resolved, a path entry is resolved too, when it is loaded or
//!   added (see [`resolve`]): on Debian or openEuler `/var/run` is a symlink to `/run`,
//!   and `/var/run/rexec` must allow `/run/rexec/rexec_uds.sock`. Matching uses the
//!   resolved form; everything users see (the admin socket's list, `--persist`, logs of
//!   changes) keeps the entry as written.
//! - Entries are resolved once. The engine has no reload (SIGHUP is not handled), so an
//!   entry keeps naming what its symlinks pointed at when it was loaded or added until it
//!   is deleted and added again (`qtcfg -y`, `qtcfg -x`) or the engine restarts.

use std::os::fd::AsRawFd;
use std::path::Path;

use qtfs_proto::consts::{WL_MAX_ENTRIES, WlType};
use qtfs_proto::{MAX_PATH, errno};

use crate::sys;

/// The entries of every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    /// One slot per `WlType` (`WlType::ALL`), indexed by its discriminant.
    groups: [Vec<Entry>; WlType::ALL.len()],
}

/// One entry: as the user wrote it (normalised: no repeated, `.` or trailing `/`
/// components) and the form requests are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    written: Vec<u8>,
    real: Vec<u8>,
}

impl Entry {
    /// Validates and normalises `raw` and, for path groups, resolves it in the engine's
    /// own root with the engine's own privileges. Blocking file system work: call it off
    /// the cores (at load, on the admin thread), and outside the whitelist lock.
    pub fn new(t: WlType, raw: &[u8]) -> Result<Entry, WlError> {
        Entry::with(t, raw, resolve)
    }

    fn with(t: WlType, raw: &[u8], resolver: fn(&[u8]) -> Vec<u8>) -> Result<Entry, WlError> {
        let written = normalize(t, raw)?;
        let real = if t.is_path() { resolver(&written) } else { written.clone() };
        Ok(Entry { written, real })
    }

    /// The entry as written (what lists and the file show).
    pub fn path(&self) -> &[u8] {
        &self.written
    }

    /// The entry with its symlinks resolved (what requests are matched against).
    pub fn resolved(&self) -> &[u8] {
        &self.real
    }
}

/// The absolute path `p` of a command-line option spelled plainly, ready for [`resolve`]:
/// no empty or `.` components, `/` for the root; None unless `p` is absolute, without
/// `..` and without NUL.
pub fn lexical(p: &str) -> Option<Vec<u8>> {
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p.contains('\0') {
        return None;
    }
    let mut n: Vec<u8> = Vec::with_capacity(p.len());
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        n.push(b'/');
        n.extend_from_slice(c.as_bytes());
    }
    if n.is_empty() {
        n.push(b'/');
    }
    Some(n)
}

/// Resolves a normalised absolute path the way the engine resolves what requests act
/// on: open it (`O_PATH`, following symlinks, final one included) from the engine's own
/// root and mount namespace, and read the descriptor's real path back
/// (`/proc/self/fd/N`, as [`sys::fd_real_path`] does for every request). A path that does
/// not exist yet resolves its longest existing prefix and appends the rest as written
/// (`/var/run/notyet/x` → `/run/notyet/x`), so an entry for something created later still
/// matches it. A dangling symlink counts as not existing: its own name is kept, not the
/// missing target (re-add the entry once the target exists). The result has no trailing
/// `/` (except `/` itself), like the real paths it
/// is compared with, so component-prefix matching is unchanged.
///
/// Security: this runs with the engine's privileges, but only at load or add time (the
/// file and the admin socket are root's). It fixes the real directory the entry names at
/// that moment; requests are still matched against the real path of their target as the
/// kernel resolves it then. A symlink in an entry that is changed later therefore gives a
/// client nothing beyond the directory named at resolution time: the old target stays
/// allowed, the new one is not (until the entry is re-added).
///
/// Magic links (`/proc/PID/root/…`) are not followed. A prefix that cannot be resolved for
/// another reason (permission, symlink loop) leaves the entry as written, with a warning:
/// that matches what it did before entries were resolved, never more.
pub fn resolve(lexical: &[u8]) -> Vec<u8> {
    let comps: Vec<&[u8]> = lexical.split(|&c| c == b'/').filter(|c| !c.is_empty()).collect();
    // Longest prefix first: an entry usually exists, so one open is the common cost.
    for k in (0..=comps.len()).rev() {
        let mut prefix = Vec::with_capacity(lexical.len() + 1);
        // k ≤ comps.len(): the split always succeeds.
        let (head, tail) = comps.split_at_checked(k).unwrap_or((&comps, &[]));
        for c in head {
            prefix.push(b'/');
            prefix.extend_from_slice(c);
        }
        if prefix.is_empty() {
            prefix.push(b'/');
        }
        match real_path_of(&prefix) {
            Ok(mut real) => {
                for c in tail {
                    if real.last() != Some(&b'/') {
                        real.push(b'/');
                    }
                    real.extend_from_slice(c);
                }
                return real;
            }
            // Not there (yet): try the parent.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => continue,
            Err(e) => {
                tracing::warn!(
                    "whitelist entry {}: cannot resolve {}: {e}; matched as written",
                    String::from_utf8_lossy(lexical),
                    String::from_utf8_lossy(&prefix)
                );
                return lexical.to_vec();
            }
        }
    }
    lexical.to_vec()
}

fn real_path_of(p: &[u8]) -> std::io::Result<Vec<u8>> {
    let c = std::ffi::CString::new(p).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = sys::openat2(libc::AT_FDCWD, &c, libc::O_PATH, 0, crate::path::RESOLVE_NO_MAGICLINKS)?;
    sys::fd_real_path(fd.as_raw_fd())
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
    if !s.starts_with(b"/") {
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

/// Whether `entry` (normalised and resolved) covers the absolute real path `path`.
#[inline]
pub fn prefix_match(entry: &[u8], path: &[u8]) -> bool {
    if entry == b"/" {
        return path.first() == Some(&b'/');
    }
    path.starts_with(entry) && matches!(path.get(entry.len()), None | Some(b'/'))
}

// `WlType::ALL[i] as usize == i`: a discriminant is always a valid index of `groups`.
#[allow(clippy::indexing_slicing)] // evaluated at compile time: a bad index fails the build
const _: () = {
    let mut i = 0;
    while i < WlType::ALL.len() {
        assert!(WlType::ALL[i] as usize == i);
        i += 1;
    }
};

impl Whitelist {
    /// Parses the INI text, resolving every path entry ([`resolve`]). Problems with
    /// single entries are returned as warnings; the rest loads.
    pub fn parse(text: &str) -> (Whitelist, Vec<String>) {
        Whitelist::parse_with(text, resolve)
    }

    fn parse_with(text: &str, resolver: fn(&[u8]) -> Vec<u8>) -> (Whitelist, Vec<String>) {
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
                if let Err(e) = Entry::with(t, item.as_bytes(), resolver).and_then(|e| wl.insert(t, e)) {
                    warnings.push(format!("[{}] {e}; skipped", t.section()));
                }
            }
        }
        (wl, warnings)
    }

    pub fn load(path: &Path) -> std::io::Result<(Whitelist, Vec<String>)> {
        Ok(Whitelist::parse(&std::fs::read_to_string(path)?))
    }

    pub fn entries(&self, t: WlType) -> &[Entry] {
        self.group(t)
    }

    /// Group `t` (every `WlType` has its slot; one without would read as empty: deny).
    fn group(&self, t: WlType) -> &[Entry] {
        self.groups.get(t as usize).map_or(&[], Vec::as_slice)
    }

    /// Group `t` to change. `groups` has `WlType::ALL.len()` slots and `ALL` lists every
    /// variant at the index of its discriminant (checked below at compile time).
    #[allow(clippy::indexing_slicing)] // in bounds by construction, see above
    fn group_mut(&mut self, t: WlType) -> &mut Vec<Entry> {
        &mut self.groups[t as usize]
    }

    /// Resolves and appends an entry; returns its index.
    pub fn add(&mut self, t: WlType, raw: &[u8]) -> Result<u32, WlError> {
        self.insert(t, Entry::new(t, raw)?)
    }

    /// Appends an entry made by [`Entry::new`]; returns its index. Duplicates are judged
    /// on the spelling: `/var/run/x` and `/run/x` may both be listed, as written.
    pub fn insert(&mut self, t: WlType, e: Entry) -> Result<u32, WlError> {
        let g = self.group_mut(t);
        if g.iter().any(|x| x.written == e.written) {
            return Err(WlError::Duplicate(String::from_utf8_lossy(&e.written).into_owned()));
        }
        if g.len() >= WL_MAX_ENTRIES {
            return Err(WlError::Full(t.section()));
        }
        if e.real != e.written {
            // Once per entry (at load or add), so that a user comparing the file with the
            // "not in [...]" refusals in the log sees which directory an entry names.
            tracing::info!(
                "whitelist [{}] {} resolves to {}",
                t.section(),
                String::from_utf8_lossy(&e.written),
                String::from_utf8_lossy(&e.real)
            );
        }
        g.push(e);
        Ok(g.len() as u32 - 1)
    }

    /// Removes entry `index`; later entries move up by one.
    pub fn delete(&mut self, t: WlType, index: u32) -> Result<Entry, WlError> {
        let g = self.group_mut(t);
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
        self.group(t).iter().any(|e| prefix_match(&e.real, path))
    }

    /// The first path group (every group but `Kill`) that allows `to` but not `from`.
    ///
    /// The rule for giving an existing object a new place (LINK's new name, a bind or
    /// moved mount's target): later requests are checked against the new path, so the
    /// new path may not be allowed anything the existing one is not, or a file from a
    /// read-only area would become writable, chmod-able or unlinkable by its new name.
    pub fn gained(&self, from: &[u8], to: &[u8]) -> Option<WlType> {
        WlType::ALL.into_iter().filter(|t| t.is_path()).find(|&t| self.allows(t, to) && !self.allows(t, from))
    }

    /// [`Whitelist::gained`] for a whole tree placed at `to` (a bind or moved mount):
    /// also every entry beneath `to` (which covers part of the tree only) must be matched
    /// by the same place beneath `from`.
    pub fn gained_tree(&self, from: &[u8], to: &[u8]) -> Option<WlType> {
        if let Some(t) = self.gained(from, to) {
            return Some(t);
        }
        for t in WlType::ALL.into_iter().filter(|t| t.is_path()) {
            for e in self.group(t) {
                if e.real.len() > to.len() && prefix_match(to, &e.real) {
                    let rest = e.real.get(to.len()..).unwrap_or_default();
                    let mapped = crate::path::join(from, rest.strip_prefix(b"/").unwrap_or(rest));
                    if !self.allows(t, &mapped) {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    /// Whether a process name is in `[Kill]`.
    pub fn allows_comm(&self, comm: &[u8]) -> bool {
        self.group(WlType::Kill).iter().any(|e| e.real == comm)
    }

    /// The file text for this whitelist: `base` with every group's `Path=` line
    /// replaced (comments, other keys and the order of groups are kept; missing groups
    /// are appended).
    pub fn render(&self, base: &str) -> String {
        let mut out = String::new();
        // Groups whose Path= line is written: bit `t as u32`.
        let mut done = 0u32;
        let is_done = |done: u32, t: WlType| done & (1 << t as u32) != 0;
        let mut group: Option<WlType> = None;
        let line_for = |t: WlType| {
            // As written: the file keeps the user's spelling, symlinks included.
            let items: Vec<String> =
                self.group(t).iter().map(|e| String::from_utf8_lossy(&e.written).into_owned()).collect();
            format!("Path={}\n", items.join(";"))
        };
        for line in base.lines() {
            let l = line.trim();
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if let Some(t) = group
                    && !is_done(done, t)
                {
                    out.push_str(&line_for(t));
                    done |= 1 << t as u32;
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
                if !is_done(done, t) {
                    out.push_str(&line_for(t));
                    done |= 1 << t as u32;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if let Some(t) = group
            && !is_done(done, t)
        {
            out.push_str(&line_for(t));
            done |= 1 << t as u32;
        }
        for t in WlType::ALL {
            if !is_done(done, t) && !self.group(t).is_empty() {
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

    /// No file system: these tests are about parsing and matching, not resolution.
    fn lexical(p: &[u8]) -> Vec<u8> {
        p.to_vec()
    }

    fn parse(text: &str) -> (Whitelist, Vec<String>) {
        Whitelist::parse_with(text, lexical)
    }

    fn add(wl: &mut Whitelist, t: WlType, raw: &[u8]) -> Result<u32, WlError> {
        wl.insert(t, Entry::with(t, raw, lexical)?)
    }

    fn paths(wl: &Whitelist, t: WlType) -> Vec<&[u8]> {
        wl.entries(t).iter().map(Entry::path).collect()
    }

    #[test]
    fn parse_and_match() {
        let (wl, warn) = parse(
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
    fn new_places_gain_nothing() {
        let (wl, _) = parse(
            "[Open]\nPath=/e\n[Read]\nPath=/e\n[Write]\nPath=/e/rw\n[Create]\nPath=/e/rw;/e/ro/sub\n[Setattr]\nPath=/e/rw/deep\n",
        );
        assert_eq!(wl.gained(b"/e/ro/f", b"/e/rw/l"), Some(WlType::Write));
        assert_eq!(wl.gained(b"/e/rw/a", b"/e/rw/b"), None);
        assert_eq!(wl.gained(b"/e/rw/a", b"/e/ro/b"), None, "fewer rights are fine");
        // A tree: an entry beneath the target must be matched beneath the source.
        assert_eq!(wl.gained_tree(b"/e/rw/x", b"/e/rw"), Some(WlType::Setattr), "/e/rw/deep vs /e/rw/x/deep");
        assert_eq!(wl.gained_tree(b"/e/rw", b"/e/rw"), None);
        assert_eq!(wl.gained_tree(b"/e/ro/y", b"/e/ro"), Some(WlType::Create), "/e/ro/sub vs /e/ro/y/sub");
        assert_eq!(wl.gained_tree(b"/e/rw/x", b"/e/ro"), None, "/e/ro/sub vs /e/rw/x/sub: allowed there too");
        assert_eq!(wl.gained_tree(b"/e/ro", b"/e/rw/m"), Some(WlType::Write));
    }

    #[test]
    fn add_delete_indices() {
        let mut wl = Whitelist::default();
        assert_eq!(add(&mut wl, WlType::Open, b"/a").unwrap(), 0);
        assert_eq!(add(&mut wl, WlType::Open, b"/b/").unwrap(), 1);
        assert_eq!(add(&mut wl, WlType::Open, b"/c").unwrap(), 2);
        assert_eq!(add(&mut wl, WlType::Open, b"/b").unwrap_err(), WlError::Duplicate("/b".into()));
        assert!(matches!(add(&mut wl, WlType::Open, b"rel"), Err(WlError::Invalid(_))));
        assert!(matches!(add(&mut wl, WlType::Open, b"/a/../b"), Err(WlError::Invalid(_))));
        assert_eq!(wl.delete(WlType::Open, 0).unwrap().path(), b"/a");
        assert_eq!(paths(&wl, WlType::Open), [&b"/b"[..], b"/c"]);
        assert!(matches!(wl.delete(WlType::Open, 5), Err(WlError::NoIndex(..))));
        for i in 0..62 {
            add(&mut wl, WlType::Open, format!("/d{i}").as_bytes()).unwrap();
        }
        assert_eq!(add(&mut wl, WlType::Open, b"/full").unwrap_err(), WlError::Full("Open"));
        assert!(add(&mut wl, WlType::Open, &vec![b'a'; 5000]).is_err());
    }

    #[test]
    fn render_keeps_comments() {
        let base = "# qtfs whitelist\n[Mount]\n# the exports\nPath=/a\n[Open]\nPath=/a\n";
        let (mut wl, _) = parse(base);
        add(&mut wl, WlType::Open, b"/b").unwrap();
        add(&mut wl, WlType::Rename, b"/a").unwrap();
        let text = wl.render(base);
        assert!(text.contains("# qtfs whitelist\n[Mount]\n# the exports\nPath=/a\n"));
        assert!(text.contains("[Open]\nPath=/a;/b\n"));
        assert!(text.contains("[Rename]\nPath=/a\n"));
        let (again, w) = parse(&text);
        assert!(w.is_empty());
        assert_eq!(again, wl);
    }

    #[test]
    fn root_entry() {
        let (wl, _) = parse("[Open]\nPath=/\n");
        assert!(wl.allows(WlType::Open, b"/anything/at/all"));
    }

    /// A temporary tree: `real/sub/`, `link -> real`, `rel -> ./real/sub` (relative),
    /// `chain -> link`, `other/`, `away -> other`; returns the tree's own real path too.
    fn tree() -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap().to_str().unwrap().to_string();
        std::fs::create_dir_all(d.path().join("real/sub")).unwrap();
        std::fs::create_dir(d.path().join("other")).unwrap();
        std::os::unix::fs::symlink(format!("{root}/real"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("./real/sub", d.path().join("rel")).unwrap();
        std::os::unix::fs::symlink("link", d.path().join("chain")).unwrap();
        std::os::unix::fs::symlink("other", d.path().join("away")).unwrap();
        (d, root)
    }

    #[test]
    fn entries_resolve_symlinks_and_keep_their_spelling() {
        let (_d, root) = tree();
        let cases = [
            (format!("{root}/link"), format!("{root}/real")),
            (format!("{root}/link/"), format!("{root}/real")),
            (format!("{root}/chain/sub"), format!("{root}/real/sub")),
            (format!("{root}/rel"), format!("{root}/real/sub")),
            // Not there yet: the longest existing prefix resolves, the rest is appended.
            (format!("{root}/link/notyet/x"), format!("{root}/real/notyet/x")),
            (format!("{root}/real"), format!("{root}/real")),
        ];
        for (written, real) in &cases {
            assert_eq!(resolve(normalize(WlType::Open, written.as_bytes()).unwrap().as_slice()), real.as_bytes());
        }
        assert_eq!(resolve(b"/"), b"/");
        let (wl, warn) = Whitelist::parse(&format!("[Udsconnect]\nPath={root}/link/;{root}/away\n[Kill]\nPath=link\n"));
        assert!(warn.is_empty(), "{warn:?}");
        let e = &wl.entries(WlType::Udsconnect)[0];
        assert_eq!(e.path(), format!("{root}/link").as_bytes(), "listed as written (normalised)");
        assert_eq!(e.resolved(), format!("{root}/real").as_bytes());
        assert!(wl.allows(WlType::Udsconnect, format!("{root}/real/s.sock").as_bytes()));
        assert!(wl.allows(WlType::Udsconnect, format!("{root}/real").as_bytes()));
        // Component prefixes, as before: real/ does not cover realx/.
        assert!(!wl.allows(WlType::Udsconnect, format!("{root}/realx/s.sock").as_bytes()));
        // A real path is never spelt through the link, so the spelling no longer matches.
        assert!(!wl.allows(WlType::Udsconnect, format!("{root}/link/s.sock").as_bytes()));
        assert!(wl.allows(WlType::Udsconnect, format!("{root}/other/s.sock").as_bytes()));
        assert_eq!(wl.entries(WlType::Kill)[0].resolved(), b"link", "names are not paths");
        // Written back as written.
        assert!(wl.render("").contains(&format!("Path={root}/link;{root}/away\n")));
    }

    #[test]
    fn a_symlink_changed_later_keeps_naming_the_old_target() {
        let (d, root) = tree();
        let mut wl = Whitelist::default();
        wl.add(WlType::Open, format!("{root}/away").as_bytes()).unwrap();
        std::fs::remove_file(d.path().join("away")).unwrap();
        std::os::unix::fs::symlink("real", d.path().join("away")).unwrap();
        assert!(!wl.allows(WlType::Open, format!("{root}/real/f").as_bytes()));
        assert!(wl.allows(WlType::Open, format!("{root}/other/f").as_bytes()));
    }
}
