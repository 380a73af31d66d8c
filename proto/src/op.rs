//! Operation numbers and what each carries.

/// One row of the operation table.
#[derive(Debug, Clone, Copy)]
pub struct OpInfo {
    pub op: Op,
    pub name: &'static str,
    /// Message type of the request (or of the one-way message).
    pub request: &'static str,
    /// Message type of a successful response; empty for one-way messages.
    pub response: &'static str,
    /// Whitelist group(s) consulted by the engine, if any.
    pub gate: &'static str,
    pub doc: &'static str,
}

macro_rules! ops {
    ($( $variant:ident = $code:expr, $req:literal => $rsp:literal, $gate:literal, $doc:literal; )*) => {
        /// Every operation of QTP v1. Variants keep the protocol's upper-case names so
        /// that Rust, C (`QTP_OP_*`) and the documents read the same.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Op {
            $( #[doc = $doc] $variant = $code, )*
        }

        impl Op {
            /// Every operation, in numeric order.
            pub const ALL: &'static [Op] = &[$(Op::$variant,)*];

            #[inline]
            pub const fn from_u16(v: u16) -> Option<Op> {
                match v {
                    $( $code => Some(Op::$variant), )*
                    _ => None,
                }
            }

            pub const fn info(self) -> OpInfo {
                match self {
                    $( Op::$variant => OpInfo {
                        op: Op::$variant,
                        name: stringify!($variant),
                        request: $req,
                        response: $rsp,
                        gate: $gate,
                        doc: $doc,
                    }, )*
                }
            }

            pub const fn name(self) -> &'static str {
                self.info().name
            }

            /// Dense index below [`Op::INDEX_LIMIT`], for counter arrays: the class
            /// (high byte) times 64 plus the low 6 bits.
            #[inline]
            pub const fn index(self) -> usize {
                let c = self as u16;
                ((c >> 8) as usize) * 64 + (c & 0x3f) as usize
            }

            /// Upper bound of [`Op::index`].
            pub const INDEX_LIMIT: usize = 5 * 64;
        }
    };
}

ops! {
    HELLO = 0x0001, "Hello" => "HelloAck", "", "Opens the handshake: versions, features, client nonce.";
    ATTACH = 0x0002, "Attach" => "AttachAck", "", "Proves the key (if any) and opens or rejoins a session.";
    PING = 0x0003, "Data" => "Data", "", "Echoes its payload (keepalive, latency probe, NOP benchmark).";

    MOUNT = 0x0101, "MountReq" => "MountRsp", "Mount", "Exports a HOST directory to this session; returns an export id.";
    UMOUNT = 0x0102, "UmountReq" => "", "", "Forgets an export id of this session.";
    LOOKUP = 0x0103, "PathReq" => "AttrRsp", "export", "Attributes of a name, final symlink not followed (ENOENT = negative entry).";
    GETATTR = 0x0104, "GetattrReq" => "AttrRsp", "export", "Attributes of a path, following the final symlink if asked.";
    SETATTR = 0x0105, "SetattrReq" => "AttrRsp", "Setattr", "chmod/chown/truncate/utimes by path or open handle.";
    OPEN = 0x0106, "OpenReq" => "OpenRsp", "Open (+Write, +Setattr for O_TRUNC)", "Opens a file; returns a session-scoped handle.";
    CREATE = 0x0107, "CreateReq" => "OpenRsp", "Create (+Open)", "Creates (and by default opens) a regular file.";
    CLOSE = 0x0108, "HandleReq" => "", "", "Closes a handle.";
    READ = 0x0109, "ReadReq" => "Data", "Read (at open)", "Reads at an offset; the payload is the data (short = EOF).";
    WRITE = 0x010A, "WriteReq" => "WriteRsp", "Write (at open)", "Writes at an offset (or at the end for O_APPEND handles).";
    READDIR = 0x010B, "ReaddirReq" => "ReaddirRsp", "Readdir", "Lists a directory from a cookie, optionally with attributes.";
    MKDIR = 0x010C, "MkdirReq" => "AttrRsp", "Mkdir", "Creates a directory.";
    RMDIR = 0x010D, "PathReq" => "", "Rmdir", "Removes a directory.";
    MKNOD = 0x010E, "MknodReq" => "AttrRsp", "Create", "Creates a FIFO, socket or device node.";
    UNLINK = 0x010F, "PathReq" => "", "Unlink", "Removes a name.";
    SYMLINK = 0x0110, "SymlinkReq" => "AttrRsp", "Create", "Creates a symbolic link.";
    LINK = 0x0111, "LinkReq" => "AttrRsp", "Create (new) + Open (existing)", "Creates a hard link.";
    READLINK = 0x0112, "PathReq" => "Data", "export", "Reads a symbolic link's target.";
    RENAME = 0x0113, "RenameReq" => "", "Rename (both paths)", "Renames, honouring NOREPLACE and EXCHANGE.";
    XATTR_LIST = 0x0114, "XattrListReq" => "XattrRsp", "export", "Lists extended attribute names.";
    XATTR_GET = 0x0115, "XattrGetReq" => "XattrRsp", "export", "Reads one extended attribute.";
    XATTR_SET = 0x0116, "XattrSetReq" => "", "Setxattr", "Sets one extended attribute (exact bytes).";
    XATTR_REMOVE = 0x0117, "XattrRemoveReq" => "", "Setxattr", "Removes one extended attribute.";
    SYSMOUNT = 0x0118, "SysmountReq" => "", "Mount (target)", "mount(2) on the HOST at a path inside an export.";
    SYSUMOUNT = 0x0119, "SysumountReq" => "", "Mount (target)", "umount2(2) on the HOST at a path inside an export.";
    FIFO_POLL = 0x011A, "PollReq" => "PollRsp", "", "Waits (bounded) for readiness of an open handle.";
    STATFS = 0x011B, "PathReq" => "StatfsRsp", "export", "File system statistics.";
    IOCTL = 0x011C, "IoctlReq" => "Data", "", "One of a fixed set of portable ioctls; anything else is ENOTTY.";
    EPOLL_CTL = 0x011D, "EpollCtlReq" => "", "", "Registers readiness interest in a handle (events arrive as EPOLL_EVENT).";
    EPOLL_EVENT = 0x011E, "EpollEvent" => "", "", "Server to client, one-way: readiness of registered handles.";
    LLSEEK = 0x011F, "LlseekReq" => "LlseekRsp", "", "lseek on a handle (SEEK_END, SEEK_DATA, SEEK_HOLE).";
    KILL = 0x0120, "KillReq" => "", "Kill (comm of target)", "kill(2) of a HOST process whose name is whitelisted.";
    SCHED_GETAFFINITY = 0x0121, "AffinityGetReq" => "Data", "Kill (comm of target)", "CPU mask of a HOST process (bytes, bit i = CPU i).";
    SCHED_SETAFFINITY = 0x0122, "AffinitySetReq" => "", "Kill (comm of target)", "Sets the CPU mask of a HOST process.";
    FSYNC = 0x0123, "FsyncReq" => "", "", "fsync/fdatasync of a handle.";
    FALLOCATE = 0x0124, "FallocateReq" => "", "Write (at open)", "fallocate on a handle.";
    FGETATTR = 0x0125, "HandleReq" => "AttrRsp", "", "Attributes of an open handle.";
    LOCK_GET = 0x0126, "LockReq" => "LockRsp", "", "Tests for a byte-range lock conflicting with one described (F_OFD_GETLK on the handle's HOST open file description).";
    LOCK_SET = 0x0127, "LockReq" => "", "", "Takes, changes or releases a byte-range (OFD) or whole-file (flock) lock on a handle; LOCK_F_WAIT waits for it.";
    CANCEL = 0x0128, "CancelReq" => "", "", "Interrupts a waiting request of this connection (a LOCK_SET with LOCK_F_WAIT), which is then answered EINTR.";
    INVAL = 0x0130, "InvalMsg" => "", "", "Server to client, one-way (feature INVAL): something at a path of an export changed on the HOST or through another client; drop what is cached of it.";

    CHAN_OPEN = 0x0201, "ChanOpenReq" => "ChanAccept", "Udsconnect", "Opens a channel to a unix socket on the peer; the header's channel field is the new id.";
    CHAN_DATA = 0x0202, "Data" => "", "", "One-way: channel bytes (MORE = message continues, for SEQPACKET/DGRAM).";
    CHAN_CREDIT = 0x0203, "ChanCredit" => "", "", "One-way: grants the peer more bytes on a channel.";
    CHAN_CLOSE = 0x0204, "ChanClose" => "", "", "One-way: half-close (EOF) or close of a channel.";
    CHAN_LISTEN = 0x0205, "ChanListenReq" => "ChanListenRsp", "Udsconnect", "Listens on a unix socket path on the peer; accepted connections arrive as CHAN_OPEN from the peer.";
    CHAN_UNLISTEN = 0x0206, "ChanUnlistenReq" => "", "", "Stops a listener.";
    CHAN_SCM = 0x0207, "ChanScm" => "", "", "One-way: file descriptors that travel with the next CHAN_DATA of the channel.";

    ADMIN_INFO = 0x0301, "Empty" => "AdminInfo", "", "Who is serving: component, version, uptime, sizes.";
    ADMIN_WL_LIST = 0x0302, "WlListReq" => "WlListRsp", "", "Lists whitelist entries (one group or all).";
    ADMIN_WL_ADD = 0x0303, "WlAddReq" => "WlAddRsp", "", "Adds a whitelist entry (optionally persisted).";
    ADMIN_WL_DEL = 0x0304, "WlDelReq" => "", "", "Deletes a whitelist entry by index (optionally persisted).";
    ADMIN_LOG_LEVEL = 0x0305, "LogLevelReq" => "LogLevelRsp", "", "Sets or queries the log level.";
    ADMIN_COUNTERS = 0x0306, "CountersReq" => "CountersRsp", "", "Per-operation counters and latency percentiles.";
    ADMIN_CONNS = 0x0307, "Empty" => "ConnsRsp", "", "Connection states.";
    ADMIN_CHANNELS = 0x0308, "Empty" => "ChannelsRsp", "", "Channel states.";
    ADMIN_CLEAR = 0x0309, "Empty" => "", "", "Clears counters.";

    REXEC_EXEC = 0x0401, "RexecExecReq" => "RexecStarted", "rexec_server whitelist (argv[0])", "Remote exec: runs a whitelisted binary with argv, env, cwd and fds; opens a session.";
    REXEC_ATTACH = 0x0402, "RexecAttachReq" => "RexecAttached", "", "Remote exec: rejoins a session after a transport drop; both sides then resend what the other has not processed.";
    REXEC_DATA = 0x0403, "Data" => "", "", "Remote exec, one-way: bytes of the stream named by the header's channel field.";
    REXEC_EOF = 0x0404, "RexecEof" => "", "", "Remote exec, one-way: the sender stopped writing (EOF) or reading a stream.";
    REXEC_CREDIT = 0x0405, "RexecCredit" => "", "", "Remote exec, one-way: cumulative bytes of a stream consumed by the receiver (flow control).";
    REXEC_ACK = 0x0406, "RexecAck" => "", "", "Remote exec, one-way: cumulative session bytes processed (frees the sender's retransmission log).";
    REXEC_SIGNAL = 0x0407, "RexecSignal" => "", "", "Remote exec, one-way, client to server: deliver a signal to the remote process.";
    REXEC_RELEASE = 0x0408, "RexecRelease" => "", "", "Remote exec, one-way, client to server: let a held process exec (or abort it).";
    REXEC_CONN = 0x0409, "RexecConn" => "", "", "Remote exec, one-way, client to server: a connection accepted on a passed listening socket; the channel field is its new stream.";
    REXEC_EXIT = 0x040A, "RexecExit" => "", "", "Remote exec, one-way, server to client: the remote process ended; follows all of its output.";
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
