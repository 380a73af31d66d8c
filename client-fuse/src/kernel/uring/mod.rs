//! FUSE over io_uring: one queue of a FUSE connection (one io_uring, `depth` ring entries
//! with their buffers) and the loop that serves it ([`UringQueue::run`]).
//!
//! This module owns the io_uring transport only: the ring ABI of the kernel (the
//! `fuse_uring_*` structures and commands of `include/uapi/linux/fuse.h`, protocol 7.42+),
//! the buffers the kernel writes requests into and reads replies from, and the
//! REGISTER / COMMIT_AND_FETCH cycle. Parsing a request and building a reply body stay
//! with the protocol layer: a handler gets the request as byte slices and writes the
//! reply body into a buffer ([`UringQueue::run`], on the queue's thread), or a worker
//! gets it as a [`RingEntry`] and answers later from any thread
//! ([`UringQueue::run_async`], module `pending`: what qtfs-fuse's sessions use).
//!
//! ## Why the `io-uring` crate and this ABI
//!
//! The workspace already builds on [`io_uring`] 0.7 (the engine's thread-per-core
//! server). It supports 128-byte SQEs (`IoUring<squeue::Entry128, cqueue::Entry>` sets
//! `IORING_SETUP_SQE128`) and `opcode::UringCmd80`, the `IORING_OP_URING_CMD` with an
//! 80-byte command area. FUSE needs exactly that: its command, `struct
//! fuse_uring_cmd_req` (24 bytes), lives in the SQE's command area, and
//! `fuse_uring_cmd()` (fs/fuse/dev_uring.c) refuses a ring without `SQE128` (`-EINVAL`).
//! The one thing `UringCmd80` cannot set is `sqe->len`, which REGISTER needs (the number
//! of iovecs, 2); `with_sqe_len` writes it into the built entry.
//!
//! ## The kernel's rules (verified against fs/fuse/dev_uring.c of 6.18)
//!
//! - **INIT**: the kernel offers `FUSE_OVER_IO_URING` (bit 41 of the 64-bit INIT flags,
//!   bit 9 of `flags2`) only while the `fuse` module parameter `enable_uring` is `Y`; the
//!   server answers with `FUSE_INIT_EXT` and that bit in `flags2`. A REGISTER before the
//!   INIT reply fails with `-EAGAIN` (`fc->initialized` is still 0).
//! - **One queue per possible CPU**: the ring has `num_possible_cpus()` queues, and a
//!   request goes to the queue of the CPU its task runs on (`task_cpu(current)`). The
//!   connection switches to io_uring only when *every* queue `0..nr_queues` has at least
//!   one registered entry (`is_ring_ready()`); until then requests still go through
//!   `/dev/fuse`. Worse, once INIT said `FUSE_OVER_IO_URING`, new requests *wait* for the
//!   ring to be ready (`fuse_block_alloc()`): a server that sets the flag must register
//!   all queues (count the CPUs in `/sys/devices/system/cpu/possible`, not the online
//!   ones), or the mount hangs. A failed REGISTER drops the connection back to
//!   `/dev/fuse` (`fc->io_uring = 0`).
//! - **What still uses `/dev/fuse`**: INIT; any request queued before the ring was ready;
//!   FORGET / BATCH_FORGET and INTERRUPT (`fuse_io_uring_ops` keeps the `/dev/fuse`
//!   `send_forget` / `send_interrupt`); and every notification the server sends
//!   (`unique == 0`; a ring commit with `unique == 0` is refused with `-EINVAL`). So a
//!   server keeps one `/dev/fuse` reader next to the rings.
//! - **REGISTER**: `sqe->addr` points to an array of 2 iovecs, `sqe->len` must be 2;
//!   iov[0] is the `fuse_uring_req_header` (at least 288 bytes), iov[1] the payload buffer,
//!   at least `max(FUSE_MIN_READ_BUFFER, max_write, max_pages * PAGE_SIZE)` bytes
//!   ([`min_payload_size`]) or `-EINVAL`. The kernel keeps both user addresses for the
//!   life of the connection: the buffers must never move or be freed while registered.
//! - **A request** completes the pending command with result 0: the kernel has written
//!   the `fuse_in_header` into `in_out`, the request's first argument (the per-opcode
//!   struct, e.g. `fuse_read_in`; empty for LOOKUP, whose name is in the payload) into
//!   `op_in`, the other arguments (names, WRITE data) into the payload, and
//!   `ring_ent_in_out` = { commit_id = the request's unique, payload_sz }.
//!   `in_header.len` = 40 + op-args + payload, so the op-args length is
//!   `len - 40 - payload_sz` ([`RingRequest::op_in`]).
//! - **A reply** is COMMIT_AND_FETCH with that `commit_id` and the queue id in the command:
//!   the kernel reads the `fuse_out_header` from `in_out` (its `unique` must be the
//!   request's, its `error` 0 or a negative errno), the body from the payload buffer,
//!   `ring_ent_in_out.payload_sz` bytes of it; then the entry waits for the next request.
//! - **Task context**: the kernel copies a request into the buffers from task work of the
//!   task that submitted the command (`io_uring_cmd_complete_in_task`), so the thread that
//!   registers must be the thread that waits for completions: [`UringQueue::run`]
//!   registers on its own thread. No `IORING_SETUP_SINGLE_ISSUER` / `DEFER_TASKRUN`
//!   (they would pin the ring to the thread that created it, and libfuse measured them
//!   slower); `COOP_TASKRUN` keeps the kernel's task work from interrupting the handler's
//!   own blocking calls (it runs when the thread waits in `io_uring_enter`, which is where
//!   this loop waits).
//! - **End**: at unmount or abort the kernel tears the entries down and completes each
//!   pending command with `-ENOTCONN` (`-ECANCELED` if the task is dying,
//!   `-ECONNABORTED`/`-ENODEV` on an aborted connection); a commit after that fails with
//!   `-ENOTCONN`. `run` returns once every entry has ended that way.

use std::alloc::{self, Layout};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

mod abi;
mod pending;
pub use abi::*;
pub use pending::{Completions, RingEntry};

/// A request taken from a ring entry. The slices point into the entry's buffers.
#[derive(Debug)]
pub struct RingRequest<'a> {
    qid: u16,
    in_header: &'a [u8],
    op_in: &'a [u8],
    payload: &'a [u8],
}

impl<'a> RingRequest<'a> {
    /// The queue the request came through.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// The `fuse_in_header`, [`FUSE_IN_HEADER_LEN`] bytes.
    pub fn in_header(&self) -> &'a [u8] {
        self.in_header
    }

    /// The request's first argument, the per-opcode struct (`fuse_read_in`, ...): the
    /// `len - 40 - payload_sz` first bytes of `op_in` (empty for LOOKUP and the other
    /// opcodes whose first argument is a name); all 128 bytes when the header's `len` does
    /// not add up.
    pub fn op_in(&self) -> &'a [u8] {
        self.op_in
    }

    /// The other arguments (names, WRITE data), `payload_sz` bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// `in_header.len`.
    pub fn len(&self) -> u32 {
        read_u32(self.in_header, 0)
    }

    /// Whether `in_header.len` is 0 (never for a real request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `in_header.opcode`.
    pub fn opcode(&self) -> u32 {
        read_u32(self.in_header, 4)
    }

    /// `in_header.unique`.
    pub fn unique(&self) -> u64 {
        read_u64(self.in_header, 8)
    }

    /// `in_header.nodeid`.
    pub fn nodeid(&self) -> u64 {
        read_u64(self.in_header, 16)
    }

    /// `in_header.uid`.
    pub fn uid(&self) -> u32 {
        read_u32(self.in_header, 24)
    }

    /// `in_header.gid`.
    pub fn gid(&self) -> u32 {
        read_u32(self.in_header, 28)
    }

    /// `in_header.pid`.
    pub fn pid(&self) -> u32 {
        read_u32(self.in_header, 32)
    }
}

/// The reply to a [`RingRequest`]: an error, or a body written into `buffer()`. Until the
/// handler says otherwise the reply is `ENOSYS`.
///
/// The kernel reads the body from the entry's payload buffer. A request without payload
/// (READ, GETATTR, ...) gets that buffer itself, so READ data is written in place; while a
/// request's payload (a name, WRITE data) is being read, the payload buffer still holds it,
/// so the reply goes to a buffer of the queue and is copied after the handler returns
/// (replies to such requests are small: entries, attributes, `fuse_write_out`).
#[derive(Debug)]
pub struct RingReply<'a> {
    buf: &'a mut [u8],
    len: usize,
    error: i32,
}

/// A reply body larger than the entry's payload buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTooLarge {
    /// The body's size.
    pub len: usize,
    /// The buffer's size.
    pub capacity: usize,
}

impl std::fmt::Display for ReplyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reply body of {} bytes exceeds the ring payload buffer ({} bytes)", self.len, self.capacity)
    }
}

impl std::error::Error for ReplyTooLarge {}

impl RingReply<'_> {
    /// Answer with an error: `errno` positive (`libc::ENOENT`). 0 is the same as
    /// `ok_empty`; a value outside `1..512` becomes `EIO` (the kernel refuses it).
    pub fn error(&mut self, errno: i32) {
        self.len = 0;
        self.error = if errno == 0 {
            0
        } else if (1..512).contains(&errno) {
            -errno
        } else {
            -libc::EIO
        };
    }

    /// Answer with success and no body (FLUSH, RELEASE, ...).
    pub fn ok_empty(&mut self) {
        self.len = 0;
        self.error = 0;
    }

    /// Answer with success and this body (copied into the payload buffer).
    pub fn data(&mut self, body: &[u8]) -> Result<(), ReplyTooLarge> {
        let capacity = self.buf.len();
        let dst = self.buf.get_mut(..body.len()).ok_or(ReplyTooLarge { len: body.len(), capacity })?;
        dst.copy_from_slice(body);
        self.len = body.len();
        self.error = 0;
        Ok(())
    }

    /// The whole reply buffer, to write a body in place (READ data); then [`set_len`].
    ///
    /// [`set_len`]: Self::set_len
    pub fn buffer(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Answer with success and the first `len` bytes of [`buffer`](Self::buffer).
    pub fn set_len(&mut self, len: usize) -> Result<(), ReplyTooLarge> {
        if len > self.buf.len() {
            return Err(ReplyTooLarge { len, capacity: self.buf.len() });
        }
        self.len = len;
        self.error = 0;
        Ok(())
    }

    /// The size of the reply buffer (the queue's payload size).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// What an entry's command in the kernel is, or that it has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntState {
    /// Not registered yet.
    Idle,
    /// REGISTER submitted, no request yet.
    Registered,
    /// COMMIT_AND_FETCH submitted for this commit id.
    Committed(u64),
    /// Holding the request of this commit id, handed to a worker as a [`RingEntry`]
    /// ([`UringQueue::run_async`]): its buffers belong to that entry until it comes back.
    Serving(u64),
    /// The kernel ended the entry (or it failed): its buffers are no longer used.
    Ended,
}

/// One FUSE-over-io_uring queue: an io_uring, `depth` ring entries each with a
/// `fuse_uring_req_header` and a payload buffer, registered on queue `qid` of the
/// connection of `fuse_fd`. Serve it with [`run`](Self::run) on the thread that should
/// handle the queue's requests (one thread per queue; the kernel routes a request to the
/// queue of the CPU its caller runs on).
///
/// The buffers are raw allocations at fixed addresses, owned by the queue; if the queue is
/// dropped while the kernel may still use them (some entry has not ended), they are leaked
/// rather than freed.
pub struct UringQueue {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    fuse_fd: OwnedFd,
    qid: u16,
    depth: usize,
    payload_size: usize,
    /// `depth` headers, one allocation.
    headers: NonNull<FuseUringReqHeader>,
    headers_layout: Layout,
    /// One page-aligned payload buffer per entry.
    payloads: Vec<NonNull<u8>>,
    payload_layout: Layout,
    /// `[header, payload]` per entry, read by the kernel at REGISTER.
    iovecs: Box<[[libc::iovec; 2]]>,
    state: Vec<EntState>,
    /// Entries not [`EntState::Ended`].
    live: usize,
    /// Reply buffer for requests that carry a payload (the payload buffer then still
    /// holds the request while the handler writes the reply).
    scratch: Vec<u8>,
    first_error: Option<io::Error>,
    eagain_tries: u32,
    /// Some entry ended because the connection did (unmount, abort).
    conn_ended: bool,
}

// SAFETY: the raw pointers point to allocations owned by this queue alone (nothing else
// holds them but the kernel, through the registration); moving the queue to another
// thread moves that ownership. The ring is not pinned to a thread (no SINGLE_ISSUER).
unsafe impl Send for UringQueue {}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue")
            .field("qid", &self.qid)
            .field("depth", &self.depth)
            .field("payload_size", &self.payload_size)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl UringQueue {
    /// A queue for `fuse_fd` (the session's `/dev/fuse` descriptor or a clone; it is
    /// duplicated, the caller keeps its own): `depth` entries of `payload_size` bytes
    /// (at least [`min_payload_size`] of the INIT reply, else REGISTER fails with
    /// `EINVAL`). Nothing is submitted yet: [`run`](Self::run) registers the entries.
    pub fn new(fuse_fd: RawFd, qid: u16, depth: u16, payload_size: usize) -> io::Result<Self> {
        if depth == 0 || payload_size == 0 || payload_size > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fuse io_uring queue: depth and payload size must be positive (payload < 4 GiB)",
            ));
        }
        // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor and touches no memory; a bad
        // fd gives -1 (checked).
        let dup = unsafe { libc::fcntl(fuse_fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor that nothing else owns.
        let fuse_fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let depth_n = usize::from(depth);
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_cqsize(u32::from(depth) * 2)
            .setup_submit_all()
            .setup_coop_taskrun()
            .build(u32::from(depth) + 1)?;

        let payload_layout = Layout::from_size_align(payload_size, page_size().max(8))
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let headers_layout =
            Layout::array::<FuseUringReqHeader>(depth_n).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: the layout has a non-zero size (depth > 0, the header is 288 bytes).
        let headers = unsafe { alloc::alloc_zeroed(headers_layout) }.cast::<FuseUringReqHeader>();
        let Some(headers) = NonNull::new(headers) else {
            alloc::handle_alloc_error(headers_layout);
        };
        let mut queue = UringQueue {
            ring,
            fuse_fd,
            qid,
            depth: depth_n,
            payload_size,
            headers,
            headers_layout,
            payloads: Vec::with_capacity(depth_n),
            payload_layout,
            iovecs: Box::default(),
            state: vec![EntState::Idle; depth_n],
            live: depth_n,
            scratch: Vec::new(),
            first_error: None,
            eagain_tries: 0,
            conn_ended: false,
        };
        for _ in 0..depth_n {
            // SAFETY: the layout has a non-zero size (payload_size > 0).
            let p = unsafe { alloc::alloc_zeroed(payload_layout) };
            let Some(p) = NonNull::new(p) else {
                alloc::handle_alloc_error(payload_layout);
            };
            // Pushed at once so that Drop frees it on any later failure.
            queue.payloads.push(p);
        }
        queue.iovecs = (0..depth_n)
            .map(|i| {
                [
                    libc::iovec { iov_base: queue.header_ptr(i).cast(), iov_len: size_of::<FuseUringReqHeader>() },
                    libc::iovec { iov_base: queue.payloads[i].as_ptr().cast(), iov_len: payload_size },
                ]
            })
            .collect();
        Ok(queue)
    }

    /// The queue id.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// The number of ring entries.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The size of each entry's payload buffer.
    pub fn payload_size(&self) -> usize {
        self.payload_size
    }

    /// Registers the entries that are not yet (on the calling thread: the one that must
    /// then wait for the completions), then serves requests: each one is given to
    /// `handler`, its reply committed, and the entry waits for the next request.
    ///
    /// Returns `Ok(())` once the kernel has ended every entry because the connection
    /// ended (unmount, abort: `ENOTCONN`, `ENODEV`, `ECANCELED`, `ECONNABORTED`), and the
    /// first other error of an entry (REGISTER refused: `EINVAL` for a too small payload
    /// buffer, `EOPNOTSUPP` with io_uring disabled) once every entry has ended. An error
    /// of the ring itself returns at once.
    pub fn run<F>(&mut self, handler: &mut F) -> io::Result<()>
    where
        F: FnMut(&RingRequest<'_>, &mut RingReply<'_>),
    {
        for idx in 0..self.depth {
            if self.state[idx] == EntState::Idle {
                self.push_register(idx)?;
            }
        }
        let mut done: Vec<(u64, i32)> = Vec::with_capacity(self.depth * 2);
        while self.live > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: drain it below, then submit again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            done.clear();
            done.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            for &(user_data, res) in &done {
                if let Some(idx) = self.complete(user_data, res)? {
                    self.serve(idx, handler)?;
                }
            }
        }
        match self.first_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn header_ptr(&self, idx: usize) -> *mut FuseUringReqHeader {
        debug_assert!(idx < self.depth);
        // SAFETY: idx < depth, so the offset stays inside the `depth`-element allocation.
        unsafe { self.headers.as_ptr().add(idx) }
    }

    fn end_entry(&mut self, idx: usize, error: Option<io::Error>) {
        if self.state[idx] != EntState::Ended {
            self.state[idx] = EntState::Ended;
            self.live -= 1;
        }
        if let Some(e) = error {
            tracing::warn!(qid = self.qid, entry = idx, "fuse io_uring entry ended: {e}");
            if self.first_error.is_none() {
                self.first_error = Some(e);
            }
        }
    }

    /// One completion of an entry's command: `Some(idx)` when the entry now holds a
    /// request to serve.
    fn complete(&mut self, user_data: u64, res: i32) -> io::Result<Option<usize>> {
        let Some(idx) = usize::try_from(user_data).ok().filter(|&i| i < self.depth) else {
            tracing::warn!(qid = self.qid, user_data, "fuse io_uring: completion for no entry");
            return Ok(None);
        };
        let was = self.state[idx];
        if matches!(was, EntState::Idle | EntState::Ended | EntState::Serving(_)) {
            tracing::warn!(
                qid = self.qid,
                entry = idx,
                ?was,
                res,
                "fuse io_uring: completion for an entry not in the kernel"
            );
            return Ok(None);
        }
        if res < 0 {
            let errno = -res;
            match errno {
                libc::ENOTCONN | libc::ENODEV | libc::ECANCELED | libc::ECONNABORTED => {
                    self.conn_ended = true;
                    self.end_entry(idx, None);
                }
                libc::EAGAIN | libc::EINTR if was == EntState::Registered => {
                    // REGISTER before the INIT reply: try again a little later.
                    self.eagain_tries += 1;
                    if self.eagain_tries > REGISTER_EAGAIN_TRIES {
                        let e = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "qid {}: FUSE_IO_URING_CMD_REGISTER kept failing with EAGAIN (INIT not answered?)",
                                self.qid
                            ),
                        );
                        self.end_entry(idx, Some(e));
                    } else {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        self.push_register(idx)?;
                    }
                }
                _ => {
                    let cmd = if was == EntState::Registered { "REGISTER" } else { "COMMIT_AND_FETCH" };
                    let os = io::Error::from_raw_os_error(errno);
                    let e =
                        io::Error::new(os.kind(), format!("qid {}: FUSE_IO_URING_CMD_{cmd} failed: {os}", self.qid));
                    self.end_entry(idx, Some(e));
                }
            }
            return Ok(None);
        }
        Ok(Some(idx))
    }

    /// The entry holds a request: hand it to the handler, write the reply, commit it.
    fn serve<F>(&mut self, idx: usize, handler: &mut F) -> io::Result<()>
    where
        F: FnMut(&RingRequest<'_>, &mut RingReply<'_>),
    {
        let hdr = self.header_ptr(idx);
        let payload_ptr = self.payloads[idx].as_ptr();
        // SAFETY: the kernel completed the entry's command, so until the next command is
        // submitted (below, after this read) it does not touch the entry's buffers; the
        // header is a plain-old-data struct inside our allocation.
        let ent_in_out = unsafe { std::ptr::read(std::ptr::addr_of!((*hdr).ring_ent_in_out)) };
        let commit_id = ent_in_out.commit_id;
        if commit_id == 0 {
            // The kernel never sends unique 0; without an id the entry cannot be committed.
            let e =
                io::Error::new(io::ErrorKind::InvalidData, format!("qid {}: ring request with commit_id 0", self.qid));
            self.end_entry(idx, Some(e));
            return Ok(());
        }
        let payload_sz = ent_in_out.payload_sz as usize;
        let (error, body_len);
        // SAFETY: as above, the kernel is not using the header; the slices end before the
        // header is written below.
        let (in_header, op_all) = unsafe {
            (
                std::slice::from_raw_parts(hdr.cast::<u8>().cast_const(), FUSE_IN_HEADER_LEN),
                std::slice::from_raw_parts(
                    hdr.cast::<u8>().cast_const().add(offset_of!(FuseUringReqHeader, op_in)),
                    FUSE_URING_OP_IN_OUT_SZ,
                ),
            )
        };
        let len = read_u32(in_header, 0) as usize;
        let op_len = len
            .checked_sub(FUSE_IN_HEADER_LEN + payload_sz)
            .filter(|&n| n <= FUSE_URING_OP_IN_OUT_SZ)
            .unwrap_or(FUSE_URING_OP_IN_OUT_SZ);
        let op_in = &op_all[..op_len];
        let unique = read_u64(in_header, 8);
        if payload_sz > self.payload_size {
            tracing::warn!(qid = self.qid, payload_sz, "fuse io_uring: request payload larger than the buffer");
            (error, body_len) = (-libc::EIO, 0);
        } else if payload_sz == 0 {
            // SAFETY: the kernel does not use the payload buffer now (see above), the
            // request borrows nothing of it, so this is the only reference to it.
            let buf = unsafe { std::slice::from_raw_parts_mut(payload_ptr, self.payload_size) };
            let req = RingRequest { qid: self.qid, in_header, op_in, payload: &[] };
            let mut reply = RingReply { buf, len: 0, error: -libc::ENOSYS };
            handler(&req, &mut reply);
            (error, body_len) = (reply.error, reply.len);
        } else {
            if self.scratch.len() < self.payload_size {
                self.scratch.resize(self.payload_size, 0);
            }
            // SAFETY: the kernel does not use the payload buffer now; payload_sz <=
            // payload_size; the buffer is only read while this slice lives.
            let payload = unsafe { std::slice::from_raw_parts(payload_ptr.cast_const(), payload_sz) };
            let req = RingRequest { qid: self.qid, in_header, op_in, payload };
            let mut reply = RingReply { buf: &mut self.scratch[..self.payload_size], len: 0, error: -libc::ENOSYS };
            handler(&req, &mut reply);
            (error, body_len) = (reply.error, reply.len);
            if error == 0 && body_len > 0 {
                // SAFETY: body_len <= payload_size (RingReply keeps it within its buffer);
                // the request's slice is no longer used; scratch and payload are distinct
                // allocations.
                unsafe { std::ptr::copy_nonoverlapping(self.scratch.as_ptr(), payload_ptr, body_len) };
            }
        }
        // No reference into the entry's header or payload is alive any more.
        self.commit_reply(idx, commit_id, unique, error, body_len)
    }

    fn push_register(&mut self, idx: usize) -> io::Result<()> {
        let addr = std::ptr::addr_of!(self.iovecs[idx]) as u64;
        let sqe = opcode::UringCmd80::new(types::Fd(self.fuse_fd.as_raw_fd()), FUSE_IO_URING_CMD_REGISTER)
            .cmd(cmd_area(self.qid, 0))
            .addr(Some(addr))
            .build()
            .user_data(idx as u64);
        self.push(with_sqe_len(sqe, FUSE_URING_IOV_SEGS))?;
        self.state[idx] = EntState::Registered;
        Ok(())
    }

    fn push_commit(&mut self, idx: usize, commit_id: u64) -> io::Result<()> {
        let sqe = opcode::UringCmd80::new(types::Fd(self.fuse_fd.as_raw_fd()), FUSE_IO_URING_CMD_COMMIT_AND_FETCH)
            .cmd(cmd_area(self.qid, commit_id))
            .build()
            .user_data(idx as u64);
        self.push(sqe)?;
        self.state[idx] = EntState::Committed(commit_id);
        Ok(())
    }

    fn push(&mut self, sqe: squeue::Entry128) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: what the SQE points to (the iovec array, and through it the header
            // and payload buffers) is owned by this queue at fixed addresses and stays
            // allocated while the kernel may use it (Drop leaks it otherwise).
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return Ok(());
            }
            // Cannot happen (one SQE per entry at most, the SQ holds `depth`): make room.
            self.ring.submit()?;
        }
        Err(io::Error::other("fuse io_uring: submission queue full"))
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        let registered = self.state.iter().any(|s| !matches!(s, EntState::Idle | EntState::Ended));
        if registered {
            // The kernel may still write into these buffers (the connection is alive):
            // leak them rather than free memory it holds the address of.
            tracing::warn!(
                qid = self.qid,
                live = self.live,
                "fuse io_uring queue dropped with registered entries: buffers leaked"
            );
            return;
        }
        for p in self.payloads.drain(..) {
            // SAFETY: allocated in `new` with `payload_layout`, freed once (drained).
            unsafe { alloc::dealloc(p.as_ptr(), self.payload_layout) };
        }
        // SAFETY: allocated in `new` with `headers_layout`, freed once (in drop).
        unsafe { alloc::dealloc(self.headers.as_ptr().cast(), self.headers_layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_len_lands_in_the_len_field() {
        // A Read SQE carries its length in sqe->len: compare its bytes with ours.
        let read: squeue::Entry128 = opcode::Read::new(types::Fd(7), std::ptr::null_mut(), 0x1234_5678).build().into();
        // SAFETY: as in with_sqe_len.
        let raw: [u8; 128] = unsafe { std::mem::transmute(read) };
        assert_eq!(&raw[SQE_LEN_OFFSET..SQE_LEN_OFFSET + 4], &0x1234_5678u32.to_ne_bytes());

        let cmd = opcode::UringCmd80::new(types::Fd(7), FUSE_IO_URING_CMD_REGISTER)
            .cmd(cmd_area(3, 0xabcd))
            .addr(Some(0x1000))
            .build();
        let cmd = with_sqe_len(cmd, 2);
        // SAFETY: as in with_sqe_len.
        let raw: [u8; 128] = unsafe { std::mem::transmute(cmd) };
        assert_eq!(&raw[SQE_LEN_OFFSET..SQE_LEN_OFFSET + 4], &2u32.to_ne_bytes());
        // cmd_op at 8, addr at 16, the command area at 48.
        assert_eq!(&raw[8..12], &FUSE_IO_URING_CMD_REGISTER.to_ne_bytes());
        assert_eq!(&raw[16..24], &0x1000u64.to_ne_bytes());
        assert_eq!(&raw[48 + 8..48 + 16], &0xabcdu64.to_ne_bytes());
        assert_eq!(&raw[48 + 16..48 + 18], &3u16.to_ne_bytes());
    }

    #[test]
    fn payload_minimum_follows_the_kernel() {
        assert_eq!(min_payload_size(0, 0), FUSE_MIN_READ_BUFFER);
        assert_eq!(min_payload_size(1 << 20, 1), 1 << 20);
        assert_eq!(min_payload_size(4096, 256), 256 * page_size());
    }

    #[test]
    fn reply_stays_in_its_buffer() {
        let mut buf = [0u8; 8];
        let mut r = RingReply { buf: &mut buf, len: 0, error: -libc::ENOSYS };
        assert!(r.data(&[1; 9]).is_err());
        assert_eq!(r.error, -libc::ENOSYS);
        r.data(&[1; 8]).unwrap();
        assert_eq!((r.error, r.len), (0, 8));
        assert!(r.set_len(9).is_err());
        r.error(libc::ENOENT);
        assert_eq!((r.error, r.len), (-libc::ENOENT, 0));
        r.error(-5);
        assert_eq!(r.error, -libc::EIO);
    }
}
