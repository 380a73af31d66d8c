//! Each FUSE worker thread's own engine connection, as the transport of the typed
//! requests ([`qtfs_client::Ops`]) the file system makes.
//!
//! A worker blocks in one request at a time, so it needs no response demultiplexer: it
//! writes the request on its own connection (attached to the shared session, so handles
//! and export ids are valid on it) and reads the answer itself. Compared with the shared
//! [`qtfs_client::Session`], whose reader thread receives the response and then wakes the
//! waiting thread, this saves one thread wake-up per request — on a 2-vCPU machine a
//! cross-CPU wake-up costs about as much as the engine's work for a small request.
//!
//! A connection is bound to the session (and so the epoch) it attached to; it is never
//! used for another. When the engine lost the session, the re-mount thread of
//! [`crate::remote`] has the shared session open the new one (bumping the epoch) and the
//! thread attaches to that; handle requests name the epoch of their handle and are
//! refused without sending on a connection of another epoch, so an old handle can never
//! reach a new session. Attaching ([`Remote::attach`]) is a step of its own, before a
//! request is sent, so a failure to connect is known to have sent nothing.
//!
//! Owns the per-thread connections ([`BlockingConn`]) and their binding to a session epoch;
//! the requests themselves are encoded and decoded by [`qtfs_client::Ops`], the restart
//! rules live in [`crate::remote`].

use std::cell::RefCell;
use std::time::{Duration, Instant};

use qtfs_client::{
    BlockingConn, ClientError, Connection, Cred, DirEntryOwned, Ops, Request, Result, Stream, Transport,
};
use qtfs_proto::{Attr, consts};

use crate::kernel::uring::tasks;
use crate::remote::Remote;
use crate::ringconn;

/// READDIR pages asked for on a worker's connection.
const DIR_PAGE: u32 = 256 * 1024;

struct Direct {
    owner: u64,
    epoch: u64,
    conn: BlockingConn,
}

thread_local! {
    static DIRECT: RefCell<Option<Direct>> = const { RefCell::new(None) };
    /// The changed (or listed) directories' attributes of this thread's last request
    /// (`feat::DIR_ATTR`, `feat::LIST_ATTR`).
    static CHANGED_DIRS: RefCell<Vec<Attr>> = const { RefCell::new(Vec::new()) };
}

/// The attributes of the directories this thread's last request changed, or of the
/// directory it listed to the end, as the engine read them right after (empty unless it
/// was a name operation that succeeded or such a listing).
pub fn take_changed_dirs() -> Vec<Attr> {
    CHANGED_DIRS.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// This thread's connection to the engine, as the transport of typed requests
/// ([`Remote::conn`], [`Remote::conn_in`]).
pub struct ThreadConn<'r> {
    remote: &'r Remote,
    /// Refuse (ESTALE, nothing sent) unless the connection belongs to this session epoch
    /// (handle requests).
    in_epoch: Option<u64>,
    /// The session epoch the last request was made in.
    epoch: u64,
}

impl ThreadConn<'_> {
    /// The session epoch the last request was made in (the epoch a handle returned by
    /// OPEN or CREATE belongs to).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Transport for ThreadConn<'_> {
    fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        CHANGED_DIRS.with(|c| c.borrow_mut().clear());
        if tasks::in_task() {
            // A request served on its ring's thread: the thread's shared connection,
            // the task suspended while the request is out.
            let link = self.remote.ring_link(None)?;
            let epoch = link.borrow().epoch;
            if self.in_epoch.is_some_and(|e| e != epoch) {
                return Err(ClientError::Remote(libc::ESTALE));
            }
            self.epoch = epoch;
            return ringconn::round_trip(&link, req, |payload| {
                // Other tasks ran meanwhile: only this request's directories count.
                CHANGED_DIRS.with(|c| c.borrow_mut().clear());
                f(payload)
            });
        }
        DIRECT.with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = self.remote.attached(&mut slot, None)?;
            if self.in_epoch.is_some_and(|e| e != d.epoch) {
                return Err(ClientError::Remote(libc::ESTALE));
            }
            self.epoch = d.epoch;
            let r = d.conn.round_trip(req, f);
            if d.conn.is_broken() {
                *slot = None;
            }
            r
        })
    }

    fn changed_dirs(&mut self, dirs: &[Attr]) {
        CHANGED_DIRS.with(|c| c.borrow_mut().extend_from_slice(dirs));
    }
}

impl Remote {
    /// This thread's connection, for path requests (the export id names the epoch).
    pub fn conn(&self) -> ThreadConn<'_> {
        ThreadConn { remote: self, in_epoch: None, epoch: 0 }
    }

    /// This thread's connection, for requests on a handle of session `epoch`: refused
    /// (ESTALE, nothing sent) on a connection of another epoch.
    pub fn conn_in(&self, epoch: u64) -> ThreadConn<'_> {
        ThreadConn { remote: self, in_epoch: Some(epoch), epoch: 0 }
    }

    /// Makes sure this thread has a connection attached to the current session, and
    /// returns that session's epoch. Sends no request; connecting and the handshake end
    /// by `deadline` (within the configured connect timeout).
    pub(crate) fn attach(&self, deadline: Option<Instant>) -> Result<u64> {
        if tasks::in_task() {
            return self.ring_link(deadline).map(|l| l.borrow().epoch);
        }
        DIRECT.with(|cell| self.attached(&mut cell.borrow_mut(), deadline).map(|d| d.epoch))
    }

    /// This thread's connection for the current epoch, opened if needed.
    fn attached<'a>(&self, slot: &'a mut Option<Direct>, deadline: Option<Instant>) -> Result<&'a mut Direct> {
        if slot.as_ref().is_some_and(|d| !self.is_current(d.owner, d.epoch)) {
            *slot = None;
        }
        match slot {
            Some(d) => Ok(d),
            None => Ok(slot.insert(self.open_direct(deadline)?)),
        }
    }

    /// Whether a connection attached by `owner` in `epoch` serves this Remote's current
    /// session (a worker's own, or a ring thread's shared one).
    pub(crate) fn is_current(&self, owner: u64, epoch: u64) -> bool {
        owner == self.id && epoch == self.session.epoch()
    }

    /// Attaches a new connection to the shared session's current session.
    fn open_direct(&self, deadline: Option<Instant>) -> Result<Direct> {
        let (epoch, stream) = self.open_stream(deadline)?;
        Ok(Direct { owner: self.id, epoch, conn: BlockingConn::new(stream) })
    }

    /// Connects and attaches a socket to the shared session's current session: its
    /// epoch and the socket.
    pub(crate) fn open_stream(&self, deadline: Option<Instant>) -> Result<(u64, Stream)> {
        let epoch = self.session.epoch();
        let (sid, token) = self.session.resume_info();
        if self.session.epoch() != epoch {
            return Err(ClientError::Disconnected);
        }
        // INVAL frames go to the shared session's reader threads: this connection is read
        // only while one of its requests waits (see `crate::inval`).
        let mut cfg = self.session.config().clone();
        cfg.features &= !(consts::feat::INVAL | consts::feat::NO_ECHO);
        // Name operations answer with the changed directories' attributes (fs::names), a
        // listing with the directory's (fs::dir), an open with whether the file has
        // extended attributes (fs::xattr).
        cfg.features |= consts::feat::DIR_ATTR | consts::feat::LIST_ATTR | consts::feat::XATTR_NONE;
        let cfg = &cfg;
        let c = match deadline {
            Some(t) => {
                // A request's wait for the engine ends at its deadline, connecting included
                // (a floor keeps a connection that is nearly made from being cut off).
                let left = t.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                let mut cfg = cfg.clone();
                cfg.connect_timeout = cfg.connect_timeout.min(left);
                Connection::open(&cfg, Some((sid, token)))
            }
            None => Connection::open(cfg, Some((sid, token))),
        };
        self.reachable(c.is_ok());
        let c = c.map_err(|e| match e {
            ClientError::Io { .. } | ClientError::Timeout => ClientError::Disconnected,
            o => o,
        })?;
        if c.agreed.session_id != sid {
            // The engine lost the session (a restart). The re-mount thread has the shared
            // session open the new one (bumping the epoch) and mounts the export again;
            // this thread attaches to it once that is done.
            drop(c);
            self.renew();
            return Err(ClientError::Disconnected);
        }
        Ok((epoch, c.stream))
    }

    /// Opens (mode 0); returns the handle, the epoch it belongs to, and the attributes.
    pub fn open(&self, export: u32, path: &[u8], flags: u32, cred: &Cred) -> Result<(u64, u64, Attr)> {
        let mut c = self.conn();
        let (h, a) = c.open(export, path, flags, 0, cred)?;
        Ok((h, c.epoch(), a))
    }

    /// Creates and opens; returns the handle, the epoch it belongs to, and the attributes.
    pub fn create(
        &self,
        export: u32,
        path: &[u8],
        flags: u32,
        mode: u32,
        umask: u32,
        cred: &Cred,
    ) -> Result<(u64, u64, Attr)> {
        let mut c = self.conn();
        let (h, a) = c.create(export, path, flags, mode, umask, true, cred)?;
        Ok((h, c.epoch(), a))
    }

    /// The whole directory, page by page.
    pub fn readdir_all(&self, export: u32, path: &[u8], plus: bool, cred: &Cred) -> Result<Vec<DirEntryOwned>> {
        self.conn().readdir_paged(export, path, plus, DIR_PAGE, cred)
    }
}
