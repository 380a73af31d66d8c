//! I/O on handles: READ, WRITE, FSYNC, FALLOCATE, LLSEEK, FIFO_POLL and CLOSE.
//!
//! A handle's operations run as its opener (ring personality, or `creds::with_ident`
//! for direct calls) after the whitelist group of their path form is checked on the
//! handle's real path (`gates::wl_handle`). By the handle's I/O mode ([`IoMode`]):
//! memory-backed files are read and written inline, cached data is read inline
//! (`RWF_NOWAIT`), FIFOs and terminals wait for readiness (`fifo`), everything else
//! goes through the ring. Growth is refused below the free-space floor.
//!
//! This module owns these operations and their one-step completions.

use std::os::fd::IntoRawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};
use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use super::common::{Req, as_opener, fail, finish, finish_empty, opener_personality, put_header, respond_built};
use super::gates::{growth, space_ok, wl_handle};
use super::req::FsReq;
use super::state::Ctx;
use super::steps::Step;
use super::{fifo, locks};
use crate::ring::UD_IGNORE;
use crate::session::{IoMode, OpenFile};
use crate::stats::Done;
use crate::sys;

/// READ.
pub(super) fn read(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<ReadReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    if let Err(e) = wl_handle(core, &rq.session, &f, WlType::Read) {
        return rq.reply_err(core, e);
    }
    let len = (m.len as usize).min(MAX_IO);
    if f.io == IoMode::Fifo {
        return fifo::read(core, rq, f, len);
    }
    let mut buf = core.r.bufs.get(HEADER_SIZE + len);
    if f.io != IoMode::Ring {
        // Inline when the read cannot wait: memory-backed, or cached data. The data goes
        // straight after the header space: no zeroing of what the read overwrites.
        buf.resize(HEADER_SIZE, 0);
        let nowait = f.io != IoMode::Memory;
        let res = as_opener(&f, || sys::pread_append(f.raw(), &mut buf, len, m.offset, nowait));
        match res {
            // A short RWF_NOWAIT read is not the end of the file when only part of the
            // range is cached: a short READ answer means EOF to every client (FUSE
            // shrinks the file's size to it), so the rest goes through the ring.
            Ok(n) if n < len && f.io != IoMode::Memory && !at_eof(&f, m.offset + n as u64) => {
                buf.truncate(HEADER_SIZE + n);
            }
            Ok(n) => {
                buf.truncate(HEADER_SIZE + n);
                put_header(&mut buf, FrameHeader::response(rq.h.op, rq.h.id, n as u32));
                let out = buf.len();
                core.r.respond_owned(rq.key, buf);
                core.r.record(Done {
                    op_index: rq.op.index() as u16,
                    ok: true,
                    bytes_in: rq.h.len,
                    bytes_out: out as u32,
                    latency_ns: rq.t0.elapsed().as_nanos() as u64,
                });
                return;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP)) => {
                buf.clear();
            }
            Err(e) => {
                core.r.bufs.put(buf);
                return rq.reply_err(core, sys::errno_of(&e));
            }
        }
    }
    // What the inline attempt read stays; the ring reads the rest after it.
    let got = buf.len().saturating_sub(HEADER_SIZE);
    let raw = f.raw();
    let Some(mut r) = begin_as_opener(core, rq, f, Step::Read { got }) else {
        return core.r.bufs.put(buf);
    };
    buf.resize(HEADER_SIZE + got, 0);
    // SAFETY: the buffer's capacity is at least HEADER_SIZE + len (bufs.get); the ring
    // writes at most `len - got` bytes after the `got` kept, and set_len is applied only
    // after the completion reports how many.
    let ptr = unsafe { buf.as_mut_ptr().add(HEADER_SIZE + got) };
    r.buf = buf;
    let e = opcode::Read::new(types::Fd(raw), ptr, (len - got) as u32).offset(m.offset + got as u64).build();
    core.submit_req(e, r);
}

/// READ: the ring read completed.
pub(super) fn read_done(core: &mut Ctx, mut r: Box<FsReq>, got: usize, res: i32) {
    // An error fails the whole READ, even after cached bytes: a short answer would be
    // taken for the end of the file.
    if res < 0 {
        return fail(core, r, -res);
    }
    let n = got + res as usize;
    let mut buf = std::mem::take(&mut r.buf);
    // SAFETY: the inline read initialised `got` bytes after the header space, and the
    // kernel wrote `res` more after them.
    unsafe { buf.set_len(HEADER_SIZE + n) };
    respond_built(core, r, buf, n);
}

/// Is `pos` at or beyond the end of the handle's file? (Unknown counts as not: the ring
/// read then finds out.)
fn at_eof(f: &OpenFile, pos: u64) -> bool {
    sys::fstat(f.raw()).is_ok_and(|st| pos >= st.st_size as u64)
}

/// WRITE.
pub(super) fn write(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<WriteReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    if let Err(e) = wl_handle(core, &rq.session, &f, WlType::Write) {
        return rq.reply_err(core, e);
    }
    if m.data.len() > MAX_IO {
        return rq.reply_err(core, errno::EINVAL);
    }
    if f.io == IoMode::Fifo {
        return fifo::write(core, rq, f, m.data.0);
    }
    let off = if f.is_append() { u64::MAX } else { m.offset };
    if let Err(e) = space_ok(core, f.raw(), growth(core, f.raw(), off, m.data.len() as u64)) {
        return rq.reply_err(core, e);
    }
    if f.io == IoMode::Memory {
        // A memory-backed write never waits for I/O: do it inline.
        let r = as_opener(&f, || sys::pwrite(f.raw(), m.data.0, off))
            .map(|n| WriteRsp { written: n as u32 })
            .map_err(|e| sys::errno_of(&e));
        return rq.reply(core, r);
    }
    let raw = f.raw();
    let Some(mut r) = begin_as_opener(core, rq, f, Step::Write) else { return };
    let mut buf = core.r.bufs.get(m.data.len());
    buf.extend_from_slice(m.data.0);
    let e = opcode::Write::new(types::Fd(raw), buf.as_ptr(), buf.len() as u32).offset(off).build();
    r.buf = buf;
    core.submit_req(e, r);
}

/// WRITE: the ring write completed.
pub(super) fn write_done(core: &mut Ctx, r: Box<FsReq>, res: i32) {
    if res < 0 {
        return fail(core, r, -res);
    }
    finish(core, r, &WriteRsp { written: res as u32 });
}

/// FSYNC.
pub(super) fn fsync(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<FsyncReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    let mut e = opcode::Fsync::new(types::Fd(f.raw()));
    if m.flags & consts::FSYNC_DATASYNC != 0 {
        e = e.flags(types::FsyncFlags::DATASYNC);
    }
    submit_sync(core, rq, f, e.build());
}

/// FALLOCATE.
pub(super) fn fallocate(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<FallocateReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    if let Err(e) = wl_handle(core, &rq.session, &f, WlType::Write) {
        return rq.reply_err(core, e);
    }
    // Every mode but punching a hole or collapsing a range may allocate.
    let frees = m.mode as i32 & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_COLLAPSE_RANGE) != 0;
    if !frees && let Err(e) = space_ok(core, f.raw(), m.len.max(1)) {
        return rq.reply_err(core, e);
    }
    let e = opcode::Fallocate::new(types::Fd(f.raw()), m.len).offset(m.offset).mode(m.mode as i32).build();
    submit_sync(core, rq, f, e);
}

/// Submits FSYNC's or FALLOCATE's ring operation as the handle's opener.
fn submit_sync(core: &mut Ctx, rq: &Req<'_>, f: Arc<OpenFile>, e: squeue::Entry) {
    if let Some(r) = begin_as_opener(core, rq, f, Step::Sync) {
        core.submit_req(e, r);
    }
}

/// Begins the request of a ring operation on handle `f`, at `step`, run with the
/// personality of the handle's opener; `None` once answered with the error.
fn begin_as_opener(core: &mut Ctx, rq: &Req<'_>, f: Arc<OpenFile>, step: Step) -> Option<Box<FsReq>> {
    let personality = match opener_personality(core, &f) {
        Ok(p) => p,
        Err(e) => {
            rq.reply_err(core, e);
            return None;
        }
    };
    let mut r = rq.begin(core);
    r.personality = personality;
    r.file = Some(f);
    r.step = step;
    Some(r)
}

/// FSYNC, FALLOCATE: the ring operation completed.
pub(super) fn sync_done(core: &mut Ctx, r: Box<FsReq>, res: i32) {
    if res < 0 {
        return fail(core, r, -res);
    }
    finish_empty(core, r);
}

/// LLSEEK.
pub(super) fn llseek(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<LlseekReq>(core) else { return };
    let r = match rq.session.file(m.handle) {
        None => Err(errno::EBADF),
        Some(_) if m.whence > 4 => Err(errno::EINVAL),
        Some(f) => as_opener(&f, || sys::lseek(f.raw(), m.offset, m.whence as i32))
            .map(|offset| LlseekRsp { offset })
            .map_err(|e| sys::errno_of(&e)),
    };
    rq.reply(core, r);
}

/// FIFO_POLL: a poll of the handle linked to a timeout.
pub(super) fn fifo_poll(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<PollReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    let mut r = rq.begin(core);
    r.ts = types::Timespec::new().sec((m.timeout_ms / 1000) as u64).nsec((m.timeout_ms % 1000) * 1_000_000);
    let poll = opcode::PollAdd::new(types::Fd(f.raw()), m.events).build().flags(squeue::Flags::IO_LINK);
    let ts: *const types::Timespec = &r.ts;
    r.file = Some(f);
    r.step = Step::Poll;
    core.submit_req(poll, r);
    core.r.push(opcode::LinkTimeout::new(ts).build().user_data(UD_IGNORE));
}

/// FIFO_POLL: the poll fired, timed out or was cancelled.
pub(super) fn poll_done(core: &mut Ctx, r: Box<FsReq>, res: i32) {
    if res == -libc::ECANCELED || res == -libc::ETIME {
        return finish(core, r, &PollRsp { revents: 0 });
    }
    if res < 0 {
        return fail(core, r, -res);
    }
    finish(core, r, &PollRsp { revents: res as u32 });
}

/// CLOSE: the handle leaves the session; its descriptor closes through the ring.
pub(super) fn close(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<HandleReq>(core) else { return };
    let f = rq.session.handles.write().remove(m.handle);
    let found = f.is_some();
    if found {
        locks::handle_closed(core, &rq.session, m.handle);
    }
    // The last reference closes through the ring (with the next submit); a file still
    // used by an in-flight request closes when that request drops it.
    if let Some(fd) = f.and_then(Arc::into_inner).map(|f| f.fd) {
        core.r.push(opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(UD_IGNORE));
    }
    rq.reply(core, if found { Ok(Empty {}) } else { Err(errno::EBADF) });
}
