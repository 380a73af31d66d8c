//! The admin socket's messages: component info, whitelist list/add/delete, log level,
//! per-operation counters, and the connection and channel listings.

use crate::message;

message! {
    /// ADMIN_INFO response.
    pub struct AdminInfo<'a> {
        pub proto_version: u16,
        pub pid: u32,
        pub cores: u32,
        pub uptime_ms: u64,
        pub sessions: u32,
        pub connections: u32,
        pub channels: u32,
        /// Current log level (`LOG_*`).
        pub log_level: u32,
        tail {
            /// `engine`, `udsproxyd` or `qtfs.ko`.
            pub component: Name,
            /// Build version text.
            pub version: Name,
        }
    }
}

message! {
    /// ADMIN_WL_LIST: `wl_type` = a `WlType`, or `WL_ALL`.
    pub struct WlListReq {
        pub wl_type: u32,
    }
}

message! {
    /// ADMIN_WL_LIST response: `count` `WlEntry` records.
    pub struct WlListRsp<'a> {
        pub count: u32,
        tail {
            pub entries: Rest,
        }
    }
}

message! {
    /// One whitelist entry.
    pub struct WlEntry<'a> {
        pub wl_type: u32,
        /// Position within its group (stable until an entry before it is deleted).
        pub index: u32,
        tail {
            pub path: Path,
        }
    }
}

message! {
    /// ADMIN_WL_ADD.
    pub struct WlAddReq<'a> {
        pub wl_type: u32,
        /// `WL_PERSIST` writes the whitelist file back.
        pub flags: u32,
        tail {
            pub path: Path,
        }
    }
}

message! {
    /// ADMIN_WL_ADD response.
    pub struct WlAddRsp {
        pub index: u32,
    }
}

message! {
    /// ADMIN_WL_DEL.
    pub struct WlDelReq {
        pub wl_type: u32,
        pub index: u32,
        pub flags: u32,
    }
}

message! {
    /// ADMIN_LOG_LEVEL: `LOG_*`, or `LOG_QUERY` to only read it.
    pub struct LogLevelReq {
        pub level: u32,
    }
}

message! {
    /// ADMIN_LOG_LEVEL response: the level now in force.
    pub struct LogLevelRsp {
        pub level: u32,
    }
}

message! {
    /// ADMIN_COUNTERS.
    pub struct CountersReq {
        /// `COUNTERS_CLEAR` resets them after reading.
        pub flags: u32,
    }
}

message! {
    /// ADMIN_COUNTERS response: `count` `OpCounter` records (operations with traffic).
    pub struct CountersRsp<'a> {
        pub count: u32,
        /// Milliseconds the counters cover.
        pub window_ms: u64,
        tail {
            pub records: Rest,
        }
    }
}

message! {
    /// ADMIN_CONNS response: `count` `ConnInfo` records.
    pub struct ConnsRsp<'a> {
        pub count: u32,
        tail {
            pub records: Rest,
        }
    }
}

message! {
    /// One connection's state.
    pub struct ConnInfo<'a> {
        pub conn_id: u64,
        pub session: u64,
        pub core: u32,
        /// `CONN_*` state.
        pub state: u32,
        pub inflight: u32,
        pub channels: u32,
        pub handles: u32,
        pub requests: u64,
        pub bytes_in: u64,
        pub bytes_out: u64,
        tail {
            /// Peer address text.
            pub peer: Name,
        }
    }
}

message! {
    /// ADMIN_CHANNELS response: `count` `ChanInfo` records.
    pub struct ChannelsRsp<'a> {
        pub count: u32,
        tail {
            pub records: Rest,
        }
    }
}

message! {
    /// One channel's state.
    pub struct ChanInfo<'a> {
        pub conn_id: u64,
        pub channel: u32,
        pub kind: u32,
        /// `CHANST_*` state.
        pub state: u32,
        /// Bytes we may still send.
        pub credit_tx: u32,
        /// Bytes the peer may still send.
        pub credit_rx: u32,
        pub bytes_in: u64,
        pub bytes_out: u64,
        tail {
            pub path: Path,
        }
    }
}
