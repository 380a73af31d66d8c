//! The HOST's cgroups as a DPU program sees them through qtfs-fuse: the process numbers it
//! writes into them.
//!
//! ## Where they are
//!
//! The mount-table lines that show the HOST's cgroup file systems beneath a qtfs-fuse
//! mount are `cgmounts`' (through `-o proc`).
//!
//! ## Process numbers written into `cgroup.procs`, `tasks`, `cgroup.threads`
//!
//! A number written through qtfs-fuse into one of these files of a HOST cgroup file
//! system (the HOST file's `f_type`, asked with STATFS) is a number of the *writer's*
//! namespace, the DPU's. The rule, in this order (`-o pidmap=`, `-o proc_local=` as for
//! `-o proc`):
//!
//! 1. A local process with a live rexec pid-map entry (`pidmap/<n>`, held locked by its
//!    rexec) is its HOST process: the HOST pid is written.
//! 2. A local process that runs the writer's own program (the same executable: a child
//!    the writer forked and that has not exec'd yet, or the writer itself) is held back:
//!    the write succeeds, nothing is written yet, and when that process gets a live
//!    pid-map entry (it became a rexec) its HOST process is moved — the whole process,
//!    all its threads, into the same cgroup (`cgroup.procs` for `cgroup.procs` and v1
//!    `tasks`; each HOST thread for `cgroup.threads`), as the writer meant for a process
//!    that was single-threaded when it was written. This is libvirt's order: it places
//!    the domain's pid (the local process that becomes `rexec`) between fork and exec,
//!    before any HOST process exists. A held-back move is carried out before the next
//!    pid write through this mount and when the pid map changes (inotify), and
//!    forgotten when the local process ends (its start time tells a reused number).
//! 3. A number that is a HOST thread of a mapped process (a live pid-map entry's HOST
//!    pid `h` with `/proc/h/task/<n>` on the HOST, asked through the engine) is written
//!    as it is: the vCPU thread ids libvirt gets from QMP.
//! 4. Anything else is refused with ESRCH: a DPU process that is neither (it cannot be
//!    in a HOST cgroup), 0 (the writer itself), an unrelated HOST process (the DPU moves
//!    only what it started).
//!
//! A local number wins over a HOST thread with the same number only under rules 1 and 2;
//! a local process of neither kind does not hide a HOST thread of a mapped process (a
//! DPU process cannot be moved into a HOST cgroup, so nothing local is acted on).
//! Reads of these files are the HOST's: they list HOST pids and tids, untranslated.
//!
//! Owns the pid rule and the held-back moves.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use qtfs_client::{ClientError, Cred, Result};
use qtfs_proto::consts::open as oflags;

use crate::procfs::{ProcConfig, ProcMode, pid_name};
use crate::remote::{Remote, Retry, Wait};

/// `f_type` of cgroup v1 and v2 file systems.
pub const CGROUP_MAGICS: [u64; 2] = [0x0027_e0eb, 0x6367_7270];

/// The files of a cgroup that take a process or thread number.
pub const PID_FILES: [&[u8]; 3] = [b"cgroup.procs", b"tasks", b"cgroup.threads"];

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Is `path` (export-relative) named like a cgroup file that takes process numbers?
pub fn is_pid_file(path: &[u8]) -> bool {
    PID_FILES.contains(&basename(path))
}

/// Reads a whole HOST file of this mount's export (as root: qtfs-fuse's own request).
pub fn read_host(remote: &Remote, w: &Wait, path: &[u8]) -> Result<Vec<u8>> {
    remote.path_op(w, Retry::Idempotent, |ex| {
        let (h, _) = remote.session.open(ex, path, oflags::RDONLY, 0, &Cred::root())?;
        let mut out = Vec::new();
        let r = loop {
            match remote.session.read(h, out.len() as u64, 1 << 16) {
                Ok(d) if d.is_empty() => break Ok(()),
                Ok(d) => out.extend_from_slice(&d),
                Err(e) => break Err(e),
            }
            if out.len() > 16 << 20 {
                break Err(ClientError::Remote(libc::EFBIG));
            }
        };
        let _ = remote.session.close_handle(h);
        r.map(|_| std::mem::take(&mut out))
    })
}

// ---------------------------------------------------------------------------------------
// Process numbers

/// What to do with a number written into a cgroup pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write this (HOST) number.
    Write(u32),
    /// Hold the move back until the local process becomes a rexec (rule 2).
    Defer,
    /// Refuse with this errno.
    Refuse(i32),
}

/// A held-back move.
#[derive(Debug, Clone)]
struct Pending {
    local: u32,
    /// The local process's start time (field 22 of its stat): a reused number is another.
    start: u64,
    /// The export path of the file written.
    path: Vec<u8>,
}

/// The answer of the intercepted write.
#[derive(Debug, PartialEq, Eq)]
pub enum Intercept {
    /// Not a pid write into a HOST cgroup: write as it is.
    Pass,
    /// Write these bytes instead (report the original length).
    Send(Vec<u8>),
    /// Done without writing (held back): report the original length.
    Done,
    /// Fail with this errno.
    Fail(i32),
}

/// The local start time of process `n` (None: gone).
fn start_time(local: &Path, n: u32) -> Option<u64> {
    let s = std::fs::read(local.join(n.to_string()).join("stat")).ok()?;
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&s[close + 1..]).ok()?;
    // After the comm: state is field 3, starttime field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// (device, inode) of a local process's executable.
fn exe_of(local: &Path, n: u32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(local.join(n.to_string()).join("exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// The pid rule and the held-back moves of one mount.
pub struct PidWrites {
    cfg: ProcConfig,
    pm: ProcMode,
    /// Serialises pid writes and held-back moves (their order matters).
    pending: Mutex<Vec<Pending>>,
    watching: std::sync::Once,
}

impl PidWrites {
    pub fn new(cfg: ProcConfig) -> PidWrites {
        PidWrites {
            pm: ProcMode::new(cfg.clone()),
            cfg,
            pending: Mutex::new(Vec::new()),
            watching: std::sync::Once::new(),
        }
    }

    /// The live pid-map entries: (local pid, HOST pid).
    fn mapped_all(&self) -> Vec<(u32, u32)> {
        let Ok(rd) = std::fs::read_dir(&self.cfg.pidmap) else { return Vec::new() };
        rd.filter_map(|e| pid_name(e.ok()?.file_name().as_bytes()))
            .filter_map(|l| self.pm.mapped(l).map(|h| (l, h)))
            .collect()
    }

    /// The rule of the module comment for number `n` written by local thread `writer`;
    /// `host_thread(h, n)`: is `n` a thread of HOST process `h`?
    pub fn decide(&self, n: u32, writer: u32, host_thread: &dyn Fn(u32, u32) -> bool) -> Decision {
        if n == 0 {
            return Decision::Refuse(libc::ESRCH);
        }
        if self.pm.is_local(n) {
            if let Some(h) = self.pm.mapped(n) {
                return Decision::Write(h);
            }
            if writer != 0 && exe_of(&self.cfg.local, writer).is_some_and(|e| Some(e) == exe_of(&self.cfg.local, n)) {
                return Decision::Defer;
            }
        }
        if self.mapped_all().iter().any(|&(_, h)| host_thread(h, n)) {
            return Decision::Write(n);
        }
        Decision::Refuse(libc::ESRCH)
    }

    /// Handles a write of `data` into the HOST file `path` (export-relative) by local
    /// thread `writer` (module comment). Called for pid-file names only.
    pub fn intercept(
        self: &Arc<Self>,
        remote: &Arc<Remote>,
        w: &Wait,
        path: &[u8],
        writer: u32,
        data: &[u8],
    ) -> Intercept {
        let st = remote.path_op(w, Retry::Idempotent, |ex| remote.session.statfs(ex, path, &Cred::root()));
        match st {
            Ok(s) if CGROUP_MAGICS.contains(&s.fs_type) => {}
            _ => return Intercept::Pass,
        }
        let Some(n) = std::str::from_utf8(data).ok().and_then(|s| s.trim().parse::<u32>().ok()) else {
            // Not one number: the HOST's answer (EINVAL) is the right one.
            return Intercept::Pass;
        };
        let mut pending = self.pending.lock();
        self.apply_ready(remote, w, &mut pending);
        let host_thread = |h: u32, n: u32| host_has_thread(remote, h, n);
        match self.decide(n, writer, &host_thread) {
            Decision::Write(h) => Intercept::Send(h.to_string().into_bytes()),
            Decision::Refuse(e) => Intercept::Fail(e),
            Decision::Defer => {
                let Some(start) = start_time(&self.cfg.local, n) else { return Intercept::Fail(libc::ESRCH) };
                pending.push(Pending { local: n, start, path: path.to_vec() });
                tracing::info!(pid = n, path = %String::from_utf8_lossy(path), "cgroup move held back until the process runs on the HOST");
                drop(pending);
                self.watch(remote.clone());
                Intercept::Done
            }
        }
    }

    /// Carries out the held-back moves whose process now runs on the HOST; forgets those
    /// whose process is gone.
    fn apply_ready(&self, remote: &Remote, w: &Wait, pending: &mut Vec<Pending>) {
        pending.retain(|p| {
            if start_time(&self.cfg.local, p.local) != Some(p.start) {
                tracing::info!(pid = p.local, "held-back cgroup move dropped: the process ended");
                return false;
            }
            let Some(h) = self.pm.mapped(p.local) else { return true };
            if let Err(e) = move_whole(remote, w, &p.path, h) {
                tracing::warn!(pid = p.local, host_pid = h, path = %String::from_utf8_lossy(&p.path), "held-back cgroup move failed: {e}");
            } else {
                tracing::info!(pid = p.local, host_pid = h, path = %String::from_utf8_lossy(&p.path), "held-back cgroup move done");
            }
            false
        });
    }

    /// Starts (once) the thread that applies held-back moves when the pid map changes.
    fn watch(self: &Arc<Self>, remote: Arc<Remote>) {
        let me = self.clone();
        self.watching.call_once(move || {
            let dir = me.cfg.pidmap.clone();
            let r = std::thread::Builder::new()
                .name("qtfs-cgroup-moves".into())
                .spawn(move || me.watch_loop(&remote, &dir));
            if let Err(e) = r {
                tracing::warn!("cannot start the cgroup-move thread: {e}");
            }
        });
    }

    fn watch_loop(&self, remote: &Remote, dir: &Path) {
        let Ok(ino) = Inotify::new(dir) else {
            tracing::warn!(dir = %dir.display(), "cannot watch the pid map: held-back cgroup moves wait for the next pid write");
            return;
        };
        // Entries linked before the watch existed raise no event: look once now (the
        // first held-back move's rexec may already have started).
        self.apply_ready(remote, &remote.wait_for(0), &mut self.pending.lock());
        loop {
            if ino.wait().is_err() {
                return;
            }
            let mut pending = self.pending.lock();
            if !pending.is_empty() {
                self.apply_ready(remote, &remote.wait_for(0), &mut pending);
            }
        }
    }
}

/// Is `n` a thread of HOST process `h`? Asked of the HOST's `/proc` (a MOUNT of it on this
/// mount's session for the question).
pub fn host_has_thread(remote: &Remote, h: u32, n: u32) -> bool {
    with_host_proc(remote, |ex| remote.session.getattr(ex, format!("{h}/task/{n}").as_bytes(), false, &Cred::root()))
        .is_ok()
}

/// The HOST's `/proc` mounted on the session for `f`, unmounted after.
fn with_host_proc<T>(remote: &Remote, f: impl FnOnce(u32) -> Result<T>) -> Result<T> {
    let (ex, _) = remote.session.mount("/proc", &Cred::root())?;
    let r = f(ex);
    let _ = remote.session.umount(ex);
    r
}

/// Writes `data` into the HOST file `path` of this mount's export.
fn write_host(remote: &Remote, w: &Wait, path: &[u8], data: &[u8]) -> Result<()> {
    remote.path_op(w, Retry::Once, |ex| {
        let (h, _) = remote.session.open(ex, path, oflags::WRONLY, 0, &Cred::root())?;
        let r = remote.session.write(h, 0, data);
        let _ = remote.session.close_handle(h);
        r.map(|_| ())
    })
}

/// Moves HOST process `h` with all its threads into the cgroup of pid file `path`.
fn move_whole(remote: &Remote, w: &Wait, path: &[u8], h: u32) -> Result<()> {
    let dir = &path[..path.len() - basename(path).len()];
    if basename(path) != b"cgroup.threads" {
        let mut procs = dir.to_vec();
        procs.extend_from_slice(b"cgroup.procs");
        return write_host(remote, w, &procs, h.to_string().as_bytes());
    }
    let tids = with_host_proc(remote, |ex| {
        remote.session.readdir_all(ex, format!("{h}/task").as_bytes(), false, &Cred::root())
    })?;
    let mut first = Err(ClientError::Remote(libc::ESRCH));
    for t in tids.iter().filter_map(|e| pid_name(&e.name)) {
        // A thread that ended meanwhile is not an error; the first success is the answer.
        let r = write_host(remote, w, path, t.to_string().as_bytes());
        if first.is_err() {
            first = r;
        }
    }
    first
}

/// An inotify watch of a directory's entries being created, written or moved in.
struct Inotify(File);

impl Inotify {
    fn new(dir: &Path) -> io::Result<Inotify> {
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is new and owned by nobody else.
        let f = unsafe { File::from_raw_fd(fd) };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_MODIFY;
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(f.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Inotify(f))
    }

    /// Blocks until at least one event came.
    fn wait(&self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer we own, of its length.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(if n == 0 { io::Error::from_raw_os_error(libc::EIO) } else { e });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_names() {
        assert!(is_pid_file(b"machine/x/cgroup.procs") && is_pid_file(b"cpu/tasks") && is_pid_file(b"cgroup.threads"));
        assert!(!is_pid_file(b"cpu/cpu.shares") && !is_pid_file(b"cgroup.procsx"));
    }
}
