//! Connection control: the handshake messages (HELLO, ATTACH and their answers) and the
//! generic payloads ([`Empty`], [`Data`]) that many operations share.

use crate::message;

message! {
    /// HELLO: first frame of a connection, client to server.
    pub struct Hello<'a> {
        pub version_min: u16,
        pub version_max: u16,
        /// `FEAT_*` bits the client wants.
        pub features: u64,
        /// Random per connection.
        pub client_nonce: [u8; 32],
        tail {
            /// Free-form client name for logs (at most 255 bytes).
            pub client_name: Name,
        }
    }
}

message! {
    /// HELLO response: the server's choice and its nonce.
    pub struct HelloAck<'a> {
        /// Chosen protocol version.
        pub version: u16,
        /// `AUTH_NONE` or `AUTH_HMAC_SHA256`.
        pub auth: u16,
        /// Negotiated `FEAT_*` bits (intersection).
        pub features: u64,
        pub server_nonce: [u8; 32],
        /// Largest payload the server accepts.
        pub max_payload: u32,
        /// Requests the server keeps in flight per connection before it stops reading.
        pub max_inflight: u32,
        tail {
            pub server_name: Name,
        }
    }
}

message! {
    /// ATTACH: key proof and session choice, client to server.
    pub struct Attach {
        /// Session to rejoin, 0 for a new one.
        pub session_id: u64,
        /// Secret of the session to rejoin (zero for a new one).
        pub session_token: [u8; 16],
        /// HMAC-SHA256 client proof (zero when the server chose `AUTH_NONE`).
        pub mac: [u8; 32],
    }
}

message! {
    /// ATTACH response: the session and the server's proof.
    pub struct AttachAck {
        pub session_id: u64,
        /// Secret needed to rejoin this session from another connection.
        pub session_token: [u8; 16],
        /// HMAC-SHA256 server proof (zero with `AUTH_NONE`).
        pub mac: [u8; 32],
        /// 1 if an existing session was rejoined, 0 if it is new.
        pub resumed: u32,
    }
}

message! {
    /// A message without payload.
    pub struct Empty {}
}

message! {
    /// Raw bytes: PING/PONG, READ/READLINK/IOCTL/SCHED_GETAFFINITY responses, CHAN_DATA.
    pub struct Data<'a> {
        tail {
            pub data: Rest,
        }
    }
}
