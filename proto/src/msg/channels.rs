//! Unix-socket channels (the udsproxy service): open/accept, credit, close, listen and
//! unlisten, and SCM_RIGHTS records ([`ChanScm`], [`ScmRec`]).

use crate::message;

message! {
    /// CHAN_OPEN: connect a unix socket at `path` on the receiving side. The frame's
    /// channel field carries the new channel id chosen by the opener (`CHAN_ID_PEER` set
    /// when the server opens).
    pub struct ChanOpenReq<'a> {
        /// `CHAN_STREAM`, `CHAN_SEQPACKET` or `CHAN_DGRAM`.
        pub kind: u32,
        /// Bytes the opener is ready to receive before the first CHAN_CREDIT.
        pub credit: u32,
        /// Listener id when opened for a CHAN_LISTEN listener, else 0.
        pub listener: u32,
        pub uid: u32,
        pub gid: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// CHAN_OPEN response.
    pub struct ChanAccept {
        /// Bytes the acceptor is ready to receive.
        pub credit: u32,
    }
}

message! {
    /// CHAN_CREDIT.
    pub struct ChanCredit {
        pub bytes: u32,
    }
}

message! {
    /// CHAN_CLOSE.
    pub struct ChanClose {
        /// `CHAN_SHUT_WR` (EOF, the other direction stays open) or `CHAN_CLOSE_ALL`.
        pub how: u32,
        /// Why, as an errno (0 = orderly).
        pub error: i32,
    }
}

message! {
    /// CHAN_LISTEN: listen at `path` on the receiving side.
    pub struct ChanListenReq<'a> {
        pub kind: u32,
        /// Permission bits of the socket file.
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// CHAN_LISTEN response.
    pub struct ChanListenRsp {
        pub listener: u32,
    }
}

message! {
    /// CHAN_UNLISTEN.
    pub struct ChanUnlistenReq {
        pub listener: u32,
    }
}

message! {
    /// CHAN_SCM: `count` `ScmRec` records; the descriptors belong to the next CHAN_DATA.
    pub struct ChanScm<'a> {
        pub count: u32,
        tail {
            pub records: Rest,
        }
    }
}

message! {
    /// One passed descriptor.
    pub struct ScmRec<'a> {
        /// `SCM_FILE` (reopen `path`), `SCM_PIPE_READ`/`SCM_PIPE_WRITE` (relayed on
        /// `channel`), or `SCM_LISTENER` (a listening socket relayed by `channel` accepts).
        pub kind: u32,
        /// `O_*` bits (files).
        pub flags: u32,
        /// File offset (files).
        pub offset: u64,
        /// Relay channel (pipes, listeners).
        pub channel: u32,
        tail {
            pub path: Path,
        }
    }
}
