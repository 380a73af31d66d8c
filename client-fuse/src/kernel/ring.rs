//! Serving a session through FUSE over io_uring: one [`UringQueue`] per possible CPU,
//! each on its own thread (`qtfs-uring-Q`), and a pool of worker threads (`qtfs-fuse-rN`,
//! as many as the mount's `threads`). A request the file system says cannot wait on
//! anything but its engine round trips ([`Filesystem::may_wait`]) is served on the queue's
//! thread itself, as a task ([`super::uring::tasks`]): many in flight per thread, each
//! suspended while its engine request is out, no hand-off. The others (locks, relays)
//! go to the pool, whose workers may block. Either way the request is parsed and
//! [`dispatch`]ed by the `/dev/fuse` path's code and answered through the entry itself
//! ([`RingEntry`] is the [`Sender`]); a reply may come from any thread at any later time
//! (a lock wait answers from its own thread): the entry goes back to its queue, and is
//! committed, once the reply was sent and `dispatch` returned (the last reference to the
//! entry is dropped).

use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::{Arc, mpsc};
use std::thread::{Scope, ScopedJoinHandle};

use super::filesystem::{Filesystem, serve_request, served_in_place};
use super::notify::Notifier;
use super::pool;
use super::reply::Sender;
use super::request::{self, Gate};
use super::uring::{Completions, RingEntry, Tasks, UringQueue};

/// Ring entries per queue.
pub const QUEUE_DEPTH: u16 = 16;

impl Sender for RingEntry {
    fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        self.send_message(parts)
    }
}

/// The rings of a session: their number, depth and payload buffer size.
#[derive(Debug, Clone, Copy)]
pub struct RingPlan {
    pub queues: usize,
    pub depth: u16,
    pub payload: usize,
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3,8-11`),
/// the kernel's number of queues.
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    cpu_count(&s).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cpu/possible: {:?}", s.trim())))
}

/// The highest CPU of a kernel CPU list plus one (at most 65,536: queue ids are u16).
fn cpu_count(list: &str) -> Option<usize> {
    let mut max = None;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let n: usize = part.rsplit('-').next()?.trim().parse().ok()?;
        max = Some(max.unwrap_or(0).max(n));
    }
    max?.checked_add(1).filter(|&n| n <= usize::from(u16::MAX) + 1)
}

/// Whether a request is served on its queue's thread, as a task ([`served_in_place`]);
/// one that does not split is answered there at once.
fn served_here<F: Filesystem>(fs: &F, ent: &RingEntry) -> bool {
    request::split_ring(ent.in_header(), ent.op_in(), ent.payload()).map_or(true, |r| served_in_place(fs, r))
}

/// Parses, checks and dispatches one ring request (on a worker, or as a task). The entry (and the
/// slices the operation borrows from it) stays alive until `dispatch` returned.
fn serve_entry<F: Filesystem>(fs: &F, gate: &Gate, ent: RingEntry, notifier: &Notifier) {
    let ent = Arc::new(ent);
    let sender: Arc<dyn Sender> = ent.clone();
    let (h, fixed, rest) = match request::split_ring(ent.in_header(), ent.op_in(), ent.payload()) {
        Ok(x) => x,
        Err(_) => {
            // Unanswered: the entry's drop answers EIO.
            tracing::warn!(unique = ent.unique(), "malformed FUSE ring request");
            return;
        }
    };
    // DESTROY ends nothing here: the /dev/fuse workers and the queues end with the connection.
    serve_request(fs, gate, (h, fixed, rest), &sender, notifier);
}

/// The threads of the rings, started in `sc`: the pool and one thread per queue.
pub struct Rings<'scope> {
    pub handles: Vec<ScopedJoinHandle<'scope, io::Result<()>>>,
}

/// Starts the pool of `pool` workers and the queues of `plan` on the connection of
/// `fuse_fd`, and waits until every queue registered its entries. `Err`: some queue
/// could not (its error; the caller must end the connection, for the kernel holds new
/// requests until every queue has an entry). The threads end once the connection does.
pub fn start<'scope, 'env, F: Filesystem>(
    sc: &'scope Scope<'scope, 'env>,
    fs: &'env F,
    gate: Gate,
    fuse_fd: RawFd,
    plan: RingPlan,
    pool: usize,
    notifier: &Notifier,
) -> (Rings<'scope>, io::Result<()>) {
    let mut handles = Vec::with_capacity(plan.queues + pool);
    let pool_notifier = notifier.clone();
    let serve = move |ent: RingEntry| serve_entry(fs, &gate, ent, &pool_notifier);
    let jobs_tx = match pool::start(sc, pool, "qtfs-fuse-r", serve, &mut handles) {
        Ok(tx) => tx,
        Err(e) => return (Rings { handles }, Err(e)),
    };
    let (reg_tx, reg_rx) = mpsc::channel::<(usize, Result<(), String>)>();
    let mut started = 0;
    let mut first_err = None;
    for qid in 0..plan.queues {
        let (reg_tx, jobs_tx, notifier) = (reg_tx.clone(), jobs_tx.clone(), notifier.clone());
        let queue = move || -> io::Result<()> {
            // Not pinned to its CPU (libfuse pins its queues): measured here, a queue thread
            // pinned to the CPU of an application that keeps many requests in flight
            // shares that CPU with it, and 4k reads at depth 16 fell to a third.
            let completions = Completions::new();
            let q = completions
                .and_then(|c| UringQueue::new(fuse_fd, qid as u16, plan.depth, plan.payload).map(|q| (q, c)));
            let (mut q, completions) = match q {
                Ok(x) => x,
                Err(e) => {
                    let _ = reg_tx.send((qid, Err(format!("qid {qid}: {e}"))));
                    return Err(e);
                }
            };
            let registered = |r: Result<(), &io::Error>| {
                let _ = reg_tx.send((qid, r.map_err(|e| e.to_string())));
            };
            let notifier = &notifier;
            let mut tasks = Tasks::default();
            let mut pooled = 0u64;
            let r = q.run_async(&completions, &mut tasks, registered, |ent, tasks| {
                if served_here(fs, &ent) {
                    if let Err(e) = tasks.spawn(move || serve_entry(fs, &gate, ent, notifier)) {
                        // The entry went with the task that could not start: answered EIO.
                        tracing::warn!(qid, "fuse io_uring: cannot start a task: {e}");
                    }
                } else {
                    pooled += 1;
                    // With the pool gone the entry is dropped here: answered EIO.
                    let _ = jobs_tx.send(ent);
                }
            });
            let (here, most) = tasks.counts();
            tracing::info!(
                "fuse io_uring queue {qid} ended: {here} requests served on its thread \
                 (at most {most} in flight at once), {pooled} by the worker pool"
            );
            if let Err(e) = &r {
                tracing::warn!(qid, "fuse io_uring queue ended: {e}");
            }
            r
        };
        match std::thread::Builder::new().name(format!("qtfs-uring-{qid}")).spawn_scoped(sc, queue) {
            Ok(h) => {
                handles.push(h);
                started += 1;
            }
            Err(e) => {
                first_err = Some(e);
                break;
            }
        }
    }
    drop((reg_tx, jobs_tx));
    for _ in 0..started {
        match reg_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(e))) => {
                first_err.get_or_insert_with(|| io::Error::other(e));
            }
            Err(_) => {
                first_err.get_or_insert_with(|| io::Error::other("an io_uring queue thread ended before registering"));
                break;
            }
        }
    }
    (Rings { handles }, first_err.map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_count("0\n"), Some(1));
        assert_eq!(cpu_count("0-1\n"), Some(2));
        assert_eq!(cpu_count("0-3,8-11"), Some(12));
        assert_eq!(cpu_count("0,5"), Some(6));
        assert_eq!(cpu_count(""), None);
        assert_eq!(cpu_count("x"), None);
        assert_eq!(cpu_count("0-99999999999999999999999"), None);
    }
}
