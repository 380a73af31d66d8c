//! FIFOs and device nodes without blocking a worker thread.
//!
//! A blocking `open(2)` of a FIFO waits for the other end, and io_uring runs such an
//! open on one of its ring's worker threads (a few per CPU): a handful of opens of a
//! FIFO nobody writes to used to fill the pool, and every other client's uncached walk,
//! CREATE or fsync on that core queued behind them. So nothing on a FIFO ever waits in
//! a worker:
//!
//! - FIFOs and devices are opened inline with `O_NONBLOCK`, which never waits (a FIFO's
//!   read end opens at once; its write end fails with ENXIO while there is no reader).
//! - A client that did not ask for `O_NONBLOCK` still gets blocking semantics, emulated
//!   on the ring: a read end waits until a writer is connected, data is waiting or a
//!   writer came and went ([`sys::fifo_reader_ready`]), a write end until a reader
//!   opens; both re-check on an `IORING_OP_TIMEOUT` (10 ms doubling to 200 ms) for at
//!   most [`OPEN_WAIT`], then fail: EAGAIN for a read end, ENXIO for a write end (what
//!   an `O_NONBLOCK` open reports). A waiting open holds the FIFO's descriptor (for a
//!   read end), so writers meanwhile see a reader, as with a blocked `open(2)`. Closing
//!   the connection cancels the timer.
//! - A FIFO's descriptor stays `O_NONBLOCK` ([`IoMode::Fifo`](crate::session::IoMode::Fifo)): READ and WRITE run
//!   inline and, for a blocking client, wait with `IORING_OP_POLL_ADD` (no worker) and
//!   retry; a blocking WRITE is complete (all bytes, or the error after a partial write
//!   is reported as the count written).
//! - Terminals (a pty slave under `/dev/pts`, the console of a VM whose qemu runs here)
//!   are treated as FIFOs ([`pollable`]): their descriptor stays `O_NONBLOCK` and a
//!   blocking READ waits for input with `IORING_OP_POLL_ADD`, not in an io-wq worker,
//!   where a console nobody types into used to hold a worker for as long as the client
//!   kept reading. FIFO_POLL and EPOLL_CTL on them are poll-armed ring operations too.
//! - Other device nodes (opened only where `--allow-devices` names them) get `O_NONBLOCK`
//!   cleared after the open unless the client asked for it: their I/O goes through the
//!   ring as before (a driver need not honour `O_NONBLOCK`, and one that ignored it would
//!   block the core itself if read inline).

//!
//! This module owns the FIFO and terminal waits: the non-blocking opens (for `open`,
//! which answers with the descriptor) and the readiness waits of READ and WRITE.

// Reached by bytes from untrusted peers: a slip must fail a request, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types};
use qtfs_proto::consts::errno;
use qtfs_proto::*;

use super::common::{Req, fail, finish, respond_built};
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{FifoIo, OpenStep, SpecialOpen, Step};
use crate::creds;
use crate::session::OpenFile;
use crate::sys;

/// How long an open of a FIFO waits for its other end.
pub(crate) const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens the FIFO or device node `open` checked (its `/proc/self/fd` path is string
/// `sp.path`, `sp.flags` the flags to open with). Returns the request and the open
/// descriptor for `open` to answer with, or None when the request waits
/// ([`OpenStep::SpecialWait`]) or was answered (an error).
pub(super) fn open_special(core: &mut Ctx, r: Box<FsReq>, sp: SpecialOpen) -> Option<(Box<FsReq>, OwnedFd)> {
    try_open(core, r, sp)
}

/// Whether an open object of type `kind` (`S_IFMT` bits) on `fd` is read and written
/// inline with readiness waits ([`IoMode::Fifo`](crate::session::IoMode::Fifo)): FIFOs, and character devices that are
/// terminals (`TCGETS` succeeds: every tty driver honours `O_NONBLOCK` and `poll`).
pub(super) fn pollable(kind: u32, fd: RawFd) -> bool {
    // SAFETY: isatty only issues an ioctl on the descriptor, which the caller owns.
    kind == libc::S_IFIFO || (kind == libc::S_IFCHR && unsafe { libc::isatty(fd) } == 1)
}

/// Whether the client asked for `O_NONBLOCK`.
fn client_nonblock(sp: &SpecialOpen) -> bool {
    sp.args.flags & libc::O_NONBLOCK != 0
}

fn try_open(core: &mut Ctx, mut r: Box<FsReq>, sp: SpecialOpen) -> Option<(Box<FsReq>, OwnedFd)> {
    if let Some(fd) = r.fd.take() {
        // A read end waiting for a writer: opened already.
        return opened(core, r, sp, fd);
    }
    let res = creds::with_ident(&r.ident, || {
        sys::openat2(libc::AT_FDCWD, r.cstr(sp.path), sp.flags | libc::O_NONBLOCK, 0, 0)
    });
    match res {
        Ok(Ok(fd)) => opened(core, r, sp, fd),
        Ok(Err(e)) | Err(e) => {
            let e = sys::errno_of(&e);
            if e == libc::ENXIO && sp.kind == libc::S_IFIFO && !client_nonblock(&sp) {
                wait(core, r, sp, libc::ENXIO);
            } else {
                fail(core, r, e);
            }
            None
        }
    }
}

fn opened(core: &mut Ctx, mut r: Box<FsReq>, sp: SpecialOpen, fd: OwnedFd) -> Option<(Box<FsReq>, OwnedFd)> {
    let nb = client_nonblock(&sp);
    if sp.kind == libc::S_IFIFO {
        if !nb && sp.flags & libc::O_ACCMODE == libc::O_RDONLY && !sys::fifo_reader_ready(fd.as_raw_fd()) {
            r.fd = Some(fd);
            wait(core, r, sp, libc::EAGAIN);
            return None;
        }
    } else if !nb
        && !pollable(sp.kind, fd.as_raw_fd())
        && let Err(e) = sys::clear_nonblock(fd.as_raw_fd())
    {
        fail(core, r, sys::errno_of(&e));
        return None;
    }
    Some((r, fd))
}

/// Waits on a ring timer for the FIFO's other end; `give_up` is the error once
/// [`OPEN_WAIT`] has passed.
fn wait(core: &mut Ctx, mut r: Box<FsReq>, mut sp: SpecialOpen, give_up: i32) {
    if r.t0.elapsed() >= OPEN_WAIT {
        return fail(core, r, give_up);
    }
    let round = sp.rounds.min(5);
    sp.rounds += 1;
    r.ts = types::Timespec::new().nsec((10_000_000u32 << round).min(200_000_000));
    r.step = Step::Open(OpenStep::SpecialWait(sp));
    let e = opcode::Timeout::new(&r.ts).build();
    core.submit_req(e, r);
}

/// The timer of a waiting open fired (-ETIME) or was cancelled (the connection closes):
/// try again. As [`open_special`].
pub(super) fn open_wait_done(
    core: &mut Ctx,
    r: Box<FsReq>,
    sp: SpecialOpen,
    res: i32,
) -> Option<(Box<FsReq>, OwnedFd)> {
    if res != -libc::ETIME && res < 0 {
        fail(core, r, -res);
        return None;
    }
    try_open(core, r, sp)
}

// READ/WRITE: r.buf is the frame (READ: header space, then the data) or the data
// (WRITE); what is wanted and done travels in the step ([`FifoIo`]).

/// READ of a FIFO handle.
pub(super) fn read(core: &mut Ctx, rq: &Req<'_>, f: Arc<OpenFile>, len: usize) {
    let mut r = rq.begin(core);
    let mut buf = core.r.bufs.get(HEADER_SIZE + len);
    buf.resize(HEADER_SIZE + len, 0);
    r.buf = buf;
    r.file = Some(f);
    read_now(core, r, len);
}

fn read_now(core: &mut Ctx, mut r: Box<FsReq>, len: usize) {
    let Some(f) = r.file.clone() else { return fail(core, r, errno::EBADF) };
    match sys::read(f.raw(), r.buf.get_mut(HEADER_SIZE..HEADER_SIZE + len).unwrap_or_default()) {
        Ok(n) => {
            let mut buf = std::mem::take(&mut r.buf);
            buf.truncate(HEADER_SIZE + n);
            respond_built(core, r, buf, n);
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !f.is_nonblock() => {
            poll(core, r, f.raw(), libc::POLLIN, FifoIo::Read { len })
        }
        Err(e) => fail(core, r, sys::errno_of(&e)),
    }
}

/// WRITE of a FIFO handle.
pub(super) fn write(core: &mut Ctx, rq: &Req<'_>, f: Arc<OpenFile>, data: &[u8]) {
    let mut r = rq.begin(core);
    let mut buf = core.r.bufs.get(data.len());
    buf.extend_from_slice(data);
    r.buf = buf;
    r.file = Some(f);
    write_now(core, r, data.len(), 0);
}

fn write_now(core: &mut Ctx, r: Box<FsReq>, len: usize, mut done: usize) {
    let Some(f) = r.file.clone() else { return fail(core, r, errno::EBADF) };
    loop {
        if done >= len && (done > 0 || len == 0) {
            return finish(core, r, &WriteRsp { written: done as u32 });
        }
        match sys::write(f.raw(), r.buf.get(done..).unwrap_or_default()) {
            Ok(n) => {
                done += n;
                if f.is_nonblock() || n == 0 {
                    return finish(core, r, &WriteRsp { written: done as u32 });
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !f.is_nonblock() => {
                return poll(core, r, f.raw(), libc::POLLOUT, FifoIo::Write { len, done });
            }
            Err(_) if done > 0 => return finish(core, r, &WriteRsp { written: done as u32 }),
            Err(e) => return fail(core, r, sys::errno_of(&e)),
        }
    }
}

fn poll(core: &mut Ctx, mut r: Box<FsReq>, fd: RawFd, events: i16, io: FifoIo) {
    r.step = Step::FifoIo(io);
    let e = opcode::PollAdd::new(types::Fd(fd), events as u32).build();
    core.submit_req(e, r);
}

/// The readiness wait of a READ or WRITE completed (or was cancelled).
pub(super) fn io_ready(core: &mut Ctx, r: Box<FsReq>, io: FifoIo, res: i32) {
    if res < 0 {
        return fail(core, r, -res);
    }
    match io {
        FifoIo::Read { len } => read_now(core, r, len),
        FifoIo::Write { len, done } => write_now(core, r, len, done),
    }
}
