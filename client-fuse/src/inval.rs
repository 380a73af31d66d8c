//! Prompt coherence: the engine's INVAL messages become kernel cache invalidations.
//!
//! The engine (with `feat::INVAL`, asked for on the shared session's connections only:
//! the per-worker connections of [`crate::direct`] are read only while a request waits)
//! tells this client within milliseconds which export-relative path changed on the HOST
//! or through another client. The session's reader threads hand each message to a
//! bounded queue; one thread of ours, `qtfs-inval`, maps the path to nodes through the
//! node table (taking its lock only to look up, never while talking to the kernel) and
//! tells the kernel:
//!
//! - `ATTR`: `notify_inval_inode(node, -1, 0)` (attributes only);
//! - `DATA`: `notify_inval_inode(node, 0, 0)` (attributes and every cached page, so a
//!   live shared mmap faults the new content in);
//! - `ENTRY`: `notify_inval_entry(parent, name)`, plus the parent directory's attributes
//!   and listing, and the attributes of the object the name led to (its link count);
//! - `ALL` (the engine's queue for us overflowed), a lost connection, or our own queue
//!   overflowing: every known name and node.
//!
//! Why a thread of its own: a FUSE notification is a write to `/dev/fuse` that the kernel
//! completes only after it took the inode's (or directory's) locks and dropped pages,
//! which may wait for a request in progress on that inode. A reader thread blocked there
//! would hold up the responses a FUSE worker is waiting for, and a FUSE worker must never
//! wait for itself; this thread waits for nobody but the kernel.
//!
//! An inode invalidation of a file this mount locked a moment ago waits for the end of
//! the lock's fence ([`crate::fences`]: sent then, it could make the lock holder read the
//! file as shorter than it is).
//!
//! A path the node table does not know is skipped: the kernel caches nothing under it.
//! The attribute timeout remains the fallback for anything missed (an engine without
//! INVAL, a file system it cannot watch).
//!
//! Owns the `qtfs-inval` thread and its queue; sends nothing to the engine.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};

use crate::fences::Fences;
use crate::kernel::{INodeNo, Notifier};
use parking_lot::Mutex;
use qtfs_client::FrameHandler;
use qtfs_proto::consts::inval;
use qtfs_proto::{FrameHeader, InvalMsg, Op, Wire};

use crate::nodes::Nodes;

/// Messages waiting for the `qtfs-inval` thread; beyond, everything is dropped instead.
const QUEUE: usize = 8192;

enum Msg {
    Path {
        flags: u32,
        path: Vec<u8>,
    },
    /// Drop everything (ALL, a lost connection, our queue overflowed).
    All,
}

/// What to tell the kernel, computed under the node table's lock and sent without it.
enum Action {
    Inode(u64, i64),
    Entry(u64, Vec<u8>),
}

/// Starts the `qtfs-inval` thread; returns the frame handler for the session.
pub fn start(
    nodes: Arc<Mutex<Nodes>>,
    notifier: Arc<OnceLock<Notifier>>,
    fences: Arc<Fences>,
) -> std::io::Result<FrameHandler> {
    let (tx, rx) = sync_channel::<Msg>(QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let of = overflow.clone();
    std::thread::Builder::new().name("qtfs-inval".into()).spawn(move || run(rx, &of, &nodes, &notifier, &fences))?;
    let handler: FrameHandler = Arc::new(move |_conn, h: FrameHeader, payload: Vec<u8>| {
        let msg = if h.op == 0 {
            // A connection went away: what was in flight on it is lost.
            Msg::All
        } else if h.op == Op::INVAL as u16 {
            match InvalMsg::decode(&payload) {
                Ok(m) if m.flags & inval::ALL != 0 => Msg::All,
                Ok(m) => Msg::Path { flags: m.flags, path: m.path.0.to_vec() },
                Err(e) => {
                    tracing::debug!("malformed INVAL ignored: {e}");
                    return;
                }
            }
        } else {
            tracing::debug!(op = h.op, "one-way frame ignored");
            return;
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                overflow.store(true, Ordering::Release);
                // Wake the thread if it sleeps (it sees the flag first).
                let _ = tx.try_send(Msg::All);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    });
    Ok(handler)
}

fn run(rx: Receiver<Msg>, overflow: &AtomicBool, nodes: &Mutex<Nodes>, notifier: &OnceLock<Notifier>, fences: &Fences) {
    let mut actions = Vec::new();
    loop {
        // Kept invalidations whose fence ended go first; the wait ends when the next is due.
        let due = notifier.get().and_then(|n| fences.release_due(n));
        let first = match due {
            Some(t) => match rx.recv_timeout(t.saturating_duration_since(std::time::Instant::now())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        actions.clear();
        let mut all = overflow.swap(false, Ordering::AcqRel);
        let mut msgs = vec![first];
        msgs.extend(rx.try_iter().take(QUEUE));
        {
            let mut nodes = nodes.lock();
            for m in &msgs {
                match m {
                    Msg::All => all = true,
                    Msg::Path { flags, path } if !all => {
                        if !plan(&nodes, *flags, path, &mut actions) {
                            nodes.missed_inval();
                        }
                    }
                    Msg::Path { .. } => {}
                }
            }
            if all {
                actions.clear();
                nodes.unlearn_all();
                let (ids, names) = nodes.snapshot();
                actions.extend(names.into_iter().map(|(p, n)| Action::Entry(p, n)));
                actions.extend(ids.into_iter().map(|id| Action::Inode(id, 0)));
            } else {
                // What the client learnt of these nodes (fs::xattr) may be stale too.
                for a in &actions {
                    if let Action::Inode(id, _) = a {
                        nodes.unlearn(*id);
                    }
                }
            }
        }
        let Some(n) = notifier.get() else { continue };
        for a in actions.drain(..) {
            // ENOENT: the kernel forgot the node meanwhile; nothing to drop.
            let r = match &a {
                Action::Inode(id, off) => fences.inval_inode(n, *id, *off),
                Action::Entry(parent, name) => Some(n.inval_entry(INodeNo(*parent), OsStr::from_bytes(name))),
            };
            if let Some(Err(e)) = r
                && e.raw_os_error() != Some(libc::ENOENT)
            {
                tracing::debug!("invalidation: {e}");
            }
        }
    }
}

/// The kernel notifications one INVAL needs. False when it changes names in a directory
/// the table does not know (perhaps one being made through this mount right now, whose
/// node is not linked yet: see [`Nodes::learn_new_dir`]).
fn plan(nodes: &Nodes, flags: u32, path: &[u8], out: &mut Vec<Action>) -> bool {
    let mut known = true;
    if flags & inval::ENTRY != 0 {
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (path.get(..i).unwrap_or(&[]), path.get(i + 1..).unwrap_or(&[])),
            None => (&[][..], path),
        };
        if let Some(parent) = nodes.resolve(dir) {
            if let Some(child) = nodes.lookup_name(parent, name) {
                out.push(Action::Inode(child, -1));
            }
            if !name.is_empty() {
                out.push(Action::Entry(parent, name.to_vec()));
            }
            out.push(Action::Inode(parent, 0));
        } else {
            known = false;
        }
    }
    if flags & (inval::ATTR | inval::DATA) != 0
        && let Some(id) = nodes.resolve(path)
    {
        out.push(Action::Inode(id, if flags & inval::DATA != 0 { 0 } else { -1 }));
    }
    known
}
