//! `-o proc`: a mount of the HOST's `/proc` in which the DPU's own processes stay the
//! DPU's.
//!
//! ## The rule: which namespace a name in the mount's root belongs to
//!
//! Only the first component of a path is looked at; everything below it follows it.
//!
//! 1. `self` and `thread-self` are the reader's own process and thread: symlinks to
//!    `<tgid>` and `<tgid>/task/<tid>`, made from the pid the FUSE request carries (the
//!    calling thread, in qtfs-fuse's pid namespace) and the `Tgid:` of the local
//!    `/proc/<tid>/status`. A reader outside this pid namespace has no `self` (ENOENT,
//!    as procfs answers). They are never cached by the kernel (entry and attribute
//!    timeouts 0, no symlink cache), since every reader sees another target.
//! 2. A number that is a process or thread of the DPU — present in the local `/proc` as
//!    qtfs-fuse's pid namespace sees it (`-o proc_local=DIR`, default `/proc`) — is that
//!    local process: its whole directory is served from the local `/proc`
//!    (passthrough), so `/proc/<pid>/mounts` and friends are the process's own view.
//! 3. Except when that local pid has a live entry in the rexec pid map
//!    (`-o pidmap=DIR`, default `/var/run/rexec/pids`): the file `DIR/<pid>` holds the
//!    HOST pid of the process a local `rexec` stands for, and is `flock`ed by that
//!    rexec while it lives. Then the number is its HOST process: `/proc/<rexec pid>/X`
//!    is the HOST's `/proc/<HOST pid>/X`, so `/proc/<rexec pid>/stat` and
//!    `/task/<HOST tid>/stat` give qemu's real figures. A map file nobody holds
//!    locked is a dead rexec's and is ignored (its number may be another process now).
//! 4. Every other name, numbers included, is the HOST's: HOST pids and tids, and the
//!    HOST's `cpuinfo`, `meminfo`, `sys/` … A HOST pid equal to a local pid is hidden by
//!    the local one (rule 2): on a collision the DPU wins, so nothing meant for a DPU
//!    process ever reaches a HOST one by accident.
//!
//! HOST symlinks that point through `self` (`mounts` -> `self/mounts`, `net` ->
//! `self/net`) thus lead to the reader's own files. The root's listing is the HOST's
//! without its numbers that are local pids, plus the local processes. Numbers in the
//! root are looked up again on every use (entry timeout 0): whether a number is local
//! can change at any moment.
//!
//! ## Local passthrough
//!
//! Local files are read and written by qtfs-fuse itself (opened here, one descriptor per
//! FUSE open, direct I/O), so the kernel's `default_permissions` mode check is what
//! guards them; procfs's own ptrace checks are made against qtfs-fuse (root), not the
//! reader. Local symlinks (`exe`, `cwd`, `root`, `fd/N`) are plain symlinks through
//! FUSE, not magic links: their text is shown relative to the reader's root (as procfs
//! does), and opening `fd/N` reopens that path, which works for files and not for pipes
//! or sockets. No path through a symlink reaches this module: the kernel follows
//! symlinks itself and only ever names children of directories, and the final
//! component is opened with `O_NOFOLLOW`.
//!
//! A local process's `mounts` and `mountinfo` also show the HOST's cgroup file systems
//! beneath its qtfs-fuse mounts ([`crate::cgmounts`]: how libvirt finds the HOST's cgroups).
//!
//! Owns the rule, the pid-map lookup and the local side (attributes, listings, links,
//! open local files).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use qtfs_client::DirEntryOwned;
use qtfs_proto::Attr;

/// Set in `dev_major` of local files' attributes: their node keys can never equal a HOST
/// file's (device numbers of the two machines overlap).
pub const LOCAL_DEV_TAG: u32 = 0x8000_0000;

/// Where a path of the mount goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To the engine, with this export-relative path.
    Remote(Vec<u8>),
    /// To the local file system, this absolute path.
    Local(PathBuf),
    /// `self` (false) or `thread-self` (true).
    SelfLink(bool),
}

/// Settings of `-o proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcConfig {
    /// The local procfs (the DPU's processes).
    pub local: PathBuf,
    /// The rexec pid map.
    pub pidmap: PathBuf,
}

impl Default for ProcConfig {
    fn default() -> Self {
        ProcConfig { local: PathBuf::from("/proc"), pidmap: PathBuf::from("/var/run/rexec/pids") }
    }
}

/// The `-o proc` state: the rule and the open local files.
pub struct ProcMode {
    cfg: ProcConfig,
    files: RwLock<HashMap<u64, Arc<File>>>,
}

/// A canonical decimal process number (no sign, no leading zero), as procfs names them.
pub fn pid_name(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || name[0] == b'0' || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Is `name` a name in the root whose meaning can change from one use to the next
/// (numbers and `self`)? The kernel must not cache those.
pub fn volatile_root_name(name: &[u8]) -> bool {
    name == b"self" || name == b"thread-self" || pid_name(name).is_some()
}

fn attr_of(md: &std::fs::Metadata) -> Attr {
    let dev = md.dev();
    Attr {
        ino: md.ino(),
        size: md.size(),
        blocks: md.blocks(),
        atime_sec: md.atime(),
        mtime_sec: md.mtime(),
        ctime_sec: md.ctime(),
        atime_nsec: md.atime_nsec() as u32,
        mtime_nsec: md.mtime_nsec() as u32,
        ctime_nsec: md.ctime_nsec() as u32,
        mode: md.mode(),
        nlink: md.nlink() as u32,
        uid: md.uid(),
        gid: md.gid(),
        rdev_major: libc::major(md.rdev()),
        rdev_minor: libc::minor(md.rdev()),
        dev_major: libc::major(dev) | LOCAL_DEV_TAG,
        dev_minor: libc::minor(dev),
        blksize: md.blksize() as u32,
        ..Default::default()
    }
}

fn dtype_of(mode: u32) -> u8 {
    ((mode & libc::S_IFMT) >> 12) as u8
}

impl ProcMode {
    pub fn new(cfg: ProcConfig) -> ProcMode {
        ProcMode { cfg, files: RwLock::new(HashMap::new()) }
    }

    /// Where `path` (export-relative, no leading `/`) goes; see the module comment.
    pub fn route(&self, path: &[u8]) -> Route {
        let (first, rest) = match path.iter().position(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i..]),
            None => (path, &b""[..]),
        };
        if rest.is_empty() && (first == b"self" || first == b"thread-self") {
            return Route::SelfLink(first == b"thread-self");
        }
        let Some(n) = pid_name(first) else { return Route::Remote(path.to_vec()) };
        if !self.is_local(n) {
            return Route::Remote(path.to_vec());
        }
        match self.mapped(n) {
            Some(host) => {
                let mut p = host.to_string().into_bytes();
                p.extend_from_slice(rest);
                Route::Remote(p)
            }
            None => Route::Local(self.cfg.local.join(std::ffi::OsStr::from_bytes(path))),
        }
    }

    /// Is `n` a process or thread in the local procfs?
    pub fn is_local(&self, n: u32) -> bool {
        std::fs::symlink_metadata(self.cfg.local.join(n.to_string())).is_ok()
    }

    /// The HOST pid a live rexec with local pid `n` stands for.
    pub fn mapped(&self, n: u32) -> Option<u32> {
        let f = File::open(self.cfg.pidmap.join(n.to_string())).ok()?;
        // SAFETY: flock on a descriptor we own; a shared lock we get is dropped with `f`.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
        if free {
            // Nobody holds it: a dead rexec's file, whose number may be reused.
            return None;
        }
        let mut s = String::new();
        io::Read::read_to_string(&mut &f, &mut s).ok()?;
        s.trim().parse().ok().filter(|&p| p > 0)
    }

    /// The target of `self` / `thread-self` for the calling thread `tid`.
    pub fn self_target(&self, tid: u32, thread: bool) -> io::Result<Vec<u8>> {
        if tid == 0 {
            // The caller is outside our pid namespace: it has no number here.
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let status = std::fs::read_to_string(self.cfg.local.join(tid.to_string()).join("status"))?;
        let tgid = status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok(if thread { format!("{tgid}/task/{tid}") } else { tgid.to_string() }.into_bytes())
    }

    /// Attributes of the `self` / `thread-self` symlinks (fixed; their target is asked
    /// for on every use).
    pub fn self_attr(thread: bool) -> Attr {
        Attr {
            ino: if thread { 2 } else { 1 },
            mode: libc::S_IFLNK | 0o777,
            nlink: 1,
            dev_major: LOCAL_DEV_TAG | 0xfff,
            dev_minor: 0,
            ..Default::default()
        }
    }

    /// Attributes of a local file (the symlink itself, not its target).
    pub fn local_attr(&self, p: &Path) -> io::Result<Attr> {
        Ok(attr_of(&std::fs::symlink_metadata(p)?))
    }

    /// A local directory's entries (with attributes when `plus`).
    pub fn local_dir(&self, p: &Path, plus: bool) -> io::Result<Vec<DirEntryOwned>> {
        let mut out = Vec::new();
        for (i, e) in std::fs::read_dir(p)?.enumerate() {
            let Ok(e) = e else { continue };
            // Entries vanish while we list (processes exit): skip those.
            let Ok(md) = std::fs::symlink_metadata(e.path()) else { continue };
            let a = attr_of(&md);
            out.push(DirEntryOwned {
                name: e.file_name().as_bytes().to_vec(),
                ino: md.ino(),
                cookie: i as u64 + 1,
                dtype: dtype_of(a.mode),
                attr: plus.then_some(a),
            });
        }
        Ok(out)
    }

    /// The root's listing: the HOST's entries without the numbers that are local
    /// processes, plus the local processes (thread ids are not listed, as in procfs).
    pub fn merge_root(&self, host: Vec<DirEntryOwned>, plus: bool) -> Vec<DirEntryOwned> {
        let local = self.local_dir(&self.cfg.local, plus).unwrap_or_default();
        let local: Vec<DirEntryOwned> = local.into_iter().filter(|e| pid_name(&e.name).is_some()).collect();
        let mut out: Vec<DirEntryOwned> = host
            .into_iter()
            .filter(|e| pid_name(&e.name).is_none_or(|n| !self.is_local(n)))
            .map(|mut e| {
                // `self` and `thread-self` are ours, not the HOST's symlinks.
                if e.name == b"self" || e.name == b"thread-self" {
                    let a = ProcMode::self_attr(e.name == b"thread-self");
                    e.ino = a.ino;
                    if e.attr.is_some() {
                        e.attr = Some(a);
                    }
                }
                e
            })
            .collect();
        out.extend(local);
        out
    }

    /// A local symlink's target, shown relative to the reader's root as procfs shows it
    /// (qtfs-fuse's root is not the reader's when the reader is chrooted).
    pub fn local_readlink(&self, p: &Path, reader: u32) -> io::Result<Vec<u8>> {
        let t = std::fs::read_link(p)?.into_os_string().into_vec();
        if reader == 0 {
            return Ok(t);
        }
        let Ok(root) = std::fs::read_link(self.cfg.local.join(reader.to_string()).join("root")) else {
            return Ok(t);
        };
        let root = root.into_os_string().into_vec();
        if root == b"/" || !t.starts_with(b"/") {
            return Ok(t);
        }
        if t == root {
            return Ok(b"/".to_vec());
        }
        if t.starts_with(&root) && t.get(root.len()) == Some(&b'/') {
            return Ok(t[root.len()..].to_vec());
        }
        Ok(t)
    }

    /// Opens a local file for FUSE handle `fh`; returns its attributes. A process's
    /// `mounts`/`mountinfo` holding a qtfs-fuse mount is served with the HOST's cgroup
    /// mounts added ([`crate::cgmounts`]); `host_mountinfo` reads the HOST's table.
    pub fn open(
        &self,
        fh: u64,
        p: &Path,
        flags: i32,
        host_mountinfo: &dyn Fn() -> Option<Vec<u8>>,
    ) -> io::Result<Attr> {
        if let Some(info) = crate::cgmounts::mount_table(p).filter(|_| flags & libc::O_ACCMODE == libc::O_RDONLY) {
            let local = std::fs::read(p)?;
            let md = std::fs::symlink_metadata(p)?;
            let text = match crate::cgmounts::has_qtfs_mount(&local).then(host_mountinfo).flatten() {
                Some(host) => crate::cgmounts::rewrite_mounts(&local, &host, info),
                None => local,
            };
            self.files.write().insert(fh, Arc::new(crate::cgmounts::memfile(&text)?));
            return Ok(attr_of(&md));
        }
        let acc = flags & libc::O_ACCMODE;
        let f = std::fs::OpenOptions::new()
            .read(acc != libc::O_WRONLY)
            .write(acc != libc::O_RDONLY)
            .custom_flags((flags & (libc::O_TRUNC | libc::O_APPEND | libc::O_NONBLOCK)) | libc::O_NOFOLLOW)
            .open(p)?;
        let a = attr_of(&f.metadata()?);
        self.files.write().insert(fh, Arc::new(f));
        Ok(a)
    }

    /// The open local file of handle `fh`, if it is one.
    pub fn file(&self, fh: u64) -> Option<Arc<File>> {
        self.files.read().get(&fh).cloned()
    }

    /// Closes handle `fh` if it is a local file; true if it was.
    pub fn release(&self, fh: u64) -> bool {
        self.files.write().remove(&fh).is_some()
    }

    /// Reads up to `len` bytes at `offset` (short only at the end).
    pub fn read(f: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        let n = f.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(local: &Path, pidmap: &Path) -> ProcMode {
        ProcMode::new(ProcConfig { local: local.to_path_buf(), pidmap: pidmap.to_path_buf() })
    }

    #[test]
    fn names() {
        assert_eq!(pid_name(b"1"), Some(1));
        assert_eq!(pid_name(b"4194304"), Some(4_194_304));
        assert_eq!(pid_name(b"01"), None);
        assert_eq!(pid_name(b"self"), None);
        assert_eq!(pid_name(b""), None);
        assert_eq!(pid_name(b"99999999999"), None);
        assert!(volatile_root_name(b"self") && volatile_root_name(b"42") && !volatile_root_name(b"cpuinfo"));
    }

    #[test]
    fn the_rule() {
        // A fake local /proc with processes 7 and 8 and a pid map where 8 -> 1234 is held
        // by a live rexec and 7 -> 99 is stale.
        let d = tempfile::tempdir().unwrap();
        let local = d.path().join("proc");
        let map = d.path().join("pids");
        for p in ["7", "8"] {
            std::fs::create_dir_all(local.join(p)).unwrap();
        }
        std::fs::create_dir(&map).unwrap();
        std::fs::write(map.join("7"), "99").unwrap();
        std::fs::write(map.join("8"), "1234").unwrap();
        let held = File::open(map.join("8")).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let m = mode(&local, &map);
        assert_eq!(m.route(b"self"), Route::SelfLink(false));
        assert_eq!(m.route(b"thread-self"), Route::SelfLink(true));
        assert_eq!(m.route(b"self/x"), Route::Remote(b"self/x".to_vec()));
        assert_eq!(m.route(b"7/stat"), Route::Local(local.join("7/stat")), "stale map entry ignored");
        assert_eq!(m.route(b"8/task/1235/stat"), Route::Remote(b"1234/task/1235/stat".to_vec()));
        assert_eq!(m.route(b"8"), Route::Remote(b"1234".to_vec()));
        assert_eq!(m.route(b"9/stat"), Route::Remote(b"9/stat".to_vec()), "not local: the HOST's");
        assert_eq!(m.route(b"cpuinfo"), Route::Remote(b"cpuinfo".to_vec()));
        assert_eq!(m.route(b""), Route::Remote(Vec::new()));
        // The rexec goes away. Unlocked explicitly, not by the close alone: a process
        // another test of this binary forks at this moment shares the descriptor (and
        // so the lock) until it execs.
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_UN) }, 0);
        drop(held);
        assert_eq!(m.route(b"8/stat"), Route::Local(local.join("8/stat")), "the rexec is gone");
    }
}
