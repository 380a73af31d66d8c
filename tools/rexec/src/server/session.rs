//! One remote-exec session on the server: its own thread running one poll loop over the
//! client connection, the child's pipes and pidfd, the error pipe, relayed listener
//! connections and a wake-up eventfd (REXEC_ATTACH hand-over).
//!
//! Lifetime rules (see PROTOCOL.md, "Remote exec"): the child is kept as a zombie
//! (`waitid(WNOWAIT)`) until the session ends, so `killpg(pid)` can never hit a reused
//! group; EOF on the current connection = the client died = kill the group (unless the
//! process already ended, or `--eof-grace` asks to wait for a REXEC_ATTACH first); any
//! other connection failure detaches the session for at most the grace period.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use qtfs_proto::consts::rexec as k;
use qtfs_proto::{FrameHeader, Op, RexecAttached, RexecConn, RexecEof, RexecExit, RexecRelease, RexecSignal, Wire};

use super::spawn::{self, Spawned};
use super::{Attach, Shared};
use crate::error::{Error, Result};
use crate::link;
use crate::relay::{Endpoint, IoMode, PollSet, Relay, Rx, Stream, Tx};
use crate::sys::{self, ExitKind};

/// Most streams (relayed connections included) one session may have open.
const MAX_STREAMS: usize = 4096;

/// The process side of a session.
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub err: Option<OwnedFd>,
    pub hold: Option<OwnedFd>,
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub pid: i32,
    pub binary: Vec<u8>,
    pub relay: Relay,
    pub conn: Option<UnixStream>,
    pub child: Option<Child>,
    /// Known once the process ended (or preset when nothing was started).
    pub exit: Option<ExitKind>,
    /// Text to send on stderr before EXIT (a refusal or an exec failure).
    pub message: Option<String>,
    pub listeners: HashMap<u32, PathBuf>,
    pub client_window: u32,
    pub server_window: u32,
    pub attach_rx: Option<Receiver<Attach>>,
    pub wake: Option<Arc<OwnedFd>>,
    exit_sent: bool,
    detached_since: Option<Instant>,
    grace: Duration,
}

#[derive(Clone, Copy)]
enum Tok {
    Conn,
    Wake,
    Pidfd,
    Err,
    Stream(u32, bool),
}

/// How the loop ended.
enum End {
    /// The client closed after REXEC_EXIT (or a refusal finished).
    Done,
    /// The client went away before the end; the group was killed.
    Killed(&'static str),
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        pid: i32,
        binary: Vec<u8>,
        conn: UnixStream,
        child: Option<Spawned>,
        client_window: u32,
        server_window: u32,
    ) -> Session {
        let grace = shared.cfg.grace;
        Session {
            shared,
            pid,
            binary,
            relay: Relay::new(),
            conn: Some(conn),
            child: child.map(|s| Child { pid: s.pid, pidfd: s.pidfd, err: Some(s.err), hold: s.hold }),
            exit: None,
            message: None,
            listeners: HashMap::new(),
            client_window,
            server_window,
            attach_rx: None,
            wake: None,
            exit_sent: false,
            detached_since: None,
            grace,
        }
    }

    /// Adds the server ends of the relayed pipes as streams.
    pub fn add_pipes(&mut self, ends: spawn::PipeEnds) {
        for (id, out, ep) in ends {
            let s = self.relay.streams.entry(id).or_default();
            if out {
                s.tx = Some(Tx::new(ep, self.client_window));
            } else {
                s.rx = Some(Rx::new(ep, self.server_window));
            }
        }
    }

    /// Runs the session to its end; returns the exit status for the log.
    pub fn run(mut self) -> Option<ExitKind> {
        if let Some(c) = &self.conn {
            let _ = c.set_nonblocking(true);
        }
        if self.child.is_none() {
            // Nothing runs: the refusal text goes out, then EXIT once every stream drained.
            self.inject_message();
        }
        let end = self.event_loop();
        self.finish(end)
    }

    fn event_loop(&mut self) -> End {
        let mut set = PollSet::default();
        loop {
            set.begin(self.conn.as_ref().map(|c| c.as_raw_fd()), &self.relay.link, Tok::Conn);
            if let Some(w) = &self.wake {
                set.add(w.as_raw_fd(), libc::POLLIN, Tok::Wake);
            }
            if let Some(ch) = &self.child {
                if self.exit.is_none() {
                    set.add(ch.pidfd.as_raw_fd(), libc::POLLIN, Tok::Pidfd);
                }
                if let Some(e) = &ch.err {
                    set.add(e.as_raw_fd(), libc::POLLIN, Tok::Err);
                }
            }
            let timeout = match self.detached_since {
                Some(t) => {
                    let left = self.grace.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        return self.kill_group("detached longer than the grace period");
                    }
                    left.as_millis().min(1000) as i32 + 1
                }
                None => -1,
            };
            if let Err(e) = set.poll(&self.relay, Tok::Stream, timeout) {
                tracing::error!(pid = self.pid, error = %e, "poll failed");
                return self.kill_group("internal error");
            }
            for (tok, revents) in set.ready() {
                match tok {
                    Tok::Conn => {
                        if let Some(end) = self.on_conn_event(revents) {
                            return end;
                        }
                    }
                    Tok::Wake => self.on_wake(),
                    Tok::Pidfd => self.on_child_event(),
                    Tok::Err => self.read_error_pipe(),
                    Tok::Stream(id, true) => {
                        self.relay.pump_tx(id);
                    }
                    Tok::Stream(id, false) => self.relay.pump_rx(id),
                }
            }
            self.maybe_exit();
            self.relay.reap_finished();
            self.relay.link.maybe_ack();
            if let Some(end) = self.flush() {
                return end;
            }
        }
    }

    fn on_conn_event(&mut self, revents: i16) -> Option<End> {
        let fd = self.conn.as_ref()?.as_raw_fd();
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            loop {
                match self.relay.link.fill(fd) {
                    Ok(0) => return self.client_gone(),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A unix socket whose peer died with unread data reports ECONNRESET:
                    // that is the client going away too.
                    Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return self.client_gone(),
                    Err(e) => {
                        self.detach(&format!("connection error: {e}"));
                        return None;
                    }
                }
                let r = link::for_each_frame(self, |s| &mut s.relay.link, |s, h, p| s.on_frame(h, p));
                if let Err(e) = r {
                    self.detach(&e.to_string());
                    return None;
                }
            }
        }
        None
    }

    fn on_frame(&mut self, h: &FrameHeader, p: &[u8]) -> Result<()> {
        if let Some(r) = self.relay.on_session_frame(h, p) {
            return r;
        }
        match h.op() {
            Some(Op::REXEC_SIGNAL) => {
                let m = RexecSignal::decode(p)?;
                self.on_signal(m.signal, m.flags);
                Ok(())
            }
            Some(Op::REXEC_RELEASE) => {
                let m = RexecRelease::decode(p)?;
                self.on_release(m.go);
                Ok(())
            }
            Some(Op::REXEC_CONN) => {
                let m = RexecConn::decode(p)?;
                self.on_conn(h.channel, m.fd)
            }
            _ => Err(Error::proto(format!("unexpected op {:#06x} in a session", h.op))),
        }
    }

    fn on_signal(&mut self, sig: i32, flags: u32) {
        if !(1..=64).contains(&sig) {
            tracing::warn!(pid = self.pid, sig, "ignored bad signal number");
            return;
        }
        let (Some(ch), None) = (&self.child, self.exit) else { return };
        tracing::info!(pid = ch.pid, sig, group = flags & k::SIGNAL_GROUP != 0, "forwarding signal");
        // The child is not reaped before the session ends, so neither its pid nor its
        // group id can have been reused.
        let r = if flags & k::SIGNAL_GROUP != 0 {
            sys::killpg(ch.pid, sig)
        } else {
            sys::pidfd_send_signal(ch.pidfd.as_raw_fd(), sig)
        };
        if let Err(e) = r {
            tracing::debug!(pid = ch.pid, sig, error = %e, "signal not delivered");
        }
    }

    fn on_release(&mut self, go: u32) {
        let Some(ch) = &mut self.child else { return };
        if let Some(h) = ch.hold.take() {
            tracing::info!(pid = ch.pid, go, "handshake release");
            if go == 1 {
                let _ = sys::write(h.as_raw_fd(), &[1]);
            }
        }
    }

    fn on_conn(&mut self, id: u32, fd: u32) -> Result<()> {
        if id < k::CONN_STREAM_BASE || self.relay.streams.contains_key(&id) {
            return Err(Error::proto(format!("REXEC_CONN with bad stream id {id}")));
        }
        let refuse = |relay: &mut Relay, errno: i32| {
            relay.link.push(Op::REXEC_EOF, id, &RexecEof { how: k::EOF_WRITE, error: errno });
            relay.link.push(Op::REXEC_EOF, id, &RexecEof { how: k::EOF_READ, error: errno });
        };
        let Some(path) = self.listeners.get(&fd) else {
            refuse(&mut self.relay, libc::EBADF);
            return Ok(());
        };
        if self.relay.streams.len() >= MAX_STREAMS {
            refuse(&mut self.relay, libc::EMFILE);
            return Ok(());
        }
        match sys::unix_connect_nb(path).and_then(|s| Ok((sys::dup_cloexec(s.as_raw_fd(), 3)?, s))) {
            Ok((a, b)) => {
                tracing::debug!(pid = self.pid, fd, stream = id, "relaying a connection");
                self.relay.streams.insert(
                    id,
                    Stream {
                        tx: Some(Tx::new(Endpoint::new(a, IoMode::Nonblocking), self.client_window)),
                        rx: Some(Rx::new(Endpoint::new(b, IoMode::Nonblocking), self.server_window)),
                    },
                );
            }
            Err(e) => {
                tracing::info!(pid = self.pid, fd, error = %e, "relayed connection refused");
                refuse(&mut self.relay, sys::errno_of(&e));
            }
        }
        Ok(())
    }

    fn on_wake(&mut self) {
        if let Some(w) = &self.wake {
            sys::eventfd_drain(w.as_raw_fd());
        }
        let mut pending = Vec::new();
        if let Some(rx) = &self.attach_rx {
            while let Ok(a) = rx.try_recv() {
                pending.push(a);
            }
        }
        for a in pending {
            self.attach(a);
        }
    }

    /// A REXEC_ATTACH with the right token arrived on a new connection.
    fn attach(&mut self, a: Attach) {
        let mut conn = a.conn;
        if let Err(e) = self.relay.link.resume(a.received) {
            tracing::warn!(pid = self.pid, error = %e, "REXEC_ATTACH refused");
            let mut out = Vec::new();
            FrameHeader::error(Op::REXEC_ATTACH as u16, a.id, libc::EPROTO).push(&mut out);
            let _ = conn.write_all(&out);
            return;
        }
        let mut out = Vec::new();
        let rsp = RexecAttached { pid: self.pid, received: self.relay.link.received() };
        qtfs_proto::push_frame(&mut out, FrameHeader::response(Op::REXEC_ATTACH as u16, a.id, 0), &rsp);
        if let Err(e) = conn.write_all(&out).and_then(|_| conn.set_nonblocking(true)) {
            tracing::warn!(pid = self.pid, error = %e, "REXEC_ATTACH: cannot answer");
            return;
        }
        tracing::info!(pid = self.pid, peer = %a.peer, resumed_at = a.received, "client reattached");
        // The superseded connection is closed; its EOF means nothing any more.
        self.conn = Some(conn);
        self.detached_since = None;
    }

    fn on_child_event(&mut self) {
        let Some(ch) = &self.child else { return };
        match sys::waitid_pidfd(ch.pidfd.as_raw_fd(), true, false) {
            Ok(Some(k)) => {
                tracing::debug!(pid = ch.pid, status = k.status(), "process ended");
                self.exit = Some(k);
                // The error pipe's write end died with the child: its report is complete.
                self.read_error_pipe();
                // From now on an empty source means "everything the process wrote was read".
                for s in self.relay.streams.values_mut() {
                    if let Some(tx) = &mut s.tx {
                        tx.empty_seen = false;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(pid = ch.pid, error = %e, "waitid"),
        }
    }

    fn read_error_pipe(&mut self) {
        let Some(ch) = &mut self.child else { return };
        let Some(e) = ch.err.take() else { return };
        let mut b = [0u8; 8];
        match sys::read(e.as_raw_fd(), &mut b) {
            Ok(8) => {
                let stage = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let errno = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as i32;
                let text = spawn::failure_text(&self.binary, stage, errno);
                tracing::warn!(pid = ch.pid, "{}", text.trim_end());
                self.message = Some(text);
                self.inject_message();
            }
            Ok(_) => {} // EOF: execve succeeded (close-on-exec closed the pipe).
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => ch.err = Some(e),
            Err(_) => {}
        }
    }

    /// Queues the pending message on stream 2 (stderr), within its window.
    fn inject_message(&mut self) {
        let Some(text) = self.message.take() else { return };
        let Some(tx) = self.relay.streams.get_mut(&2).and_then(|s| s.tx.as_mut()) else { return };
        if tx.done {
            return;
        }
        let b = &text.as_bytes()[..text.len().min(tx.room())];
        self.relay.link.push_data(2, b);
        tx.sent += b.len() as u64;
    }

    /// Sends REXEC_EXIT once the process ended and each output stream reached EOF or was
    /// found empty after the end.
    fn maybe_exit(&mut self) {
        let Some(kind) = self.exit else { return };
        if self.exit_sent || self.child.as_ref().is_some_and(|c| c.err.is_some()) {
            return;
        }
        let ids: Vec<u32> = self.relay.streams.keys().copied().collect();
        for id in ids {
            let Some(tx) = self.relay.streams.get(&id).and_then(|s| s.tx.as_ref()) else { continue };
            if !tx.done && !tx.empty_seen && tx.room() > 0 {
                self.relay.pump_tx(id);
            }
        }
        let all_out = self.relay.streams.values().all(|s| s.tx.as_ref().is_none_or(|t| t.done || t.empty_seen));
        if !all_out {
            return;
        }
        // Sources still open belong to background processes of the group: their later
        // output is not part of this process's result.
        for (&id, s) in self.relay.streams.iter_mut() {
            if let Some(tx) = &mut s.tx
                && !tx.done
            {
                tx.done = true;
                tx.src = None;
                self.relay.link.push(Op::REXEC_EOF, id, &RexecEof { how: k::EOF_WRITE, error: 0 });
            }
        }
        self.relay.link.push(Op::REXEC_EXIT, 0, &RexecExit { status: kind.status(), signal: kind.signal() });
        self.exit_sent = true;
        tracing::debug!(pid = self.pid, status = kind.status(), "REXEC_EXIT queued");
    }

    fn flush(&mut self) -> Option<End> {
        let c = self.conn.as_ref()?;
        if let Err(e) = self.relay.link.flush(c.as_raw_fd()) {
            if matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) {
                return self.client_gone();
            }
            self.detach(&format!("write failed: {e}"));
        }
        None
    }

    /// EOF (or reset) on the current connection.
    fn client_gone(&mut self) -> Option<End> {
        self.conn = None;
        if self.exit_sent {
            return Some(End::Done);
        }
        if !self.shared.cfg.eof_grace.is_zero() {
            self.grace = self.shared.cfg.eof_grace;
            self.detached_since = Some(Instant::now());
            tracing::info!(
                pid = self.pid,
                grace_s = self.grace.as_secs_f64(),
                "client connection closed; waiting for REXEC_ATTACH"
            );
            return None;
        }
        Some(self.kill_group("the client went away"))
    }

    fn detach(&mut self, why: &str) {
        tracing::warn!(
            pid = self.pid,
            why,
            grace_s = self.shared.cfg.grace.as_secs_f64(),
            "session detached; waiting for REXEC_ATTACH"
        );
        self.conn = None;
        self.grace = self.shared.cfg.grace;
        self.detached_since = Some(Instant::now());
    }

    fn kill_group(&mut self, why: &'static str) -> End {
        if self.exit_sent || self.child.is_none() {
            return End::Done;
        }
        if let Some(ch) = &self.child {
            tracing::info!(pid = ch.pid, why, "killing the process group");
            // Safe against pid reuse: the leader is not reaped until `finish`.
            let _ = sys::killpg(ch.pid, libc::SIGKILL);
            let _ = sys::pidfd_send_signal(ch.pidfd.as_raw_fd(), libc::SIGKILL);
        }
        End::Killed(why)
    }

    /// Reaps the child, removes listener sockets, forgets the session.
    fn finish(&mut self, end: End) -> Option<ExitKind> {
        let mut status = self.exit;
        if let Some(ch) = &self.child {
            match sys::waitid_pidfd(ch.pidfd.as_raw_fd(), false, true) {
                Ok(Some(k)) => status = status.or(Some(k)),
                Ok(None) => {}
                Err(e) => tracing::error!(pid = ch.pid, error = %e, "reaping"),
            }
        }
        for p in self.listeners.values() {
            let _ = std::fs::remove_file(p);
        }
        if self.child.is_some() {
            self.shared.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.pid);
        }
        match end {
            End::Done => {}
            End::Killed(why) => tracing::info!(pid = self.pid, why, "session ended by a kill"),
        }
        status
    }
}
