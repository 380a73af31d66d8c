//! The poll loop's handlers: `--daemonize-on-socket` (fork and take-over), connection
//! readiness and frames from rexec_server, new listener connections, the REXEC_HANDSHAKE
//! descriptors, and reattaching after a transport drop within the grace period.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use qtfs_proto::consts::rexec as k;
use qtfs_proto::{FrameHeader, Op, RexecAttachReq, RexecAttached, RexecConn, RexecExit, RexecRelease, Wire};

use super::{Client, EXIT_LOCAL, UserPidFile, connect_server, read_response, say};
use crate::error::{Error, Result};
use crate::link;
use crate::pidfile::{self, PidFile};
use crate::relay::{DEFAULT_WINDOW, Endpoint, IoMode, Rx, Stream, Tx};
use crate::sys;

impl Client {
    /// `--daemonize-on-socket`: the socket exists. Forks; the parent exits 0 once the
    /// child reports that it took over (1 if it failed); the child returns here and keeps
    /// running the session. rexec is single-threaded, so the child may run any code.
    pub(super) fn daemonize(&mut self) -> std::result::Result<(), i32> {
        self.daemon = None;
        // Output that arrived before the socket still reaches the caller if it can.
        self.relay.pump_rx(1);
        self.relay.pump_rx(2);
        let (r, w) = sys::pipe().map_err(|e| {
            say(&format!("pipe: {e}"));
            EXIT_LOCAL
        })?;
        // SAFETY: rexec has one thread, so the child has no locks or allocator state held
        // by another thread.
        let pid = unsafe { sys::fork() }.map_err(|e| {
            say(&format!("fork: {e}"));
            EXIT_LOCAL
        })?;
        if pid > 0 {
            drop(w);
            let mut got = Vec::new();
            let _ = std::fs::File::from(r).read_to_end(&mut got);
            if got.first() == Some(&b'1') {
                tracing::info!(daemon = pid, "daemonized");
                std::process::exit(0);
            }
            let why = String::from_utf8_lossy(got.get(1..).unwrap_or_default()).into_owned();
            say(&format!("the daemonized rexec (pid {pid}) failed: {}", if why.is_empty() { "it died" } else { &why }));
            std::process::exit(1);
        }
        drop(r);
        match self.become_daemon() {
            Ok(()) => {
                let _ = sys::write(w.as_raw_fd(), b"1");
                Ok(())
            }
            Err(why) => {
                let _ = sys::write(w.as_raw_fd(), format!("0{why}").as_bytes());
                // Exiting closes the connection: rexec_server kills the remote group.
                Err(1)
            }
        }
    }

    /// The daemon child's take-over: own session, stdio on /dev/null (no copy of the
    /// caller's 0, 1, 2 stays open, so its pipes see EOF), the pid map file and
    /// `--pidfile` for our own pid.
    pub(super) fn become_daemon(&mut self) -> std::result::Result<(), String> {
        sys::setsid().map_err(|e| format!("setsid: {e}"))?;
        for id in 0..3 {
            self.relay.drop_local(id);
        }
        let null = sys::open(c"/dev/null", libc::O_RDWR, 0).map_err(|e| format!("/dev/null: {e}"))?;
        for fd in 0..3 {
            sys::dup2(null.as_raw_fd(), fd).map_err(|e| format!("dup2: {e}"))?;
        }
        let me = std::process::id();
        if self.pid != 0 {
            let pids = pidfile::dir();
            // Ours first, then the parent's goes (dropping it removes its file).
            let new = PidFile::create(&pids, me, self.pid)
                .map_err(|e| tracing::warn!(dir = %pids.display(), error = %e, "cannot write the pid file"))
                .ok();
            drop(std::mem::replace(&mut self.pidfile, new));
        }
        if let Some(p) = &self.opts.pidfile {
            let f = UserPidFile::write(p, me)
                .map_err(|e| format!("cannot write the pid file {}: {}", p.display(), sys::errstr(&e)))?;
            self.user_pidfile = Some(f);
        }
        Ok(())
    }

    pub(super) fn on_conn_event(&mut self, revents: i16) {
        let Some(fd) = self.conn.as_ref().map(|c| c.as_raw_fd()) else { return };
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        loop {
            match self.relay.link.fill(fd) {
                Ok(0) => {
                    self.lost("connection closed");
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lost(&format!("read: {e}"));
                    return;
                }
            }
            if let Err(e) = link::for_each_frame(self, |c| &mut c.relay.link, |c, h, p| c.on_frame(h, p)) {
                say(&format!("{e}"));
                self.protocol_failed = Some(EXIT_LOCAL);
                return;
            }
        }
    }

    pub(super) fn on_frame(&mut self, h: &FrameHeader, p: &[u8]) -> Result<()> {
        if let Some(r) = self.relay.on_session_frame(h, p) {
            return r;
        }
        match h.op() {
            Some(Op::REXEC_EXIT) => {
                let m = RexecExit::decode(p)?;
                self.exit = Some(m);
                // Tell the server at once that everything was processed.
                self.relay.link.ack_now();
                Ok(())
            }
            _ => Err(Error::proto(format!("unexpected op {:#06x} from rexec_server", h.op))),
        }
    }

    pub(super) fn on_listener(&mut self, l: RawFd) {
        match sys::accept(l) {
            Ok(sock) => {
                let id = self.next_conn;
                self.next_conn = self.next_conn.wrapping_add(1).max(k::CONN_STREAM_BASE);
                let dup = match sys::dup_cloexec(sock.as_raw_fd(), 3) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(fd = l, error = %e, "dup of an accepted connection");
                        return;
                    }
                };
                tracing::debug!(fd = l, stream = id, "relaying an accepted connection");
                self.relay.streams.insert(
                    id,
                    Stream {
                        tx: Some(Tx::new(Endpoint::new(sock, IoMode::Nonblocking), self.server_window)),
                        rx: Some(Rx::new(Endpoint::new(dup, IoMode::Nonblocking), DEFAULT_WINDOW)),
                    },
                );
                self.relay.link.push(Op::REXEC_CONN, id, &RexecConn { fd: l as u32 });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!(fd = l, error = %e, "accept"),
        }
    }

    pub(super) fn on_handshake(&mut self) {
        let Some(r) = self.handshake_rd else { return };
        let mut b = [0u8; 1];
        let go = match sys::read(r, &mut b) {
            Ok(1) => (b[0] == b'1') as u32,
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        tracing::info!(go, "handshake: releasing the remote process");
        self.relay.link.push(Op::REXEC_RELEASE, 0, &RexecRelease { go });
        // One release decides; later bytes or EOF on RD mean nothing.
        self.handshake_rd = None;
    }

    pub(super) fn lost(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(why, "connection to rexec_server lost; reattaching");
            self.lost_at = Some(Instant::now());
        }
    }

    /// One reattach attempt every 150 ms until the grace period is over.
    pub(super) fn reconnect(&mut self) -> std::result::Result<(), i32> {
        let since = self.lost_at.get_or_insert_with(Instant::now).elapsed();
        if since > self.opts.grace {
            say(&format!(
                "lost rexec_server for more than {:.0} s; giving up (the remote process is killed by the server)",
                self.opts.grace.as_secs_f64()
            ));
            return Err(EXIT_LOCAL);
        }
        if self.last_try.is_some_and(|t| t.elapsed() < Duration::from_millis(150)) {
            return Ok(());
        }
        self.last_try = Some(Instant::now());
        let mut conn = match connect_server(&self.opts.socket) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "reattach: connect failed");
                return Ok(());
            }
        };
        let req = RexecAttachReq { pid: self.pid, token: self.token, received: self.relay.link.received() };
        let mut out = Vec::new();
        qtfs_proto::push_frame(&mut out, FrameHeader::request(Op::REXEC_ATTACH, 2, 0), &req);
        if conn.write_all(&out).is_err() {
            return Ok(());
        }
        let (h, payload) = match read_response(&mut conn, 5_000) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "reattach: no answer");
                return Ok(());
            }
        };
        if h.is_error() {
            say(&format!(
                "cannot reattach to the remote process {}: {}",
                self.pid,
                io::Error::from_raw_os_error(h.status)
            ));
            return Err(EXIT_LOCAL);
        }
        let Ok(rsp) = RexecAttached::decode(&payload) else {
            say("bad REXEC_ATTACH answer");
            return Err(EXIT_LOCAL);
        };
        if let Err(e) = self.relay.link.resume(rsp.received) {
            say(&format!("cannot resume the session: {e}"));
            return Err(EXIT_LOCAL);
        }
        if conn.set_nonblocking(true).is_err() {
            return Ok(());
        }
        tracing::info!(pid = self.pid, "reattached");
        self.conn = Some(conn);
        self.lost_at = None;
        Ok(())
    }
}
