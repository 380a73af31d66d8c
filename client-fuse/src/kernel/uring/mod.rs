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
//!   `len - 40 - payload_sz` ([`RingEntry::op_in`]).
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
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

mod abi;
mod pending;
pub mod tasks;
pub use abi::*;
pub use pending::{Completions, RingEntry};
pub use tasks::Tasks;

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
            // Entries, the tasks' polls and the eventfd: room for all at once.
            .setup_cqsize(u32::from(depth) * 4)
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
}
