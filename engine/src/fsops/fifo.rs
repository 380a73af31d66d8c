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
//! - A FIFO's descriptor stays `O_NONBLOCK` ([`IoMode::Fifo`]): READ and WRITE run
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

// Reached by bytes from untrusted peers: a slip must fail a request, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

use super::*;

/// How long an open of a FIFO waits for its other end.
pub(crate) const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// `r.step` of an open waiting for the FIFO's other end (a timer in flight).
pub(super) const STEP_OPEN_WAIT: u8 = 4;
/// `r.step` of a READ/WRITE waiting for readiness (a POLL_ADD in flight).
pub(super) const STEP_IO_WAIT: u8 = 7;

// Open: r.u[0] client flags, r.u[4] file kind, r.u[5] index of the /proc path, r.u[6]
// open flags, r.u[7] timer rounds so far.

/// Opens the FIFO or device node checked in `open_step` (its `/proc/self/fd` path is
/// string `i`, `f` the flags to open with).
pub(super) fn open_special(core: &mut Core, mut r: Box<FsReq>, i: usize, f: i32, kind: u32) {
    r.u[4] = kind as u64;
    r.u[5] = i as u64;
    r.u[6] = f as u64;
    r.u[7] = 0;
    try_open(core, r);
}

/// Whether an open object of type `kind` (`S_IFMT` bits) on `fd` is read and written
/// inline with readiness waits ([`IoMode::Fifo`]): FIFOs, and character devices that are
/// terminals (`TCGETS` succeeds: every tty driver honours `O_NONBLOCK` and `poll`).
pub(super) fn pollable(kind: u32, fd: RawFd) -> bool {
    // SAFETY: isatty only issues an ioctl on the descriptor, which the caller owns.
    kind == libc::S_IFIFO || (kind == libc::S_IFCHR && unsafe { libc::isatty(fd) } == 1)
}

fn client_nonblock(r: &FsReq) -> bool {
    r.u[0] as i32 & libc::O_NONBLOCK != 0
}

fn try_open(core: &mut Core, mut r: Box<FsReq>) {
    let kind = r.u[4] as u32;
    let f = r.u[6] as i32;
    let i = r.u[5] as usize;
    if let Some(fd) = r.fd.take() {
        // A read end waiting for a writer: opened already.
        return opened(core, r, fd, kind);
    }
    let res = creds::with_ident(&r.ident, || sys::openat2(libc::AT_FDCWD, r.cstr(i), f | libc::O_NONBLOCK, 0, 0));
    match res {
        Ok(Ok(fd)) => opened(core, r, fd, kind),
        Ok(Err(e)) | Err(e) => {
            let e = sys::errno_of(&e);
            if e == libc::ENXIO && kind == libc::S_IFIFO && !client_nonblock(&r) {
                return wait(core, r, libc::ENXIO);
            }
            fail(core, r, e)
        }
    }
}

fn opened(core: &mut Core, mut r: Box<FsReq>, fd: OwnedFd, kind: u32) {
    let nb = client_nonblock(&r);
    if kind == libc::S_IFIFO {
        if !nb && r.u[6] as i32 & libc::O_ACCMODE == libc::O_RDONLY && !sys::fifo_reader_ready(fd.as_raw_fd()) {
            r.fd = Some(fd);
            return wait(core, r, libc::EAGAIN);
        }
    } else if !nb
        && !pollable(kind, fd.as_raw_fd())
        && let Err(e) = sys::clear_nonblock(fd.as_raw_fd())
    {
        return fail(core, r, sys::errno_of(&e));
    }
    r.step = 2;
    r.dirfd = None;
    open_completed(core, r, fd);
}

/// Waits on a ring timer for the FIFO's other end; `give_up` is the error once
/// [`OPEN_WAIT`] has passed.
fn wait(core: &mut Core, mut r: Box<FsReq>, give_up: i32) {
    if r.t0.elapsed() >= OPEN_WAIT {
        return fail(core, r, give_up);
    }
    let round = r.u[7].min(5);
    r.u[7] += 1;
    r.ts = types::Timespec::new().nsec((10_000_000u32 << round).min(200_000_000));
    r.step = STEP_OPEN_WAIT;
    let e = opcode::Timeout::new(&r.ts).build();
    core.submit_req(e, r);
}

/// The timer of a waiting open fired (-ETIME) or was cancelled (the connection closes).
pub(super) fn open_wait_done(core: &mut Core, r: Box<FsReq>, res: i32) {
    if res != -libc::ETIME && res < 0 {
        return fail(core, r, -res);
    }
    try_open(core, r);
}

// READ/WRITE: r.u[0] bytes wanted, r.u[1] bytes written so far (WRITE), r.buf the frame
// (READ: header space, then the data) or the data (WRITE).

/// READ of a FIFO handle.
pub(super) fn read(core: &mut Core, key: usize, h: &FrameHeader, session: &Arc<Session>, f: Arc<OpenFile>, len: usize) {
    let mut r = begin(core, key, h, Op::READ, session);
    let mut buf = core.bufs.get(HEADER_SIZE + len);
    buf.resize(HEADER_SIZE + len, 0);
    r.buf = buf;
    r.u[0] = len as u64;
    r.file = Some(f);
    read_now(core, r);
}

fn read_now(core: &mut Core, mut r: Box<FsReq>) {
    let Some(f) = r.file.clone() else { return fail(core, r, errno::EBADF) };
    let len = r.u[0] as usize;
    match sys::read(f.raw(), r.buf.get_mut(HEADER_SIZE..HEADER_SIZE + len).unwrap_or_default()) {
        Ok(n) => {
            let mut buf = std::mem::take(&mut r.buf);
            buf.truncate(HEADER_SIZE + n);
            respond_read(core, r, buf, n);
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !f.is_nonblock() => poll(core, r, f.raw(), libc::POLLIN),
        Err(e) => fail(core, r, sys::errno_of(&e)),
    }
}

/// WRITE of a FIFO handle.
pub(super) fn write(
    core: &mut Core,
    key: usize,
    h: &FrameHeader,
    session: &Arc<Session>,
    f: Arc<OpenFile>,
    data: &[u8],
) {
    let mut r = begin(core, key, h, Op::WRITE, session);
    let mut buf = core.bufs.get(data.len());
    buf.extend_from_slice(data);
    r.buf = buf;
    r.u[0] = data.len() as u64;
    r.u[1] = 0;
    r.file = Some(f);
    write_now(core, r);
}

fn write_now(core: &mut Core, mut r: Box<FsReq>) {
    let Some(f) = r.file.clone() else { return fail(core, r, errno::EBADF) };
    loop {
        let done = r.u[1] as usize;
        if done >= r.u[0] as usize && (done > 0 || r.u[0] == 0) {
            return finish(core, r, &WriteRsp { written: done as u32 });
        }
        match sys::write(f.raw(), r.buf.get(done..).unwrap_or_default()) {
            Ok(n) => {
                r.u[1] += n as u64;
                if f.is_nonblock() || n == 0 {
                    let w = r.u[1] as u32;
                    return finish(core, r, &WriteRsp { written: w });
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !f.is_nonblock() => {
                return poll(core, r, f.raw(), libc::POLLOUT);
            }
            Err(_) if done > 0 => return finish(core, r, &WriteRsp { written: done as u32 }),
            Err(e) => return fail(core, r, sys::errno_of(&e)),
        }
    }
}

fn poll(core: &mut Core, mut r: Box<FsReq>, fd: RawFd, events: i16) {
    r.step = STEP_IO_WAIT;
    let e = opcode::PollAdd::new(types::Fd(fd), events as u32).build();
    core.submit_req(e, r);
}

/// The readiness wait of a READ or WRITE completed (or was cancelled).
pub(super) fn io_ready(core: &mut Core, r: Box<FsReq>, res: i32) {
    if res < 0 {
        return fail(core, r, -res);
    }
    if r.op == Op::READ { read_now(core, r) } else { write_now(core, r) }
}
