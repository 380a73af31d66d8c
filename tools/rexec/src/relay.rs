//! Streams between local descriptors and the session link, with per-stream credit flow
//! control; shared by rexec and rexec_server.
//!
//! A stream has up to two directions: `tx` (we read a local descriptor and send DATA) and
//! `rx` (we receive DATA and write a local descriptor). A sender never has more than the
//! receiver's window beyond the receiver's cumulative `consumed` credit, so a stalled
//! destination stalls only its own stream: we simply stop reading its source. This module
//! owns the descriptors of the streams; it never touches the connection itself.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use qtfs_proto::consts::rexec::{EOF_READ, EOF_WRITE};
use qtfs_proto::{FrameHeader, Op, RexecAck, RexecCredit, RexecEof, Wire};

use crate::error::{Error, Result};
use crate::link::Link;
use crate::sys;

/// Largest DATA frame we send.
pub const CHUNK: usize = 256 * 1024;
/// Default receive window per stream.
pub const DEFAULT_WINDOW: u32 = 1 << 20;

/// How to do non-blocking I/O on a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Our own open file description with O_NONBLOCK.
    Nonblocking,
    /// A socket whose flags we do not own: MSG_DONTWAIT per call.
    Socket,
    /// Regular files and block devices: never "would block".
    Always,
}

/// A local descriptor a stream reads or writes.
#[derive(Debug)]
pub struct Endpoint {
    fd: OwnedFd,
    mode: IoMode,
    /// Inherited descriptor number this endpoint stands for: closed (0–2: pointed at
    /// /dev/null) with it, so that the local reader or writer sees EOF when we are done.
    orig: Option<RawFd>,
    /// File flags to restore on `orig` when we had to set O_NONBLOCK on a shared open
    /// file description.
    restore: Option<i32>,
}

impl Endpoint {
    pub fn new(fd: OwnedFd, mode: IoMode) -> Endpoint {
        Endpoint { fd, mode, orig: None, restore: None }
    }

    /// Wraps an inherited descriptor number without disturbing other holders of its open
    /// file description: pipes, FIFOs and ttys are reopened through /proc (a private
    /// O_NONBLOCK); sockets use MSG_DONTWAIT; regular files need nothing; otherwise
    /// O_NONBLOCK is set and restored when the endpoint is dropped.
    pub fn inherit(fd: RawFd, write: bool) -> io::Result<Endpoint> {
        let st = sys::fstat(fd)?;
        let fmt = st.st_mode & libc::S_IFMT;
        let acc = if write { libc::O_WRONLY } else { libc::O_RDONLY };
        let (own, mode, restore) = match fmt {
            libc::S_IFREG | libc::S_IFBLK => (sys::dup_cloexec(fd, 3)?, IoMode::Always, None),
            libc::S_IFSOCK => (sys::dup_cloexec(fd, 3)?, IoMode::Socket, None),
            _ => match sys::reopen_fd(fd, acc | libc::O_NONBLOCK) {
                Ok(o) => (o, IoMode::Nonblocking, None),
                Err(_) => {
                    let old = sys::set_nonblock(fd, true)?;
                    (sys::dup_cloexec(fd, 3)?, IoMode::Nonblocking, Some(old))
                }
            },
        };
        Ok(Endpoint { fd: own, mode, orig: Some(fd), restore })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.mode {
            IoMode::Socket => sys::recv_nb(self.raw(), buf),
            _ => sys::read(self.raw(), buf),
        }
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self.mode {
            IoMode::Socket => sys::send_nb(self.raw(), buf),
            _ => sys::write(self.raw(), buf),
        }
    }

    pub fn is_socket(&self) -> bool {
        self.mode == IoMode::Socket || sys::sockopt_int(self.raw(), libc::SOL_SOCKET, libc::SO_TYPE).is_ok()
    }
}

impl Endpoint {
    /// The stream is over: also close the inherited number it stands for, so that the
    /// local peer sees EOF (or EPIPE) now rather than when rexec exits.
    pub fn finish(mut self) {
        if let Some(o) = self.orig.take() {
            if let Some(fl) = self.restore.take() {
                let _ = sys::set_fl(o, fl);
            }
            if o <= 2 {
                if let Ok(null) = sys::open(c"/dev/null", libc::O_RDWR, 0) {
                    let _ = sys::dup2(null.as_raw_fd(), o);
                }
            } else {
                sys::close_raw(o);
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let (Some(o), Some(fl)) = (self.orig, self.restore) {
            let _ = sys::set_fl(o, fl);
        }
    }
}

/// Our sending direction of a stream.
#[derive(Debug)]
pub struct Tx {
    pub src: Option<Endpoint>,
    /// DATA bytes sent.
    pub sent: u64,
    /// The peer's cumulative consumed credit.
    pub credited: u64,
    pub window: u64,
    /// EOF_WRITE queued (or the peer stopped reading): nothing more will be sent.
    pub done: bool,
    /// A read found the source empty (used by the server after the process ended).
    pub empty_seen: bool,
}

/// Our receiving direction of a stream.
#[derive(Debug)]
pub struct Rx {
    pub dst: Option<Endpoint>,
    pub buf: VecDeque<u8>,
    /// DATA bytes received.
    pub received: u64,
    /// Bytes written to `dst` (or discarded after the reader went away).
    pub consumed: u64,
    pub credit_sent: u64,
    pub window: u64,
    /// The peer sent EOF_WRITE.
    pub eof: bool,
    /// The local reader went away: data is dropped (and credited).
    pub discard: bool,
}

#[derive(Debug, Default)]
pub struct Stream {
    pub tx: Option<Tx>,
    pub rx: Option<Rx>,
}

impl Tx {
    pub fn new(src: Endpoint, window: u32) -> Tx {
        Tx { src: Some(src), sent: 0, credited: 0, window: window as u64, done: false, empty_seen: false }
    }
    /// Bytes we may send now.
    pub fn room(&self) -> usize {
        (self.window - (self.sent - self.credited).min(self.window)) as usize
    }
    /// The source should be polled for input.
    pub fn wants_read(&self) -> bool {
        !self.done && self.src.is_some() && self.room() > 0
    }
}

impl Rx {
    pub fn new(dst: Endpoint, window: u32) -> Rx {
        Rx {
            dst: Some(dst),
            buf: VecDeque::new(),
            received: 0,
            consumed: 0,
            credit_sent: 0,
            window: window as u64,
            eof: false,
            discard: false,
        }
    }
    /// Everything received was written and the peer ended the stream.
    pub fn finished(&self) -> bool {
        self.eof && self.buf.is_empty()
    }
}

/// What one read pass over a source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Nothing to read now.
    Empty,
    /// The source reached EOF (EOF_WRITE queued).
    Eof,
    /// The window is full or the pass used its budget; more may be readable.
    More,
}

/// All streams of a session and the link they travel on.
#[derive(Debug, Default)]
pub struct Relay {
    pub link: Link,
    pub streams: BTreeMap<u32, Stream>,
    scratch: Vec<u8>,
}

/// The descriptors of one poll(2) round of a session and what each stands for (`T`):
/// the session's connection first, then the caller's own, then the relay's streams.
pub struct PollSet<T> {
    fds: Vec<libc::pollfd>,
    toks: Vec<T>,
    interest: Vec<(RawFd, i16, u32, bool)>,
}

impl<T: Copy> Default for PollSet<T> {
    fn default() -> Self {
        PollSet { fds: Vec::new(), toks: Vec::new(), interest: Vec::new() }
    }
}

impl<T: Copy> PollSet<T> {
    /// Starts a round with the session's connection, if there is one: readable, and
    /// writable while `link` has frames to send.
    pub fn begin(&mut self, conn: Option<RawFd>, link: &Link, tok: T) {
        self.fds.clear();
        self.toks.clear();
        if let Some(fd) = conn {
            self.add(fd, libc::POLLIN | if link.wants_write() { libc::POLLOUT } else { 0 }, tok);
        }
    }

    pub fn add(&mut self, fd: RawFd, events: i16, tok: T) {
        self.fds.push(libc::pollfd { fd, events, revents: 0 });
        self.toks.push(tok);
    }

    /// Ends the round: adds what `relay`'s streams wait for (`stream(id, is_tx)` names
    /// each) and polls.
    pub fn poll(&mut self, relay: &Relay, stream: impl Fn(u32, bool) -> T, timeout_ms: i32) -> io::Result<usize> {
        self.interest.clear();
        relay.poll_interest(&mut self.interest);
        for i in 0..self.interest.len() {
            let (fd, ev, id, tx) = self.interest[i];
            self.add(fd, ev, stream(id, tx));
        }
        sys::poll(&mut self.fds, timeout_ms)
    }

    /// What the last poll found ready, with its revents.
    pub fn ready(&self) -> impl Iterator<Item = (T, i16)> + '_ {
        self.fds.iter().zip(&self.toks).filter(|(p, _)| p.revents != 0).map(|(p, t)| (*t, p.revents))
    }
}

impl Relay {
    pub fn new() -> Relay {
        Relay { link: Link::new(), streams: BTreeMap::new(), scratch: vec![0; CHUNK] }
    }

    /// Poll interest of every stream: (fd, events, stream id, is_tx).
    pub fn poll_interest(&self, out: &mut Vec<(RawFd, i16, u32, bool)>) {
        for (&id, s) in &self.streams {
            if let Some(tx) = &s.tx
                && tx.wants_read()
                && let Some(src) = &tx.src
            {
                out.push((src.raw(), libc::POLLIN, id, true));
            }
            if let Some(rx) = &s.rx
                && !rx.buf.is_empty()
                && let Some(dst) = &rx.dst
            {
                out.push((dst.raw(), libc::POLLOUT, id, false));
            }
        }
    }

    /// Reads the stream's source while the window allows (up to a few chunks), queueing
    /// DATA, and EOF_WRITE at end of file.
    pub fn pump_tx(&mut self, id: u32) -> ReadOutcome {
        let Some(tx) = self.streams.get_mut(&id).and_then(|s| s.tx.as_mut()) else { return ReadOutcome::Eof };
        if tx.done {
            return ReadOutcome::Eof;
        }
        for _ in 0..4 {
            let room = tx.room().min(CHUNK);
            if room == 0 {
                return ReadOutcome::More;
            }
            let Some(src) = &tx.src else { return ReadOutcome::Eof };
            match src.read(&mut self.scratch[..room]) {
                Ok(0) => {
                    finish_tx(&mut self.link, id, tx, 0);
                    return ReadOutcome::Eof;
                }
                Ok(n) => {
                    self.link.push_data(id, &self.scratch[..n]);
                    tx.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tx.empty_seen = true;
                    return ReadOutcome::Empty;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ECONNRESET on a relayed socket and the like: the source is gone.
                    let errno = sys::errno_of(&e);
                    finish_tx(&mut self.link, id, tx, errno);
                    return ReadOutcome::Eof;
                }
            }
        }
        ReadOutcome::More
    }

    /// Writes buffered data of a stream to its destination; credits the peer; closes the
    /// destination after EOF; on EPIPE tells the peer to stop sending (EOF_READ).
    pub fn pump_rx(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        let Some(rx) = s.rx.as_mut() else { return };
        while !rx.buf.is_empty() {
            let Some(dst) = &rx.dst else { break };
            let (a, _) = rx.buf.as_slices();
            match dst.write(a) {
                Ok(n) => {
                    rx.buf.drain(..n);
                    rx.consumed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    reader_gone(&mut self.link, id, rx);
                    break;
                }
            }
        }
        credit(&mut self.link, id, rx);
        if rx.finished() && rx.dst.is_some() {
            close_rx(rx, s.tx.as_ref().is_some_and(|t| !t.done));
        }
    }

    /// What both ends of a session do with a frame alike: requests and responses are
    /// refused, the stream frames (DATA, EOF, CREDIT, ACK) handled here; `None` for any
    /// other op, which the caller handles.
    pub fn on_session_frame(&mut self, h: &FrameHeader, p: &[u8]) -> Option<Result<()>> {
        if h.is_request() || h.is_response() {
            return Some(Err(Error::proto(format!("unexpected frame op {:#06x} in a session", h.op))));
        }
        let id = h.channel;
        Some(match h.op()? {
            Op::REXEC_DATA => self.on_data(id, p),
            Op::REXEC_EOF => RexecEof::decode(p).map_err(Error::from).and_then(|m| self.on_eof(id, m.how)),
            Op::REXEC_CREDIT => {
                RexecCredit::decode(p).map_err(Error::from).and_then(|m| self.on_credit(id, m.consumed))
            }
            Op::REXEC_ACK => RexecAck::decode(p).map_err(Error::from).and_then(|m| self.link.on_ack(m.received)),
            _ => return None,
        })
    }

    /// A DATA frame arrived.
    pub fn on_data(&mut self, id: u32, data: &[u8]) -> Result<()> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(Error::proto(format!("DATA on unknown stream {id}")));
        };
        let Some(rx) = s.rx.as_mut() else { return Err(Error::proto(format!("DATA on send-only stream {id}"))) };
        if rx.eof {
            return Err(Error::proto(format!("DATA after EOF on stream {id}")));
        }
        if rx.received + data.len() as u64 - rx.consumed > rx.window {
            return Err(Error::proto(format!("stream {id}: more than the window ({}) in flight", rx.window)));
        }
        rx.received += data.len() as u64;
        if rx.discard || rx.dst.is_none() {
            rx.consumed += data.len() as u64;
            credit(&mut self.link, id, rx);
            return Ok(());
        }
        let mut rest = data;
        if rx.buf.is_empty()
            && let Some(dst) = &rx.dst
        {
            // Fast path: write straight from the frame, buffer only what does not fit.
            loop {
                match dst.write(rest) {
                    Ok(n) => {
                        rx.consumed += n as u64;
                        rest = &rest[n..];
                        if rest.is_empty() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        rx.consumed += rest.len() as u64;
                        rest = &[];
                        reader_gone(&mut self.link, id, rx);
                        break;
                    }
                }
            }
        }
        rx.buf.extend(rest.iter());
        credit(&mut self.link, id, rx);
        Ok(())
    }

    /// A CREDIT frame arrived.
    pub fn on_credit(&mut self, id: u32, consumed: u64) -> Result<()> {
        let tx = self.streams.get_mut(&id).and_then(|s| s.tx.as_mut());
        let Some(tx) = tx else { return Ok(()) };
        if consumed > tx.sent {
            return Err(Error::proto(format!("stream {id}: credit for {consumed} bytes, {} sent", tx.sent)));
        }
        tx.credited = tx.credited.max(consumed);
        Ok(())
    }

    /// An EOF frame arrived.
    pub fn on_eof(&mut self, id: u32, how: u32) -> Result<()> {
        let Some(s) = self.streams.get_mut(&id) else {
            // The stream may already be gone on our side (refused connection): ignore.
            return Ok(());
        };
        match how {
            EOF_WRITE => {
                let Some(rx) = s.rx.as_mut() else { return Err(Error::proto(format!("EOF on send-only stream {id}"))) };
                rx.eof = true;
                if rx.finished() && rx.dst.is_some() {
                    close_rx(rx, s.tx.as_ref().is_some_and(|t| !t.done));
                }
            }
            EOF_READ => {
                // Answer with EOF_WRITE so that the peer's receiving side can finish.
                if let Some(tx) = s.tx.as_mut()
                    && !tx.done
                {
                    finish_tx(&mut self.link, id, tx, libc::EPIPE);
                }
            }
            _ => return Err(Error::proto(format!("EOF how={how}"))),
        }
        Ok(())
    }

    /// Lets go of the local descriptors of stream `id` (rexec's daemon child gives up the
    /// caller's stdio): our sending side ends with EOF; what arrives for our receiving
    /// side is credited and dropped, without telling the peer (its writer must not get
    /// EPIPE for a reader that merely went away).
    pub fn drop_local(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        if let Some(tx) = s.tx.as_mut()
            && !tx.done
        {
            finish_tx(&mut self.link, id, tx, 0);
        }
        if let Some(rx) = s.rx.as_mut() {
            rx.discard = true;
            rx.consumed += rx.buf.len() as u64;
            rx.buf.clear();
            // A plain drop: closes our copy without touching the inherited number.
            drop(rx.dst.take());
            credit(&mut self.link, id, rx);
        }
    }

    /// Streams with nothing left to do are forgotten.
    pub fn reap_finished(&mut self) {
        self.streams.retain(|_, s| {
            let tx_open = s.tx.as_ref().is_some_and(|t| !t.done);
            let rx_open = s.rx.as_ref().is_some_and(|r| !r.finished());
            tx_open || rx_open
        });
    }
}

fn finish_tx(link: &mut Link, id: u32, tx: &mut Tx, errno: i32) {
    tx.done = true;
    if let Some(src) = tx.src.take() {
        if src.is_socket() {
            let _ = sys::shutdown(src.raw(), libc::SHUT_RD);
        }
        src.finish();
    }
    link.push(Op::REXEC_EOF, id, &RexecEof { how: EOF_WRITE, error: errno });
}

fn reader_gone(link: &mut Link, id: u32, rx: &mut Rx) {
    rx.discard = true;
    rx.consumed += rx.buf.len() as u64;
    rx.buf.clear();
    if let Some(d) = rx.dst.take() {
        d.finish();
    }
    link.push(Op::REXEC_EOF, id, &RexecEof { how: EOF_READ, error: libc::EPIPE });
}

fn credit(link: &mut Link, id: u32, rx: &mut Rx) {
    if rx.consumed - rx.credit_sent >= (rx.window / 4).max(1) || (rx.eof && rx.consumed > rx.credit_sent) {
        rx.credit_sent = rx.consumed;
        link.push(Op::REXEC_CREDIT, id, &RexecCredit { consumed: rx.consumed });
    }
}

/// Closes the destination after EOF; a socket still sending only gets SHUT_WR.
fn close_rx(rx: &mut Rx, tx_open: bool) {
    if let Some(dst) = rx.dst.take() {
        if tx_open && dst.is_socket() {
            let _ = sys::shutdown(dst.raw(), libc::SHUT_WR);
        }
        dst.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_share_the_stream_frames_and_refuse_requests() {
        let mut r = Relay::new();
        let req = FrameHeader::request(Op::REXEC_DATA, 1, 0);
        assert!(matches!(r.on_session_frame(&req, &[]), Some(Err(_))), "a request in a session");
        let exit = FrameHeader::message(Op::REXEC_EXIT, 0, 0);
        assert!(r.on_session_frame(&exit, &[]).is_none(), "left to the caller");
        let data = FrameHeader::message(Op::REXEC_DATA, 7, 1);
        assert!(matches!(r.on_session_frame(&data, b"x"), Some(Err(_))), "DATA on an unknown stream");
    }
}
