//! Every message of QTP v1, declared once. See `PROTOCOL.md` for the generated tables.
//!
//! Conventions: file requests that name a path start with a [`ReqCtx`] (export id and
//! caller credentials) and carry the supplementary groups as their first tail. Paths are
//! relative to the export root (empty = the root); the engine resolves them beneath it.
//! Handles are opaque 64-bit values issued by the engine, valid on every connection of
//! the session. Flags and modes use the portable values of [`crate::consts`].

use crate::{message, record};

record! {
    /// Export id and the caller's credentials, leading every path-based request.
    pub struct ReqCtx {
        /// Export id returned by MOUNT (0 for MOUNT itself).
        pub export: u32,
        /// Caller's file system user id.
        pub uid: u32,
        /// Caller's file system group id.
        pub gid: u32,
    }
}

record! {
    /// Portable file attributes (what `statx` reports).
    pub struct Attr {
        /// Inode number.
        pub ino: u64,
        /// Size in bytes.
        pub size: u64,
        /// Allocated 512-byte blocks.
        pub blocks: u64,
        pub atime_sec: i64,
        pub mtime_sec: i64,
        pub ctime_sec: i64,
        /// Birth time (0 when unknown, see `flags`).
        pub btime_sec: i64,
        pub atime_nsec: u32,
        pub mtime_nsec: u32,
        pub ctime_nsec: u32,
        pub btime_nsec: u32,
        /// File type and permission bits (POSIX `S_IF*` values).
        pub mode: u32,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        /// Device number of a device node (major).
        pub rdev_major: u32,
        pub rdev_minor: u32,
        /// Device of the file system holding the file (major).
        pub dev_major: u32,
        pub dev_minor: u32,
        /// Preferred I/O size.
        pub blksize: u32,
        /// `ATTR_F_*` bits.
        pub flags: u32,
    }
}

record! {
    /// Portable `statfs`.
    pub struct Statfs {
        /// File system magic (`f_type`).
        pub fs_type: u64,
        pub blocks: u64,
        pub bfree: u64,
        pub bavail: u64,
        pub files: u64,
        pub ffree: u64,
        pub fsid: u64,
        pub bsize: u32,
        pub frsize: u32,
        pub namelen: u32,
        /// Mount flags (`ST_*`).
        pub flags: u32,
    }
}

record! {
    /// Portable termios (asm-generic `struct termios2` fields; identical on x86-64 and arm64).
    pub struct Termios {
        pub iflag: u32,
        pub oflag: u32,
        pub cflag: u32,
        pub lflag: u32,
        pub ispeed: u32,
        pub ospeed: u32,
        pub line: u8,
        /// Control characters (`c_cc`, 19 used).
        pub cc: [u8; 19],
    }
}

record! {
    /// Terminal window size.
    pub struct Winsize {
        pub rows: u16,
        pub cols: u16,
        pub xpixel: u16,
        pub ypixel: u16,
    }
}

record! {
    /// `struct fsxattr` (FS_IOC_FSGETXATTR / FSSETXATTR).
    pub struct Fsxattr {
        pub xflags: u32,
        pub extsize: u32,
        pub nextents: u32,
        pub projid: u32,
        pub cowextsize: u32,
    }
}

record! {
    /// One readiness event of EPOLL_EVENT.
    pub struct EpollRec {
        /// `EPOLLIN`-style bits (Linux generic values).
        pub events: u32,
        /// The client's cookie from EPOLL_CTL.
        pub cookie: u64,
    }
}

record! {
    /// Counters of one operation (ADMIN_COUNTERS).
    pub struct OpCounter {
        /// Operation number.
        pub op: u16,
        pub requests: u64,
        pub errors: u64,
        /// Payload bytes received for this operation.
        pub bytes_in: u64,
        /// Payload bytes sent for this operation.
        pub bytes_out: u64,
        pub lat_p50_ns: u64,
        pub lat_p99_ns: u64,
        pub lat_p999_ns: u64,
        pub lat_max_ns: u64,
    }
}

// ---------------------------------------------------------------- control

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

// ---------------------------------------------------------------- files

message! {
    /// MOUNT: export a HOST directory (absolute path) to this session.
    pub struct MountReq<'a> {
        pub ctx: ReqCtx,
        /// `MOUNT_F_*` bits.
        pub flags: u32,
        tail {
            pub groups: Groups,
            /// Absolute HOST path of the directory to export.
            pub path: Path,
        }
    }
}

message! {
    /// MOUNT response.
    pub struct MountRsp {
        pub export: u32,
        /// Attributes of the export root.
        pub root: Attr,
    }
}

message! {
    /// UMOUNT: forget an export.
    pub struct UmountReq {
        pub export: u32,
    }
}

message! {
    /// A request naming one path (LOOKUP, RMDIR, UNLINK, READLINK, STATFS).
    pub struct PathReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// GETATTR.
    pub struct GetattrReq<'a> {
        pub ctx: ReqCtx,
        /// `GETATTR_FOLLOW` to follow a final symlink.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// A response carrying attributes.
    pub struct AttrRsp {
        pub attr: Attr,
    }
}

message! {
    /// SETATTR: by path, or by handle when `handle` is not 0 (then `path` is empty).
    pub struct SetattrReq<'a> {
        pub ctx: ReqCtx,
        pub handle: u64,
        /// `SETATTR_*` bits: which fields apply.
        pub valid: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime_sec: i64,
        pub mtime_sec: i64,
        pub atime_nsec: u32,
        pub mtime_nsec: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// OPEN.
    pub struct OpenReq<'a> {
        pub ctx: ReqCtx,
        /// `O_*` bits of [`crate::consts::open`].
        pub flags: u32,
        /// Permission bits when `O_CREAT` is given.
        pub mode: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// CREATE: create a regular file (honouring `O_EXCL`), opened unless `CREATE_NOOPEN`.
    pub struct CreateReq<'a> {
        pub ctx: ReqCtx,
        /// `O_*` bits for the open (`O_CREAT` implied).
        pub flags: u32,
        pub mode: u32,
        /// Caller's umask, applied by the server.
        pub umask: u32,
        /// `CREATE_*` bits.
        pub cflags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// OPEN/CREATE response.
    pub struct OpenRsp {
        /// Session-scoped handle (0 with `CREATE_NOOPEN`).
        pub handle: u64,
        pub attr: Attr,
    }
}

message! {
    /// A request naming one handle (CLOSE, FGETATTR).
    pub struct HandleReq {
        pub handle: u64,
    }
}

message! {
    /// READ. The response payload is the data; fewer bytes than asked means end of file.
    pub struct ReadReq {
        pub handle: u64,
        pub offset: u64,
        pub len: u32,
    }
}

message! {
    /// WRITE.
    pub struct WriteReq<'a> {
        pub handle: u64,
        /// Ignored for handles opened with `O_APPEND`.
        pub offset: u64,
        /// Reserved, 0.
        pub flags: u32,
        tail {
            pub data: Rest,
        }
    }
}

message! {
    /// WRITE response.
    pub struct WriteRsp {
        pub written: u32,
    }
}

message! {
    /// READDIR: entries after `cookie` (0 = start), at most `max_bytes` of records.
    pub struct ReaddirReq<'a> {
        pub ctx: ReqCtx,
        pub cookie: u64,
        pub max_bytes: u32,
        /// `READDIR_PLUS` to get `DirEntryPlus` records.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// READDIR response: `count` records of `DirEntry` (or `DirEntryPlus`).
    pub struct ReaddirRsp<'a> {
        pub count: u32,
        /// `READDIR_EOF` when the directory is exhausted.
        pub flags: u32,
        tail {
            pub entries: Rest,
        }
    }
}

message! {
    /// One directory entry.
    pub struct DirEntry<'a> {
        pub ino: u64,
        /// Cookie that resumes after this entry.
        pub cookie: u64,
        /// `DT_*` type.
        pub dtype: u8,
        tail {
            pub name: Name,
        }
    }
}

message! {
    /// One directory entry with attributes (`READDIR_PLUS`).
    pub struct DirEntryPlus<'a> {
        pub cookie: u64,
        pub attr: Attr,
        tail {
            pub name: Name,
        }
    }
}

message! {
    /// MKDIR.
    pub struct MkdirReq<'a> {
        pub ctx: ReqCtx,
        pub mode: u32,
        pub umask: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// MKNOD (FIFOs, sockets, device nodes).
    pub struct MknodReq<'a> {
        pub ctx: ReqCtx,
        /// Type and permission bits.
        pub mode: u32,
        pub umask: u32,
        pub rdev_major: u32,
        pub rdev_minor: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// SYMLINK: create `path` pointing at `target` (target text is stored verbatim).
    pub struct SymlinkReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub target: Path,
        }
    }
}

message! {
    /// LINK: hard link `new_path` to the existing `old_path`.
    pub struct LinkReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub old_path: Path,
            pub new_path: Path,
        }
    }
}

message! {
    /// RENAME.
    pub struct RenameReq<'a> {
        pub ctx: ReqCtx,
        /// `RENAME_*` bits.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub old_path: Path,
            pub new_path: Path,
        }
    }
}

message! {
    /// XATTR_LIST. `size` 0 asks for the needed size only.
    pub struct XattrListReq<'a> {
        pub ctx: ReqCtx,
        pub size: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
        }
    }
}

message! {
    /// XATTR_GET. `size` 0 asks for the needed size only.
    pub struct XattrGetReq<'a> {
        pub ctx: ReqCtx,
        pub size: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
        }
    }
}

message! {
    /// XATTR_LIST/XATTR_GET response: `size` is the full size; `data` is empty for a
    /// size query (and the request fails with ERANGE when the buffer is too small).
    pub struct XattrRsp<'a> {
        pub size: u32,
        tail {
            pub data: Rest,
        }
    }
}

message! {
    /// XATTR_SET: the value is stored byte for byte.
    pub struct XattrSetReq<'a> {
        pub ctx: ReqCtx,
        /// `XATTR_CREATE` / `XATTR_REPLACE`.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
            pub value: Bytes32,
        }
    }
}

message! {
    /// XATTR_REMOVE.
    pub struct XattrRemoveReq<'a> {
        pub ctx: ReqCtx,
        tail {
            pub groups: Groups,
            pub path: Path,
            pub name: Name,
        }
    }
}

message! {
    /// SYSMOUNT: mount(2) on the HOST with the target inside the export.
    pub struct SysmountReq<'a> {
        pub ctx: ReqCtx,
        /// `MS_*` flags (Linux generic values).
        pub flags: u64,
        /// `SYSMOUNT_SRC_PATH` when `source` is a path in the export, else a literal
        /// (e.g. `proc`, `tmpfs`, `none`).
        pub source_kind: u32,
        tail {
            pub groups: Groups,
            pub target: Path,
            pub source: Path,
            pub fstype: Name,
            /// Mount options (passed verbatim).
            pub data: Bytes16,
        }
    }
}

message! {
    /// SYSUMOUNT.
    pub struct SysumountReq<'a> {
        pub ctx: ReqCtx,
        /// `MNT_FORCE` / `MNT_DETACH` / `MNT_EXPIRE` / `UMOUNT_NOFOLLOW`.
        pub flags: u32,
        tail {
            pub groups: Groups,
            pub target: Path,
        }
    }
}

message! {
    /// FIFO_POLL: wait at most `timeout_ms` for `events` on a handle.
    pub struct PollReq {
        pub handle: u64,
        pub events: u32,
        pub timeout_ms: u32,
    }
}

message! {
    /// FIFO_POLL response (0 on timeout).
    pub struct PollRsp {
        pub revents: u32,
    }
}

message! {
    /// STATFS response.
    pub struct StatfsRsp {
        pub statfs: Statfs,
    }
}

message! {
    /// IOCTL: `cmd` is an `IOC_*` value; `arg` is the portable input record, if any.
    /// The response payload is the portable output record, if any.
    pub struct IoctlReq<'a> {
        pub handle: u64,
        pub cmd: u32,
        tail {
            pub arg: Bytes16,
        }
    }
}

message! {
    /// EPOLL_CTL.
    pub struct EpollCtlReq {
        pub handle: u64,
        /// `EPOLL_CTL_ADD`, `_DEL` or `_MOD` (1, 2, 3).
        pub op: u32,
        pub events: u32,
        /// Returned in EPOLL_EVENT.
        pub cookie: u64,
    }
}

message! {
    /// EPOLL_EVENT (server to client, one-way): `count` `EpollRec` records.
    pub struct EpollEvent<'a> {
        pub count: u32,
        tail {
            pub events: Rest,
        }
    }
}

message! {
    /// INVAL (server to client, one-way, only on connections that agreed on
    /// `feat::INVAL`): the object at `path` of export `export` changed. `flags` are
    /// `inval::*` bits; with `inval::ALL` the path is empty.
    pub struct InvalMsg<'a> {
        pub export: u32,
        pub flags: u32,
        tail {
            /// Export-relative path (empty = the export root).
            pub path: Path,
        }
    }
}

message! {
    /// LLSEEK.
    pub struct LlseekReq {
        pub handle: u64,
        pub offset: i64,
        /// `SEEK_SET`..`SEEK_HOLE` (0..4).
        pub whence: u32,
    }
}

message! {
    /// LLSEEK response.
    pub struct LlseekRsp {
        pub offset: u64,
    }
}

message! {
    /// KILL.
    pub struct KillReq {
        pub pid: i32,
        pub signal: i32,
    }
}

message! {
    /// SCHED_GETAFFINITY (the response payload is the mask, bit i = CPU i).
    pub struct AffinityGetReq {
        pub pid: i32,
    }
}

message! {
    /// SCHED_SETAFFINITY.
    pub struct AffinitySetReq<'a> {
        pub pid: i32,
        tail {
            pub mask: Bytes16,
        }
    }
}

message! {
    /// FSYNC.
    pub struct FsyncReq {
        pub handle: u64,
        /// `FSYNC_DATASYNC` for fdatasync.
        pub flags: u32,
    }
}

message! {
    /// FALLOCATE (`FALLOC_FL_*` Linux generic values).
    pub struct FallocateReq {
        pub handle: u64,
        pub mode: u32,
        pub offset: u64,
        pub len: u64,
    }
}

message! {
    /// LOCK_GET and LOCK_SET. Byte-range locks are OFD locks of the handle's HOST open
    /// file description (each OPEN is its own); `LOCK_F_FLOCK` takes a flock(2) lock on
    /// the same description instead.
    pub struct LockReq {
        pub handle: u64,
        /// First byte of the range.
        pub start: u64,
        /// Bytes in the range; 0 = to the end of the file, however far it grows.
        pub len: u64,
        /// `LOCK_RD`, `LOCK_WR` or `LOCK_UN`.
        pub ltype: u32,
        /// `LOCK_F_*`.
        pub flags: u32,
    }
}

message! {
    /// LOCK_GET response: one lock that conflicts, or `ltype` = `LOCK_UN` (nothing does).
    pub struct LockRsp {
        pub start: u64,
        /// 0 = to the end of the file.
        pub len: u64,
        pub ltype: u32,
        /// HOST pid of the holder for a HOST process's classic POSIX lock; -1 for an
        /// OFD lock (another client's, another handle's, or a HOST OFD lock).
        pub pid: i32,
    }
}

message! {
    /// CANCEL: the request `id` of this connection, if it is still waiting, is answered
    /// EINTR. CANCEL itself is answered at once: ENOENT when nothing was waiting.
    pub struct CancelReq {
        pub id: u64,
    }
}

// ---------------------------------------------------------------- channels

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

// ---------------------------------------------------------------- remote exec

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

// ---------------------------------------------------------------- admin

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
