//! Serving a queue with replies that come later and from other threads
//! ([`UringQueue::run_async`]): the queue thread only does ring I/O. Each request leaves
//! the ring as a [`RingEntry`], which a worker reads in place (its slices point into the
//! entry's buffers) and answers with [`RingEntry::send_message`] from any thread at any
//! time; the entry goes back to the queue when the last reference to it is dropped, which
//! is after both the reply and the worker's reading (a worker keeps the entry alive while
//! it borrows from it). The queue thread learns of returned entries through an eventfd
//! whose read it keeps pending in its own ring ([`Completions`]), so it sleeps in
//! `io_uring_enter` until a request or a reply arrives, without polling.
//!
//! Borrowed, not copied: a WRITE's payload (up to `max_write`, 1 MiB) is read where the
//! kernel put it. The entry's buffers are neither committed nor reused while a
//! [`RingEntry`] exists, and the queue leaks them (as for entries still in the kernel) if
//! it ends while a worker holds one (a request that is never answered, at unmount).

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::{opcode, types};
use parking_lot::Mutex;

use super::tasks::{POLL_TAG, Tasks};
use super::{
    EntState, FUSE_IN_HEADER_LEN, FUSE_OUT_HEADER_LEN, FUSE_URING_OP_IN_OUT_SZ, FuseUringReqHeader,
    REGISTER_EAGAIN_TRIES, ReplyTooLarge, UringQueue, read_u32, read_u64,
};

/// `user_data` of the pending eventfd read (entries use their index, tasks' polls and
/// timers [`POLL_TAG`]).
const EVENTFD_UD: u64 = u64::MAX;

thread_local! {
    /// The completions of the queue this thread serves (null on other threads).
    static ON_QUEUE_THREAD: Cell<*const Completions> = const { Cell::new(std::ptr::null()) };
}

/// An entry given back by its [`RingEntry`]: the reply to commit.
struct Done {
    idx: usize,
    commit_id: u64,
    unique: u64,
    error: i32,
    len: usize,
    /// The body when it could not be written into the payload buffer at once (the
    /// request's own payload was still being read).
    owned: Option<Vec<u8>>,
}

/// The way back from the workers to one queue's thread: returned entries and an eventfd
/// that wakes it.
pub struct Completions {
    efd: OwnedFd,
    done: Mutex<Vec<Done>>,
}

impl Completions {
    pub fn new() -> io::Result<Arc<Completions>> {
        // SAFETY: eventfd creates a descriptor and touches no memory; -1 is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Completions { efd, done: Mutex::new(Vec::new()) }))
    }

    fn push(&self, d: Done) {
        self.done.lock().push(d);
        if ON_QUEUE_THREAD.with(|q| std::ptr::eq(q.get(), self)) {
            // Given back by a task of the queue's own thread: the loop commits it
            // before it waits again, no wake-up needed.
            return;
        }
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live local; an eventfd write only fails on an
        // overflowing counter (never: the queue thread reads it back to 0).
        let r = unsafe { libc::write(self.efd.as_raw_fd(), std::ptr::addr_of!(one).cast(), 8) };
        if r != 8 {
            tracing::warn!("fuse io_uring: eventfd write: {}", io::Error::last_os_error());
        }
    }
}

/// A reply: error (0 or negative errno), body length, and the body when kept aside.
type Answer = (i32, usize, Option<Vec<u8>>);

/// A request taken out of a ring entry, to be answered from any thread. Its slices
/// point into the entry's buffers; dropping it gives the entry back to the queue with
/// the reply (`EIO` if none was sent), to be committed.
pub struct RingEntry {
    completions: Arc<Completions>,
    idx: usize,
    qid: u16,
    commit_id: u64,
    unique: u64,
    header: *const u8,
    op_len: usize,
    payload: *mut u8,
    payload_sz: usize,
    capacity: usize,
    reply: Mutex<Option<Answer>>,
}

// SAFETY: the pointers lead to the entry's buffers, which the queue neither touches nor
// frees while the RingEntry exists (its state is `Serving` until the entry comes back),
// and the kernel does not use them between a request and its commit. Reading them from
// several threads is fine; the one write (`send_message` into the payload buffer) happens
// once, under the `reply` lock, and only when no slice of that buffer is handed out.
unsafe impl Send for RingEntry {}
// SAFETY: as above.
unsafe impl Sync for RingEntry {}

impl std::fmt::Debug for RingEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingEntry")
            .field("qid", &self.qid)
            .field("entry", &self.idx)
            .field("unique", &self.unique)
            .finish_non_exhaustive()
    }
}

impl RingEntry {
    /// The queue the request came through.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// The `fuse_in_header`, [`FUSE_IN_HEADER_LEN`] bytes.
    pub fn in_header(&self) -> &[u8] {
        // SAFETY: the header buffer is at least 288 bytes, unchanged while self lives
        // (see the Send impl).
        unsafe { std::slice::from_raw_parts(self.header, FUSE_IN_HEADER_LEN) }
    }

    /// The request's per-opcode struct (its length is `in_header.len - 40 - payload_sz`).
    pub fn op_in(&self) -> &[u8] {
        // SAFETY: op_in lies inside the header allocation, op_len <= its 128 bytes;
        // unchanged while self lives.
        unsafe { std::slice::from_raw_parts(self.header.add(offset_of!(FuseUringReqHeader, op_in)), self.op_len) }
    }

    /// The other arguments (names, WRITE data), `payload_sz` bytes.
    pub fn payload(&self) -> &[u8] {
        if self.payload_sz == 0 {
            return &[];
        }
        // SAFETY: payload_sz <= the buffer's size (checked before the entry was made); the
        // buffer is not written while self lives when payload_sz > 0 (send_message copies
        // the body aside then).
        unsafe { std::slice::from_raw_parts(self.payload.cast_const(), self.payload_sz) }
    }

    /// `in_header.unique`.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// The reply, as it would be written to `/dev/fuse`: `fuse_out_header` (16 bytes) in
    /// the first part, then the body. Only the first reply counts; it is committed once
    /// the entry is dropped. A body larger than the payload buffer becomes `EIO`.
    pub fn send_message(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        let mut slot = self.reply.lock();
        if slot.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "fuse io_uring: request already answered"));
        }
        let Some(head) = parts.first().filter(|h| h.len() == FUSE_OUT_HEADER_LEN) else {
            *slot = Some((-libc::EIO, 0, None));
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "fuse io_uring: reply without its header"));
        };
        let error = read_u32(head, 4) as i32;
        let body = parts.get(1..).unwrap_or(&[]);
        let len: usize = if error == 0 { body.iter().map(|b| b.len()).sum() } else { 0 };
        if len > self.capacity {
            *slot = Some((-libc::EIO, 0, None));
            return Err(io::Error::other(ReplyTooLarge { len, capacity: self.capacity }));
        }
        if len == 0 {
            *slot = Some((error, 0, None));
        } else if self.payload_sz == 0 {
            let mut at = 0;
            for b in body {
                // SAFETY: at + b.len() <= len <= capacity, inside the payload buffer; no
                // slice of that buffer exists (payload() is empty when payload_sz == 0),
                // the kernel and the queue do not use it while self lives, and this write
                // happens once (under the lock, slot empty).
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.payload.add(at), b.len()) };
                at += b.len();
            }
            *slot = Some((error, len, None));
        } else {
            let mut v = Vec::with_capacity(len);
            for b in body {
                v.extend_from_slice(b);
            }
            *slot = Some((error, len, Some(v)));
        }
        Ok(())
    }
}

impl Drop for RingEntry {
    fn drop(&mut self) {
        let (error, len, owned) = self.reply.lock().take().unwrap_or_else(|| {
            tracing::debug!(unique = self.unique, "fuse io_uring: request dropped unanswered: EIO");
            (-libc::EIO, 0, None)
        });
        self.completions.push(Done {
            idx: self.idx,
            commit_id: self.commit_id,
            unique: self.unique,
            error,
            len,
            owned,
        });
    }
}

impl UringQueue {
    /// Registers the entries (on the calling thread, which then waits for completions),
    /// tells `registered` whether the kernel took them all, then serves: each request is
    /// given to `hand_off` as a [`RingEntry`] and committed once that entry is dropped
    /// (see the module notes); `completions` must be this queue's alone. `hand_off` may
    /// serve the request here, as one of `tasks` ([`super::tasks`]): the loop arms the
    /// polls the tasks wait for on this ring, resumes them, and commits what they answered
    /// before it waits again.
    ///
    /// Returns `Ok(())` once the connection ended (every entry still in the kernel ended;
    /// entries a worker still holds are left to it, their buffers leaked), the first
    /// other error of an entry once every entry has ended, and at once an error of the
    /// ring or of the registration (after `registered` heard of it).
    pub fn run_async<'t, R, H>(
        &mut self,
        completions: &Arc<Completions>,
        tasks: &mut Tasks<'t>,
        registered: R,
        mut hand_off: H,
    ) -> io::Result<()>
    where
        R: FnOnce(Result<(), &io::Error>),
        H: FnMut(RingEntry, &mut Tasks<'t>),
    {
        ON_QUEUE_THREAD.with(|q| q.set(Arc::as_ptr(completions)));
        let r = self.serve_async(completions, tasks, registered, &mut hand_off);
        ON_QUEUE_THREAD.with(|q| q.set(std::ptr::null()));
        r
    }

    fn serve_async<'t, R, H>(
        &mut self,
        completions: &Arc<Completions>,
        tasks: &mut Tasks<'t>,
        registered: R,
        hand_off: &mut H,
    ) -> io::Result<()>
    where
        R: FnOnce(Result<(), &io::Error>),
        H: FnMut(RingEntry, &mut Tasks<'t>),
    {
        // The eventfd read's buffer: leaked, for the read may still be pending in the
        // kernel when the ring is closed (8 bytes per queue and mount).
        let efd_buf: *mut u64 = Box::leak(Box::new(0u64));
        self.push_efd_read(completions, efd_buf)?;
        let mut done = match self.register_all() {
            Ok(early) => {
                registered(Ok(()));
                early
            }
            Err(e) => {
                registered(Err(&e));
                return Err(e);
            }
        };
        let mut efd_armed = true;
        let mut waits = Vec::new();
        loop {
            for (user_data, res) in done.drain(..) {
                if user_data == EVENTFD_UD {
                    efd_armed = false;
                    if res < 0 && res != -libc::EINTR && res != -libc::EAGAIN {
                        return Err(io::Error::from_raw_os_error(-res));
                    }
                    self.commit_returned(completions)?;
                } else if user_data & POLL_TAG != 0 {
                    tasks.wait_done(user_data);
                } else if let Some(idx) = self.complete(user_data, res)?
                    && let Some(ent) = self.take_entry(idx, completions)?
                {
                    hand_off(ent, tasks);
                }
            }
            tasks.run_woken();
            self.commit_returned(completions)?;
            tasks.take_waits(&mut waits);
            for (ud, w) in waits.drain(..) {
                self.push(w.sqe(ud).into())?;
            }
            let in_kernel =
                self.state.iter().filter(|s| matches!(s, EntState::Registered | EntState::Committed(_))).count();
            if in_kernel == 0 && (self.live == 0 || self.conn_ended) {
                break;
            }
            if !efd_armed {
                self.push_efd_read(completions, efd_buf)?;
                efd_armed = true;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            done.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        }
        match self.first_error.take() {
            Some(e) if !self.conn_ended => Err(e),
            _ => Ok(()),
        }
    }

    fn push_efd_read(&mut self, completions: &Completions, buf: *mut u64) -> io::Result<()> {
        let sqe = opcode::Read::new(types::Fd(completions.efd.as_raw_fd()), buf.cast(), 8)
            .build()
            .user_data(EVENTFD_UD)
            .into();
        self.push(sqe)
    }

    /// Submits the REGISTERs and collects the ones the kernel refused at once (it
    /// completes a refused one inline; an accepted one stays pending): Err with the first
    /// refusal, else the completions seen meanwhile (requests already), to serve.
    fn register_all(&mut self) -> io::Result<Vec<(u64, i32)>> {
        for idx in 0..self.depth {
            if self.state[idx] == EntState::Idle {
                self.push_register(idx)?;
            }
        }
        let mut early = Vec::new();
        for _ in 0..REGISTER_EAGAIN_TRIES {
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            let seen: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
            let mut again = false;
            for (user_data, res) in seen {
                let idx = usize::try_from(user_data).ok().filter(|&i| i < self.depth);
                match idx {
                    Some(idx) if res < 0 && self.state[idx] == EntState::Registered => {
                        if res == -libc::EAGAIN {
                            self.push_register(idx)?;
                            again = true;
                            continue;
                        }
                        let os = io::Error::from_raw_os_error(-res);
                        let e = io::Error::new(
                            os.kind(),
                            format!("qid {}: FUSE_IO_URING_CMD_REGISTER failed: {os}", self.qid),
                        );
                        return Err(e);
                    }
                    _ => early.push((user_data, res)),
                }
            }
            if !again {
                return Ok(early);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("qid {}: FUSE_IO_URING_CMD_REGISTER kept failing with EAGAIN (INIT not answered?)", self.qid),
        ))
    }

    /// The entry `idx` holds a request: hand it out as a [`RingEntry`], or answer it here
    /// when it cannot be (a payload larger than the buffer: EIO).
    fn take_entry(&mut self, idx: usize, completions: &Arc<Completions>) -> io::Result<Option<RingEntry>> {
        let hdr = self.header_ptr(idx);
        // SAFETY: the kernel completed the entry's command; until the next command it does
        // not touch the entry's buffers; the header is plain data inside our allocation.
        let ent_in_out = unsafe { std::ptr::read(std::ptr::addr_of!((*hdr).ring_ent_in_out)) };
        let commit_id = ent_in_out.commit_id;
        if commit_id == 0 {
            let e =
                io::Error::new(io::ErrorKind::InvalidData, format!("qid {}: ring request with commit_id 0", self.qid));
            self.end_entry(idx, Some(e));
            return Ok(None);
        }
        let header = hdr.cast::<u8>().cast_const();
        // SAFETY: as above; the slice is dropped before anything writes the header.
        let in_header = unsafe { std::slice::from_raw_parts(header, FUSE_IN_HEADER_LEN) };
        let (len, unique) = (read_u32(in_header, 0) as usize, read_u64(in_header, 8));
        let payload_sz = ent_in_out.payload_sz as usize;
        if payload_sz > self.payload_size {
            tracing::warn!(qid = self.qid, payload_sz, "fuse io_uring: request payload larger than the buffer");
            self.commit_reply(idx, commit_id, unique, -libc::EIO, 0)?;
            return Ok(None);
        }
        let op_len = len
            .checked_sub(FUSE_IN_HEADER_LEN + payload_sz)
            .filter(|&n| n <= FUSE_URING_OP_IN_OUT_SZ)
            .unwrap_or(FUSE_URING_OP_IN_OUT_SZ);
        self.state[idx] = EntState::Serving(commit_id);
        Ok(Some(RingEntry {
            completions: completions.clone(),
            idx,
            qid: self.qid,
            commit_id,
            unique,
            header,
            op_len,
            payload: self.payloads[idx].as_ptr(),
            payload_sz,
            capacity: self.payload_size,
            reply: Mutex::new(None),
        }))
    }

    /// Commits the entries the workers gave back.
    fn commit_returned(&mut self, completions: &Completions) -> io::Result<()> {
        let done = std::mem::take(&mut *completions.done.lock());
        for d in done {
            if self.state.get(d.idx) != Some(&EntState::Serving(d.commit_id)) {
                tracing::warn!(qid = self.qid, entry = d.idx, "fuse io_uring: an entry came back twice");
                continue;
            }
            if let Some(body) = &d.owned {
                let n = body.len().min(self.payload_size);
                // SAFETY: the RingEntry is gone, so nothing borrows the payload buffer; the
                // kernel does not use it before the commit; n <= its size; distinct
                // allocations.
                unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), self.payloads[d.idx].as_ptr(), n) };
            }
            self.commit_reply(d.idx, d.commit_id, d.unique, d.error, d.len.min(self.payload_size))?;
        }
        Ok(())
    }

    /// Writes the out header and the body's size of entry `idx` and commits it (an error
    /// carries no body). The caller holds no reference into the entry's buffers.
    pub(super) fn commit_reply(
        &mut self,
        idx: usize,
        commit_id: u64,
        unique: u64,
        error: i32,
        len: usize,
    ) -> io::Result<()> {
        let len = if error != 0 { 0 } else { len };
        let hdr = self.header_ptr(idx);
        let out = crate::kernel::abi::out_header(FUSE_OUT_HEADER_LEN + len, error, unique);
        // SAFETY: the header is ours, unused by the kernel until the commit and by anyone
        // else (no RingEntry for it exists any more); no reference into it is alive.
        unsafe {
            std::ptr::copy_nonoverlapping(out.as_ptr(), hdr.cast::<u8>(), FUSE_OUT_HEADER_LEN);
            std::ptr::addr_of_mut!((*hdr).ring_ent_in_out.payload_sz).write(len as u32);
        }
        self.push_commit(idx, commit_id)
    }
}
