//! `/dev/fuse` served by ring threads: the shape of the FUSE-over-io_uring transport
//! ([`super::ring`]) for mounts that do not use it (an older kernel, `enable_uring` off):
//! one thread per CPU, each serving the requests that wait only for the engine itself, as
//! tasks ([`super::uring::tasks`]) — many in flight on the thread's one engine
//! connection, their engine requests of one loop turn sent together, no request handed
//! to another thread — where the plain `/dev/fuse` workers block one thread per request.
//!
//! Each thread owns two clones of the mount's descriptor and a small io_uring. While
//! requests of the thread are in flight, the ring carries their waits and, unless another
//! thread waits in the blocking read below, the readiness (`POLL_ADD`) of the
//! non-blocking clone; when it is readable the thread reads requests until none is left
//! or `depth` of its requests are in flight. (The kernel wakes one blocking reader per
//! request but every poller: a busy thread polling beside an idle one was woken for
//! requests the idle one took.) With nothing in flight
//! there is nothing but the next request to wait for, and the thread waits for it in a
//! plain blocking read of the other clone: one system call, as a `/dev/fuse` worker, where
//! a poll through the ring costs two and an empty read (a request at a time is the
//! common case of a single program). Each request goes into a buffer of its own
//! (reused); one the file system says may wait for something else
//! ([`Filesystem::may_wait`]: locks, relays) goes to the worker pool ([`super::pool`]) as
//! a copy of its bytes.
//! Every answer is written to the descriptor its request was read from (the kernel keeps
//! a processing list per descriptor), by whichever thread answers. The ring defers its
//! completion work to the thread's own waits in it (`DEFER_TASKRUN`), so a poll that
//! completes meanwhile does not interrupt the blocking read. The thread ends when the
//! kernel says the file system is gone.
//!
//! Owns these threads' loops and their request buffers.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use io_uring::{IoUring, opcode, types};

use super::dev::{Dev, Received};
use super::filesystem::{Filesystem, serve_request, served_in_place, split_dev_request};
use super::notify::Notifier;
use super::reply::{ReplyRaw, Sender};
use super::request::{self, Gate, answered};
use super::types::Errno;
use super::uring::Tasks;
use super::uring::tasks::POLL_TAG;

/// `user_data` of the descriptor's poll: every task's wait carries the [`POLL_TAG`] bit,
/// which this value lacks.
const DEV_READABLE: u64 = POLL_TAG - 1;

/// A request for the worker pool: the descriptor it came from and its bytes (a copy of
/// just the request: the thread's buffer, sized for the largest WRITE, stays with it).
pub(super) struct Job {
    dev: Arc<Dev>,
    bytes: Vec<u8>,
}

/// What one thread serves with.
pub(super) struct Setup<'a, F> {
    pub fs: &'a F,
    pub gate: Gate,
    pub setxattr_ext: bool,
    pub notifier: &'a Notifier,
    /// Bytes of a request buffer (the largest WRITE plus a page).
    pub buf_size: usize,
    /// Requests in flight on the thread at most.
    pub depth: usize,
    /// Threads waiting in the blocking read: while one is, the busy threads leave new
    /// requests to it (the kernel wakes one blocking reader a request, but every poller).
    pub idle_readers: AtomicUsize,
}

/// Serves `job` on a pool worker.
pub(super) fn serve_job<F: Filesystem>(s: &Setup<'_, F>, job: Job) {
    serve_bytes(s, job.dev, &job.bytes);
}

/// Serves the request in `bytes`, read from `dev` (checked when it was read).
fn serve_bytes<F: Filesystem>(s: &Setup<'_, F>, dev: Arc<Dev>, bytes: &[u8]) {
    let sender: Arc<dyn Sender> = dev;
    if let Ok(req) = request::split(bytes, s.setxattr_ext) {
        serve_request(s.fs, &s.gate, req, &sender, s.notifier);
    }
}

/// The two clones of the mount's descriptor a thread reads from.
pub(super) struct Devs {
    /// Non-blocking, polled through the ring while requests are in flight.
    pub polled: Arc<Dev>,
    /// Blocking, read while none is.
    pub idle: Arc<Dev>,
}

/// A small ring for one thread; `DEFER_TASKRUN` where the kernel has it (6.1).
fn thread_ring(entries: u32) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_single_issuer().setup_defer_taskrun();
    b.build(entries).or_else(|_| IoUring::new(entries))
}

/// One ring thread on `devs` until the file system is gone.
pub(super) fn serve<F: Filesystem>(
    s: &Setup<'_, F>,
    id: usize,
    devs: Devs,
    pool: &mpsc::Sender<Job>,
) -> io::Result<()> {
    let mut ring = thread_ring((s.depth as u32 + 1).next_power_of_two().max(8))?;
    let mut tasks = Tasks::default();
    let free: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    // Requests given to the pool (the tasks count those served here).
    let mut pooled = 0u64;
    let mut waits = Vec::new();
    let mut armed = false;
    let r = loop {
        tasks.run_woken();
        if tasks.live() == 0 {
            // Nothing in flight: the next request is all there is to wait for.
            s.idle_readers.fetch_add(1, Ordering::Relaxed);
            let taken = take_request(s, &devs.idle, &mut tasks, &free, &mut pooled, pool);
            s.idle_readers.fetch_sub(1, Ordering::Relaxed);
            match taken {
                Ok(Taken::Gone) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        }
        tasks.take_waits(&mut waits);
        let mut sqes: Vec<_> = waits.drain(..).map(|(ud, w)| w.sqe(ud)).collect();
        // A thread leaving the blocking read with none left there polls for the next
        // request, so that one always does while requests wait for their answers.
        if !armed && tasks.live() < s.depth && s.idle_readers.load(Ordering::Relaxed) == 0 {
            let poll = opcode::PollAdd::new(types::Fd(devs.polled.raw()), libc::POLLIN as u32).build();
            sqes.push(poll.user_data(DEV_READABLE));
            armed = true;
        }
        for sqe in sqes {
            if ring.submission().is_full() {
                ring.submit()?;
            }
            // SAFETY: a poll reads nothing from our memory; a timer's timespec stays put
            // in its task's slot until the task's next wait (see `tasks::Wait`).
            unsafe { ring.submission().push(&sqe) }.map_err(|_| io::Error::other("ring full"))?;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => break Err(e),
        }
        let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
        let mut gone = false;
        for (ud, _res) in done {
            if ud != DEV_READABLE {
                tasks.wait_done(ud);
                continue;
            }
            armed = false;
            // Readable, or an error (the connection ended): the reads tell which.
            while tasks.live() < s.depth {
                match take_request(s, &devs.polled, &mut tasks, &free, &mut pooled, pool)? {
                    Taken::One => {}
                    Taken::Nothing => break,
                    Taken::Gone => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        if gone {
            break Ok(());
        }
    };
    let (here, most) = tasks.counts();
    tracing::info!(
        "/dev/fuse ring thread {id} ended: {here} requests served on its thread (at most {most} in flight at once), \
         {pooled} by the worker pool"
    );
    // Tasks still waiting for the engine are unwound with `tasks`: their requests died
    // with the connection.
    r
}

/// What [`take_request`] found.
enum Taken {
    One,
    Nothing,
    Gone,
}

/// Reads one request from `dev` (waiting for it on a blocking clone) and starts serving
/// it: as a task, or on the pool.
fn take_request<'a, F: Filesystem>(
    s: &'a Setup<'a, F>,
    dev: &Arc<Dev>,
    tasks: &mut Tasks<'a>,
    free: &Rc<RefCell<Vec<Vec<u8>>>>,
    pooled: &mut u64,
    pool: &mpsc::Sender<Job>,
) -> io::Result<Taken> {
    let mut buf = free.borrow_mut().pop().unwrap_or_else(|| vec![0u8; s.buf_size]);
    let len = match dev.receive_now(&mut buf)? {
        Received::Request(n) => n,
        Received::Nothing => {
            free.borrow_mut().push(buf);
            return Ok(Taken::Nothing);
        }
        Received::Gone => return Ok(Taken::Gone),
    };
    let sender: Arc<dyn Sender> = dev.clone();
    let Some((h, fixed, rest)) = split_dev_request(buf.get(..len).unwrap_or(&[]), s.setxattr_ext, &sender) else {
        free.borrow_mut().push(buf);
        return Ok(Taken::One);
    };
    if h.opcode == super::abi::op::DESTROY {
        serve_request(s.fs, &s.gate, (h, fixed, rest), &sender, s.notifier);
        return Ok(Taken::Gone);
    }
    let here = served_in_place(s.fs, (h, fixed, rest));
    let unique = answered(&h).then_some(h.unique);
    if !here {
        *pooled += 1;
        let bytes = buf.get(..len).unwrap_or(&[]).to_vec();
        free.borrow_mut().push(buf);
        // With the pool gone (the end) the request is dropped: the kernel aborts it.
        let _ = pool.send(Job { dev: dev.clone(), bytes });
        return Ok(Taken::One);
    }
    let (task_dev, free) = (dev.clone(), free.clone());
    let task = move || {
        serve_bytes(s, task_dev, buf.get(..len).unwrap_or(&[]));
        free.borrow_mut().push(buf);
    };
    if let Err(e) = tasks.spawn(task) {
        tracing::warn!("/dev/fuse ring: cannot start a task: {e}");
        if let Some(u) = unique {
            ReplyRaw::new(u, sender).error(Errno::EIO);
        }
    }
    Ok(Taken::One)
}
