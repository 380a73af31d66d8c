//! # qtfs-proto — QTP v1, the qtfs wire protocol
//!
//! The single source of truth for every byte that crosses a qtfs connection: the frame
//! header ([`header`]), every message ([`msg`]), portable constants ([`consts`]), the
//! authenticated handshake ([`handshake`]), key files ([`psk`]) and addresses ([`addr`]).
//! The C header of the kernel module, `PROTOCOL.md` and the golden vectors are generated
//! from these declarations ([`codegen`]). No network I/O lives here.

pub mod addr;
pub mod codegen;
pub mod consts;
pub mod error;
// Decoding and handshake paths: they parse untrusted bytes; a slip must be an error,
// never a panic (tests may unwrap).
#[cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]
pub mod handshake;
#[cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]
pub mod header;
// Not `msg` and `wire`: their codec indexes slices whose length `decode_prefix` checked
// against the message's fixed size first (generated code; fuzzed by fuzz/frame_decoder
// and livefuzz); checked access there is a refactor of its own.
pub mod msg;
pub mod op;
pub mod psk;
pub mod wire;

pub use addr::Addr;
pub use consts::errno;
pub use error::ProtoError;
pub use header::{Frame, FrameHeader, FrameParser, HEADER_SIZE, flags, push_frame};
pub use msg::*;
pub use op::{Op, OpInfo};
pub use psk::Psk;
pub use wire::{Bytes16, Bytes32, Groups, Name, Path, RecordIter, Rest, Wire};

/// Protocol version spoken by this build.
pub const VERSION: u8 = 1;
/// Largest payload of any frame: 1 MiB of data plus room for a message's fixed part.
pub const MAX_PAYLOAD: usize = (1 << 20) + 4096;
/// Largest READ/WRITE data length.
pub const MAX_IO: usize = 1 << 20;
/// Longest path in bytes (PATH_MAX without the NUL).
pub const MAX_PATH: usize = 4095;
/// Longest name in bytes.
pub const MAX_NAME: usize = 255;
/// Most supplementary groups a request carries.
pub const MAX_GROUPS: usize = 64;

use wire::{MessageDesc, RecordDesc};

/// The descriptors (`DESC`) of the types named, in order: `&[&T::DESC, …]`.
macro_rules! descs {
    ($($t:ident),* $(,)?) => {
        [$(&<$t>::DESC),*]
    };
}

/// Every message type, for generators, property tests and fuzzing.
pub const MESSAGES: &[&MessageDesc] = &descs! {
    Hello, HelloAck, Attach, AttachAck, Empty, Data, MountReq, MountRsp, UmountReq, PathReq, GetattrReq, AttrRsp,
    SetattrReq, OpenReq, CreateReq, OpenRsp, HandleReq, ReadReq, WriteReq, WriteRsp, ReaddirReq, ReaddirRsp, DirEntry,
    DirEntryPlus, MkdirReq, MknodReq, SymlinkReq, LinkReq, RenameReq, XattrListReq, XattrGetReq, XattrRsp, XattrSetReq,
    XattrRemoveReq, SysmountReq, SysumountReq, PollReq, PollRsp, StatfsRsp, IoctlReq, EpollCtlReq, EpollEvent, InvalMsg,
    LlseekReq, LlseekRsp, KillReq, AffinityGetReq, AffinitySetReq, FsyncReq, FallocateReq, LockReq, LockRsp, CancelReq,
    ChanOpenReq, ChanAccept, ChanCredit, ChanClose, ChanListenReq, ChanListenRsp, ChanUnlistenReq, ChanScm, ScmRec,
    RexecExecReq, RexecFd, RexecStarted, RexecAttachReq, RexecAttached, RexecEof, RexecCredit, RexecAck, RexecSignal,
    RexecRelease, RexecConn, RexecExit, AdminInfo, WlListReq, WlListRsp, WlEntry, WlAddReq, WlAddRsp, WlDelReq,
    LogLevelReq, LogLevelRsp, CountersReq, CountersRsp, ConnsRsp, ConnInfo, ChannelsRsp, ChanInfo,
};

/// Every fixed record type, in dependency order.
pub const RECORDS: &[&RecordDesc] = &descs! {
    ReqCtx, Attr, Statfs, Termios, Winsize, Fsxattr, EpollRec, OpCounter,
};

/// Looks a message type up by name.
pub fn message_desc(name: &str) -> Option<&'static MessageDesc> {
    MESSAGES.iter().copied().find(|d| d.name == name)
}

/// Decodes a frame's payload as the message its header announces, without keeping it:
/// the generic validator behind fuzzing and the engine's "answer or close" decision.
pub fn validate_frame(h: &FrameHeader, payload: &[u8]) -> Result<(), ProtoError> {
    let op = h.op().ok_or(ProtoError::UnknownOp(h.op))?;
    let info = op.info();
    if h.is_error() {
        return if payload.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes { what: "error frame", extra: payload.len() })
        };
    }
    let name = if h.is_response() { info.response } else { info.request };
    if name.is_empty() {
        return if payload.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes { what: info.name, extra: payload.len() })
        };
    }
    let desc = message_desc(name).ok_or(ProtoError::UnknownOp(h.op))?;
    (desc.validate)(payload)
}
