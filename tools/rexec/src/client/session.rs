//! The session's life: [`Client::start`] (pid files, handshake descriptors, REXEC_EXEC
//! and its answer, streams for stdio, pipes and listeners) and [`Client::run`], the
//! single-threaded poll loop that relays until REXEC_EXIT and every stream drained.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use qtfs_proto::consts::rexec as k;
use qtfs_proto::{
    Bytes32, FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, Path as WPath, Rest, RexecExecReq, RexecFd, RexecSignal,
    RexecStarted, Wire,
};

use super::{
    Client, DaemonWait, EXIT_CANNOT, EXIT_LOCAL, FORWARDED, Options, Route, StartResult, Tok, UserPidFile, classify,
    connect_server_route, env_fd, is_socket, not_passed_line, read_response, say,
};
use crate::error::Error;
use crate::pidfile::{self, PidFile};
use crate::relay::{DEFAULT_WINDOW, Endpoint, PollSet, Relay, Rx, Stream, Tx};
use crate::sys;

impl Client {
    pub(super) fn start(opts: Options, inherited: &[RawFd]) -> StartResult<Client> {
        let local = |e: Error| (EXIT_LOCAL, e.to_string());
        // Handshake descriptors (original semantics: both set, FIFO/pipe fds above 2).
        let hs = match (env_fd("REXEC_HANDSHAKE_RD"), env_fd("REXEC_HANDSHAKE_WR")) {
            (Some(r), Some(w)) => {
                let (r, w) = (r.map_err(|e| (EXIT_LOCAL, e))?, w.map_err(|e| (EXIT_LOCAL, e))?);
                for fd in [r, w] {
                    let is_fifo = sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
                    if fd <= 2 || !is_fifo {
                        return Err((EXIT_LOCAL, format!("REXEC_HANDSHAKE fd {fd} must be a pipe or FIFO above 2")));
                    }
                }
                Some((r, w))
            }
            _ => None,
        };
        let mut fds = Vec::new();
        let mut left_out = Vec::new();
        for &fd in inherited.iter().filter(|&&fd| fd > 2) {
            if hs.is_some_and(|(r, w)| fd == r || fd == w) {
                continue;
            }
            match classify(fd) {
                Ok(i) => fds.push(i),
                Err(e @ Error::UnsupportedFd { .. }) if opts.strict_fds => return Err((EXIT_CANNOT, e.to_string())),
                Err(e @ Error::UnsupportedFd { .. }) => left_out.push(e),
                Err(e) => return Err(local(e)),
            }
        }
        sys::ignore_sigpipe();
        let mask = sys::block_signals(&FORWARDED).map_err(|e| local(Error::io("sigprocmask", e)))?;
        let sigfd = sys::signalfd(&mask).map_err(|e| local(Error::io("signalfd", e)))?;
        let pids = pidfile::dir();
        if let Err(e) = pidfile::clean_stale(&pids) {
            tracing::warn!(dir = %pids.display(), error = %e, "cannot clean stale pid files");
        }

        // The request.
        let mut argv = Vec::new();
        for a in &opts.argv {
            argv.extend_from_slice(a.as_bytes());
            argv.push(0);
        }
        let mut env = Vec::new();
        for (key, val) in std::env::vars_os() {
            let kb = key.as_bytes();
            if kb == b"REXEC_HANDSHAKE_RD" || kb == b"REXEC_HANDSHAKE_WR" {
                continue;
            }
            if let Some(allow) = &opts.env_allow
                && !allow.iter().any(|a| a.as_bytes() == kb)
            {
                continue;
            }
            env.extend_from_slice(kb);
            env.push(b'=');
            env.extend_from_slice(val.as_bytes());
            env.push(0);
        }
        if argv.len() + env.len() > k::MAX_ARGV_ENV {
            return Err((EXIT_CANNOT, "argument list and environment exceed 1 MiB".into()));
        }
        let cwd = std::env::current_dir().map(|p| p.as_os_str().as_bytes().to_vec()).unwrap_or_default();
        let cwd = if cwd.len() > qtfs_proto::MAX_PATH { Vec::new() } else { cwd };
        for i in &fds {
            if i.path.len() > qtfs_proto::MAX_PATH {
                return Err((EXIT_CANNOT, format!("fd {}: path longer than {} bytes", i.fd, qtfs_proto::MAX_PATH)));
            }
        }
        if fds.len() + 3 > k::MAX_FDS {
            return Err((EXIT_CANNOT, format!("more than {} descriptors to pass", k::MAX_FDS)));
        }
        let window = DEFAULT_WINDOW;

        // Endpoints, before connecting (a failure here must not start anything).
        let mut relay = Relay::new();
        let ep =
            |fd: RawFd, write: bool| Endpoint::inherit(fd, write).map_err(|e| local(Error::io(format!("fd {fd}"), e)));
        let stdin = if sys::fd_is_open(0) { Some(ep(0, false)?) } else { None };
        relay.streams.insert(1, Stream { tx: None, rx: Some(Rx::new(ep(1, true)?, window)) });
        relay.streams.insert(2, Stream { tx: None, rx: Some(Rx::new(ep(2, true)?, window)) });
        let mut pipe_in = vec![];
        let mut listeners = vec![];
        for i in &fds {
            match i.kind {
                k::FD_PIPE_IN => pipe_in.push((i.fd as u32, ep(i.fd, false)?)),
                k::FD_PIPE_OUT => {
                    relay.streams.insert(i.fd as u32, Stream { tx: None, rx: Some(Rx::new(ep(i.fd, true)?, window)) });
                }
                k::FD_LISTENER => listeners.push(i.fd),
                _ => {}
            }
        }
        // Without daemonizing, the process that keeps the session is this one.
        let user_pidfile = match (&opts.pidfile, &opts.daemonize_on) {
            (Some(p), None) => Some(UserPidFile::write(p, std::process::id()).map_err(|e| {
                (EXIT_LOCAL, format!("cannot write the pid file {}: {}", p.display(), sys::errstr(&e)))
            })?),
            _ => None,
        };

        let (mut conn, route) = connect_server_route(&opts.socket).map_err(|e| (EXIT_LOCAL, e.to_string()))?;
        // Through the proxy the HOST sees only the files on qtfs mounts.
        if route == Route::Proxied {
            let (keep, local_files): (Vec<_>, Vec<_>) = fds.into_iter().partition(|i| i.host_visible);
            fds = keep;
            for i in local_files {
                let detail = String::from_utf8_lossy(&i.path).into_owned();
                let e = Error::UnsupportedFd { fd: i.fd, kind: "a DPU-local file".into(), detail };
                if opts.strict_fds {
                    return Err((EXIT_CANNOT, e.to_string()));
                }
                left_out.push(e);
            }
        }
        if !left_out.is_empty() {
            left_out.sort_by_key(|e| if let Error::UnsupportedFd { fd, .. } = e { *fd } else { -1 });
            say(&not_passed_line(&left_out));
        }
        let mut recs = Vec::new();
        let mut count = 0u32;
        let mut push_rec = |fd: u32, kind: u32, flags: u32, offset: u64, path: &[u8]| {
            let stream = if kind == k::FD_PIPE_IN || kind == k::FD_PIPE_OUT { fd } else { 0 };
            RexecFd { fd, kind, stream, flags, offset, path: WPath(path) }.encode(&mut recs);
            count += 1;
        };
        push_rec(0, k::FD_PIPE_IN, 0, 0, b"");
        push_rec(1, k::FD_PIPE_OUT, 0, 0, b"");
        push_rec(2, k::FD_PIPE_OUT, 0, 0, b"");
        for i in &fds {
            push_rec(i.fd as u32, i.kind, i.flags, i.offset, &i.path);
        }
        let req = RexecExecReq {
            flags: if hs.is_some() { k::F_HOLD } else { 0 },
            window,
            fd_count: count,
            argv: Bytes32(&argv),
            env: Bytes32(&env),
            cwd: WPath(&cwd),
            fds: Rest(&recs),
        };
        let mut frame = Vec::with_capacity(req.encoded_len() + HEADER_SIZE);
        qtfs_proto::push_frame(&mut frame, FrameHeader::request(Op::REXEC_EXEC, 1, 0), &req);
        if frame.len() - HEADER_SIZE > MAX_PAYLOAD {
            return Err((EXIT_CANNOT, "request too large".into()));
        }
        conn.write_all(&frame).map_err(|e| (EXIT_LOCAL, format!("sending the request: {e}")))?;
        let (h, payload) =
            read_response(&mut conn, 60_000).map_err(|e| (EXIT_LOCAL, format!("waiting for rexec_server: {e}")))?;
        if h.op != Op::REXEC_EXEC as u16 || !h.is_response() {
            return Err((EXIT_LOCAL, format!("unexpected answer (op {:#06x}) from rexec_server", h.op)));
        }
        if h.is_error() {
            return Err((
                EXIT_LOCAL,
                format!("rexec_server refused the request: {}", io::Error::from_raw_os_error(h.status)),
            ));
        }
        let st =
            RexecStarted::decode(&payload).map_err(|e| (EXIT_LOCAL, format!("bad answer from rexec_server: {e}")))?;
        if !(k::MIN_WINDOW..=k::MAX_WINDOW).contains(&st.window) {
            return Err((EXIT_LOCAL, "bad window from rexec_server".into()));
        }
        tracing::info!(pid = st.pid, ?route, "remote process started");
        // Streams we send on use the server's window.
        if let Some(s) = stdin {
            relay.streams.insert(0, Stream { tx: Some(Tx::new(s, st.window)), rx: None });
        }
        for (id, e) in pipe_in {
            relay.streams.insert(id, Stream { tx: Some(Tx::new(e, st.window)), rx: None });
        }
        let mut pf = None;
        if st.pid != 0 {
            match PidFile::create(&pids, std::process::id(), st.pid) {
                Ok(p) => pf = Some(p),
                Err(e) => tracing::warn!(dir = %pids.display(), error = %e, "cannot write the pid file"),
            }
        }
        if let Some((_, w)) = hs {
            // The caller may now look the remote pid up and then release it through RD.
            let _ = sys::write(w, b"1");
        }
        conn.set_nonblocking(true).map_err(|e| local(Error::io("socket", e)))?;
        Ok(Client {
            relay,
            conn: Some(conn),
            pid: st.pid,
            token: st.token,
            sigfd,
            listeners,
            next_conn: k::CONN_STREAM_BASE,
            handshake_rd: hs.map(|(r, _)| r),
            exit: None,
            lost_at: None,
            last_try: None,
            server_window: st.window,
            protocol_failed: None,
            pidfile: pf,
            user_pidfile,
            daemon: (st.pid != 0)
                .then(|| opts.daemonize_on.clone().map(|socket| DaemonWait { socket, since: Instant::now() }))
                .flatten(),
            opts,
        })
    }

    pub(super) fn done(&self) -> bool {
        self.exit.is_some()
            && self.relay.streams.iter().all(|(&id, s)| {
                id >= k::CONN_STREAM_BASE || s.rx.as_ref().is_none_or(|r| r.buf.is_empty() || r.dst.is_none())
            })
    }

    pub(super) fn run(mut self) -> i32 {
        let mut set = PollSet::default();
        while !self.done() {
            set.begin(self.conn.as_ref().map(|c| c.as_raw_fd()), &self.relay.link, Tok::Conn);
            set.add(self.sigfd.as_raw_fd(), libc::POLLIN, Tok::Sig);
            if self.exit.is_none() {
                for &l in &self.listeners {
                    set.add(l, libc::POLLIN, Tok::Listener(l));
                }
                if let Some(r) = self.handshake_rd {
                    set.add(r, libc::POLLIN, Tok::HandshakeRd);
                }
            }
            // While waiting for the daemon socket, look for it every 15 ms.
            let waiting = self.daemon.is_some() && self.exit.is_none();
            let timeout = if waiting {
                15
            } else if self.conn.is_none() {
                100
            } else {
                -1
            };
            if let Err(e) = set.poll(&self.relay, Tok::Stream, timeout) {
                say(&format!("poll: {e}"));
                return EXIT_LOCAL;
            }
            for (tok, revents) in set.ready() {
                match tok {
                    Tok::Conn => self.on_conn_event(revents),
                    Tok::Sig => {
                        while let Some(sig) = sys::signalfd_read(self.sigfd.as_raw_fd()) {
                            tracing::info!(sig, "forwarding signal");
                            self.relay.link.push(Op::REXEC_SIGNAL, 0, &RexecSignal { signal: sig, flags: 0 });
                        }
                    }
                    Tok::Stream(id, true) => {
                        self.relay.pump_tx(id);
                    }
                    Tok::Stream(id, false) => self.relay.pump_rx(id),
                    Tok::Listener(l) => self.on_listener(l),
                    Tok::HandshakeRd => self.on_handshake(),
                }
            }
            if let Some(code) = self.protocol_failed.take() {
                return code;
            }
            if self.conn.is_none()
                && self.exit.is_none()
                && let Err(code) = self.reconnect()
            {
                return code;
            }
            self.relay.reap_finished();
            self.relay.link.maybe_ack();
            if let Some(c) = &self.conn
                && let Err(e) = self.relay.link.flush(c.as_raw_fd())
            {
                self.lost(&format!("write: {e}"));
            }
            if self.exit.is_none()
                && let Some(d) = &self.daemon
            {
                if is_socket(&d.socket) {
                    if let Err(code) = self.daemonize() {
                        return code;
                    }
                } else if d.since.elapsed() > self.opts.daemonize_timeout {
                    say(&format!(
                        "{} did not appear within {} s; stopping the remote process",
                        d.socket.display(),
                        self.opts.daemonize_timeout.as_secs_f64()
                    ));
                    self.relay.link.push(Op::REXEC_SIGNAL, 0, &RexecSignal { signal: libc::SIGTERM, flags: 0 });
                    if let Some(c) = &self.conn {
                        let _ = self.relay.link.flush(c.as_raw_fd());
                    }
                    // Our connection closes as we exit: rexec_server then kills the group.
                    return 1;
                }
            }
        }
        let e = self.exit.unwrap_or_default();
        tracing::info!(status = e.status, signal = e.signal, "remote process ended");
        e.status
    }
}
