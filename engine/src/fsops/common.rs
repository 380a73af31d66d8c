//! The plumbing every file operation shares: the request as dispatch hands it over ([`Req`]: decoding, inline answers), the answers
//! and counters of asynchronous requests, the caller's identity, and the ring helpers
//! that open, stat or change a name either inline or through the ring ([`resolve`],
//! [`stat_now`], [`mutate`]).
//!
//! A helper that may finish inline returns [`Next`]: the request comes back with the
//! result a ring completion would have brought, and the operation continues with it at
//! once (the re-entry is explicit, never a hidden call of `fsops::complete`).
//!
//! This module imports only `steps`, `path`, `req` and `state` of `fsops`: every
//! operation module builds on it.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use io_uring::{opcode, squeue, types};
use qtfs_proto::consts::{self, errno};
use qtfs_proto::*;

use super::req::FsReq;
use super::state::Ctx;
use super::steps::Step;
use crate::creds::{self, IdPolicy, Ident};
use crate::path::RESOLVE_CACHED;
use crate::session::{OpenFile, Session};
use crate::stats::Done;
use crate::sys;

// ------------------------------------------------------------------ the request frame

/// A request frame as `dispatch` hands it to an operation: the connection, the header,
/// the session it is attached to and the undecoded payload.
pub(super) struct Req<'a> {
    pub key: usize,
    pub h: FrameHeader,
    pub op: Op,
    pub t0: Instant,
    pub session: Arc<Session>,
    pub payload: &'a [u8],
}

impl<'a> Req<'a> {
    /// The payload as `M`; a payload that does not decode is answered EBADMSG (None).
    pub fn decode<M: Wire<'a>>(&self, core: &mut Ctx) -> Option<M> {
        match M::decode(self.payload) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(op = %self.op, "bad request payload: {e}");
                self.reply::<Empty>(core, Err(errno::EBADMSG));
                None
            }
        }
    }

    /// Answers a request that never became asynchronous.
    pub fn reply<'m, M: Wire<'m>>(&self, core: &mut Ctx, r: Result<M, i32>) {
        reply_now(core, self.key, &self.h, self.op, self.t0, r);
    }

    /// Answers an error, never having become asynchronous.
    pub fn reply_err(&self, core: &mut Ctx, e: i32) {
        self.reply::<Empty>(core, Err(e));
    }

    /// Starts the asynchronous request (see [`begin`]).
    pub fn begin(&self, core: &mut Ctx) -> Box<FsReq> {
        begin(core, self.key, &self.h, self.op, &self.session)
    }

    /// Starts the asynchronous request in the export its context names, with the
    /// identity its policy gives ([`with_ctx`]); None when that failed (answered).
    pub fn begin_in(&self, core: &mut Ctx, ctx: &ReqCtx, groups: &Groups<'_>) -> Option<Box<FsReq>> {
        let mut r = self.begin(core);
        match with_ctx(core, &mut r, ctx, groups) {
            Ok(()) => Some(r),
            Err(e) => {
                fail(core, r, e);
                None
            }
        }
    }

    /// [`Req::begin_in`], and the wire path `p` checked ([`crate::path::check`]).
    pub fn begin_at(&self, core: &mut Ctx, ctx: &ReqCtx, groups: &Groups<'_>, p: &[u8]) -> Option<Box<FsReq>> {
        let mut r = self.begin(core);
        match with_ctx(core, &mut r, ctx, groups).and_then(|_| crate::path::check(p).map(|_| ())) {
            Ok(()) => Some(r),
            Err(e) => {
                fail(core, r, e);
                None
            }
        }
    }
}

// ------------------------------------------------------------------ answers

pub(super) fn stats(core: &mut Ctx, req: &FsReq, ok: bool, out: usize) {
    core.r.record(Done {
        op_index: req.op.index() as u16,
        ok,
        bytes_in: req.bytes_in,
        bytes_out: out as u32,
        latency_ns: req.t0.elapsed().as_nanos() as u64,
    });
}

/// With `feat::DIR_ATTR` agreed on the request's connection, notes the attributes of the
/// directory `dir` the request just changed; its answer carries them after the message.
/// Read now, right after the change, by the engine (a statx of an open descriptor needs
/// no permission); a directory that cannot be read is left out.
pub(super) fn note_dir(core: &Ctx, r: &mut FsReq, dir: Option<RawFd>) {
    if let (true, Some(fd)) = (agreed(core, r, consts::feat::DIR_ATTR), dir)
        && let Ok(a) = sys::statx(fd, c"", libc::AT_EMPTY_PATH)
    {
        r.dirs.push(a);
    }
}

/// Whether feature `bit` was agreed on the request's connection.
pub(super) fn agreed(core: &Ctx, r: &FsReq, bit: u64) -> bool {
    core.r.conns.get(r.conn).is_some_and(|c| c.shared.features.load(std::sync::atomic::Ordering::Relaxed) & bit != 0)
}

pub(super) fn finish<'m, M: Wire<'m>>(core: &mut Ctx, req: Box<FsReq>, msg: &M) {
    if !req.dirs.is_empty() {
        // The message, then the changed directories' attributes (feat::DIR_ATTR).
        let mut buf = vec![0u8; HEADER_SIZE];
        msg.encode(&mut buf);
        for &attr in &req.dirs {
            AttrRsp { attr }.encode(&mut buf);
        }
        let n = buf.len() - HEADER_SIZE;
        return respond_built(core, req, buf, n);
    }
    let n = core.r.respond(req.conn, req.op as u16, req.id, msg);
    stats(core, &req, true, n);
    let key = req.conn;
    core.free_req(req);
    core.r.request_done(key);
}

pub(super) fn fail(core: &mut Ctx, req: Box<FsReq>, e: i32) {
    core.r.respond_err(req.conn, req.op as u16, req.id, e);
    stats(core, &req, false, 0);
    let key = req.conn;
    core.free_req(req);
    core.r.request_done(key);
}

pub(super) fn finish_empty(core: &mut Ctx, req: Box<FsReq>) {
    finish(core, req, &Empty {});
}

/// Answers the attributes in `r.stx`.
pub(super) fn finish_attr(core: &mut Ctx, r: Box<FsReq>) {
    let attr = sys::attr_from_statx(&r.stx);
    finish(core, r, &AttrRsp { attr });
}

/// Answers a request that never became asynchronous.
pub(super) fn reply_now<'m, M: Wire<'m>>(
    core: &mut Ctx,
    key: usize,
    h: &FrameHeader,
    op: Op,
    t0: Instant,
    r: Result<M, i32>,
) {
    core.r.answer(key, h, op, t0, r);
}

/// Answers with the `n` payload bytes that follow the header space of `buf` (already
/// `HEADER_SIZE + n` long): a READ's data in the request's own buffer (the ring's and the
/// FIFO path's ending), or a message followed by directory attributes ([`finish`]).
pub(super) fn respond_built(core: &mut Ctx, r: Box<FsReq>, mut buf: Vec<u8>, n: usize) {
    put_header(&mut buf, FrameHeader::response(r.op as u16, r.id, n as u32));
    let key = r.conn;
    stats(core, &r, true, buf.len());
    core.r.respond_owned(key, buf);
    core.free_req(r);
    core.r.request_done(key);
}

/// Writes a response header into the space kept for it at the start of `buf` (every
/// READ buffer starts with `HEADER_SIZE` bytes for it).
pub(super) fn put_header(buf: &mut [u8], h: FrameHeader) {
    if let Some(b) = buf.get_mut(..HEADER_SIZE) {
        h.write_to(b);
    }
}

// ------------------------------------------------------------------ identity

/// The HOST identity of a request context: the claimed ids mapped, squashed and checked
/// by the operator's policy (`creds::IdPolicy`): the export's own (`--export-policy`,
/// `ids`) or else the engine-wide one; EPERM when the policy refuses them.
pub(super) fn ident_of(
    core: &Ctx,
    ids: Option<&Arc<IdPolicy>>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
) -> Result<Ident, i32> {
    ids.map_or(&core.r.shared.cfg.ids, |p| p).ident(ctx.uid, ctx.gid, groups.iter())
}

/// Starts an asynchronous request.
pub(super) fn begin(core: &mut Ctx, key: usize, h: &FrameHeader, op: Op, session: &Arc<Session>) -> Box<FsReq> {
    let mut r = core.new_req();
    r.conn = key;
    r.id = h.id;
    r.op = op;
    r.t0 = Instant::now();
    r.bytes_in = h.len;
    r.session = Some(session.clone());
    r.noted = std::mem::take(&mut core.fs.noting);
    r.personality = core.r.base_personality;
    core.r.request_started(key);
    r
}

/// Sets identity and export from a context.
pub(super) fn with_ctx(core: &mut Ctx, r: &mut FsReq, ctx: &ReqCtx, groups: &Groups<'_>) -> Result<(), i32> {
    // Set by begin(); a request without one has nothing to act in.
    let s = r.session.as_ref().ok_or(errno::EIO)?;
    // The export first: its policy decides the identity.
    let export = s.export(ctx.export).ok_or(errno::ESTALE)?;
    r.ident = ident_of(core, export.ids.as_ref(), ctx, groups)?;
    r.personality = core.r.personality(&r.ident);
    r.export = Some(export);
    Ok(())
}

/// The ring personality for a data operation on a handle: its opener's (`OpenFile::ident`),
/// as the same operation on a local descriptor acts with its caller's credentials. With
/// the engine's own a write by a user would keep setuid/setgid (CAP_FSETID). Never falls
/// back to the credentials the thread happens to hold: EPERM if it cannot be registered.
pub(super) fn opener_personality(core: &mut Ctx, f: &OpenFile) -> Result<Option<u16>, i32> {
    match core.r.personality(&f.ident) {
        None if core.r.base_personality.is_some() => Err(errno::EPERM),
        p => Ok(p),
    }
}

/// A direct system call on a handle, acting as its opener (see [`opener_personality`]).
pub(super) fn as_opener<T>(f: &OpenFile, call: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    creds::with_ident(&f.ident, call)?
}

// ------------------------------------------------------------------ ring helpers

/// How a step that may finish inline ended: `Ring` when the ring took the request (its
/// completion comes back through `fsops::complete` with `step` set), `Now` with the
/// request, the step and the result a ring completion would have brought (a descriptor
/// or 0, else `-errno`), for the caller to continue with at once.
#[must_use]
pub(super) enum Next<S> {
    Ring,
    Now(Box<FsReq>, S, i32),
}

/// The result of a direct call as a ring completion would report it.
fn code_of(res: std::io::Result<std::io::Result<()>>) -> i32 {
    match res {
        Ok(Ok(())) => 0,
        Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
    }
}

/// A descriptor from a direct open as a ring completion would report it.
pub(super) fn fd_code(res: std::io::Result<std::io::Result<OwnedFd>>) -> i32 {
    match res {
        Ok(Ok(fd)) => fd.into_raw_fd(),
        Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
    }
}

/// Opens `path` (relative to `dir`, default the export root) for request `r`, then
/// `step`.
///
/// Lookups that only walk cached dentries are done inline (`RESOLVE_CACHED`): io_uring
/// would do the same walk inline anyway, and the answer then needs no extra loop turn.
/// Anything that may wait (an uncached walk, `O_CREAT`, `O_TRUNC`, opening a FIFO or a
/// device) goes through the ring, whose workers absorb the wait.
#[allow(clippy::too_many_arguments)]
pub(super) fn resolve<S: Into<Step>>(
    core: &mut Ctx,
    r: Box<FsReq>,
    step: S,
    dir: Option<RawFd>,
    path: usize,
    flags: i32,
    mode: u32,
    how: u64,
) -> Next<S> {
    let inline_ok = flags & (libc::O_CREAT | libc::O_TRUNC) == 0 && flags & (libc::O_PATH | libc::O_DIRECTORY) != 0;
    if inline_ok {
        let dirfd = dir.unwrap_or_else(|| r.root());
        let res = creds::with_ident(&r.ident, || sys::openat2(dirfd, r.cstr(path), flags, mode, how | RESOLVE_CACHED));
        match res {
            Ok(Ok(fd)) => return Next::Now(r, step, fd.into_raw_fd()),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            Ok(Err(e)) | Err(e) => return Next::Now(r, step, -sys::errno_of(&e)),
        }
    }
    submit_open(core, r, step.into(), dir, path, flags, mode, how);
    Next::Ring
}

/// Opens through the ring (the kernel's worker absorbs any wait), then `step`.
#[allow(clippy::too_many_arguments)]
pub(super) fn submit_open(
    core: &mut Ctx,
    mut r: Box<FsReq>,
    step: Step,
    dir: Option<RawFd>,
    path: usize,
    flags: i32,
    mode: u32,
    how: u64,
) {
    r.how = types::OpenHow::new().flags((flags | libc::O_CLOEXEC) as u64).mode(mode as u64).resolve(how);
    r.step = step;
    let dirfd = dir.unwrap_or_else(|| r.root());
    let e = opcode::OpenAt2::new(types::Fd(dirfd), r.cptr(path), &r.how).build();
    core.submit_req(e, r);
}

/// statx(dirfd, name or "", flags) into `r.stx`, inline: on an open descriptor (or a
/// name just created, hence cached) it never waits, while io_uring would always hand
/// statx to a worker thread.
pub(super) fn stat_now(r: &mut FsReq, dirfd: RawFd, name: Option<usize>, flags: i32) -> Result<(), i32> {
    let mut stx = r.stx;
    let res = {
        let p = match name {
            Some(i) => r.cstr(i),
            None => c"",
        };
        creds::with_ident(&r.ident, || sys::statx_raw(dirfd, p, flags | libc::AT_STATX_SYNC_AS_STAT, &mut stx))
    };
    r.stx = stx;
    match code_of(res) {
        0 => Ok(()),
        e => Err(-e),
    }
}

/// [`stat_now`], then the attributes answered (or the error).
pub(super) fn stat_reply(core: &mut Ctx, mut r: Box<FsReq>, dirfd: RawFd, name: Option<usize>, flags: i32) {
    match stat_now(&mut r, dirfd, name, flags) {
        Ok(()) => finish_attr(core, r),
        Err(e) => fail(core, r, e),
    }
}

/// Runs a name operation (mkdir, unlink, rename …) inside `dirfd`, then `step`: inline
/// on a memory file system, where it cannot wait for I/O (io_uring would hand it to a
/// worker), on the ring otherwise.
pub(super) fn mutate<S: Into<Step>>(
    core: &mut Ctx,
    mut r: Box<FsReq>,
    step: S,
    dirfd: RawFd,
    e: squeue::Entry,
    now: impl FnOnce(&FsReq) -> std::io::Result<()>,
) -> Next<S> {
    if sys::is_memory_fs(dirfd) {
        let res = creds::with_ident(&r.ident, || now(&r));
        return Next::Now(r, step, code_of(res));
    }
    r.step = step.into();
    core.submit_req(e, r);
    Next::Ring
}

/// The descriptor a completion (or an inline open) produced, owned; or its errno.
pub(super) fn res_fd(res: i32) -> Result<OwnedFd, i32> {
    if res < 0 {
        Err(-res)
    } else {
        // SAFETY: a successful open returned a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(res) })
    }
}

/// `/proc/self/fd/N` from `sys::proc_fd_path` as a C string: it is always NUL-terminated
/// (at most 25 of its 32 bytes are used); "" would make the call fail, not the core.
pub(super) fn proc_cstr(p: &[u8]) -> &CStr {
    CStr::from_bytes_until_nul(p).unwrap_or(c"")
}
