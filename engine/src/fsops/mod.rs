//! File operations: one handler per QTP request, each a small state machine of ring
//! operations and (where the kernel has no ring opcode) direct system calls.
//!
//! Safety of paths: every path is resolved by the kernel beneath the export root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`. Operations on a name first
//! resolve its parent that way and then act on the single final component relative to
//! that descriptor; operations on an object resolve it (`O_PATH`, not following a final
//! symlink where the operation should not) and then act on exactly that inode through
//! `/proc/self/fd/N`. `..`, absolute symlinks and symlinks leading outside therefore
//! never leave the export. Whitelists are checked against the *real* path of the
//! resolved descriptor, so a symlink cannot smuggle a request into an excluded tree.
//! Operations on a handle check the same group as their path form, on the real path of
//! the open file. A new place for an existing object (LINK, a bind mount) may not be
//! allowed anything its existing path is not ([`whitelist::Whitelist::gained`]).
//!
//! Device nodes are never opened unless the operator named them ([`devices`]: `nodev`
//! semantics, checked on the `O_PATH` descriptor before the reopen); SYSMOUNT and
//! SYSUMOUNT are bounded by [`mounts`].
//!
//! Identity: ring operations carry the caller's io_uring personality; direct system
//! calls run under `creds::with_ident`. The ids come from the request, translated by the
//! policy of the export it names (`--export-policy`, else the engine-wide one). Requests
//! on a handle that carry no ids (READ, WRITE, FSYNC, FALLOCATE, LLSEEK, IOCTL) run as
//! the handle's opener, as a local descriptor acts with its caller's credentials: with
//! the engine's own, a user's write would keep a file's setuid bit (CAP_FSETID).
//!
//! This module interprets file requests; it must not touch sockets or framing beyond
//! the `Core` response API.

// Requests are bytes from untrusted peers: a slip must fail the request or close the
// connection, never panic the core. Submodules inherit this.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod devices;
mod fifo;
mod locks;
pub mod mounts;
pub mod path;
pub(crate) mod waiter;
pub mod whitelist;

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use io_uring::{opcode, squeue, types};
use qtfs_proto::consts::{self, WlType, errno, ioc, setattr};
use qtfs_proto::wire::Fixed;
use qtfs_proto::*;

use crate::creds::{self, IdPolicy, Ident};
use crate::ring::{Core, UD_IGNORE};
use crate::session::{Export, IoMode, OpenFile, Session};
use crate::stats::Done;
use crate::sys;

const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_CACHED: u64 = 0x20;
const SAFE: u64 = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

/// An in-flight request. Boxed and pooled: the kernel holds pointers into it (paths,
/// `open_how`, `statx`, buffers) until the completion arrives.
pub(crate) struct FsReq {
    conn: usize,
    id: u64,
    op: Op,
    t0: Instant,
    bytes_in: u32,
    ident: Ident,
    pub personality: Option<u16>,
    session: Option<Arc<Session>>,
    export: Option<Arc<Export>>,
    step: u8,
    /// NUL-terminated strings handed to the kernel; `so` are their offsets.
    s: Vec<u8>,
    so: [usize; 4],
    ns: usize,
    how: types::OpenHow,
    stx: libc::statx,
    ts: types::Timespec,
    dirfd: Option<OwnedFd>,
    dirfd2: Option<OwnedFd>,
    fd: Option<OwnedFd>,
    file: Option<Arc<OpenFile>>,
    handle: u64,
    buf: Vec<u8>,
    /// Op-specific scalars (flags, modes, offsets…).
    u: [u64; 8],
}

impl Default for FsReq {
    fn default() -> Self {
        FsReq {
            conn: 0,
            id: 0,
            op: Op::PING,
            t0: Instant::now(),
            bytes_in: 0,
            ident: Ident::default(),
            personality: None,
            session: None,
            export: None,
            step: 0,
            s: Vec::with_capacity(2 * 4096 + 600),
            so: [0; 4],
            ns: 0,
            how: types::OpenHow::new(),
            // SAFETY: statx is plain data; all-zero is a valid value.
            stx: unsafe { std::mem::zeroed() },
            ts: types::Timespec::new(),
            dirfd: None,
            dirfd2: None,
            fd: None,
            file: None,
            handle: 0,
            buf: Vec::new(),
            u: [0; 8],
        }
    }
}

impl FsReq {
    /// The connection (slab key) the request answers on: the ring cancels a closing
    /// connection's requests by it.
    pub(crate) fn conn(&self) -> usize {
        self.conn
    }

    /// Descriptors the request still holds (closed by the caller through the ring).
    pub(crate) fn take_fds(&mut self) -> impl Iterator<Item = OwnedFd> + use<> {
        [self.dirfd.take(), self.dirfd2.take(), self.fd.take()].into_iter().flatten()
    }

    pub(crate) fn reset(&mut self, bufs: &mut crate::ring::buf::BufPool) {
        self.session = None;
        self.export = None;
        self.dirfd = None;
        self.dirfd2 = None;
        self.fd = None;
        self.file = None;
        self.s.clear();
        self.ns = 0;
        self.step = 0;
        self.handle = 0;
        self.u = [0; 8];
        let b = std::mem::take(&mut self.buf);
        if b.capacity() > 0 {
            bufs.put(b);
        }
    }

    /// Appends a string (NUL added); returns its index. Handlers push at most
    /// `so.len()` strings each (a fixed number per operation, never input-driven); a
    /// further one would replace the last rather than overflow.
    fn push_str(&mut self, b: &[u8]) -> usize {
        debug_assert!(self.ns < self.so.len());
        let i = self.ns.min(self.so.len() - 1);
        if let Some(o) = self.so.get_mut(i) {
            // Reserved at creation; never reallocates for wire-bounded strings.
            *o = self.s.len();
        }
        self.s.extend_from_slice(b);
        self.s.push(0);
        self.ns = i + 1;
        i
    }

    /// String `i` and everything after it (from its first byte).
    fn str_tail(&self, i: usize) -> &[u8] {
        self.so.get(i).and_then(|&start| self.s.get(start..)).unwrap_or_default()
    }

    fn str_bytes(&self, i: usize) -> &[u8] {
        let tail = self.str_tail(i);
        let end = tail.iter().position(|&c| c == 0).unwrap_or(0);
        tail.get(..end).unwrap_or_default()
    }

    /// String `i` for the kernel. Every pushed string ends with a NUL; an index never
    /// pushed gives "", which the kernel refuses (ENOENT) instead of the core panicking.
    fn cstr(&self, i: usize) -> &CStr {
        CStr::from_bytes_until_nul(self.str_tail(i)).unwrap_or(c"")
    }

    fn cptr(&self, i: usize) -> *const libc::c_char {
        self.cstr(i).as_ptr()
    }

    fn root(&self) -> RawFd {
        self.export.as_ref().map_or(-1, |e| e.root.as_raw_fd())
    }
}

/// A readiness registration (EPOLL_CTL ADD) in flight as a multishot poll.
pub(crate) struct EpollReg {
    conn: usize,
    handle: u64,
    cookie: u64,
    _file: Arc<OpenFile>,
}

// ------------------------------------------------------------------ responses

fn stats(core: &mut Core, req: &FsReq, ok: bool, out: usize) {
    core.record(Done {
        op_index: req.op.index() as u16,
        ok,
        bytes_in: req.bytes_in,
        bytes_out: out as u32,
        latency_ns: req.t0.elapsed().as_nanos() as u64,
    });
}

fn finish<'m, M: Wire<'m>>(core: &mut Core, req: Box<FsReq>, msg: &M) {
    let n = core.respond(req.conn, req.op as u16, req.id, msg);
    stats(core, &req, true, n);
    let key = req.conn;
    core.free_req(req);
    core.request_done(key);
}

fn fail(core: &mut Core, req: Box<FsReq>, e: i32) {
    core.respond_err(req.conn, req.op as u16, req.id, e);
    stats(core, &req, false, 0);
    let key = req.conn;
    core.free_req(req);
    core.request_done(key);
}

fn finish_empty(core: &mut Core, req: Box<FsReq>) {
    finish(core, req, &Empty {});
}

/// Answers a request that never became asynchronous.
fn reply_now<'m, M: Wire<'m>>(core: &mut Core, key: usize, h: &FrameHeader, op: Op, t0: Instant, r: Result<M, i32>) {
    let (ok, n) = match r {
        Ok(m) => (true, core.respond(key, h.op, h.id, &m)),
        Err(e) => {
            core.respond_err(key, h.op, h.id, e);
            (false, 0)
        }
    };
    core.record(Done {
        op_index: op.index() as u16,
        ok,
        bytes_in: h.len,
        bytes_out: n as u32,
        latency_ns: t0.elapsed().as_nanos() as u64,
    });
}

// ------------------------------------------------------------------ dispatch

/// The HOST identity of a request context: the claimed ids mapped, squashed and checked
/// by the operator's policy (`creds::IdPolicy`): the export's own (`--export-policy`,
/// `ids`) or else the engine-wide one; EPERM when the policy refuses them.
fn ident_of(core: &Core, ids: Option<&Arc<IdPolicy>>, ctx: &ReqCtx, groups: &Groups<'_>) -> Result<Ident, i32> {
    ids.map_or(&core.shared.cfg.ids, |p| p).ident(ctx.uid, ctx.gid, groups.iter())
}

/// Starts an asynchronous request.
fn begin(core: &mut Core, key: usize, h: &FrameHeader, op: Op, session: &Arc<Session>) -> Box<FsReq> {
    let mut r = core.new_req();
    r.conn = key;
    r.id = h.id;
    r.op = op;
    r.t0 = Instant::now();
    r.bytes_in = h.len;
    r.session = Some(session.clone());
    r.personality = core.base_personality;
    core.request_started(key);
    r
}

/// Sets identity and export from a context.
fn with_ctx(core: &mut Core, r: &mut FsReq, ctx: &ReqCtx, groups: &Groups<'_>) -> Result<(), i32> {
    // Set by begin(); a request without one has nothing to act in.
    let s = r.session.as_ref().ok_or(errno::EIO)?;
    // The export first: its policy decides the identity.
    let export = s.export(ctx.export).ok_or(errno::ESTALE)?;
    r.ident = ident_of(core, export.ids.as_ref(), ctx, groups)?;
    r.personality = core.personality(&r.ident);
    r.export = Some(export);
    Ok(())
}

/// The ring personality for a data operation on a handle: its opener's (`OpenFile::ident`),
/// as the same operation on a local descriptor acts with its caller's credentials. With
/// the engine's own a write by a user would keep setuid/setgid (CAP_FSETID). Never falls
/// back to the credentials the thread happens to hold: EPERM if it cannot be registered.
fn opener_personality(core: &mut Core, f: &OpenFile) -> Result<Option<u16>, i32> {
    match core.personality(&f.ident) {
        None if core.base_personality.is_some() => Err(errno::EPERM),
        p => Ok(p),
    }
}

/// A direct system call on a handle, acting as its opener (see [`opener_personality`]).
fn as_opener<T>(f: &OpenFile, call: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    creds::with_ident(&f.ident, call)?
}

macro_rules! decode_or_reply {
    ($core:expr, $key:expr, $h:expr, $op:expr, $t0:expr, $ty:ty, $payload:expr) => {
        match <$ty>::decode($payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(op = %$op, "bad request payload: {e}");
                reply_now::<Empty>($core, $key, &$h, $op, $t0, Err(errno::EBADMSG));
                return;
            }
        }
    };
}

pub(crate) fn dispatch(core: &mut Core, key: usize, h: FrameHeader, op: Op, payload: &[u8]) {
    let t0 = Instant::now();
    let Some(session) = core.conns.get(key).and_then(|c| c.session.clone()) else {
        reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EPROTO));
        return;
    };
    match op {
        Op::MOUNT => {
            let m = decode_or_reply!(core, key, h, op, t0, MountReq, payload);
            let r = do_mount(core, &session, &m);
            // A client that handles INVAL hears about changes in the export from now on.
            if let (Ok(rsp), Some(n)) = (&r, &core.shared.notify)
                && core.conns.get(key).is_some_and(|c| {
                    c.shared.features.load(std::sync::atomic::Ordering::Relaxed) & consts::feat::INVAL != 0
                })
            {
                n.watch(&session, rsp.export);
            }
            reply_now(core, key, &h, op, t0, r);
        }
        Op::UMOUNT => {
            let m = decode_or_reply!(core, key, h, op, t0, UmountReq, payload);
            let r = if session.remove_export(m.export) { Ok(Empty {}) } else { Err(errno::ESTALE) };
            reply_now(core, key, &h, op, t0, r);
        }
        Op::CLOSE => {
            let m = decode_or_reply!(core, key, h, op, t0, HandleReq, payload);
            let f = session.handles.write().remove(m.handle);
            let found = f.is_some();
            if found {
                locks::handle_closed(core, &session, m.handle);
            }
            // The last reference closes through the ring (with the next submit); a file
            // still used by an in-flight request closes when that request drops it.
            if let Some(fd) = f.and_then(Arc::into_inner).map(|f| f.fd) {
                core.push(opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(UD_IGNORE));
            }
            reply_now(core, key, &h, op, t0, if found { Ok(Empty {}) } else { Err(errno::EBADF) });
        }
        Op::LOOKUP | Op::RMDIR | Op::UNLINK | Op::READLINK | Op::STATFS => {
            let m = decode_or_reply!(core, key, h, op, t0, PathReq, payload);
            start_path_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, 0);
        }
        Op::GETATTR => {
            let m = decode_or_reply!(core, key, h, op, t0, GetattrReq, payload);
            start_path_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, m.flags as u64);
        }
        Op::FGETATTR => {
            let m = decode_or_reply!(core, key, h, op, t0, HandleReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            let mut r = begin(core, key, &h, op, &session);
            let fd = f.raw();
            r.file = Some(f);
            r.step = 1;
            stat_now(core, r, fd, None, libc::AT_EMPTY_PATH);
        }
        Op::OPEN => {
            let m = decode_or_reply!(core, key, h, op, t0, OpenReq, payload);
            start_open(core, key, &h, &session, &m.ctx, &m.groups, m.path.0, m.flags, m.mode, 0, false);
        }
        Op::CREATE => {
            let m = decode_or_reply!(core, key, h, op, t0, CreateReq, payload);
            let noopen = m.cflags & consts::CREATE_NOOPEN != 0;
            start_open(
                core,
                key,
                &h,
                &session,
                &m.ctx,
                &m.groups,
                m.path.0,
                m.flags | consts::open::CREAT,
                m.mode,
                m.umask,
                noopen,
            );
        }
        Op::READ => {
            let m = decode_or_reply!(core, key, h, op, t0, ReadReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            if let Err(e) = wl_handle(core, &session, &f, WlType::Read) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            let len = (m.len as usize).min(MAX_IO);
            if f.io == IoMode::Fifo {
                return fifo::read(core, key, &h, &session, f, len);
            }
            let mut buf = core.bufs.get(HEADER_SIZE + len);
            if f.io != IoMode::Ring {
                // Inline when the read cannot wait: memory-backed, or cached data.
                buf.resize(HEADER_SIZE + len, 0);
                let res = as_opener(&f, || {
                    // Resized above: the data space is exactly `len` bytes.
                    let data = buf.get_mut(HEADER_SIZE..).unwrap_or_default();
                    if f.io == IoMode::Memory {
                        sys::pread(f.raw(), data, m.offset)
                    } else {
                        sys::pread_nowait(f.raw(), data, m.offset)
                    }
                });
                match res {
                    Ok(n) => {
                        buf.truncate(HEADER_SIZE + n);
                        put_header(&mut buf, FrameHeader::response(h.op, h.id, n as u32));
                        let out = buf.len();
                        core.respond_owned(key, buf);
                        core.record(Done {
                            op_index: op.index() as u16,
                            ok: true,
                            bytes_in: h.len,
                            bytes_out: out as u32,
                            latency_ns: t0.elapsed().as_nanos() as u64,
                        });
                        return;
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP)) => {
                        buf.clear();
                    }
                    Err(e) => {
                        core.bufs.put(buf);
                        return reply_now::<Empty>(core, key, &h, op, t0, Err(sys::errno_of(&e)));
                    }
                }
            }
            let personality = match opener_personality(core, &f) {
                Ok(p) => p,
                Err(e) => {
                    core.bufs.put(buf);
                    return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
                }
            };
            let mut r = begin(core, key, &h, op, &session);
            r.personality = personality;
            buf.resize(HEADER_SIZE, 0);
            // SAFETY: the ring writes at most `len` bytes into the spare capacity, and
            // set_len is applied only after the completion reports how many.
            let ptr = unsafe { buf.as_mut_ptr().add(HEADER_SIZE) };
            r.buf = buf;
            let e = opcode::Read::new(types::Fd(f.raw()), ptr, len as u32).offset(m.offset).build();
            r.file = Some(f);
            core.submit_req(e, r);
        }
        Op::WRITE => {
            let m = decode_or_reply!(core, key, h, op, t0, WriteReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            if let Err(e) = wl_handle(core, &session, &f, WlType::Write) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            if m.data.len() > MAX_IO {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EINVAL));
            }
            if f.io == IoMode::Fifo {
                return fifo::write(core, key, &h, &session, f, m.data.0);
            }
            let off = if f.is_append() { u64::MAX } else { m.offset };
            if let Err(e) = space_ok(core, f.raw(), growth(core, f.raw(), off, m.data.len() as u64)) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            if f.io == IoMode::Memory {
                // A memory-backed write never waits for I/O: do it inline.
                let r = as_opener(&f, || sys::pwrite(f.raw(), m.data.0, off))
                    .map(|n| WriteRsp { written: n as u32 })
                    .map_err(|e| sys::errno_of(&e));
                return reply_now(core, key, &h, op, t0, r);
            }
            let personality = match opener_personality(core, &f) {
                Ok(p) => p,
                Err(e) => return reply_now::<Empty>(core, key, &h, op, t0, Err(e)),
            };
            let mut r = begin(core, key, &h, op, &session);
            r.personality = personality;
            let mut buf = core.bufs.get(m.data.len());
            buf.extend_from_slice(m.data.0);
            let e = opcode::Write::new(types::Fd(f.raw()), buf.as_ptr(), buf.len() as u32).offset(off).build();
            r.buf = buf;
            r.file = Some(f);
            core.submit_req(e, r);
        }
        Op::FSYNC => {
            let m = decode_or_reply!(core, key, h, op, t0, FsyncReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            let personality = match opener_personality(core, &f) {
                Ok(p) => p,
                Err(e) => return reply_now::<Empty>(core, key, &h, op, t0, Err(e)),
            };
            let mut r = begin(core, key, &h, op, &session);
            r.personality = personality;
            let mut e = opcode::Fsync::new(types::Fd(f.raw()));
            if m.flags & consts::FSYNC_DATASYNC != 0 {
                e = e.flags(types::FsyncFlags::DATASYNC);
            }
            r.file = Some(f);
            core.submit_req(e.build(), r);
        }
        Op::FALLOCATE => {
            let m = decode_or_reply!(core, key, h, op, t0, FallocateReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            if let Err(e) = wl_handle(core, &session, &f, WlType::Write) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            // Every mode but punching a hole or collapsing a range may allocate.
            let frees = m.mode as i32 & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_COLLAPSE_RANGE) != 0;
            if !frees && let Err(e) = space_ok(core, f.raw(), m.len.max(1)) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            let personality = match opener_personality(core, &f) {
                Ok(p) => p,
                Err(e) => return reply_now::<Empty>(core, key, &h, op, t0, Err(e)),
            };
            let mut r = begin(core, key, &h, op, &session);
            r.personality = personality;
            let e = opcode::Fallocate::new(types::Fd(f.raw()), m.len).offset(m.offset).mode(m.mode as i32).build();
            r.file = Some(f);
            core.submit_req(e, r);
        }
        Op::LLSEEK => {
            let m = decode_or_reply!(core, key, h, op, t0, LlseekReq, payload);
            let r = match session.file(m.handle) {
                None => Err(errno::EBADF),
                Some(_) if m.whence > 4 => Err(errno::EINVAL),
                Some(f) => as_opener(&f, || sys::lseek(f.raw(), m.offset, m.whence as i32))
                    .map(|offset| LlseekRsp { offset })
                    .map_err(|e| sys::errno_of(&e)),
            };
            reply_now(core, key, &h, op, t0, r);
        }
        Op::SETATTR => {
            let m = decode_or_reply!(core, key, h, op, t0, SetattrReq, payload);
            start_setattr(core, key, &h, &session, &m);
        }
        Op::READDIR => {
            let m = decode_or_reply!(core, key, h, op, t0, ReaddirReq, payload);
            let mut r = begin(core, key, &h, op, &session);
            r.u = [m.cookie, m.max_bytes as u64, m.flags as u64, 0, 0, 0, 0, 0];
            if let Err(e) = with_ctx(core, &mut r, &m.ctx, &m.groups).and_then(|_| path::check(m.path.0).map(|_| ())) {
                return fail(core, r, e);
            }
            let p = if m.path.is_empty() { &b"."[..] } else { m.path.0 };
            r.step = 1;
            let i = r.push_str(p);
            resolve(core, r, None, i, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK, 0, SAFE);
        }
        Op::MKDIR => {
            let m = decode_or_reply!(core, key, h, op, t0, MkdirReq, payload);
            let mode = m.mode & !m.umask & 0o7777;
            start_parent_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, None, [mode as u64, 0]);
        }
        Op::MKNOD => {
            let m = decode_or_reply!(core, key, h, op, t0, MknodReq, payload);
            if let Err(e) = devices::mknod_allowed(m.mode, core.shared.cfg.allow_mknod_devices) {
                tracing::info!(
                    mode = format_args!("{:o}", m.mode),
                    "MKNOD refused: device nodes need --allow-mknod-devices"
                );
                return reply_now::<Empty>(core, key, &h, op, t0, Err(e));
            }
            let mode = (m.mode & libc::S_IFMT) | (m.mode & !m.umask & 0o7777);
            let dev = libc::makedev(m.rdev_major, m.rdev_minor);
            start_parent_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, None, [mode as u64, dev]);
        }
        Op::SYMLINK => {
            let m = decode_or_reply!(core, key, h, op, t0, SymlinkReq, payload);
            if m.target.is_empty() {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::ENOENT));
            }
            start_parent_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, Some(m.target.0), [0, 0]);
        }
        Op::LINK => {
            let m = decode_or_reply!(core, key, h, op, t0, LinkReq, payload);
            start_two_path_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.old_path.0, m.new_path.0, 0);
        }
        Op::RENAME => {
            let m = decode_or_reply!(core, key, h, op, t0, RenameReq, payload);
            let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
            if m.flags & !known != 0 {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EINVAL));
            }
            start_two_path_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.old_path.0, m.new_path.0, m.flags);
        }
        Op::XATTR_LIST => {
            let m = decode_or_reply!(core, key, h, op, t0, XattrListReq, payload);
            start_object_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, &[], &[], [m.size as u64, 0]);
        }
        Op::XATTR_GET => {
            let m = decode_or_reply!(core, key, h, op, t0, XattrGetReq, payload);
            start_object_op(
                core,
                key,
                &h,
                op,
                &session,
                &m.ctx,
                &m.groups,
                m.path.0,
                m.name.0,
                &[],
                [m.size as u64, 0],
            );
        }
        Op::XATTR_SET => {
            let m = decode_or_reply!(core, key, h, op, t0, XattrSetReq, payload);
            start_object_op(
                core,
                key,
                &h,
                op,
                &session,
                &m.ctx,
                &m.groups,
                m.path.0,
                m.name.0,
                m.value.0,
                [m.flags as u64, 0],
            );
        }
        Op::XATTR_REMOVE => {
            let m = decode_or_reply!(core, key, h, op, t0, XattrRemoveReq, payload);
            start_object_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.path.0, m.name.0, &[], [0, 0]);
        }
        Op::SYSMOUNT => {
            let m = decode_or_reply!(core, key, h, op, t0, SysmountReq, payload);
            start_sysmount(core, key, &h, &session, &m);
        }
        Op::SYSUMOUNT => {
            let m = decode_or_reply!(core, key, h, op, t0, SysumountReq, payload);
            if !core.shared.cfg.allow_sysmount {
                tracing::info!("SYSUMOUNT refused: the engine runs without --allow-sysmount");
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EPERM));
            }
            let ids = session.export(m.ctx.export).and_then(|e| e.ids.clone());
            let ident = ident_of(core, ids.as_ref(), &m.ctx, &m.groups);
            if !ident.as_ref().is_ok_and(Ident::is_root) {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EPERM));
            }
            start_object_op(core, key, &h, op, &session, &m.ctx, &m.groups, m.target.0, &[], &[], [m.flags as u64, 0]);
        }
        Op::FIFO_POLL => {
            let m = decode_or_reply!(core, key, h, op, t0, PollReq, payload);
            let Some(f) = session.file(m.handle) else {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EBADF));
            };
            let mut r = begin(core, key, &h, op, &session);
            r.ts = types::Timespec::new().sec((m.timeout_ms / 1000) as u64).nsec((m.timeout_ms % 1000) * 1_000_000);
            let poll = opcode::PollAdd::new(types::Fd(f.raw()), m.events).build().flags(squeue::Flags::IO_LINK);
            let ts: *const types::Timespec = &r.ts;
            r.file = Some(f);
            core.submit_req(poll, r);
            core.push(opcode::LinkTimeout::new(ts).build().user_data(UD_IGNORE));
        }
        Op::LOCK_GET => {
            let m = decode_or_reply!(core, key, h, op, t0, LockReq, payload);
            locks::lock_get(core, key, &h, &session, &m);
        }
        Op::LOCK_SET => {
            let m = decode_or_reply!(core, key, h, op, t0, LockReq, payload);
            locks::lock_set(core, key, &h, &session, &m);
        }
        Op::CANCEL => {
            let m = decode_or_reply!(core, key, h, op, t0, CancelReq, payload);
            locks::cancel(core, key, &h, &m);
        }
        Op::EPOLL_CTL => {
            let m = decode_or_reply!(core, key, h, op, t0, EpollCtlReq, payload);
            let r = epoll_ctl(core, key, &session, &m);
            reply_now(core, key, &h, op, t0, r);
        }
        Op::IOCTL => {
            let m = decode_or_reply!(core, key, h, op, t0, IoctlReq, payload);
            let r = match session.file(m.handle) {
                // The setters change attributes (chattr): [Setattr], as SETATTR.
                Some(f) if matches!(m.cmd, ioc::FS_SETFLAGS | ioc::FS_FSSETXATTR) => {
                    wl_handle(core, &session, &f, WlType::Setattr).and_then(|_| ioctl_as_opener(&f, m.cmd, m.arg.0))
                }
                Some(f) => ioctl_as_opener(&f, m.cmd, m.arg.0),
                None => Err(errno::EBADF),
            };
            match r {
                Ok(out) => reply_now(core, key, &h, op, t0, Ok(Data { data: Rest(&out) })),
                Err(e) => reply_now::<Empty>(core, key, &h, op, t0, Err(e)),
            }
        }
        Op::KILL => {
            let m = decode_or_reply!(core, key, h, op, t0, KillReq, payload);
            let r = with_checked_pid(core, m.pid, |pidfd| sys::pidfd_send_signal(pidfd.as_fd(), m.signal))
                .map(|_| Empty {});
            reply_now(core, key, &h, op, t0, r);
        }
        Op::SCHED_GETAFFINITY => {
            let m = decode_or_reply!(core, key, h, op, t0, AffinityGetReq, payload);
            match with_checked_pid(core, m.pid, |_| sys::sched_getaffinity(m.pid)) {
                Ok(mask) => reply_now(core, key, &h, op, t0, Ok(Data { data: Rest(&mask) })),
                Err(e) => reply_now::<Empty>(core, key, &h, op, t0, Err(e)),
            }
        }
        Op::SCHED_SETAFFINITY => {
            let m = decode_or_reply!(core, key, h, op, t0, AffinitySetReq, payload);
            if m.mask.is_empty() || m.mask.len() > 1024 {
                return reply_now::<Empty>(core, key, &h, op, t0, Err(errno::EINVAL));
            }
            let r = with_checked_pid(core, m.pid, |_| sys::sched_setaffinity(m.pid, m.mask.0)).map(|_| Empty {});
            reply_now(core, key, &h, op, t0, r);
        }
        _ => reply_now::<Empty>(core, key, &h, op, t0, Err(errno::ENOSYS)),
    }
}

// ------------------------------------------------------------------ ring helpers

/// Opens `path` (relative to `dir`, default the export root) for request `r`.
///
/// Lookups that only walk cached dentries are done inline (`RESOLVE_CACHED`): io_uring
/// would do the same walk inline anyway, and the answer then needs no extra loop turn.
/// Anything that may wait (an uncached walk, `O_CREAT`, `O_TRUNC`, opening a FIFO or a
/// device) goes through the ring, whose workers absorb the wait.
fn resolve(core: &mut Core, r: Box<FsReq>, dir: Option<RawFd>, path: usize, flags: i32, mode: u32, how: u64) {
    let inline_ok = flags & (libc::O_CREAT | libc::O_TRUNC) == 0 && flags & (libc::O_PATH | libc::O_DIRECTORY) != 0;
    if inline_ok {
        let dirfd = dir.unwrap_or_else(|| r.root());
        let res = creds::with_ident(&r.ident, || sys::openat2(dirfd, r.cstr(path), flags, mode, how | RESOLVE_CACHED));
        match res {
            Ok(Ok(fd)) => return complete(core, r, fd.into_raw_fd()),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            Ok(Err(e)) | Err(e) => return complete(core, r, -sys::errno_of(&e)),
        }
    }
    submit_open(core, r, dir, path, flags, mode, how);
}

/// Opens through the ring (the kernel's worker absorbs any wait).
fn submit_open(core: &mut Core, mut r: Box<FsReq>, dir: Option<RawFd>, path: usize, flags: i32, mode: u32, how: u64) {
    r.how = types::OpenHow::new().flags((flags | libc::O_CLOEXEC) as u64).mode(mode as u64).resolve(how);
    let dirfd = dir.unwrap_or_else(|| r.root());
    let e = opcode::OpenAt2::new(types::Fd(dirfd), r.cptr(path), &r.how).build();
    core.submit_req(e, r);
}

/// statx(dirfd, name or "", flags) into `r.stx`, inline: on an open descriptor (or a
/// name just created, hence cached) it never waits, while io_uring would always hand
/// statx to a worker thread.
fn stat_now(core: &mut Core, mut r: Box<FsReq>, dirfd: RawFd, name: Option<usize>, flags: i32) {
    let mut stx = r.stx;
    let res = {
        let p = match name {
            Some(i) => r.cstr(i),
            None => c"",
        };
        creds::with_ident(&r.ident, || sys::statx_raw(dirfd, p, flags | libc::AT_STATX_SYNC_AS_STAT, &mut stx))
    };
    r.stx = stx;
    let code = match res {
        Ok(Ok(())) => 0,
        Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
    };
    complete(core, r, code);
}

/// Runs a name operation (mkdir, unlink, rename …) inside `dirfd`: inline on a memory
/// file system, where it cannot wait for I/O (io_uring would hand it to a worker), on the
/// ring otherwise.
fn mutate(
    core: &mut Core,
    r: Box<FsReq>,
    dirfd: RawFd,
    e: squeue::Entry,
    now: impl FnOnce(&FsReq) -> std::io::Result<()>,
) {
    if sys::is_memory_fs(dirfd) {
        let res = creds::with_ident(&r.ident, || now(&r));
        let code = match res {
            Ok(Ok(())) => 0,
            Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
        };
        return complete(core, r, code);
    }
    core.submit_req(e, r);
}

fn res_fd(res: i32) -> Result<OwnedFd, i32> {
    if res < 0 {
        Err(-res)
    } else {
        // SAFETY: a successful open returned a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(res) })
    }
}

/// `--min-free`: ENOSPC when growing a file on `fd`'s file system by `grow` bytes would
/// leave less available space than the floor (a client with [Write] must not fill the
/// HOST's disk). Nothing to check without a floor or growth.
fn space_ok(core: &Core, fd: RawFd, grow: u64) -> Result<(), i32> {
    let min = core.shared.cfg.min_free;
    if grow == 0 || min == crate::config::MinFree::None {
        return Ok(());
    }
    let (avail, total) = sys::fs_space(fd).map_err(|e| sys::errno_of(&e))?;
    if avail < min.floor(total).saturating_add(grow) {
        crate::log_limited!(
            tracing::Level::WARN,
            avail,
            grow,
            "refused with ENOSPC: the export's file system is at --min-free"
        );
        return Err(errno::ENOSPC);
    }
    Ok(())
}

/// Bytes a write of `len` at `off` (u64::MAX: append) adds to the file `fd`; 0 when no
/// floor is configured (no statx needed then).
fn growth(core: &Core, fd: RawFd, off: u64, len: u64) -> u64 {
    if core.shared.cfg.min_free == crate::config::MinFree::None {
        return 0;
    }
    let size = sys::statx(fd, c"", libc::AT_EMPTY_PATH).map_or(0, |a| a.size);
    if off == u64::MAX { len } else { off.saturating_add(len).saturating_sub(size) }
}

/// Whitelist check of `dirfd`'s real path joined with `name`.
fn wl_at(core: &Core, export: Option<&Export>, t: WlType, dirfd: RawFd, name: &[u8]) -> Result<(), i32> {
    // Everything resolved beneath the export root has a real path under the root's own
    // path, so an entry covering the whole export answers without reading the real path.
    if let Some(e) = export
        && core.wl.allows(t, &e.host_path)
    {
        return Ok(());
    }
    let real = sys::fd_real_path(dirfd).map_err(|e| sys::errno_of(&e))?;
    let full = path::join(&real, name);
    if core.wl.allows(t, &full) {
        Ok(())
    } else {
        tracing::info!(group = t.section(), path = %String::from_utf8_lossy(&full), "denied by whitelist");
        Err(errno::EACCES)
    }
}

/// Whitelist check of an operation on an open handle: the group its path form needs
/// (READ: Read, WRITE and FALLOCATE: Write, SETATTR and the chattr ioctls: Setattr), on
/// the real path of the open file now, not the name it was opened by. So a handle keeps
/// no right the whitelist has withdrawn since, and gains none its open did not check
/// (SETATTR on a handle opened read-only). The export's own entry answers without a
/// readlink: a handle's file stays beneath its export (client renames and links do).
fn wl_handle(core: &Core, session: &Session, f: &OpenFile, t: WlType) -> Result<(), i32> {
    wl_at(core, session.export(f.export).as_deref(), t, f.raw(), b"")
}

/// LINK's rule: the new name (`dir`/`name`) may be allowed nothing that the existing
/// object (`old`, by the name it was resolved through) is not
/// ([`whitelist::Whitelist::gained`]); later requests on the new name are checked
/// against the new name's path.
fn link_gains_nothing(core: &Core, old: RawFd, dir: RawFd, name: &[u8]) -> Result<(), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    let from = sys::fd_real_path(old).map_err(err)?;
    let to = path::join(&sys::fd_real_path(dir).map_err(err)?, name);
    match core.wl.gained(&from, &to) {
        None => Ok(()),
        Some(g) => {
            tracing::info!(
                group = g.section(),
                from = %String::from_utf8_lossy(&from),
                to = %String::from_utf8_lossy(&to),
                "LINK denied by whitelist: the new name would be allowed what the existing one is not"
            );
            Err(errno::EACCES)
        }
    }
}

/// `nodev`: whether the object `fd` names (an `O_PATH` descriptor, `mode`/`rdev` from
/// its statx) may be opened. Devices only when an `--allow-devices` rule names them.
fn device_open_ok(core: &Core, fd: RawFd, stx: &libc::statx) -> Result<(), i32> {
    let mode = stx.stx_mode as u32;
    if !devices::is_device(mode) {
        return Ok(());
    }
    let real = sys::fd_real_path(fd).map_err(|e| sys::errno_of(&e))?;
    if devices::open_allowed(&core.shared.cfg.allow_devices, mode, &real, stx.stx_rdev_major, stx.stx_rdev_minor) {
        return Ok(());
    }
    tracing::info!(
        path = %String::from_utf8_lossy(&real),
        dev = format_args!("{}:{}", stx.stx_rdev_major, stx.stx_rdev_minor),
        "open of a device node refused (see --allow-devices)"
    );
    Err(errno::EACCES)
}

// ------------------------------------------------------------------ MOUNT

fn do_mount(core: &mut Core, session: &Arc<Session>, m: &MountReq<'_>) -> Result<MountRsp, i32> {
    let p = m.path.0;
    if p.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let c = std::ffi::CString::new(p).map_err(|_| errno::EINVAL)?;
    let shared = core.shared.clone();
    let (list, default) = (&shared.cfg.export_ids, &shared.cfg.ids);
    // The export's policy follows its real path, known once it is open: open it with the
    // identity the policy of the path as written gives, and should the real path fall
    // under another policy, once more with that one's (the caller must reach it as itself).
    let written = creds::export_policy(list, p);
    let (mut fd, real) = mount_open(written.map_or(default, |e| &e.ids), m, &c)?;
    let own = creds::export_policy(list, &real);
    if own.map(|e| &e.path) != written.map(|e| &e.path) {
        let (fd2, real2) = mount_open(own.map_or(default, |e| &e.ids), m, &real_cstr(&real)?)?;
        if real2 != real {
            // Renamed in between: let the client retry rather than guess.
            return Err(errno::EAGAIN);
        }
        fd = fd2;
    }
    if !core.wl.allows(WlType::Mount, &real) {
        tracing::warn!(path = %String::from_utf8_lossy(&real), "MOUNT denied by the [Mount] whitelist");
        return Err(errno::EACCES);
    }
    if let Some(n) = creds::nested_conflict(list, &real, own, default) {
        tracing::warn!(
            path = %String::from_utf8_lossy(&real),
            nested = %String::from_utf8_lossy(&n.path),
            "MOUNT refused: it holds an --export-policy directory with another policy (mount that one itself)"
        );
        return Err(errno::EACCES);
    }
    let root = sys::statx(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH).map_err(|e| sys::errno_of(&e))?;
    let id = session.add_export(fd, real.clone(), own.map(|e| e.ids.clone()))?;
    tracing::info!(session = format_args!("{:x}", session.id), export = id, path = %String::from_utf8_lossy(&real), "mounted");
    Ok(MountRsp { export: id, root })
}

/// Opens a MOUNT's directory as the caller under `ids`; returns it and its real path.
fn mount_open(ids: &IdPolicy, m: &MountReq<'_>, path: &CStr) -> Result<(OwnedFd, Vec<u8>), i32> {
    let ident = ids.ident(m.ctx.uid, m.ctx.gid, m.groups.iter())?;
    let fd = creds::with_ident(&ident, || sys::openat2(libc::AT_FDCWD, path, libc::O_PATH | libc::O_DIRECTORY, 0, 0))
        .map_err(|e| sys::errno_of(&e))?
        .map_err(|e| sys::errno_of(&e))?;
    let real = sys::fd_real_path(fd.as_raw_fd()).map_err(|e| sys::errno_of(&e))?;
    Ok((fd, real))
}

fn real_cstr(real: &[u8]) -> Result<std::ffi::CString, i32> {
    std::ffi::CString::new(real).map_err(|_| errno::EINVAL)
}

// ------------------------------------------------------------------ path ops

/// LOOKUP, GETATTR, READLINK, STATFS (resolve the object itself, then act inline on
/// the descriptor) and RMDIR, UNLINK (resolve the parent, then remove the name).
#[allow(clippy::too_many_arguments)]
fn start_path_op(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    op: Op,
    session: &Arc<Session>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
    p: &[u8],
    flags: u64,
) {
    let mut r = begin(core, key, h, op, session);
    if let Err(e) = with_ctx(core, &mut r, ctx, groups).and_then(|_| path::check(p).map(|_| ())) {
        return fail(core, r, e);
    }
    r.u[0] = flags;
    let follow = op == Op::GETATTR && flags & consts::GETATTR_FOLLOW as u64 != 0;
    if matches!(op, Op::STATFS | Op::LOOKUP | Op::GETATTR | Op::READLINK) {
        // Act on the object itself.
        let i = r.push_str(if p.is_empty() { b"." } else { p });
        r.step = 20;
        let nofollow = if follow || p.is_empty() { 0 } else { libc::O_NOFOLLOW };
        return resolve(core, r, None, i, libc::O_PATH | nofollow, 0, SAFE);
    }
    let (parent, name) = match path::split(p) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(parent);
    r.push_str(name);
    r.step = 1;
    resolve(core, r, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
}

/// MKDIR, MKNOD, SYMLINK: resolve the parent, check `[Mkdir]`/`[Create]`, create the
/// name, answer its attributes.
#[allow(clippy::too_many_arguments)]
fn start_parent_op(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    op: Op,
    session: &Arc<Session>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
    p: &[u8],
    extra: Option<&[u8]>,
    u: [u64; 2],
) {
    let mut r = begin(core, key, h, op, session);
    if let Err(e) = with_ctx(core, &mut r, ctx, groups) {
        return fail(core, r, e);
    }
    let (parent, name) = match path::split(p) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(parent);
    r.push_str(name);
    if let Some(x) = extra {
        r.push_str(x);
    }
    r.u[0] = u[0];
    r.u[1] = u[1];
    r.step = 1;
    resolve(core, r, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
}

/// LINK (old object + new parent) and RENAME (old parent + new parent).
#[allow(clippy::too_many_arguments)]
fn start_two_path_op(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    op: Op,
    session: &Arc<Session>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
    old: &[u8],
    new: &[u8],
    flags: u32,
) {
    let mut r = begin(core, key, h, op, session);
    if let Err(e) = with_ctx(core, &mut r, ctx, groups) {
        return fail(core, r, e);
    }
    let (op_, on) = match path::split(old) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    let (np, nn) = match path::split(new) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.u[0] = flags as u64;
    if op == Op::LINK {
        r.push_str(old); // 0: the existing object
        r.push_str(np); // 1: new parent
        r.push_str(nn); // 2: new name
        r.step = 1;
        resolve(core, r, None, 0, libc::O_PATH | libc::O_NOFOLLOW, 0, SAFE);
    } else {
        r.push_str(op_); // 0: old parent
        r.push_str(on); // 1: old name
        r.push_str(np); // 2: new parent
        r.push_str(nn); // 3: new name
        r.step = 1;
        resolve(core, r, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
    }
}

/// XATTR_*, SYSUMOUNT: resolve the object itself (final symlink not followed).
#[allow(clippy::too_many_arguments)]
fn start_object_op(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    op: Op,
    session: &Arc<Session>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
    p: &[u8],
    name: &[u8],
    value: &[u8],
    u: [u64; 2],
) {
    let mut r = begin(core, key, h, op, session);
    if let Err(e) = with_ctx(core, &mut r, ctx, groups).and_then(|_| path::check(p).map(|_| ())) {
        return fail(core, r, e);
    }
    r.push_str(if p.is_empty() { b"." } else { p });
    r.push_str(name);
    r.buf = core.bufs.get(value.len());
    r.buf.extend_from_slice(value);
    r.u[0] = u[0];
    r.u[1] = u[1];
    r.step = 1;
    let flags = if op == Op::SYSUMOUNT || p.is_empty() { libc::O_PATH } else { libc::O_PATH | libc::O_NOFOLLOW };
    resolve(core, r, None, 0, flags, 0, SAFE);
}

// ------------------------------------------------------------------ OPEN / CREATE

#[allow(clippy::too_many_arguments)]
fn start_open(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    session: &Arc<Session>,
    ctx: &ReqCtx,
    groups: &Groups<'_>,
    p: &[u8],
    wflags: u32,
    mode: u32,
    umask: u32,
    noopen: bool,
) {
    // dispatch() only gets here for OPEN and CREATE.
    let op = if h.op == Op::CREATE as u16 { Op::CREATE } else { Op::OPEN };
    let mut r = begin(core, key, h, op, session);
    if let Err(e) = with_ctx(core, &mut r, ctx, groups).and_then(|_| path::check(p).map(|_| ())) {
        return fail(core, r, e);
    }
    let Some(flags) = consts::open::to_linux(wflags) else {
        return fail(core, r, errno::EINVAL);
    };
    r.u[0] = flags as u64;
    r.u[1] = (mode & !umask & 0o7777) as u64;
    r.u[2] = noopen as u64;
    if flags & libc::O_CREAT != 0 {
        // Create path: the parent must allow [Create] before anything exists.
        let (parent, name) = match path::split(p) {
            Ok(x) => x,
            Err(e) => return fail(core, r, e),
        };
        r.push_str(parent);
        r.push_str(name);
        // 2: the whole path, should the name exist (step 12).
        r.push_str(p);
        r.step = 10;
        return resolve(core, r, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
    }
    // Existing object: resolve it (O_PATH), check the whitelist on its real path, then
    // reopen it through /proc/self/fd with the requested flags.
    r.push_str(if p.is_empty() { b"." } else { p });
    r.step = 1;
    let nofollow = flags & libc::O_NOFOLLOW;
    resolve(core, r, None, 0, libc::O_PATH | nofollow, 0, SAFE);
}

/// Whitelist groups an open with these flags needs, besides `[Open]`.
fn open_gates(flags: i32) -> impl Iterator<Item = WlType> {
    let acc = flags & libc::O_ACCMODE;
    [
        Some(WlType::Open),
        (acc == libc::O_RDONLY || acc == libc::O_RDWR).then_some(WlType::Read),
        (acc == libc::O_WRONLY || acc == libc::O_RDWR).then_some(WlType::Write),
        (flags & libc::O_TRUNC != 0).then_some(WlType::Setattr),
    ]
    .into_iter()
    .flatten()
}

/// The file is open (or, for CREATE without open, created): fetch its attributes,
/// unless the statx made before the reopen still holds them.
fn open_completed(core: &mut Core, mut r: Box<FsReq>, fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    r.fd = Some(fd);
    if r.u[3] == 1 {
        return open_respond(core, r);
    }
    r.step = 3;
    stat_now(core, r, raw, None, libc::AT_EMPTY_PATH);
}

fn open_respond(core: &mut Core, mut r: Box<FsReq>) {
    let attr = sys::attr_from_statx(&r.stx);
    if r.u[2] == 1 {
        r.fd = None;
        return finish(core, r, &OpenRsp { handle: 0, attr });
    }
    // open_step() answers only once the open gave a descriptor.
    let Some(fd) = r.fd.take() else {
        return fail(core, r, errno::EIO);
    };
    let export = r.export.as_ref().map_or(0, |e| e.id);
    let io = if fifo::pollable(attr.mode & libc::S_IFMT, fd.as_raw_fd()) {
        IoMode::Fifo
    } else if attr.mode & libc::S_IFMT != libc::S_IFREG || r.u[0] as i32 & libc::O_DIRECT != 0 {
        IoMode::Ring
    } else if sys::is_memory_fs(fd.as_raw_fd()) {
        IoMode::Memory
    } else {
        IoMode::NowaitRead
    };
    let ids = r.export.as_ref().and_then(|e| e.ids.clone());
    let file = Arc::new(OpenFile { fd, flags: r.u[0] as i32, export, io, ident: r.ident.clone(), ids });
    let Some(session) = r.session.clone() else {
        return fail(core, r, errno::EIO);
    };
    let res = session.handles.write().insert(file, session.max_handles);
    match res {
        Ok(handle) => finish(core, r, &OpenRsp { handle, attr }),
        Err(e) => fail(core, r, e),
    }
}

/// Answers a READ whose `n` data bytes follow the header space of `buf` (the request's
/// own buffer, already `HEADER_SIZE + n` long): the ring's and the FIFO path's ending.
fn respond_read(core: &mut Core, r: Box<FsReq>, mut buf: Vec<u8>, n: usize) {
    put_header(&mut buf, FrameHeader::response(r.op as u16, r.id, n as u32));
    let key = r.conn;
    stats(core, &r, true, buf.len());
    core.respond_owned(key, buf);
    core.free_req(r);
    core.request_done(key);
}

/// Writes a response header into the space kept for it at the start of `buf` (every
/// READ buffer starts with `HEADER_SIZE` bytes for it).
fn put_header(buf: &mut [u8], h: FrameHeader) {
    if let Some(b) = buf.get_mut(..HEADER_SIZE) {
        h.write_to(b);
    }
}

/// `/proc/self/fd/N` from `sys::proc_fd_path` as a C string: it is always NUL-terminated
/// (at most 25 of its 32 bytes are used); "" would make the call fail, not the core.
fn proc_cstr(p: &[u8]) -> &CStr {
    CStr::from_bytes_until_nul(p).unwrap_or(c"")
}

// ------------------------------------------------------------------ SETATTR

fn start_setattr(core: &mut Core, key: usize, h: &FrameHeader, session: &Arc<Session>, m: &SetattrReq<'_>) {
    let mut r = begin(core, key, h, Op::SETATTR, session);
    // The policy of the export the handle was opened in, or of the export named.
    let file = if m.handle != 0 { session.file(m.handle) } else { None };
    let ids = match &file {
        Some(f) => f.ids.clone(),
        None => session.export(m.ctx.export).and_then(|e| e.ids.clone()),
    };
    r.ident = match ident_of(core, ids.as_ref(), &m.ctx, &m.groups) {
        Ok(id) => id,
        Err(e) => return fail(core, r, e),
    };
    r.personality = core.personality(&r.ident);
    if m.valid & !setattr::ALL != 0 {
        return fail(core, r, errno::EINVAL);
    }
    r.u = [
        m.valid as u64,
        m.mode as u64,
        m.uid as u64,
        m.gid as u64,
        m.size,
        m.atime_sec as u64,
        m.mtime_sec as u64,
        ((m.atime_nsec as u64) << 32) | m.mtime_nsec as u64,
    ];
    if m.handle != 0 {
        let Some(f) = file else { return fail(core, r, errno::EBADF) };
        // The same group as the path form, on the real path of the open file: a handle
        // opened for reading in a read-only area gives no chmod, chown or utimes.
        if let Err(e) = wl_handle(core, session, &f, WlType::Setattr) {
            return fail(core, r, e);
        }
        let res = setattr_space_ok(core, &r, f.raw()).and_then(|_| setattr_apply(&r, f.raw(), true));
        let res = res.and_then(|_| sys::statx(f.raw(), c"", libc::AT_EMPTY_PATH).map_err(|e| sys::errno_of(&e)));
        return match res {
            Ok(attr) => finish(core, r, &AttrRsp { attr }),
            Err(e) => fail(core, r, e),
        };
    }
    let Some(s) = r.session.clone() else {
        return fail(core, r, errno::EIO);
    };
    match s.export(m.ctx.export) {
        Some(e) => r.export = Some(e),
        None => return fail(core, r, errno::ESTALE),
    }
    if let Err(e) = path::check(m.path.0) {
        return fail(core, r, e);
    }
    r.push_str(if m.path.is_empty() { b"." } else { m.path.0 });
    r.step = 1;
    let nofollow = if m.path.is_empty() { 0 } else { libc::O_NOFOLLOW };
    resolve(core, r, None, 0, libc::O_PATH | nofollow, 0, SAFE);
}

/// `--min-free` for a SETATTR that makes a file larger.
fn setattr_space_ok(core: &Core, r: &FsReq, fd: RawFd) -> Result<(), i32> {
    if r.u[0] as u32 & setattr::SIZE == 0 {
        return Ok(());
    }
    space_ok(core, fd, growth(core, fd, r.u[4], 0))
}

/// Applies SETATTR to `fd` (an open handle, or an O_PATH descriptor of the object) with
/// the caller's identity.
fn setattr_apply(r: &FsReq, fd: RawFd, is_handle: bool) -> Result<(), i32> {
    let valid = r.u[0] as u32;
    let is_link = !is_handle && (r.stx.stx_mode as u32 & libc::S_IFMT) == libc::S_IFLNK;
    let proc = sys::proc_fd_path(fd);
    let proc = proc_cstr(&proc);
    let run = || -> Result<(), i32> {
        let err = |e: std::io::Error| sys::errno_of(&e);
        if valid & setattr::SIZE != 0 {
            if is_handle {
                sys::ftruncate(fd, r.u[4]).map_err(err)?;
            } else {
                // Reopen for writing: the kernel checks write permission as the caller.
                // (A device node never gets here: setattr_step checked.)
                let w = sys::openat(libc::AT_FDCWD, proc, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0)
                    .map_err(err)?;
                sys::ftruncate(w.as_raw_fd(), r.u[4]).map_err(err)?;
            }
        }
        if valid & (setattr::UID | setattr::GID) != 0 {
            let uid = if valid & setattr::UID != 0 { r.u[2] as u32 } else { u32::MAX };
            let gid = if valid & setattr::GID != 0 { r.u[3] as u32 } else { u32::MAX };
            sys::fchown_empty(fd, uid, gid).map_err(err)?;
        }
        if valid & setattr::MODE != 0 {
            if is_link {
                return Err(errno::EOPNOTSUPP);
            }
            sys::chmod(proc, r.u[1] as u32 & 0o7777).map_err(err)?;
        }
        let times = valid & (setattr::ATIME | setattr::MTIME | setattr::ATIME_NOW | setattr::MTIME_NOW);
        if times != 0 {
            let ts = |set: u32, now: u32, sec: u64, nsec: u64| {
                if valid & now != 0 {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW }
                } else if valid & set != 0 {
                    libc::timespec { tv_sec: sec as i64, tv_nsec: nsec as i64 }
                } else {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }
                }
            };
            let t = [
                ts(setattr::ATIME, setattr::ATIME_NOW, r.u[5], r.u[7] >> 32),
                ts(setattr::MTIME, setattr::MTIME_NOW, r.u[6], r.u[7] & 0xffff_ffff),
            ];
            if is_link {
                sys::utimensat(fd, c"", &t, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW).map_err(err)?;
            } else {
                sys::utimensat(libc::AT_FDCWD, proc, &t, 0).map_err(err)?;
            }
        }
        Ok(())
    };
    creds::with_ident(&r.ident, run).map_err(|e| sys::errno_of(&e))?
}

// ------------------------------------------------------------------ SYSMOUNT

fn start_sysmount(core: &mut Core, key: usize, h: &FrameHeader, session: &Arc<Session>, m: &SysmountReq<'_>) {
    let mut r = begin(core, key, h, Op::SYSMOUNT, session);
    // What may be mounted where: mounts.rs.
    if !core.shared.cfg.allow_sysmount {
        tracing::info!("SYSMOUNT refused: the engine runs without --allow-sysmount");
        return fail(core, r, errno::EPERM);
    }
    if let Err(e) = with_ctx(core, &mut r, &m.ctx, &m.groups).and_then(|_| path::check(m.target.0).map(|_| ())) {
        return fail(core, r, e);
    }
    if !r.ident.is_root() {
        return fail(core, r, errno::EPERM);
    }
    if let Err(e) = mounts::plan(m.flags, m.source_kind, m.fstype.0) {
        let fstype = String::from_utf8_lossy(m.fstype.0);
        tracing::info!(flags = format_args!("{:#x}", m.flags), fstype = %fstype, "SYSMOUNT refused");
        return fail(core, r, e);
    }
    let path_source = m.source_kind == consts::SYSMOUNT_SRC_PATH;
    if path_source && path::check(m.source.0).is_err() {
        return fail(core, r, errno::EINVAL);
    }
    if m.data.0.contains(&0) {
        return fail(core, r, errno::EINVAL);
    }
    r.push_str(if m.target.is_empty() { b"." } else { m.target.0 });
    r.push_str(if path_source && m.source.is_empty() { b"." } else { m.source.0 });
    r.push_str(m.fstype.0);
    r.push_str(m.data.0);
    r.u[0] = m.flags;
    r.u[1] = m.source_kind as u64;
    r.step = 1;
    resolve(core, r, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
}

// ------------------------------------------------------------------ completions

pub(crate) fn complete(core: &mut Core, r: Box<FsReq>, res: i32) {
    if !core.conns.contains(r.conn) {
        // Cannot happen: a connection lives while requests refer to it.
        tracing::error!("completion for a vanished connection");
        return;
    }
    match r.op {
        Op::READ | Op::WRITE if r.step == fifo::STEP_IO_WAIT => fifo::io_ready(core, r, res),
        Op::OPEN | Op::CREATE if r.step == fifo::STEP_OPEN_WAIT => fifo::open_wait_done(core, r, res),
        Op::READ => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let mut r = r;
            let n = res as usize;
            let mut buf = std::mem::take(&mut r.buf);
            // SAFETY: the kernel wrote `n` bytes after the header space.
            unsafe { buf.set_len(HEADER_SIZE + n) };
            respond_read(core, r, buf, n);
        }
        Op::WRITE => {
            if res < 0 {
                return fail(core, r, -res);
            }
            finish(core, r, &WriteRsp { written: res as u32 });
        }
        Op::FSYNC | Op::FALLOCATE => {
            if res < 0 {
                return fail(core, r, -res);
            }
            finish_empty(core, r);
        }
        Op::FIFO_POLL => {
            if res == -libc::ECANCELED || res == -libc::ETIME {
                return finish(core, r, &PollRsp { revents: 0 });
            }
            if res < 0 {
                return fail(core, r, -res);
            }
            finish(core, r, &PollRsp { revents: res as u32 });
        }
        Op::FGETATTR => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let attr = sys::attr_from_statx(&r.stx);
            finish(core, r, &AttrRsp { attr });
        }
        Op::LOOKUP | Op::GETATTR | Op::RMDIR | Op::UNLINK | Op::READLINK | Op::STATFS => path_step(core, r, res),
        Op::MKDIR | Op::MKNOD | Op::SYMLINK => create_step(core, r, res),
        Op::LINK | Op::RENAME => two_path_step(core, r, res),
        Op::OPEN | Op::CREATE => open_step(core, r, res),
        Op::SETATTR => setattr_step(core, r, res),
        Op::READDIR => readdir_step(core, r, res),
        Op::XATTR_LIST | Op::XATTR_GET | Op::XATTR_SET | Op::XATTR_REMOVE | Op::SYSUMOUNT => object_step(core, r, res),
        Op::SYSMOUNT => sysmount_step(core, r, res),
        Op::LOCK_SET => locks::wait_done(core, r, res),
        other => {
            tracing::error!(op = %other, "completion for an operation without a state machine");
            fail(core, r, errno::EIO)
        }
    }
}

fn path_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    match r.step {
        // Parent resolved.
        1 => {
            let dir = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            r.dirfd = Some(dir);
            match r.op {
                Op::RMDIR | Op::UNLINK => {
                    let (t, flags) =
                        if r.op == Op::RMDIR { (WlType::Rmdir, libc::AT_REMOVEDIR) } else { (WlType::Unlink, 0) };
                    if let Err(e) = wl_at(core, r.export.as_deref(), t, raw, r.str_bytes(1)) {
                        return fail(core, r, e);
                    }
                    r.step = 3;
                    let e = opcode::UnlinkAt::new(types::Fd(raw), r.cptr(1)).flags(flags).build();
                    mutate(core, r, raw, e, |r| sys::unlinkat(raw, r.cstr(1), flags));
                }
                _ => fail(core, r, errno::EIO),
            }
        }
        2 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let attr = sys::attr_from_statx(&r.stx);
            finish(core, r, &AttrRsp { attr });
        }
        3 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            finish_empty(core, r);
        }
        // The object itself resolved (GETATTR follow, root, STATFS).
        20 => {
            let fd = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = fd.as_raw_fd();
            r.fd = Some(fd);
            if r.op == Op::STATFS {
                return match sys::fstatfs(raw) {
                    Ok(statfs) => finish(core, r, &StatfsRsp { statfs }),
                    Err(e) => fail(core, r, sys::errno_of(&e)),
                };
            }
            if r.op == Op::READLINK {
                // readlinkat(fd, "") reads the symlink an O_PATH|O_NOFOLLOW descriptor names.
                let res = creds::with_ident(&r.ident, || sys::readlinkat(raw, c""));
                return match res {
                    Ok(Ok(t)) => finish(core, r, &Data { data: Rest(&t) }),
                    Ok(Err(e)) | Err(e) => fail(core, r, sys::errno_of(&e)),
                };
            }
            r.step = 2;
            stat_now(core, r, raw, None, libc::AT_EMPTY_PATH);
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn create_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    match r.step {
        1 => {
            let dir = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            r.dirfd = Some(dir);
            let t = if r.op == Op::MKDIR { WlType::Mkdir } else { WlType::Create };
            if let Err(e) = wl_at(core, r.export.as_deref(), t, raw, r.str_bytes(1)) {
                return fail(core, r, e);
            }
            r.step = 2;
            match r.op {
                Op::MKDIR => {
                    let mode = r.u[0] as libc::mode_t;
                    let e = opcode::MkDirAt::new(types::Fd(raw), r.cptr(1)).mode(mode).build();
                    mutate(core, r, raw, e, |r| sys::mkdirat(raw, r.cstr(1), mode));
                }
                Op::SYMLINK => {
                    let e = opcode::SymlinkAt::new(types::Fd(raw), r.cptr(2), r.cptr(1)).build();
                    mutate(core, r, raw, e, |r| sys::symlinkat(r.cstr(2), raw, r.cstr(1)));
                }
                _ => {
                    // MKNOD has no ring opcode.
                    let res = creds::with_ident(&r.ident, || sys::mknodat(raw, r.cstr(1), r.u[0] as u32, r.u[1]));
                    match res {
                        Ok(Ok(())) => {
                            r.step = 3;
                            stat_now(core, r, raw, Some(1), libc::AT_SYMLINK_NOFOLLOW);
                        }
                        Ok(Err(e)) | Err(e) => fail(core, r, sys::errno_of(&e)),
                    }
                }
            }
        }
        2 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            r.step = 3;
            let raw = r.dirfd.as_ref().map_or(-1, |d| d.as_raw_fd());
            stat_now(core, r, raw, Some(1), libc::AT_SYMLINK_NOFOLLOW);
        }
        3 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let attr = sys::attr_from_statx(&r.stx);
            finish(core, r, &AttrRsp { attr });
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn two_path_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    let link = r.op == Op::LINK;
    match r.step {
        // LINK: the existing object; RENAME: the old parent.
        1 => {
            let fd = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = fd.as_raw_fd();
            let check = if link {
                wl_at(core, r.export.as_deref(), WlType::Open, raw, b"")
            } else {
                wl_at(core, r.export.as_deref(), WlType::Rename, raw, r.str_bytes(1))
            };
            if let Err(e) = check {
                return fail(core, r, e);
            }
            r.dirfd = Some(fd);
            r.step = 2;
            let parent = if link { 1 } else { 2 };
            resolve(core, r, None, parent, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
        }
        // The new parent.
        2 => {
            let dir = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            let (t, name) = if link { (WlType::Create, 2) } else { (WlType::Rename, 3) };
            if let Err(e) = wl_at(core, r.export.as_deref(), t, raw, r.str_bytes(name)) {
                return fail(core, r, e);
            }
            if link {
                let old = r.dirfd.as_ref().map_or(-1, |d| d.as_raw_fd());
                if let Err(e) = link_gains_nothing(core, old, raw, r.str_bytes(2)) {
                    return fail(core, r, e);
                }
            }
            r.dirfd2 = Some(dir);
            r.step = 3;
            let old = r.dirfd.as_ref().map_or(-1, |d| d.as_raw_fd());
            if link {
                // Link exactly the resolved inode through its /proc/self/fd magic link.
                let p = sys::proc_fd_path(old);
                r.push_str(proc_cstr(&p).to_bytes());
                let e = opcode::LinkAt::new(types::Fd(libc::AT_FDCWD), r.cptr(3), types::Fd(raw), r.cptr(2))
                    .flags(libc::AT_SYMLINK_FOLLOW)
                    .build();
                mutate(core, r, raw, e, |r| {
                    sys::linkat(libc::AT_FDCWD, r.cstr(3), raw, r.cstr(2), libc::AT_SYMLINK_FOLLOW)
                });
            } else {
                let flags = r.u[0] as u32;
                let e =
                    opcode::RenameAt::new(types::Fd(old), r.cptr(1), types::Fd(raw), r.cptr(3)).flags(flags).build();
                mutate(core, r, raw, e, |r| sys::renameat2(old, r.cstr(1), raw, r.cstr(3), flags));
            }
        }
        3 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            if link {
                r.step = 4;
                let raw = r.dirfd2.as_ref().map_or(-1, |d| d.as_raw_fd());
                return stat_now(core, r, raw, Some(2), libc::AT_SYMLINK_NOFOLLOW);
            }
            finish_empty(core, r);
        }
        4 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let attr = sys::attr_from_statx(&r.stx);
            finish(core, r, &AttrRsp { attr });
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn open_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    let flags = r.u[0] as i32;
    match r.step {
        // Existing object resolved as O_PATH: check, then reopen with the real flags.
        1 => {
            let p = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            // One statx of the O_PATH descriptor (which never opens a device) serves
            // three times: the file type decides whether the object may be opened at all
            // (devices) and how, and (unless O_TRUNC changes them) the attributes answer.
            let mut stx = r.stx;
            if let Err(e) = sys::statx_raw(p.as_raw_fd(), c"", libc::AT_EMPTY_PATH, &mut stx) {
                return fail(core, r, sys::errno_of(&e));
            }
            r.stx = stx;
            let kind = stx.stx_mode as u32 & libc::S_IFMT;
            if r.u[2] == 1 && flags & libc::O_TRUNC == 0 {
                // CREATE without open of a name that exists: its attributes, nothing opened.
                r.fd = Some(p);
                return open_respond(core, r);
            }
            for t in open_gates(flags) {
                if let Err(e) = wl_at(core, r.export.as_deref(), t, p.as_raw_fd(), b"") {
                    return fail(core, r, e);
                }
            }
            if let Err(e) = device_open_ok(core, p.as_raw_fd(), &stx) {
                return fail(core, r, e);
            }
            r.u[3] = (flags & libc::O_TRUNC == 0) as u64;
            let proc = sys::proc_fd_path(p.as_raw_fd());
            r.dirfd = Some(p);
            let i = r.push_str(proc_cstr(&proc).to_bytes());
            r.step = 2;
            // Exactly the inode checked above, through its magic link; never as the
            // engine's controlling terminal.
            let f = (flags & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL)) | libc::O_NOCTTY;
            if matches!(kind, libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK) {
                // May wait for the other end (FIFOs) or a driver: never in a worker.
                return fifo::open_special(core, r, i, f, kind);
            }
            if kind == libc::S_IFREG || kind == libc::S_IFDIR {
                // Reopening a regular file or directory does not wait (FIFOs and devices
                // may, so they take the ring).
                let res = creds::with_ident(&r.ident, || sys::openat2(libc::AT_FDCWD, r.cstr(i), f, 0, 0));
                let code = match res {
                    Ok(Ok(fd)) => fd.into_raw_fd(),
                    Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
                };
                return complete(core, r, code);
            }
            submit_open(core, r, Some(libc::AT_FDCWD), i, f, 0, 0);
        }
        // CREATE of a name that exists (and no O_EXCL asked): open it as OPEN does
        // (resolved beneath the export root), so that what it is gets checked first.
        12 if res == -libc::EEXIST && flags & libc::O_EXCL == 0 => {
            r.step = 1;
            r.dirfd = None;
            resolve(core, r, None, 2, libc::O_PATH | (flags & libc::O_NOFOLLOW), 0, SAFE);
        }
        2 | 12 => {
            let fd = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            r.dirfd = None;
            open_completed(core, r, fd);
        }
        // Create: parent resolved.
        10 => {
            let dir = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            let name = r.str_bytes(1).to_vec();
            if let Err(e) = wl_at(core, r.export.as_deref(), WlType::Create, raw, &name) {
                return fail(core, r, e);
            }
            if r.u[2] == 0 {
                for t in open_gates(flags & !libc::O_TRUNC) {
                    if let Err(e) = wl_at(core, r.export.as_deref(), t, raw, &name) {
                        return fail(core, r, e);
                    }
                }
                if flags & libc::O_TRUNC != 0
                    && let Err(e) = wl_at(core, r.export.as_deref(), WlType::Setattr, raw, &name)
                {
                    return fail(core, r, e);
                }
            }
            r.dirfd = Some(dir);
            r.step = 12;
            let mode = r.u[1] as u32;
            // Always exclusive: O_CREAT on an existing name would open whatever is there
            // (a device node, a FIFO) unchecked. EEXIST without the client's O_EXCL goes
            // the OPEN way (step 12 above).
            let cflags = flags | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;
            if sys::is_memory_fs(raw) {
                let res = creds::with_ident(&r.ident, || sys::openat2(raw, r.cstr(1), cflags, mode, SAFE));
                let code = match res {
                    Ok(Ok(fd)) => fd.into_raw_fd(),
                    Ok(Err(e)) | Err(e) => -sys::errno_of(&e),
                };
                return complete(core, r, code);
            }
            submit_open(core, r, Some(raw), 1, cflags, mode, SAFE);
        }
        3 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            open_respond(core, r);
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn setattr_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    match r.step {
        1 => {
            let fd = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            if let Err(e) = wl_at(core, r.export.as_deref(), WlType::Setattr, fd.as_raw_fd(), b"") {
                return fail(core, r, e);
            }
            let raw = fd.as_raw_fd();
            r.fd = Some(fd);
            r.step = 2;
            stat_now(core, r, raw, None, libc::AT_EMPTY_PATH);
        }
        2 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let raw = r.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
            // A size change reopens the object for writing: not a device (nodev).
            if r.u[0] as u32 & setattr::SIZE != 0
                && let Err(e) = device_open_ok(core, raw, &r.stx)
            {
                return fail(core, r, e);
            }
            if let Err(e) = setattr_space_ok(core, &r, raw).and_then(|_| setattr_apply(&r, raw, false)) {
                return fail(core, r, e);
            }
            r.step = 3;
            stat_now(core, r, raw, None, libc::AT_EMPTY_PATH);
        }
        3 => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let attr = sys::attr_from_statx(&r.stx);
            finish(core, r, &AttrRsp { attr });
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn readdir_step(core: &mut Core, r: Box<FsReq>, res: i32) {
    let dir = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    if let Err(e) = wl_at(core, r.export.as_deref(), WlType::Readdir, dir.as_raw_fd(), b"") {
        return fail(core, r, e);
    }
    let (cookie, max, plus) = (r.u[0], r.u[1] as usize, r.u[2] as u32 & consts::READDIR_PLUS != 0);
    let max = max.clamp(512, MAX_PAYLOAD - 64);
    let mut out = core.bufs.get(max.min(64 * 1024));
    let ident = r.ident.clone();
    let res = creds::with_ident(&ident, || readdir_fill(dir.as_raw_fd(), cookie, max, plus, &mut out));
    let res = match res {
        Ok(x) => x,
        Err(e) => Err(sys::errno_of(&e)),
    };
    match res {
        Ok((count, eof)) => {
            let flags = if eof { consts::READDIR_EOF } else { 0 };
            let rsp = ReaddirRsp { count, flags, entries: Rest(&out) };
            let n = core.respond(r.conn, r.op as u16, r.id, &rsp);
            stats(core, &r, true, n);
            core.bufs.put(out);
            let key = r.conn;
            core.free_req(r);
            core.request_done(key);
        }
        Err(e) => {
            core.bufs.put(out);
            fail(core, r, e)
        }
    }
}

/// Fills `out` with directory records after `cookie`; returns (count, eof). `.` and `..`
/// are not reported (clients synthesise them; `..` of an export root is outside it).
fn readdir_fill(fd: RawFd, cookie: u64, max: usize, plus: bool, out: &mut Vec<u8>) -> Result<(u32, bool), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    sys::lseek(fd, cookie as i64, libc::SEEK_SET).map_err(err)?;
    let mut dbuf = [0u8; 16 * 1024];
    let mut count = 0u32;
    loop {
        let n = sys::getdents64(fd, &mut dbuf).map_err(err)?;
        if n == 0 {
            return Ok((count, true));
        }
        for d in sys::dirents(dbuf.get(..n).unwrap_or_default()) {
            if d.name == b"." || d.name == b".." {
                continue;
            }
            let before = out.len();
            if plus {
                let name = match std::ffi::CString::new(d.name) {
                    Ok(c) => c,
                    Err(_) => continue,
                };
                let attr = match sys::statx(fd, &name, libc::AT_SYMLINK_NOFOLLOW) {
                    Ok(a) => a,
                    // Raced with an unlink: skip the entry.
                    Err(_) => continue,
                };
                DirEntryPlus { cookie: d.off as u64, attr, name: Name(d.name) }.encode(out);
            } else {
                DirEntry { ino: d.ino, cookie: d.off as u64, dtype: d.dtype, name: Name(d.name) }.encode(out);
            }
            if out.len() > max {
                out.truncate(before);
                if count == 0 {
                    return Err(errno::EINVAL);
                }
                return Ok((count, false));
            }
            count += 1;
        }
    }
}

fn object_step(core: &mut Core, r: Box<FsReq>, res: i32) {
    let fd = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = fd.as_raw_fd();
    let gate = match r.op {
        Op::XATTR_SET | Op::XATTR_REMOVE => Some(WlType::Setxattr),
        Op::SYSUMOUNT => Some(WlType::Mount),
        _ => None,
    };
    if let Some(t) = gate
        && let Err(e) = wl_at(core, r.export.as_deref(), t, raw, b"")
    {
        return fail(core, r, e);
    }
    let proc = sys::proc_fd_path(raw);
    let proc = proc_cstr(&proc).to_owned();
    let name = r.cstr(1).to_owned();
    let ident = r.ident.clone();
    let err = |e: std::io::Error| sys::errno_of(&e);
    match r.op {
        Op::XATTR_LIST | Op::XATTR_GET => {
            let size = r.u[0] as usize;
            let mut out = core.bufs.get(size.min(MAX_PAYLOAD - 64));
            out.resize(size.min(MAX_PAYLOAD - 64), 0);
            let res = creds::with_ident(&ident, || {
                if r.op == Op::XATTR_LIST {
                    sys::listxattr(&proc, &mut out)
                } else {
                    sys::getxattr(&proc, &name, &mut out)
                }
            });
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(n) => {
                    // n ≤ out.len() (the kernel filled at most the buffer).
                    let data = if size == 0 { &[][..] } else { out.get(..n).unwrap_or_default() };
                    let rsp = XattrRsp { size: n as u32, data: Rest(data) };
                    let sent = core.respond(r.conn, r.op as u16, r.id, &rsp);
                    stats(core, &r, true, sent);
                    core.bufs.put(out);
                    let key = r.conn;
                    core.free_req(r);
                    core.request_done(key);
                }
                Err(e) => {
                    core.bufs.put(out);
                    fail(core, r, e);
                }
            }
        }
        Op::XATTR_SET => {
            let res = creds::with_ident(&ident, || sys::setxattr(&proc, &name, &r.buf, r.u[0] as i32));
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(()) => finish_empty(core, r),
                Err(e) => fail(core, r, e),
            }
        }
        Op::XATTR_REMOVE => {
            let res = creds::with_ident(&ident, || sys::removexattr(&proc, &name));
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(()) => finish_empty(core, r),
                Err(e) => fail(core, r, e),
            }
        }
        Op::SYSUMOUNT => {
            // Only a mount this engine made, named by its root (mounts::unmount).
            creds::reset();
            match mounts::unmount(&core.shared.sysmounts, fd, r.u[0] as i32) {
                Ok(()) => finish_empty(core, r),
                Err(e) => fail(core, r, e),
            }
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn sysmount_step(core: &mut Core, mut r: Box<FsReq>, res: i32) {
    match r.step {
        1 => {
            let fd = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            if let Err(e) = wl_at(core, r.export.as_deref(), WlType::Mount, fd.as_raw_fd(), b"") {
                return fail(core, r, e);
            }
            r.fd = Some(fd);
            if mounts::plan(r.u[0], r.u[1] as u32, r.str_bytes(2)).is_ok_and(|p| p.needs_source()) {
                // Beneath the same export, like the target (a literal HOST path never
                // gets here: mounts::plan refuses it).
                r.step = 2;
                return resolve(core, r, None, 1, libc::O_PATH, 0, SAFE);
            }
            sysmount_now(core, r, None);
        }
        2 => {
            let src = match res_fd(res) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            if let Err(e) = wl_at(core, r.export.as_deref(), WlType::Mount, src.as_raw_fd(), b"") {
                return fail(core, r, e);
            }
            sysmount_now(core, r, Some(src));
        }
        _ => fail(core, r, errno::EIO),
    }
}

fn sysmount_now(core: &mut Core, r: Box<FsReq>, src: Option<OwnedFd>) {
    // Mounting needs the engine's own privileges (the caller is uid 0, checked above).
    creds::reset();
    let res = match (mounts::plan(r.u[0], r.u[1] as u32, r.str_bytes(2)), r.fd.as_ref()) {
        (Ok(plan), Some(target)) => {
            mounts::perform(&core.shared.sysmounts, &core.wl, &plan, target, src.as_ref(), r.str_bytes(3))
        }
        (Err(e), _) => Err(e),
        (_, None) => Err(errno::EIO),
    };
    match res {
        Ok(()) => finish_empty(core, r),
        Err(e) => fail(core, r, e),
    }
}

// ------------------------------------------------------------------ EPOLL

fn epoll_ctl(core: &mut Core, key: usize, session: &Arc<Session>, m: &EpollCtlReq) -> Result<Empty, i32> {
    // The connection whose frame is being handled: dispatch keeps it allocated.
    let Some(c) = core.conns.get(key) else { return Err(errno::EIO) };
    let existing = c.epolls.iter().copied().find(|&ud| match core.ops.get(ud) {
        Some(crate::ring::Slot::Epoll(reg)) => reg.handle == m.handle,
        _ => false,
    });
    match m.op as i32 {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
            if m.op as i32 == libc::EPOLL_CTL_ADD && existing.is_some() {
                return Err(errno::EEXIST);
            }
            if m.op as i32 == libc::EPOLL_CTL_MOD && existing.is_none() {
                return Err(errno::ENOENT);
            }
            if let Some(ud) = existing {
                forget_epoll(core, key, ud);
                core.push(opcode::PollRemove::new(ud as u64).build().user_data(UD_IGNORE));
            }
            let f = session.file(m.handle).ok_or(errno::EBADF)?;
            let fd = f.raw();
            let reg = Box::new(EpollReg { conn: key, handle: m.handle, cookie: m.cookie, _file: f });
            let e = opcode::PollAdd::new(types::Fd(fd), m.events).multi(true).build();
            let Some(c) = core.conns.get_mut(key) else { return Err(errno::EIO) };
            c.refs += 1;
            let ud = core.submit_epoll(e, reg);
            if let Some(c) = core.conns.get_mut(key) {
                c.epolls.push(ud);
            }
            Ok(Empty {})
        }
        libc::EPOLL_CTL_DEL => {
            let ud = existing.ok_or(errno::ENOENT)?;
            forget_epoll(core, key, ud);
            core.push(opcode::PollRemove::new(ud as u64).build().user_data(UD_IGNORE));
            Ok(Empty {})
        }
        _ => Err(errno::EINVAL),
    }
}

/// Drops registration `ud` from connection `key`'s list (its PollRemove is pushed by the
/// caller; `epoll_done` releases the connection's reference).
fn forget_epoll(core: &mut Core, key: usize, ud: usize) {
    if let Some(c) = core.conns.get_mut(key) {
        c.epolls.retain(|&u| u != ud);
    }
}

/// A multishot poll fired: tell the client.
pub(crate) fn epoll_event(core: &mut Core, ud: usize, res: i32) {
    let Some(crate::ring::Slot::Epoll(reg)) = core.ops.get(ud) else { return };
    let (conn, cookie) = (reg.conn, reg.cookie);
    if res < 0 || core.conns.get(conn).is_none_or(|c| c.closing) {
        return;
    }
    let mut rec = [0u8; 12];
    EpollRec { events: res as u32, cookie }.put(&mut rec);
    core.send_frame(conn, FrameHeader::message(Op::EPOLL_EVENT, 0, 0), &EpollEvent { count: 1, events: Rest(&rec) });
}

/// A registration ended (removed, or the poll failed).
pub(crate) fn epoll_done(core: &mut Core, ud: usize, reg: EpollReg, res: i32) {
    let conn = reg.conn;
    if res >= 0 && core.conns.get(conn).is_some_and(|c| !c.closing) {
        epoll_event_direct(core, conn, reg.cookie, res as u32);
    }
    // The registration holds a reference, so the connection is there.
    let Some(c) = core.conns.get_mut(conn) else {
        crate::log_limited!(tracing::Level::ERROR, conn, "epoll registration ended for a freed connection");
        return;
    };
    c.epolls.retain(|&u| u != ud);
    c.refs = c.refs.saturating_sub(1);
    if c.closing {
        core.close_conn(conn);
    }
}

fn epoll_event_direct(core: &mut Core, conn: usize, cookie: u64, events: u32) {
    let mut rec = [0u8; 12];
    EpollRec { events, cookie }.put(&mut rec);
    core.send_frame(conn, FrameHeader::message(Op::EPOLL_EVENT, 0, 0), &EpollEvent { count: 1, events: Rest(&rec) });
}

// ------------------------------------------------------------------ KILL / affinity

/// Process control (KILL, SCHED_*) carries no caller identity and acts with the engine's
/// authority, so it is gated three times: the operator's `--allow-kill`, the target's
/// name in `[Kill]`, and (unless `--kill-any-process`) the target having been started
/// through our stack, i.e. descending from a process named `rexec_server`. Opens a pidfd
/// first and confirms it still names a live process after the checks, so a pid reused in
/// between is never acted on; then runs `f`.
///
/// A thread id (a vCPU thread, as QMP reports it) stands for its process: the name in
/// `[Kill]`, the ancestry and the pidfd are the process's (a vCPU thread is named
/// `CPU 0/KVM`, its process `qemu-system-x86`), and the thread must still belong to that
/// process after the checks. `f` gets the process's pidfd (KILL signals the process, as
/// kill(2) of a thread id does); SCHED_* act on the number as given, i.e. on the thread.
fn with_checked_pid<T>(core: &Core, pid: i32, f: impl FnOnce(&OwnedFd) -> std::io::Result<T>) -> Result<T, i32> {
    if pid <= 0 {
        return Err(errno::EINVAL);
    }
    if !core.shared.cfg.allow_kill {
        tracing::info!(pid, "process control refused: the engine runs without --allow-kill");
        return Err(errno::EPERM);
    }
    creds::reset();
    let tgid = proc_tgid(pid).ok_or(errno::ESRCH)?;
    let pidfd = sys::pidfd_open(tgid).map_err(|e| sys::errno_of(&e))?;
    let comm = std::fs::read(format!("/proc/{tgid}/comm")).map_err(|e| sys::errno_of(&e))?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    if !core.wl.allows_comm(comm) {
        tracing::info!(pid, comm = %String::from_utf8_lossy(comm), "process control denied by [Kill]");
        return Err(errno::EPERM);
    }
    if !core.shared.cfg.kill_any_process && !started_by_rexec(pid) {
        tracing::info!(
            pid,
            comm = %String::from_utf8_lossy(comm),
            "process control denied: not started through rexec_server (see --kill-any-process)"
        );
        return Err(errno::EPERM);
    }
    sys::pidfd_send_signal(pidfd.as_fd(), 0).map_err(|e| sys::errno_of(&e))?;
    if pid != tgid && proc_tgid(pid) != Some(tgid) {
        return Err(errno::ESRCH);
    }
    f(&pidfd).map_err(|e| sys::errno_of(&e))
}

/// The command name of the server that starts processes for rexec.
const REXEC_SERVER_COMM: &[u8] = b"rexec_server";

/// Whether `pid` (a process; for a thread id, its process) descends from a process
/// named `rexec_server`. Walks the parent chain in /proc; anything unreadable (a process
/// that exited meanwhile, a hidden /proc) means no. A process re-parented to init or a
/// subreaper after its rexec_server ancestor died no longer counts.
fn started_by_rexec(pid: i32) -> bool {
    let Some(mut cur) = proc_tgid(pid) else { return false };
    // A parent chain is short; the bound only guards against a /proc that lies.
    for _ in 0..4096 {
        let Some((_, ppid)) = proc_comm_ppid(cur) else { return false };
        if ppid <= 0 {
            return false;
        }
        match proc_comm_ppid(ppid) {
            Some((comm, _)) if comm == REXEC_SERVER_COMM => return true,
            Some(_) => cur = ppid,
            None => return false,
        }
    }
    false
}

/// The process (thread-group id) a task id belongs to, from /proc/ID/status.
fn proc_tgid(tid: i32) -> Option<i32> {
    let status = std::fs::read(format!("/proc/{tid}/status")).ok()?;
    status.split(|&b| b == b'\n').find_map(|l| {
        let v = l.strip_prefix(b"Tgid:")?;
        std::str::from_utf8(v).ok()?.trim().parse().ok()
    })
}

/// The command name and parent pid of a process, from /proc/PID/stat: `pid (comm) state
/// ppid …`, where comm may itself hold spaces and parentheses (so it ends at the last `)`).
fn proc_comm_ppid(pid: i32) -> Option<(Vec<u8>, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?.to_vec();
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let ppid = rest.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some((comm, ppid))
}

// ------------------------------------------------------------------ IOCTL

/// IOCTL carries no identity on the wire, so it runs with the identity the handle was
/// opened with (mapped by its export's policy), as a local process's ioctl on its own
/// descriptor would: the permission checks of the setters (owner or CAP_FOWNER,
/// CAP_LINUX_IMMUTABLE) then see the caller, not whichever identity the worker thread
/// last held (HOST root after any root request).
fn ioctl_as_opener(f: &OpenFile, cmd: u32, arg: &[u8]) -> Result<Vec<u8>, i32> {
    creds::with_ident(&f.ident, || do_ioctl(f, cmd, arg)).map_err(|e| sys::errno_of(&e))?
}

fn do_ioctl(f: &OpenFile, cmd: u32, arg: &[u8]) -> Result<Vec<u8>, i32> {
    let fd = f.raw();
    let need = |n: usize| if arg.len() == n { Ok(()) } else { Err(errno::EINVAL) };
    let err = |e: std::io::Error| sys::errno_of(&e);
    let put = |rec: &dyn Fn(&mut [u8]), size: usize| {
        let mut out = vec![0u8; size];
        rec(&mut out);
        out
    };
    match cmd {
        ioc::TCGETS => {
            let t = sys::tcgets(fd).map_err(err)?;
            let mut cc = [0u8; 19];
            cc.copy_from_slice(&t.c_cc[..19]);
            let p = Termios {
                iflag: t.c_iflag,
                oflag: t.c_oflag,
                cflag: t.c_cflag,
                lflag: t.c_lflag,
                ispeed: t.c_ispeed,
                ospeed: t.c_ospeed,
                line: t.c_line,
                cc,
            };
            Ok(put(&|b| p.put(b), Termios::DESC.size))
        }
        ioc::TCSETS | ioc::TCSETSW | ioc::TCSETSF => {
            need(Termios::DESC.size)?;
            let p = Termios::get(arg);
            let mut t = sys::tcgets(fd).map_err(err)?;
            t.c_iflag = p.iflag;
            t.c_oflag = p.oflag;
            t.c_cflag = p.cflag;
            t.c_lflag = p.lflag;
            t.c_line = p.line;
            t.c_cc[..19].copy_from_slice(&p.cc);
            t.c_ispeed = p.ispeed;
            t.c_ospeed = p.ospeed;
            let when = match cmd {
                ioc::TCSETS => sys::TcsetWhen::Now,
                ioc::TCSETSW => sys::TcsetWhen::Drain,
                _ => sys::TcsetWhen::Flush,
            };
            sys::tcsets(fd, when, &t).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::TIOCGWINSZ => {
            let w = sys::get_winsize(fd).map_err(err)?;
            let p = Winsize { rows: w.ws_row, cols: w.ws_col, xpixel: w.ws_xpixel, ypixel: w.ws_ypixel };
            Ok(put(&|b| p.put(b), Winsize::DESC.size))
        }
        ioc::TIOCSWINSZ => {
            need(Winsize::DESC.size)?;
            let p = Winsize::get(arg);
            let w = libc::winsize { ws_row: p.rows, ws_col: p.cols, ws_xpixel: p.xpixel, ws_ypixel: p.ypixel };
            sys::set_winsize(fd, &w).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::FS_GETFLAGS => Ok(sys::fs_getflags(fd).map_err(err)?.to_le_bytes().to_vec()),
        ioc::FS_SETFLAGS => {
            need(4)?;
            let b = arg.first_chunk::<4>().ok_or(errno::EINVAL)?;
            sys::fs_setflags(fd, u32::from_le_bytes(*b)).map_err(err)?;
            Ok(Vec::new())
        }
        ioc::FS_FSGETXATTR => {
            let x = sys::fs_getxattr(fd).map_err(err)?;
            let p = Fsxattr { xflags: x[0], extsize: x[1], nextents: x[2], projid: x[3], cowextsize: x[4] };
            Ok(put(&|b| p.put(b), Fsxattr::DESC.size))
        }
        ioc::FS_FSSETXATTR => {
            need(Fsxattr::DESC.size)?;
            let p = Fsxattr::get(arg);
            sys::fs_setxattr(fd, [p.xflags, p.extsize, p.nextents, p.projid, p.cowextsize, 0, 0]).map_err(err)?;
            Ok(Vec::new())
        }
        // Anything else is refused without being executed.
        _ => Err(errno::ENOTTY),
    }
}
