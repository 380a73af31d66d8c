//! The session link: QTP frames over one stream socket that may be replaced after a
//! transport drop without losing or duplicating anything.
//!
//! Every frame sent after REXEC_EXEC's response is a *session frame*: it is appended to a
//! retransmission log and counted (session offset = bytes of session frames so far). The
//! peer acknowledges with REXEC_ACK the bytes of complete frames it has processed; the log
//! keeps only what is not acknowledged. After a drop, REXEC_ATTACH tells each side how far
//! the other got, and [`Link::resume`] rewinds the write position to that offset. This
//! module owns that bookkeeping and the frame parsing; it knows nothing about streams.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use qtfs_proto::{FrameHeader, FrameParser, HEADER_SIZE, MAX_PAYLOAD, Op, RexecAck, Wire};

use crate::error::{Error, Result};
use crate::sys;

/// An ACK is sent once this many session bytes arrived since the last one.
pub const ACK_EVERY: u64 = 64 * 1024;

/// Free room wanted before a read from the socket.
const MIN_FREE: usize = 16 * 1024;
/// First size of the receive buffer.
const RX_INITIAL: usize = 64 * 1024;
/// Largest receive buffer: two of the largest frames.
const RX_MAX: usize = 2 * (MAX_PAYLOAD + HEADER_SIZE);

#[derive(Debug, Default)]
pub struct Link {
    /// Session bytes queued or sent and not acknowledged; `log[0]` is at `log_base`.
    log: VecDeque<u8>,
    log_base: u64,
    /// Session offset up to which the log was written to the current connection.
    written: u64,
    /// Receive buffer: `rx[rx_pos..rx_end]` is received and not yet parsed. Allocated
    /// once (zeroed once), then reused: reads go straight into its free tail.
    rx: Vec<u8>,
    rx_pos: usize,
    rx_end: usize,
    /// Session bytes of the peer's complete frames processed.
    received: u64,
    /// `received` as last acknowledged to the peer.
    ack_sent: u64,
    scratch: Vec<u8>,
}

impl Link {
    pub fn new() -> Link {
        Link::default()
    }

    /// Session offset of the end of the log (bytes queued so far).
    pub fn end(&self) -> u64 {
        self.log_base + self.log.len() as u64
    }

    /// Session bytes of the peer processed so far (what REXEC_ATTACH reports).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes held for retransmission.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Queues a session frame.
    pub fn push<'m, M: Wire<'m>>(&mut self, op: Op, channel: u32, msg: &M) {
        self.scratch.clear();
        qtfs_proto::push_frame(&mut self.scratch, FrameHeader::message(op, channel, 0), msg);
        self.log.extend(self.scratch.iter());
    }

    /// Queues a REXEC_DATA frame.
    pub fn push_data(&mut self, stream: u32, data: &[u8]) {
        let h = FrameHeader::message(Op::REXEC_DATA, stream, data.len() as u32);
        self.log.extend(h.encode().iter());
        self.log.extend(data.iter());
    }

    /// True while queued bytes wait to be written to the connection.
    pub fn wants_write(&self) -> bool {
        self.written < self.end()
    }

    /// Writes queued bytes to a non-blocking socket until it would block. An error means
    /// the connection failed (the caller treats it as a drop; nothing queued is lost).
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        while self.wants_write() {
            let start = (self.written - self.log_base) as usize;
            let (a, b) = self.log.as_slices();
            let (a, b) = if start < a.len() { (&a[start..], b) } else { (&b[start - a.len()..], &[][..]) };
            match sys::writev2(fd, a, b) {
                Ok(n) => self.written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket has; `Ok(0)` is EOF. `WouldBlock` surfaces as an error.
    pub fn fill(&mut self, fd: RawFd) -> io::Result<usize> {
        if self.rx_pos == self.rx_end {
            self.rx_pos = 0;
            self.rx_end = 0;
        }
        if self.rx.len() - self.rx_end < MIN_FREE {
            // Move the partial frame to the front; grow (doubling, up to two of the
            // largest frames) only when that does not leave room enough.
            self.rx.copy_within(self.rx_pos..self.rx_end, 0);
            self.rx_end -= self.rx_pos;
            self.rx_pos = 0;
            if self.rx.len() - self.rx_end < MIN_FREE {
                let len = (self.rx.len() * 2).clamp(RX_INITIAL, RX_MAX);
                // A fresh zeroed allocation: the allocator maps zero pages lazily, so
                // untouched room costs nothing (a `resize` would write every byte).
                let mut v = vec![0u8; len];
                v[..self.rx_end].copy_from_slice(&self.rx[..self.rx_end]);
                self.rx = v;
            }
        }
        let r = sys::read(fd, &mut self.rx[self.rx_end..]);
        if let Ok(n) = r {
            self.rx_end += n;
        }
        r
    }

    /// Hands every complete frame received to `f`, in order, counting each as processed
    /// once `f` returns. A malformed header is a protocol error (the stream is out of sync).
    pub fn drain_frames(&mut self, mut f: impl FnMut(&FrameHeader, &[u8]) -> Result<()>) -> Result<()> {
        for_each_frame(self, |l| l, |_, h, p| f(h, p))
    }

    /// Queues an ACK when enough arrived since the last one.
    pub fn maybe_ack(&mut self) {
        if self.received - self.ack_sent >= ACK_EVERY {
            self.ack_now();
        }
    }

    /// Queues an ACK of everything processed.
    pub fn ack_now(&mut self) {
        self.ack_sent = self.received;
        let r = self.received;
        self.push(Op::REXEC_ACK, 0, &RexecAck { received: r });
    }

    /// The peer processed our session bytes up to `upto`: forget them.
    pub fn on_ack(&mut self, upto: u64) -> Result<()> {
        if upto > self.end() {
            return Err(Error::proto(format!("ACK of {upto} bytes, only {} sent", self.end())));
        }
        if upto > self.log_base {
            let n = (upto - self.log_base) as usize;
            self.log.drain(..n);
            self.log_base = upto;
            self.written = self.written.max(upto);
        }
        Ok(())
    }

    /// A new connection replaced the old one: forget partial input, and resend from the
    /// peer's `peer_received` offset.
    pub fn resume(&mut self, peer_received: u64) -> Result<()> {
        if peer_received < self.log_base || peer_received > self.end() {
            return Err(Error::proto(format!(
                "peer resumes at {peer_received}, log holds {}..{}",
                self.log_base,
                self.end()
            )));
        }
        self.on_ack(peer_received)?;
        self.written = peer_received;
        self.rx_pos = 0;
        self.rx_end = 0;
        Ok(())
    }
}

/// Like [`Link::drain_frames`], for a handler that needs the whole state owning the link
/// (to queue answers while it handles frames): the receive buffer is moved out of the
/// link while the frames are handled.
pub fn for_each_frame<S>(
    state: &mut S,
    link: impl Fn(&mut S) -> &mut Link,
    mut f: impl FnMut(&mut S, &FrameHeader, &[u8]) -> Result<()>,
) -> Result<()> {
    let l = link(state);
    let rx = std::mem::take(&mut l.rx);
    let (pos, end) = (l.rx_pos, l.rx_end);
    let mut parser = FrameParser::new(&rx[pos..end], MAX_PAYLOAD);
    let mut res = Ok(());
    loop {
        match parser.next_frame() {
            Ok(Some(fr)) => {
                // Counted before the handler runs, so an ACK it queues includes this frame.
                link(state).received += (HEADER_SIZE + fr.payload.len()) as u64;
                if let Err(e) = f(state, &fr.header, fr.payload) {
                    res = Err(e);
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                res = Err(Error::from(e));
                break;
            }
        }
    }
    let consumed = parser.consumed();
    let l = link(state);
    l.rx = rx;
    l.rx_pos = pos + consumed;
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::{RexecCredit, RexecExit};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn collect(link: &mut Link, fd: RawFd) -> Vec<(u16, u32, Vec<u8>)> {
        let mut got = Vec::new();
        while let Ok(n) = link.fill(fd) {
            if n == 0 {
                break;
            }
        }
        link.drain_frames(|h, p| {
            got.push((h.op, h.channel, p.to_vec()));
            Ok(())
        })
        .unwrap();
        got
    }

    #[test]
    fn resume_resends_exactly_the_unprocessed_frames() {
        let mut tx = Link::new();
        let mut rx = Link::new();
        let (a, b) = pair();
        tx.push_data(1, b"one");
        tx.push(Op::REXEC_CREDIT, 0, &RexecCredit { consumed: 7 });
        tx.flush(a.as_raw_fd()).unwrap();
        assert_eq!(collect(&mut rx, b.as_raw_fd()).len(), 2);
        // Two more frames are "lost": written into a connection nobody reads.
        tx.push_data(2, b"two");
        tx.push(Op::REXEC_EXIT, 0, &RexecExit { status: 3, signal: 0 });
        let (lost, _lost_peer) = pair();
        tx.flush(lost.as_raw_fd()).unwrap();
        // Reattach on a new connection.
        let (a2, b2) = pair();
        tx.resume(rx.received()).unwrap();
        tx.flush(a2.as_raw_fd()).unwrap();
        let got = collect(&mut rx, b2.as_raw_fd());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Op::REXEC_DATA as u16, 2, b"two".to_vec()));
        assert_eq!(got[1].0, Op::REXEC_EXIT as u16);
        // Acknowledged bytes leave the log.
        tx.on_ack(rx.received()).unwrap();
        assert_eq!(tx.log_len(), 0);
        assert!(tx.resume(rx.received() + 1).is_err());
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        let mut l = Link::new();
        let (a, b) = pair();
        use std::io::Write;
        (&a).write_all(&[0xff; 100]).unwrap();
        l.fill(b.as_raw_fd()).unwrap();
        assert!(matches!(l.drain_frames(|_, _| Ok(())), Err(Error::Protocol(_))));
    }
}
