//! The credit windows of one channel (`proto/PROTOCOL.md`, Channels: Credit).
//!
//! Each side grants its peer a window with the open and returns bytes with CHAN_CREDIT
//! as its local descriptor takes them, in quarters of the window. A side reads its local
//! descriptor only while it holds credit — for a message kind, enough for a whole
//! message — so a reader that stops reading stalls only its own channel.

use qtfs_proto::errno;

use crate::{Kind, MSG_MAX, Refusal, WINDOW};

/// Credit a peer may have handed out beyond what it was sent; more is a protocol error
/// (a peer cannot make the counters grow without bound).
pub const TX_LIMIT: u64 = u32::MAX as u64 * 4;

/// Both directions of a channel's credit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credit {
    /// Bytes we may still send to the peer.
    pub tx: u64,
    /// Bytes the peer may still send us.
    pub rx: u64,
    /// Bytes written locally and not yet returned to the peer as credit.
    pub owed: u64,
    /// The peer's window (its initial grant): message channels read only with this much
    /// credit (or a whole message's worth) in hand, so a message never exceeds it.
    pub peer_window: u64,
}

impl Credit {
    /// The peer's grant with its open (ChanOpenReq or ChanAccept `credit`).
    pub fn peer_opened(&mut self, credit: u32) {
        self.tx = credit as u64;
        self.peer_window = credit as u64;
    }

    /// We grant the peer our whole window (with our open or answer, or with the first
    /// CHAN_CREDIT of a relay channel).
    pub fn open_window(&mut self) {
        self.rx = WINDOW as u64;
    }

    /// CHAN_CREDIT from the peer.
    pub fn granted(&mut self, bytes: u32) -> Result<(), Refusal> {
        self.tx = self.tx.saturating_add(bytes as u64);
        if self.tx > TX_LIMIT {
            return Err((errno::EPROTO, "credit overflow"));
        }
        Ok(())
    }

    /// CHAN_DATA of `n` bytes from the peer: beyond the credit it holds is an error.
    pub fn receive(&mut self, n: u64) -> Result<(), Refusal> {
        if n > self.rx {
            return Err((errno::EPROTO, "the peer exceeded its credit"));
        }
        self.rx -= n;
        Ok(())
    }

    /// Credit a read of the local descriptor needs in hand: a whole message (at most
    /// [`MSG_MAX`], at most the peer's window) for message kinds, a byte for streams.
    pub fn read_need(&self, kind: Kind) -> u64 {
        if kind.is_msg() { (MSG_MAX as u64).min(self.peer_window.max(1)) } else { 1 }
    }

    /// Whether the local descriptor may be read now.
    pub fn may_read(&self, kind: Kind) -> bool {
        self.tx >= self.read_need(kind)
    }

    /// `n` bytes were sent to the peer.
    pub fn sent(&mut self, n: u64) {
        self.tx -= n.min(self.tx);
    }

    /// `n` bytes from the peer reached the local descriptor (or were dropped for good):
    /// they are owed back to the peer.
    pub fn written(&mut self, n: u64) {
        self.owed = self.owed.saturating_add(n);
    }

    /// A quarter window or more is owed.
    pub fn owes(&self) -> bool {
        self.owed >= WINDOW as u64 / 4
    }

    /// The CHAN_CREDIT to send now, if any: what is owed, once it is a quarter window,
    /// and only when `allowed` (a side withholds credit while it holds too many queued
    /// bytes; the peer then runs dry and stops).
    pub fn grant(&mut self, allowed: bool) -> Option<u32> {
        if !self.owes() || !allowed {
            return None;
        }
        let grant = self.owed.min(u32::MAX as u64) as u32;
        self.owed -= grant as u64;
        self.rx += grant as u64;
        Some(grant)
    }

    /// `tx` as the admin listing shows it.
    pub fn tx_u32(&self) -> u32 {
        self.tx.min(u32::MAX as u64) as u32
    }

    /// `rx` as the admin listing shows it.
    pub fn rx_u32(&self) -> u32 {
        self.rx.min(u32::MAX as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_beyond_the_window_is_refused_and_exactly_the_window_is_not() {
        let mut c = Credit::default();
        assert_eq!(c.receive(1).map_err(|e| e.0), Err(errno::EPROTO), "no window, no data");
        assert_eq!(c.receive(0), Ok(()), "an empty frame needs no credit");
        c.open_window();
        assert_eq!(c.receive(WINDOW as u64), Ok(()));
        assert_eq!(c.rx, 0);
        assert!(c.receive(1).is_err());
    }

    #[test]
    fn credit_returns_in_quarters_and_never_more_than_owed() {
        let mut c = Credit::default();
        c.open_window();
        c.receive(WINDOW as u64).unwrap();
        c.written(WINDOW as u64 / 4 - 1);
        assert_eq!(c.grant(true), None, "less than a quarter is kept back");
        c.written(1);
        assert_eq!(c.grant(false), None, "withheld while over budget");
        assert_eq!(c.grant(true), Some(WINDOW / 4));
        assert_eq!((c.owed, c.rx), (0, WINDOW as u64 / 4));
        assert_eq!(c.grant(true), None, "nothing owed twice");
        // The window is never exceeded: rx + owed + unwritten = WINDOW.
        c.written(3 * WINDOW as u64 / 4);
        assert_eq!(c.grant(true), Some(3 * WINDOW / 4));
        assert_eq!(c.rx, WINDOW as u64);
    }

    #[test]
    fn a_grant_above_u32_is_split() {
        let mut c = Credit { owed: u32::MAX as u64 + 5, ..Credit::default() };
        assert_eq!(c.grant(true), Some(u32::MAX));
        assert_eq!(c.owed, 5);
        assert_eq!(c.rx_u32(), u32::MAX);
    }

    #[test]
    fn peer_credit_overflow_is_a_protocol_error() {
        let mut c = Credit::default();
        for _ in 0..4 {
            assert!(c.granted(u32::MAX).is_ok());
        }
        assert_eq!(c.tx, TX_LIMIT);
        assert_eq!(c.granted(1).map_err(|e| e.0), Err(errno::EPROTO));
        c.tx = u64::MAX - 1;
        assert!(c.granted(u32::MAX).is_err(), "saturates, never wraps");
        assert_eq!(c.tx, u64::MAX);
        assert_eq!(c.tx_u32(), u32::MAX);
    }

    #[test]
    fn messages_wait_for_a_whole_message_of_credit_streams_for_a_byte() {
        let mut c = Credit::default();
        assert!(!c.may_read(Kind::Stream));
        c.peer_opened(WINDOW);
        assert_eq!(c.read_need(Kind::Seqpacket), MSG_MAX as u64);
        c.sent(WINDOW as u64 - MSG_MAX as u64 + 1);
        assert!(c.may_read(Kind::Stream));
        assert!(!c.may_read(Kind::Dgram), "one byte short of a whole message");
        // A peer with a window smaller than a message: its window is the bar.
        let mut small = Credit::default();
        small.peer_opened(100);
        assert_eq!(small.read_need(Kind::Dgram), 100);
        assert!(small.may_read(Kind::Dgram));
        // A zero window never lets a message read with zero credit.
        let zero = Credit::default();
        assert_eq!(zero.read_need(Kind::Dgram), 1);
        assert!(!zero.may_read(Kind::Dgram));
    }

    #[test]
    fn sending_more_than_the_credit_saturates() {
        let mut c = Credit::default();
        c.peer_opened(10);
        c.sent(25);
        assert_eq!(c.tx, 0);
    }
}
