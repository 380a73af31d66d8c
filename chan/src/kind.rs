//! Channel kinds and states.

use qtfs_proto::consts;

/// What a channel joins: a unix socket of one type, or one end of a passed pipe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Stream,
    Seqpacket,
    Dgram,
    /// Relay of a passed pipe: bytes from the peer are written into our end.
    PipeIn,
    /// Relay of a passed pipe: bytes read from our end go to the peer.
    PipeOut,
}

impl Kind {
    /// The kind a CHAN_OPEN/CHAN_LISTEN names (`CHAN_*`).
    pub fn from_wire(k: u32) -> Option<Kind> {
        match k {
            consts::CHAN_STREAM => Some(Kind::Stream),
            consts::CHAN_SEQPACKET => Some(Kind::Seqpacket),
            consts::CHAN_DGRAM => Some(Kind::Dgram),
            _ => None,
        }
    }
    /// The kind of a relayed listener (`SCM_LISTENER` flags): streams and seqpackets.
    pub fn listener_from_wire(k: u32) -> Option<Kind> {
        match Kind::from_wire(k) {
            Some(k @ (Kind::Stream | Kind::Seqpacket)) => Some(k),
            _ => None,
        }
    }
    /// The kind of a local listening socket of type `sock_type` relayed to the peer.
    pub fn of_listening(sock_type: Option<i32>) -> Kind {
        if sock_type == Some(libc::SOCK_SEQPACKET) { Kind::Seqpacket } else { Kind::Stream }
    }
    /// The relay channel of a passed pipe: `read_end` when the passed descriptor is the
    /// read end (we read our end and send the bytes).
    pub fn pipe_relay(read_end: bool) -> Kind {
        if read_end { Kind::PipeOut } else { Kind::PipeIn }
    }
    pub fn wire(self) -> u32 {
        match self {
            Kind::Seqpacket => consts::CHAN_SEQPACKET,
            Kind::Dgram => consts::CHAN_DGRAM,
            _ => consts::CHAN_STREAM,
        }
    }
    pub fn sock_type(self) -> i32 {
        match self {
            Kind::Seqpacket => libc::SOCK_SEQPACKET,
            Kind::Dgram => libc::SOCK_DGRAM,
            _ => libc::SOCK_STREAM,
        }
    }
    /// Message boundaries are kept (SEQPACKET, DGRAM).
    pub fn is_msg(self) -> bool {
        matches!(self, Kind::Seqpacket | Kind::Dgram)
    }
    pub fn is_pipe(self) -> bool {
        matches!(self, Kind::PipeIn | Kind::PipeOut)
    }
    /// Whether we read the local descriptor (and send to the peer).
    pub fn reads_local(self) -> bool {
        self != Kind::PipeIn
    }
    /// Whether we write the local descriptor (with what the peer sends).
    pub fn writes_local(self) -> bool {
        self != Kind::PipeOut
    }
}

/// Where a channel is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum St {
    /// Client-opened: resolving the path.
    Resolving,
    /// Client-opened: connecting.
    Connecting,
    /// Opened by us: waiting for the peer's answer to our CHAN_OPEN.
    PeerOpening,
    Open,
    Closing,
}

impl St {
    /// The `CHANST_*` value the admin listing shows.
    pub fn wire(self) -> u32 {
        match self {
            St::Resolving | St::Connecting | St::PeerOpening => consts::CHANST_OPENING,
            St::Open => consts::CHANST_OPEN,
            St::Closing => consts::CHANST_CLOSING,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_kinds_round_trip_and_relays_travel_as_streams() {
        for k in [Kind::Stream, Kind::Seqpacket, Kind::Dgram] {
            assert_eq!(Kind::from_wire(k.wire()), Some(k));
        }
        assert_eq!(Kind::from_wire(0), None);
        assert_eq!(Kind::from_wire(99), None);
        assert_eq!(Kind::PipeIn.wire(), consts::CHAN_STREAM);
        assert_eq!(Kind::listener_from_wire(consts::CHAN_DGRAM), None);
        assert_eq!(Kind::listener_from_wire(consts::CHAN_SEQPACKET), Some(Kind::Seqpacket));
        assert!(!Kind::PipeIn.reads_local() && Kind::PipeIn.writes_local());
        assert!(Kind::PipeOut.reads_local() && !Kind::PipeOut.writes_local());
        assert_eq!(Kind::pipe_relay(true), Kind::PipeOut);
        assert_eq!(Kind::of_listening(Some(libc::SOCK_SEQPACKET)), Kind::Seqpacket);
        assert_eq!(Kind::of_listening(None), Kind::Stream);
    }

    #[test]
    fn opening_states_list_as_opening() {
        assert_eq!(St::Resolving.wire(), consts::CHANST_OPENING);
        assert_eq!(St::PeerOpening.wire(), consts::CHANST_OPENING);
        assert_eq!(St::Open.wire(), consts::CHANST_OPEN);
        assert_eq!(St::Closing.wire(), consts::CHANST_CLOSING);
    }
}
