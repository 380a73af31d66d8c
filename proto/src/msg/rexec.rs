//! Remote exec sessions: the exec request and its descriptor records, start/attach,
//! stream EOF, credit and acknowledgement, signals, release, connection binding and the
//! exit report.

use crate::message;

message! {
    /// REXEC_EXEC: run `argv[0]` (compared byte for byte with the server's whitelist)
    /// with this argv, environment, working directory and descriptors. The response is
    /// RexecStarted, or an error frame (EBADMSG malformed, E2BIG too large). Every frame
    /// after the response belongs to the session (see "Remote exec" in PROTOCOL.md).
    pub struct RexecExecReq<'a> {
        /// `REXEC_F_*` bits.
        pub flags: u32,
        /// Bytes per stream the client can take before it returns credit.
        pub window: u32,
        /// Number of `RexecFd` records in `fds`.
        pub fd_count: u32,
        tail {
            /// Arguments, each terminated by NUL (argv[0] = the binary as given).
            pub argv: Bytes32,
            /// Environment, `KEY=VALUE` entries each terminated by NUL.
            pub env: Bytes32,
            /// Absolute working directory (empty = `/`).
            pub cwd: Path,
            /// `fd_count` `RexecFd` records.
            pub fds: Rest,
        }
    }
}

message! {
    /// One descriptor the remote process gets at the same number.
    pub struct RexecFd<'a> {
        /// Descriptor number in the remote process.
        pub fd: u32,
        /// `REXEC_FD_*` kind.
        pub kind: u32,
        /// Stream carrying its data (pipes; the fd number by convention), 0 otherwise.
        pub stream: u32,
        /// Files: portable `O_*` flags; listeners: socket type (1 = stream).
        pub flags: u32,
        /// Files: offset to seek to.
        pub offset: u64,
        tail {
            /// Files: absolute path, reopened on the server.
            pub path: Path,
        }
    }
}

message! {
    /// REXEC_EXEC response: the session is open.
    pub struct RexecStarted {
        /// HOST pid of the remote process (0 when nothing was started, e.g. refused by
        /// the whitelist: the reason follows on stderr, then REXEC_EXIT).
        pub pid: i32,
        /// Bytes per stream the server can take before it returns credit.
        pub window: u32,
        /// Secret needed to REXEC_ATTACH to this session.
        pub token: [u8; 16],
    }
}

message! {
    /// REXEC_ATTACH: rejoin session `pid` on a new connection.
    pub struct RexecAttachReq {
        pub pid: i32,
        pub token: [u8; 16],
        /// Session bytes from the server that the client has processed.
        pub received: u64,
    }
}

message! {
    /// REXEC_ATTACH response (error ESRCH: no such session, EACCES: bad token).
    pub struct RexecAttached {
        pub pid: i32,
        /// Session bytes from the client that the server has processed.
        pub received: u64,
    }
}

message! {
    /// REXEC_EOF.
    pub struct RexecEof {
        /// `REXEC_EOF_WRITE` or `REXEC_EOF_READ`.
        pub how: u32,
        /// Why, as an errno (0 = orderly; e.g. ECONNREFUSED for a refused REXEC_CONN).
        pub error: i32,
    }
}

message! {
    /// REXEC_CREDIT.
    pub struct RexecCredit {
        /// Data bytes of the stream consumed so far (cumulative).
        pub consumed: u64,
    }
}

message! {
    /// REXEC_ACK.
    pub struct RexecAck {
        /// Session bytes of the peer processed so far (cumulative).
        pub received: u64,
    }
}

message! {
    /// REXEC_SIGNAL.
    pub struct RexecSignal {
        /// Signal number (Linux generic numbering).
        pub signal: i32,
        /// `REXEC_SIGNAL_*` bits.
        pub flags: u32,
    }
}

message! {
    /// REXEC_RELEASE.
    pub struct RexecRelease {
        /// 1 = exec now; 0 = abort (the held process exits with status 126).
        pub go: u32,
    }
}

message! {
    /// REXEC_CONN (the header's channel field is the new stream id).
    pub struct RexecConn {
        /// The fd number of the `REXEC_FD_LISTENER` that accepted the connection.
        pub fd: u32,
    }
}

message! {
    /// REXEC_EXIT.
    pub struct RexecExit {
        /// Exit code, or 128 + signal number.
        pub status: i32,
        /// Terminating signal, 0 if the process exited.
        pub signal: i32,
    }
}
