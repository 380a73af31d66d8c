//! A core: the reactor (`ring`) and the services it serves, glued together.
//!
//! The reactor knows no service; this module picks them — file operations ([`fsops`]),
//! unix-socket channels ([`udsmux`]) and export invalidations ([`notify`], on the
//! core's wake-up) — and routes frames by operation and completions by the service id
//! in their user_data. Every route is a `match` on a concrete type: no `dyn` on the
//! path of a request. [`supervise`] keeps a core serving after its loop died.

mod supervise;

pub(crate) use supervise::supervise;

use qtfs_proto::consts::errno;
use qtfs_proto::{FrameHeader, Op};

use crate::ring::{Exit, Reactor, Service, svc_of};
use crate::{fsops, notify, udsmux};

/// The services of one core.
#[derive(Default)]
pub(crate) struct Services {
    fs: fsops::Fs,
    mux: udsmux::State,
}

impl Service for Services {
    fn on_frame(&mut self, r: &mut Reactor, conn: usize, h: FrameHeader, op: Op, payload: &[u8]) {
        match op {
            Op::CHAN_OPEN
            | Op::CHAN_DATA
            | Op::CHAN_CREDIT
            | Op::CHAN_CLOSE
            | Op::CHAN_LISTEN
            | Op::CHAN_UNLISTEN
            | Op::CHAN_SCM => self.mux.on_frame(r, conn, h, op, payload),
            _ if (0x0300..0x0400).contains(&(op as u16)) => {
                // Admin requests are served on the admin socket only.
                if h.is_request() {
                    r.respond_err(conn, h.op, h.id, errno::EPERM);
                }
            }
            _ if op as u16 >= 0x0400 => {
                // Remote exec travels inside channels, never to the engine itself.
                if h.is_request() {
                    r.respond_err(conn, h.op, h.id, errno::ENOSYS);
                }
            }
            _ if h.is_request() => self.fs.on_frame(r, conn, h, op, payload),
            _ => tracing::debug!(conn, op = %op, "unexpected non-request frame ignored"),
        }
    }

    fn on_completion(&mut self, r: &mut Reactor, ud: u64, res: i32, flags: u32) {
        match svc_of(ud) {
            Some((fsops::SVC, _)) => self.fs.on_completion(r, ud, res, flags),
            Some((udsmux::SVC, _)) => self.mux.on_completion(r, ud, res, flags),
            _ => tracing::error!(ud, "completion for an unknown service"),
        }
    }

    fn owner(&self, ud: u64) -> Option<usize> {
        match svc_of(ud) {
            Some((fsops::SVC, _)) => self.fs.owner(ud),
            Some((udsmux::SVC, _)) => self.mux.owner(ud),
            _ => None,
        }
    }

    fn conn_closing(&mut self, r: &mut Reactor, conn: usize) {
        self.fs.conn_closing(r, conn);
        self.mux.conn_closing(r, conn);
    }

    fn on_wake(&mut self, r: &mut Reactor) {
        notify::drain(r);
        self.fs.on_wake(r);
    }

    fn on_tick(&mut self, r: &mut Reactor, trim: bool) {
        self.mux.on_tick(r, trim);
        self.fs.on_tick(r, trim);
    }

    fn end_turn(&mut self, r: &mut Reactor) {
        self.mux.end_turn(r);
    }

    fn abandon(&mut self, ud: u64, res: i32, flags: u32) {
        match svc_of(ud) {
            Some((fsops::SVC, _)) => self.fs.abandon(ud, res, flags),
            Some((udsmux::SVC, _)) => self.mux.abandon(ud, res, flags),
            _ => {}
        }
    }

    fn leak(&mut self) {
        self.fs.leak();
        self.mux.leak();
    }
}

/// One core. The reactor is declared first, so its ring (and the buffer ring it has
/// registered) is gone before the services' memory is freed.
pub(crate) struct Core {
    pub(crate) r: Reactor,
    pub(crate) svc: Services,
}

impl Core {
    /// A core around reactor `r` (`Reactor::new(..).map(Core::new)`), its services new.
    pub fn new(r: Reactor) -> Core {
        Core { r, svc: Services::default() }
    }

    pub fn run(&mut self) -> Exit {
        self.r.run(&mut self.svc)
    }
}
