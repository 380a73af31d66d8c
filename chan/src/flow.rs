//! One channel's data path, without I/O: the rules a CHAN_DATA must pass, message
//! assembly over MORE frames, the queue of bytes for the local descriptor, descriptors
//! announced by CHAN_SCM, and the half-close bookkeeping that decides when a channel
//! ends in order.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use qtfs_proto::errno;

use crate::{ASSEMBLE_MAX, Credit, Kind, MSG_MAX, Refusal, wire_errno};

/// Bytes (and descriptors) waiting to be written to the local descriptor.
#[derive(Debug)]
pub struct OutMsg {
    pub data: Vec<u8>,
    /// Bytes of `data` written already (streams write a message in parts).
    pub off: usize,
    /// Descriptors that go with the first write.
    pub fds: Vec<OwnedFd>,
}

impl OutMsg {
    pub fn new(data: Vec<u8>, fds: Vec<OwnedFd>) -> OutMsg {
        OutMsg { data, off: 0, fds }
    }
    /// What is left to write.
    pub fn rest(&self) -> &[u8] {
        self.data.get(self.off..).unwrap_or_default()
    }
}

/// A SEQPACKET/DGRAM message arriving in CHAN_DATA frames with MORE.
#[derive(Debug, Default)]
pub struct Assembly {
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Assembly {
    /// No part of a message has arrived.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// Adds one frame's part; the whole message once a frame without MORE ends it.
    /// A message above [`ASSEMBLE_MAX`] is refused (`EMSGSIZE`).
    pub fn push(&mut self, part: &[u8], fds: Vec<OwnedFd>, more: bool) -> Result<Option<OutMsg>, Refusal> {
        if self.buf.len().saturating_add(part.len()) > ASSEMBLE_MAX {
            return Err((wire_errno(libc::EMSGSIZE), "message too large"));
        }
        self.buf.extend_from_slice(part);
        self.fds.extend(fds);
        if more {
            return Ok(None);
        }
        Ok(Some(OutMsg::new(std::mem::take(&mut self.buf), std::mem::take(&mut self.fds))))
    }
}

/// What to do with the payload of a CHAN_DATA that passed [`Flow::deliver`].
#[derive(Debug)]
pub enum Delivery {
    /// Part of a message; more frames follow.
    Pending,
    /// A whole assembled message, for the local descriptor.
    Message(OutMsg),
    /// The frame's payload itself (a stream's bytes or a single-frame message), with the
    /// descriptors announced for it: the caller writes or queues it.
    Bytes(Vec<OwnedFd>),
}

/// One channel's data path.
#[derive(Debug)]
pub struct Flow {
    pub kind: Kind,
    pub credit: Credit,
    /// Local end reached EOF; SHUT_WR sent to the peer.
    pub rd_eof: bool,
    /// The peer sent SHUT_WR.
    pub peer_eof: bool,
    /// Our local write side was shut down after the peer's SHUT_WR.
    pub shut_done: bool,
    /// Bytes for the local descriptor, in order.
    pub outq: VecDeque<OutMsg>,
    pub asm: Assembly,
    /// Descriptors of the last CHAN_SCM, for the next CHAN_DATA.
    scm_fds: Vec<OwnedFd>,
    /// Why descriptors of a CHAN_SCM could not be recreated (0: they could): the next
    /// CHAN_DATA closes the channel with it.
    scm_err: i32,
}

impl Flow {
    pub fn new(kind: Kind) -> Flow {
        Flow {
            kind,
            credit: Credit::default(),
            rd_eof: false,
            peer_eof: false,
            shut_done: false,
            outq: VecDeque::new(),
            asm: Assembly::default(),
            scm_fds: Vec::new(),
            scm_err: 0,
        }
    }

    /// A CHAN_DATA of `n` bytes arrived on a channel that is `open` (or not): whether it
    /// may, and its credit taken.
    pub fn accept_data(&mut self, open: bool, n: usize) -> Result<(), Refusal> {
        if !open || self.peer_eof || !self.kind.writes_local() {
            return Err((errno::EPROTO, "CHAN_DATA on a channel that cannot take it"));
        }
        self.credit.receive(n as u64)
    }

    /// The payload of an accepted CHAN_DATA (`more`: the frame has MORE): refused when a
    /// CHAN_SCM before it failed or named descriptors for a pipe relay; assembled into a
    /// message for message kinds sent in parts.
    pub fn deliver(&mut self, payload: &[u8], more: bool) -> Result<Delivery, Refusal> {
        if self.scm_err != 0 {
            return Err((self.scm_err, "a passed descriptor could not be recreated"));
        }
        let fds = std::mem::take(&mut self.scm_fds);
        if self.kind.is_pipe() && !fds.is_empty() {
            return Err((errno::EOPNOTSUPP, "descriptors passed on a pipe relay"));
        }
        if self.kind.is_msg() && (more || !self.asm.is_empty()) {
            return Ok(match self.asm.push(payload, fds, more)? {
                Some(m) => Delivery::Message(m),
                None => Delivery::Pending,
            });
        }
        Ok(Delivery::Bytes(fds))
    }

    /// The descriptors of a CHAN_SCM were recreated: they go with the next CHAN_DATA.
    pub fn scm_ok(&mut self, fds: Vec<OwnedFd>) {
        self.scm_fds.extend(fds);
    }

    /// A CHAN_SCM could not be honoured: the next CHAN_DATA closes the channel with the
    /// first such error.
    pub fn scm_failed(&mut self, e: i32) {
        self.scm_fds.clear();
        if self.scm_err == 0 {
            self.scm_err = e;
        }
    }

    /// A read of the local descriptor returned `n` bytes, `nfds` descriptors, and
    /// `ctrunc` when descriptors were cut off: refused if a message or its descriptors
    /// did not fit.
    pub fn check_received(&self, n: usize, ctrunc: bool) -> Result<(), Refusal> {
        if ctrunc {
            return Err((wire_errno(libc::EMSGSIZE), "too many descriptors in one message"));
        }
        if self.kind.is_msg() && n > MSG_MAX {
            return Err((wire_errno(libc::EMSGSIZE), "message larger than the channel buffer"));
        }
        Ok(())
    }

    /// Whether a read that returned `n` bytes and `nfds` descriptors is the local end's
    /// EOF (an empty datagram is a message); records it.
    pub fn local_eof(&mut self, n: usize, nfds: usize) -> bool {
        if n == 0 && nfds == 0 && self.kind != Kind::Dgram {
            self.rd_eof = true;
            return true;
        }
        false
    }

    /// `w` bytes of the front of the queue reached the local descriptor (its descriptors
    /// with the first of them). The message, once whole (a message kind is written whole
    /// or not at all), leaves the queue and is owed back to the peer as credit.
    pub fn wrote(&mut self, w: usize) -> Option<OutMsg> {
        let front = self.outq.front_mut()?;
        front.off = front.off.saturating_add(w);
        front.fds.clear();
        if front.off < front.data.len() && !self.kind.is_msg() {
            return None;
        }
        let m = self.outq.pop_front()?;
        self.credit.written(m.data.len() as u64);
        Some(m)
    }

    /// The peer's SHUT_WR has arrived and the queue is written: the local write side is
    /// to be shut down now (once; true only the first time).
    pub fn shut_due(&mut self) -> bool {
        if self.outq.is_empty() && self.peer_eof && !self.shut_done {
            self.shut_done = true;
            return true;
        }
        false
    }

    /// Both directions finished in order: the channel ends without CHAN_CLOSE_ALL.
    pub fn finished(&self) -> bool {
        let read_done = !self.kind.reads_local() || self.rd_eof;
        let write_done = !self.kind.writes_local() || self.shut_done;
        read_done && write_done && self.outq.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WINDOW;

    fn open(kind: Kind) -> Flow {
        let mut f = Flow::new(kind);
        f.credit.open_window();
        f
    }

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn a_message_in_parts_is_delivered_whole() {
        let mut f = open(Kind::Seqpacket);
        f.accept_data(true, 3).unwrap();
        assert!(matches!(f.deliver(b"abc", true), Ok(Delivery::Pending)));
        f.accept_data(true, 2).unwrap();
        match f.deliver(b"de", false) {
            Ok(Delivery::Message(m)) => assert_eq!(m.data, b"abcde"),
            other => panic!("{other:?}"),
        }
        assert!(f.asm.is_empty());
        // A single frame is the caller's to queue.
        assert!(matches!(f.deliver(b"x", false), Ok(Delivery::Bytes(v)) if v.is_empty()));
        // Streams never assemble, MORE or not.
        let mut s = open(Kind::Stream);
        assert!(matches!(s.deliver(b"x", true), Ok(Delivery::Bytes(_))));
    }

    #[test]
    fn assembly_stops_at_its_bound() {
        let mut a = Assembly::default();
        let part = vec![0u8; MSG_MAX];
        for _ in 0..4 {
            assert!(matches!(a.push(&part, Vec::new(), true), Ok(None)));
        }
        assert_eq!(a.len(), ASSEMBLE_MAX);
        assert_eq!(a.push(&[], Vec::new(), true).map(|_| ()), Ok(()), "exactly the bound is fine");
        let e = a.push(&[0], Vec::new(), false).map(|_| ()).unwrap_err();
        assert_eq!(e.0, wire_errno(libc::EMSGSIZE));
    }

    #[test]
    fn descriptors_follow_their_message() {
        let mut f = open(Kind::Dgram);
        f.scm_ok(vec![fd(), fd()]);
        assert!(matches!(f.deliver(b"a", true), Ok(Delivery::Pending)));
        f.scm_ok(vec![fd()]);
        match f.deliver(b"b", false) {
            Ok(Delivery::Message(m)) => assert_eq!(m.fds.len(), 3),
            other => panic!("{other:?}"),
        }
        let mut p = open(Kind::PipeIn);
        p.scm_ok(vec![fd()]);
        assert_eq!(p.deliver(b"x", false).unwrap_err().0, errno::EOPNOTSUPP);
    }

    #[test]
    fn a_failed_scm_closes_with_its_first_error() {
        let mut f = open(Kind::Stream);
        f.scm_ok(vec![fd()]);
        f.scm_failed(errno::EACCES);
        f.scm_failed(errno::EPROTO);
        assert_eq!(f.deliver(b"x", false).unwrap_err().0, errno::EACCES);
    }

    #[test]
    fn data_rules() {
        let mut f = open(Kind::Stream);
        assert_eq!(f.accept_data(false, 1).unwrap_err().0, errno::EPROTO, "not open");
        f.peer_eof = true;
        assert_eq!(f.accept_data(true, 1).unwrap_err().0, errno::EPROTO, "after SHUT_WR");
        let mut out = open(Kind::PipeOut);
        assert_eq!(out.accept_data(true, 1).unwrap_err().0, errno::EPROTO, "a read-only relay");
        let mut s = open(Kind::Stream);
        assert!(s.accept_data(true, WINDOW as usize).is_ok());
        assert!(s.accept_data(true, 1).is_err(), "beyond the window");
    }

    #[test]
    fn writes_return_credit_and_end_in_order() {
        let mut f = open(Kind::Stream);
        f.outq.push_back(OutMsg::new(b"hello".to_vec(), vec![fd()]));
        assert!(f.wrote(2).is_none());
        assert_eq!(f.outq.front().map(|m| (m.rest(), m.fds.len())), Some((&b"llo"[..], 0)));
        assert_eq!(f.wrote(3).map(|m| m.data), Some(b"hello".to_vec()));
        assert_eq!(f.credit.owed, 5);
        assert!(f.wrote(1).is_none(), "nothing queued");
        // A message is written whole or not at all.
        let mut m = open(Kind::Seqpacket);
        m.outq.push_back(OutMsg::new(vec![1; 10], Vec::new()));
        assert!(m.wrote(4).is_some());
        assert!(!f.shut_due());
        f.peer_eof = true;
        assert!(f.shut_due());
        assert!(!f.shut_due(), "once");
        assert!(!f.finished(), "the local end has not reached EOF");
        assert!(f.local_eof(0, 0));
        assert!(f.finished());
    }

    #[test]
    fn an_empty_datagram_is_not_eof_and_big_messages_are_refused() {
        let mut d = open(Kind::Dgram);
        assert!(!d.local_eof(0, 0));
        assert!(!d.rd_eof);
        let mut s = open(Kind::Stream);
        assert!(!s.local_eof(0, 1), "descriptors alone are not EOF");
        assert!(d.check_received(MSG_MAX, false).is_ok());
        assert!(d.check_received(MSG_MAX + 1, false).is_err());
        assert!(s.check_received(MSG_MAX + 1, false).is_ok());
        assert!(s.check_received(1, true).is_err());
    }

    #[test]
    fn relays_are_done_with_one_direction() {
        let mut inn = open(Kind::PipeIn);
        assert!(!inn.finished());
        inn.peer_eof = true;
        assert!(inn.shut_due());
        assert!(inn.finished());
        let mut out = Flow::new(Kind::PipeOut);
        assert!(out.local_eof(0, 0));
        assert!(out.finished());
    }
}
