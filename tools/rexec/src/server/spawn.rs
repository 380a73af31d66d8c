//! REXEC_EXEC on the server: validation of the request (hostile input is normal input),
//! preparation of every descriptor and string *before* fork, and the child's
//! async-signal-safe path from fork to execve.
//!
//! The child: own process group; every signal at its default disposition and an empty
//! mask; every source descriptor first moved above the highest target number, then
//! `dup2`-ed to its target (so no target can clobber a source); the peer's identity taken
//! for good (groups, gid, uid: no capabilities survive) unless the peer is root;
//! everything else closed or close-on-exec; working directory by `fchdir`; optionally
//! held until released; then the exec of the file the whitelist entry resolved to when
//! the whitelist was loaded (argv[0] stays as given). A failure is reported as (stage,
//! errno) through a close-on-exec pipe and the child exits 127 (not found) or 126.
//!
//! The exec: the server opens the binary's directory before fork with
//! `RESOLVE_NO_SYMLINKS` (the resolved path has none: one that appeared since is refused
//! with ELOOP), and the child runs `execveat(dir, name, AT_SYMLINK_NOFOLLOW)`, so no
//! symbolic link swapped in after the whitelist check can change what runs; the process
//! is named after the resolved file (`dash` for a `/bin/sh` that links to it). (Not
//! `execveat(fd, "", AT_EMPTY_PATH)` on the file itself: older kernels name the process
//! after the descriptor number, "7", in ps and pgrep.) A script cannot be run
//! that way (its interpreter would be handed `/dev/fd/N/name`, closed by then; the kernel
//! answers ENOENT), so on ENOENT the child runs the resolved path by name, still without
//! following a final symbolic link.
//!
//! Files named in FD records (and the working directory) are opened before fork by the
//! session's thread with the peer's file system identity (per-thread `setfsuid`,
//! `setfsgid`, `setgroups`: see [`sys::FsIdentity`]), so a peer gets only what it could
//! open itself, and a refusal can still name the file. Only regular files and the
//! character devices of [`crate::SHARED_DEVICES`] (checked by device number before and
//! after opening) are reopened.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use qtfs_proto::consts::{open as wire_open, rexec as k};
use qtfs_proto::{RecordIter, RexecExecReq, RexecFd, Wire};

use super::Ident;
use crate::relay::{Endpoint, IoMode};
use crate::sys::{self, raw};

/// A validated REXEC_EXEC.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub flags: u32,
    pub window: u32,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub fds: Vec<FdSpec>,
}

#[derive(Debug, Clone)]
pub struct FdSpec {
    pub fd: u32,
    pub kind: u32,
    pub stream: u32,
    pub flags: u32,
    pub offset: u64,
    pub path: Vec<u8>,
}

/// Why a request is refused before anything happens: errno for the error frame, text
/// for the log.
#[derive(Debug)]
pub struct Invalid {
    pub errno: i32,
    pub why: String,
}

fn bad(errno: i32, why: impl Into<String>) -> Invalid {
    Invalid { errno, why: why.into() }
}

/// NUL-terminated strings → list (each entry must end with NUL).
fn split_nul(b: &[u8], what: &str) -> Result<Vec<Vec<u8>>, Invalid> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if b.last() != Some(&0) {
        return Err(bad(libc::EBADMSG, format!("{what} does not end with NUL")));
    }
    Ok(b[..b.len() - 1].split(|&c| c == 0).map(<[u8]>::to_vec).collect())
}

impl ExecRequest {
    pub fn parse(payload: &[u8]) -> Result<ExecRequest, Invalid> {
        let req = RexecExecReq::decode(payload).map_err(|e| bad(libc::EBADMSG, e.to_string()))?;
        if req.flags & !k::F_ALL != 0 {
            return Err(bad(libc::EINVAL, format!("unknown flags {:#x}", req.flags)));
        }
        if !(k::MIN_WINDOW..=k::MAX_WINDOW).contains(&req.window) {
            return Err(bad(libc::EINVAL, format!("window {} out of range", req.window)));
        }
        if req.argv.len() + req.env.len() > k::MAX_ARGV_ENV {
            return Err(bad(libc::E2BIG, "argv and environment exceed 1 MiB"));
        }
        let argv = split_nul(req.argv.as_bytes(), "argv")?;
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(bad(libc::EINVAL, "empty argv[0]"));
        }
        let env = split_nul(req.env.as_bytes(), "env")?;
        if let Some(e) = env.iter().find(|e| e.iter().position(|&c| c == b'=').is_none_or(|p| p == 0)) {
            return Err(bad(
                libc::EINVAL,
                format!("environment entry {:?} is not KEY=VALUE", String::from_utf8_lossy(e)),
            ));
        }
        let cwd = req.cwd.as_bytes().to_vec();
        if !cwd.is_empty() && cwd[0] != b'/' {
            return Err(bad(libc::EINVAL, "relative working directory"));
        }
        if req.fd_count as usize > k::MAX_FDS {
            return Err(bad(libc::E2BIG, format!("{} fds (at most {})", req.fd_count, k::MAX_FDS)));
        }
        let mut fds: Vec<FdSpec> = Vec::with_capacity(req.fd_count as usize);
        for r in RecordIter::<RexecFd>::new(req.fds.as_bytes()) {
            let r = r.map_err(|e| bad(libc::EBADMSG, e.to_string()))?;
            if fds.len() == req.fd_count as usize {
                return Err(bad(libc::EBADMSG, "more fd records than fd_count"));
            }
            if r.fd >= k::MAX_FD_NUMBER {
                return Err(bad(libc::EINVAL, format!("fd {} too large", r.fd)));
            }
            if fds.iter().any(|f| f.fd == r.fd) {
                return Err(bad(libc::EINVAL, format!("fd {} given twice", r.fd)));
            }
            match r.kind {
                k::FD_PIPE_IN | k::FD_PIPE_OUT => {
                    if r.stream >= k::CONN_STREAM_BASE || fds.iter().any(|f| f.stream == r.stream && f.is_pipe()) {
                        return Err(bad(libc::EINVAL, format!("bad stream {} for fd {}", r.stream, r.fd)));
                    }
                }
                k::FD_FILE => {
                    if r.path.as_bytes().first() != Some(&b'/') {
                        return Err(bad(libc::EINVAL, format!("fd {}: file path is not absolute", r.fd)));
                    }
                    if wire_open::to_linux(r.flags).is_none() {
                        return Err(bad(libc::EINVAL, format!("fd {}: bad open flags {:#x}", r.fd, r.flags)));
                    }
                }
                k::FD_LISTENER => {
                    if r.flags != libc::SOCK_STREAM as u32 {
                        return Err(bad(libc::EINVAL, format!("fd {}: only stream listeners are relayed", r.fd)));
                    }
                }
                other => return Err(bad(libc::EINVAL, format!("fd {}: unknown kind {other}", r.fd))),
            }
            fds.push(FdSpec {
                fd: r.fd,
                kind: r.kind,
                stream: r.stream,
                flags: r.flags,
                offset: r.offset,
                path: r.path.as_bytes().to_vec(),
            });
        }
        if fds.len() != req.fd_count as usize {
            return Err(bad(libc::EBADMSG, "fewer fd records than fd_count"));
        }
        Ok(ExecRequest { flags: req.flags, window: req.window, argv, env, cwd, fds })
    }

    pub fn binary(&self) -> &[u8] {
        &self.argv[0]
    }
}

impl FdSpec {
    fn is_pipe(&self) -> bool {
        self.kind == k::FD_PIPE_IN || self.kind == k::FD_PIPE_OUT
    }
}

/// The server ends of the relayed pipes, by stream id: (stream, is PIPE_OUT, endpoint).
pub type PipeEnds = Vec<(u32, bool, Endpoint)>;

/// Creates the pipes of every PIPE_IN/PIPE_OUT fd (also when nothing will run: then the
/// child ends are simply dropped and the client sees EOF / a gone reader).
pub fn make_pipes(req: &ExecRequest) -> std::io::Result<(PipeEnds, Vec<(OwnedFd, u32)>)> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for f in req.fds.iter().filter(|f| f.is_pipe()) {
        let (r, w) = sys::pipe()?;
        if f.kind == k::FD_PIPE_OUT {
            // Bigger pipes mean fewer wake-ups when the process streams output.
            sys::set_pipe_size(w.as_raw_fd(), 1 << 20);
            sys::set_nonblock(r.as_raw_fd(), true)?;
            ours.push((f.stream, true, Endpoint::new(r, IoMode::Nonblocking)));
            theirs.push((w, f.fd));
        } else {
            sys::set_nonblock(w.as_raw_fd(), true)?;
            ours.push((f.stream, false, Endpoint::new(w, IoMode::Nonblocking)));
            theirs.push((r, f.fd));
        }
    }
    Ok((ours, theirs))
}

/// Everything the child needs, prepared before fork.
pub struct Plan {
    /// (source, target fd number).
    pub fds: Vec<(OwnedFd, u32)>,
    /// Listening sockets made for LISTENER fds: (fd number, path).
    pub listeners: Vec<(u32, PathBuf)>,
    pub cwd: OwnedFd,
    /// What to execute, or the errno that reports why nothing can be (in the child, so
    /// the status is 127 or 126 as for a failed exec).
    pub exe: Result<Exe, i32>,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub hold: bool,
    /// RLIMIT_NOFILE to restore in the child (the server raised its own).
    pub nofile: (u64, u64),
    /// The identity to take (None: stay rexec_server's).
    pub ident: Option<Ident>,
}

/// The binary to execute: its directory (O_PATH, opened without following any symbolic
/// link), its name there, and its whole path (for scripts).
pub struct Exe {
    pub dir: OwnedFd,
    pub name: CString,
    pub path: CString,
}

impl Exe {
    /// Opens the directory of `resolved` (an absolute path without symbolic links, as
    /// [`super::whitelist::resolve`] returns it).
    pub fn open(resolved: &Path) -> Result<Exe, i32> {
        use std::os::unix::ffi::OsStrExt;
        let (Some(dir), Some(name)) = (resolved.parent(), resolved.file_name()) else {
            return Err(libc::EACCES);
        };
        let dir = sys::open_no_symlinks(&cstr(dir.as_os_str().as_bytes()), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| sys::errno_of(&e))?;
        Ok(Exe { dir, name: cstr(name.as_bytes()), path: cstr(resolved.as_os_str().as_bytes()) })
    }
}

/// A setup failure reported to the client as text on stderr (exit status 126).
pub fn describe(what: &str, e: &std::io::Error) -> String {
    format!("{what}: {}", sys::errstr(e))
}

fn cstr(b: &[u8]) -> CString {
    // Validation guarantees no interior NUL in argv/env (split on NUL) and paths (QTP).
    CString::new(b.to_vec()).unwrap_or_default()
}

/// Whether rexec_server reopens what `st` describes: a regular file, or one of the
/// shared character devices (by device number, whatever the path).
fn reopenable(st: &libc::stat) -> bool {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => true,
        libc::S_IFCHR => crate::shared_device(st.st_rdev).is_some(),
        _ => false,
    }
}

/// Reopens one FD_FILE record (the caller has taken the peer's identity).
fn reopen(f: &FdSpec) -> Result<OwnedFd, String> {
    let flags = wire_open::to_linux(f.flags).unwrap_or(libc::O_RDONLY)
        & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_DIRECTORY);
    let p = cstr(&f.path);
    let shown = String::from_utf8_lossy(&f.path).into_owned();
    let cannot = |e: &std::io::Error| describe(&format!("cannot reopen fd {} ({shown}) on the HOST", f.fd), e);
    let refused = || {
        format!(
            "fd {} ({shown}) is not a regular file or one of /dev/null, /dev/zero, /dev/full, /dev/random, \
             /dev/urandom on the HOST",
            f.fd
        )
    };
    // Checked before opening too: opening some devices acts (a tape rewinds, a watchdog
    // starts).
    if !reopenable(&sys::stat(&p).map_err(|e| cannot(&e))?) {
        return Err(refused());
    }
    // O_NONBLOCK while opening: a FIFO swapped in at that path must not hang the server.
    let fd = sys::open(&p, flags | libc::O_NONBLOCK | libc::O_NOCTTY, 0).map_err(|e| cannot(&e))?;
    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| describe("fstat", &e))?;
    if !reopenable(&st) {
        return Err(refused());
    }
    if flags & libc::O_NONBLOCK == 0 {
        let _ = sys::set_nonblock(fd.as_raw_fd(), false);
    }
    if flags & libc::O_APPEND == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
        sys::seek(fd.as_raw_fd(), f.offset)
            .map_err(|e| describe(&format!("cannot seek fd {} ({shown}) to {}", f.fd, f.offset), &e))?;
    }
    Ok(fd)
}

/// Opens files, makes listeners and opens the binary's directory (`exe`: what the
/// whitelist entry resolved to). `Err(text)` = refuse (126).
pub fn prepare(
    req: &ExecRequest,
    child_pipes: Vec<(OwnedFd, u32)>,
    listen_dir: &Path,
    tag: &str,
    exe: &Result<PathBuf, i32>,
    nofile: (u64, u64),
    ident: Option<Ident>,
) -> Result<Plan, String> {
    let mut fds = child_pipes;
    let mut listeners = Vec::new();
    let cwd_bytes: &[u8] = if req.cwd.is_empty() { b"/" } else { &req.cwd };
    let (cwd, exe) = {
        // The peer's files with the peer's permissions; the guard ends before the
        // listeners are made in rexec_server's own directory. The binary's directory too:
        // a descriptor opened as root would let the peer skip a directory above it that
        // it may not search.
        let _as_peer = match &ident {
            Some(i) => Some(
                sys::FsIdentity::enter(i.uid, i.gid, &i.groups)
                    .map_err(|e| describe(&format!("cannot act as uid {}", i.uid), &e))?,
            ),
            None => None,
        };
        for f in req.fds.iter().filter(|f| f.kind == k::FD_FILE) {
            fds.push((reopen(f)?, f.fd));
        }
        let cwd = sys::open(&cstr(cwd_bytes), libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| {
            describe(
                &format!("cannot use the working directory {} on the HOST", String::from_utf8_lossy(cwd_bytes)),
                &e,
            )
        })?;
        (cwd, exe.as_ref().map_err(|e| *e).and_then(|p| Exe::open(p)))
    };
    for f in req.fds.iter().filter(|f| f.kind == k::FD_LISTENER) {
        let path = listen_dir.join(format!(".rexec-{tag}-{}", f.fd));
        let _ = std::fs::remove_file(&path);
        let l = sys::unix_listen(&path, 128).map_err(|e| {
            describe(&format!("cannot make a listening socket for fd {} at {}", f.fd, path.display()), &e)
        })?;
        listeners.push((f.fd, path));
        fds.push((l, f.fd));
    }
    // fds 0, 1, 2 that the client did not send become /dev/null.
    for n in 0..3u32 {
        if !fds.iter().any(|(_, t)| *t == n) {
            let null = sys::open(c"/dev/null", libc::O_RDWR, 0).map_err(|e| describe("/dev/null", &e))?;
            fds.push((null, n));
        }
    }
    Ok(Plan {
        fds,
        listeners,
        cwd,
        exe,
        argv: req.argv.iter().map(|a| cstr(a)).collect(),
        env: req.env.iter().map(|e| cstr(e)).collect(),
        hold: req.flags & k::F_HOLD != 0,
        nofile,
        ident,
    })
}

/// Failure stages reported by the child.
pub const STAGE_FD: u32 = 1;
pub const STAGE_CWD: u32 = 2;
pub const STAGE_HOLD: u32 = 3;
pub const STAGE_EXEC: u32 = 4;
pub const STAGE_IDENT: u32 = 5;

/// A forked child.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Read end of the error pipe: (stage, errno) on failure, EOF once execve succeeded.
    pub err: OwnedFd,
    /// Write end of the hold pipe (one byte = go; EOF = abort).
    pub hold: Option<OwnedFd>,
}

/// Forks and execs the plan.
pub fn spawn(plan: Plan) -> std::io::Result<Spawned> {
    let (err_r, err_w) = sys::pipe()?;
    let (hold_r, hold_w) = if plan.hold {
        let (r, w) = sys::pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    // Everything the child touches is laid out now: no allocation after fork.
    let srcs: Vec<RawFd> = plan.fds.iter().map(|(f, _)| f.as_raw_fd()).collect();
    let targets: Vec<RawFd> = plan.fds.iter().map(|(_, t)| *t as RawFd).collect();
    let mut moved: Vec<RawFd> = vec![-1; srcs.len()];
    let base = targets.iter().copied().max().unwrap_or(2).max(2) + 1;
    let argv: Vec<*const libc::c_char> =
        plan.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        plan.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let exe = match &plan.exe {
        Ok(e) => Ok((e.dir.as_raw_fd(), e.name.as_ptr(), e.path.as_ptr())),
        Err(errno) => Err(*errno),
    };
    let limit = (plan.nofile.0.max(plan.nofile.1).min(1 << 20)) as RawFd;
    let (err_w_raw, cwd_raw, hold_raw) =
        (err_w.as_raw_fd(), plan.cwd.as_raw_fd(), hold_r.as_ref().map_or(-1, |h| h.as_raw_fd()));
    let nofile = plan.nofile;
    let ident = plan.ident.as_ref().map(|i| (i.uid, i.gid, i.groups.as_slice()));

    // SAFETY: the child runs only the async-signal-safe `raw` functions below, on data
    // prepared above, and always ends in execve or _exit.
    let pid = unsafe { sys::fork()? };
    if pid == 0 {
        child(ChildArgs {
            srcs: &srcs,
            targets: &targets,
            moved: &mut moved,
            base,
            err_w: err_w_raw,
            cwd: cwd_raw,
            hold: hold_raw,
            argv: &argv,
            envp: &envp,
            exe,
            limit,
            nofile,
            ident,
        });
    }
    // The child placed itself in its own group; doing it here too closes the window in
    // which a group kill could miss a child that has not run yet.
    let _ = sys::setpgid(pid, pid);
    let pidfd = sys::pidfd_open(pid)?;
    drop(err_w);
    drop(hold_r);
    drop(plan);
    Ok(Spawned { pid, pidfd, err: err_r, hold: hold_w })
}

struct ChildArgs<'a> {
    srcs: &'a [RawFd],
    targets: &'a [RawFd],
    moved: &'a mut [RawFd],
    base: RawFd,
    err_w: RawFd,
    cwd: RawFd,
    hold: RawFd,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// (directory, name in it, whole path) or the errno to report.
    exe: Result<(RawFd, *const libc::c_char, *const libc::c_char), i32>,
    limit: RawFd,
    nofile: (u64, u64),
    ident: Option<(u32, u32, &'a [u32])>,
}

fn child(a: ChildArgs<'_>) -> ! {
    raw::own_process_group();
    raw::reset_signals();
    let err = raw::dup_above(a.err_w, a.base);
    if err < 0 {
        raw::exit(126);
    }
    let cwd = raw::dup_above(a.cwd, a.base);
    let hold = if a.hold >= 0 { raw::dup_above(a.hold, a.base) } else { -1 };
    let exe_dir = match a.exe {
        Ok((dir, _, _)) => raw::dup_above(dir, a.base),
        Err(_) => -1,
    };
    if cwd < 0 || (a.hold >= 0 && hold < 0) || (a.exe.is_ok() && exe_dir < 0) {
        child_fail(err, STAGE_FD, raw::errno());
    }
    for (i, &s) in a.srcs.iter().enumerate() {
        a.moved[i] = raw::dup_above(s, a.base);
        if a.moved[i] < 0 {
            child_fail(err, STAGE_FD, raw::errno());
        }
    }
    for (i, &t) in a.targets.iter().enumerate() {
        if raw::dup2(a.moved[i], t) < 0 {
            child_fail(err, STAGE_FD, raw::errno());
        }
    }
    // Root no more, for good, before anything is entered or executed.
    if let Some((uid, gid, groups)) = a.ident {
        let e = raw::become_user(uid, gid, groups);
        if e != 0 {
            child_fail(err, STAGE_IDENT, e);
        }
    }
    if raw::fchdir(cwd) < 0 {
        child_fail(err, STAGE_CWD, raw::errno());
    }
    for fd in 0..a.base {
        if !a.targets.contains(&fd) {
            raw::close(fd);
        }
    }
    // Keep only the error pipe, the hold pipe and the binary's directory, at `base`,
    // `base + 1` and `base + 2` (close-on-exec): every other descriptor of the server is
    // closed now, not at execve, so that a held child does not keep other sessions' pipes
    // (or its own hold pipe's write end) open. Each is first copied above `base + 2` so
    // that none can clobber another; an unused slot is closed.
    let keep = [err, hold, exe_dir];
    let mut tmp = [-1; 3];
    for (t, &k) in tmp.iter_mut().zip(&keep) {
        if k >= 0 {
            *t = raw::dup_above(k, a.base + 3);
            if *t < 0 {
                child_fail(err, STAGE_FD, raw::errno());
            }
        }
    }
    // `tmp[0]` is a copy of the error pipe that no dup2 below can replace.
    for (slot, &t) in (a.base..).zip(&tmp) {
        if t < 0 {
            raw::close(slot);
        } else if raw::dup2(t, slot) < 0 {
            child_fail(tmp[0], STAGE_FD, raw::errno());
        } else {
            raw::set_cloexec(slot);
        }
    }
    raw::close_from(a.base + 3, a.limit);
    let (err, hold, exe_dir) = (a.base, if hold >= 0 { a.base + 1 } else { -1 }, a.base + 2);
    if hold >= 0 && raw::read_byte(hold) != Some(1) {
        child_fail(err, STAGE_HOLD, 0);
    }
    raw::set_nofile(a.nofile.0, a.nofile.1);
    let (name, path) = match a.exe {
        Ok((_, name, path)) => (name, path),
        Err(errno) => child_fail(err, STAGE_EXEC, errno),
    };
    // SAFETY: name, path, argv and envp were built before fork from CStrings that the
    // parent keeps alive, and both arrays end with a null pointer; exe_dir is open.
    unsafe { raw::execveat(exe_dir, name, a.argv.as_ptr(), a.envp.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    let mut errno = raw::errno();
    if errno == libc::ENOENT {
        // A script (see the module's documentation), or really gone.
        // SAFETY: as above.
        unsafe { raw::execveat(libc::AT_FDCWD, path, a.argv.as_ptr(), a.envp.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
        errno = raw::errno();
    }
    child_fail(err, STAGE_EXEC, errno)
}

/// Reports (stage, errno) on the error pipe and exits: 127 when the binary was not found,
/// 126 otherwise (as a shell does).
fn child_fail(err: RawFd, stage: u32, errno: i32) -> ! {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&stage.to_le_bytes());
    b[4..].copy_from_slice(&(errno as u32).to_le_bytes());
    raw::write_all(err, &b);
    raw::exit(if stage == STAGE_EXEC && (errno == libc::ENOENT || errno == libc::ENOTDIR) { 127 } else { 126 });
}

/// The text sent on the stderr stream for a child failure.
pub fn failure_text(binary: &[u8], stage: u32, errno: i32) -> String {
    let b = String::from_utf8_lossy(binary);
    let e = sys::errstr(&std::io::Error::from_raw_os_error(errno));
    match stage {
        STAGE_EXEC => format!("rexec_server: cannot execute {b}: {e}\n"),
        STAGE_CWD => format!("rexec_server: cannot enter the working directory for {b}: {e}\n"),
        STAGE_HOLD => format!("rexec_server: start of {b} aborted by the caller (REXEC_HANDSHAKE)\n"),
        STAGE_IDENT => format!("rexec_server: cannot take the caller's identity for {b}: {e}\n"),
        _ => format!("rexec_server: cannot set up the descriptors of {b}: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::{Bytes32, Path as WPath, Rest};

    fn enc(argv: &[u8], env: &[u8], fds: &[u8], count: u32) -> Vec<u8> {
        RexecExecReq {
            flags: 0,
            window: 65536,
            fd_count: count,
            argv: Bytes32(argv),
            env: Bytes32(env),
            cwd: WPath(b"/"),
            fds: Rest(fds),
        }
        .to_vec()
    }

    #[test]
    fn validation() {
        let ok = ExecRequest::parse(&enc(b"/bin/echo\0a b\0\0", b"A=1\0", &[], 0)).unwrap();
        assert_eq!(ok.argv, vec![b"/bin/echo".to_vec(), b"a b".to_vec(), b"".to_vec()]);
        assert_eq!(ok.env, vec![b"A=1".to_vec()]);
        assert!(ExecRequest::parse(&enc(b"/bin/echo", b"", &[], 0)).is_err(), "no NUL");
        assert!(ExecRequest::parse(&enc(b"\0", b"", &[], 0)).is_err(), "empty argv0");
        assert!(ExecRequest::parse(&enc(b"x\0", b"NOEQ\0", &[], 0)).is_err());
        assert!(ExecRequest::parse(&enc(b"x\0", b"=v\0", &[], 0)).is_err());
        assert!(ExecRequest::parse(&enc(b"x\0", b"", &[], 1)).is_err(), "missing record");
        let rec = RexecFd { fd: 5000, kind: k::FD_PIPE_IN, stream: 5, flags: 0, offset: 0, path: WPath(b"") }.to_vec();
        assert!(ExecRequest::parse(&enc(b"x\0", b"", &rec, 1)).is_err(), "fd too large");
        let rec = RexecFd { fd: 5, kind: 9, stream: 5, flags: 0, offset: 0, path: WPath(b"") }.to_vec();
        assert!(ExecRequest::parse(&enc(b"x\0", b"", &rec, 1)).is_err(), "bad kind");
        let rec = RexecFd { fd: 5, kind: k::FD_FILE, stream: 0, flags: 0, offset: 0, path: WPath(b"rel") }.to_vec();
        assert!(ExecRequest::parse(&enc(b"x\0", b"", &rec, 1)).is_err(), "relative file");
        let mut two = RexecFd { fd: 5, kind: k::FD_PIPE_IN, stream: 5, flags: 0, offset: 0, path: WPath(b"") }.to_vec();
        two.extend(RexecFd { fd: 5, kind: k::FD_PIPE_OUT, stream: 6, flags: 0, offset: 0, path: WPath(b"") }.to_vec());
        assert!(ExecRequest::parse(&enc(b"x\0", b"", &two, 2)).is_err(), "duplicate fd");
    }
}
