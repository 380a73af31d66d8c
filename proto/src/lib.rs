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

/// Every message type, for generators, property tests and fuzzing.
pub const MESSAGES: &[&MessageDesc] = &[
    <Hello<'static> as Wire<'static>>::DESC,
    <HelloAck<'static> as Wire<'static>>::DESC,
    <Attach as Wire<'static>>::DESC,
    <AttachAck as Wire<'static>>::DESC,
    <Empty as Wire<'static>>::DESC,
    <Data<'static> as Wire<'static>>::DESC,
    <MountReq<'static> as Wire<'static>>::DESC,
    <MountRsp as Wire<'static>>::DESC,
    <UmountReq as Wire<'static>>::DESC,
    <PathReq<'static> as Wire<'static>>::DESC,
    <GetattrReq<'static> as Wire<'static>>::DESC,
    <AttrRsp as Wire<'static>>::DESC,
    <SetattrReq<'static> as Wire<'static>>::DESC,
    <OpenReq<'static> as Wire<'static>>::DESC,
    <CreateReq<'static> as Wire<'static>>::DESC,
    <OpenRsp as Wire<'static>>::DESC,
    <HandleReq as Wire<'static>>::DESC,
    <ReadReq as Wire<'static>>::DESC,
    <WriteReq<'static> as Wire<'static>>::DESC,
    <WriteRsp as Wire<'static>>::DESC,
    <ReaddirReq<'static> as Wire<'static>>::DESC,
    <ReaddirRsp<'static> as Wire<'static>>::DESC,
    <DirEntry<'static> as Wire<'static>>::DESC,
    <DirEntryPlus<'static> as Wire<'static>>::DESC,
    <MkdirReq<'static> as Wire<'static>>::DESC,
    <MknodReq<'static> as Wire<'static>>::DESC,
    <SymlinkReq<'static> as Wire<'static>>::DESC,
    <LinkReq<'static> as Wire<'static>>::DESC,
    <RenameReq<'static> as Wire<'static>>::DESC,
    <XattrListReq<'static> as Wire<'static>>::DESC,
    <XattrGetReq<'static> as Wire<'static>>::DESC,
    <XattrRsp<'static> as Wire<'static>>::DESC,
    <XattrSetReq<'static> as Wire<'static>>::DESC,
    <XattrRemoveReq<'static> as Wire<'static>>::DESC,
    <SysmountReq<'static> as Wire<'static>>::DESC,
    <SysumountReq<'static> as Wire<'static>>::DESC,
    <PollReq as Wire<'static>>::DESC,
    <PollRsp as Wire<'static>>::DESC,
    <StatfsRsp as Wire<'static>>::DESC,
    <IoctlReq<'static> as Wire<'static>>::DESC,
    <EpollCtlReq as Wire<'static>>::DESC,
    <EpollEvent<'static> as Wire<'static>>::DESC,
    <InvalMsg<'static> as Wire<'static>>::DESC,
    <LlseekReq as Wire<'static>>::DESC,
    <LlseekRsp as Wire<'static>>::DESC,
    <KillReq as Wire<'static>>::DESC,
    <AffinityGetReq as Wire<'static>>::DESC,
    <AffinitySetReq<'static> as Wire<'static>>::DESC,
    <FsyncReq as Wire<'static>>::DESC,
    <FallocateReq as Wire<'static>>::DESC,
    <LockReq as Wire<'static>>::DESC,
    <LockRsp as Wire<'static>>::DESC,
    <CancelReq as Wire<'static>>::DESC,
    <ChanOpenReq<'static> as Wire<'static>>::DESC,
    <ChanAccept as Wire<'static>>::DESC,
    <ChanCredit as Wire<'static>>::DESC,
    <ChanClose as Wire<'static>>::DESC,
    <ChanListenReq<'static> as Wire<'static>>::DESC,
    <ChanListenRsp as Wire<'static>>::DESC,
    <ChanUnlistenReq as Wire<'static>>::DESC,
    <ChanScm<'static> as Wire<'static>>::DESC,
    <ScmRec<'static> as Wire<'static>>::DESC,
    <RexecExecReq<'static> as Wire<'static>>::DESC,
    <RexecFd<'static> as Wire<'static>>::DESC,
    <RexecStarted as Wire<'static>>::DESC,
    <RexecAttachReq as Wire<'static>>::DESC,
    <RexecAttached as Wire<'static>>::DESC,
    <RexecEof as Wire<'static>>::DESC,
    <RexecCredit as Wire<'static>>::DESC,
    <RexecAck as Wire<'static>>::DESC,
    <RexecSignal as Wire<'static>>::DESC,
    <RexecRelease as Wire<'static>>::DESC,
    <RexecConn as Wire<'static>>::DESC,
    <RexecExit as Wire<'static>>::DESC,
    <AdminInfo<'static> as Wire<'static>>::DESC,
    <WlListReq as Wire<'static>>::DESC,
    <WlListRsp<'static> as Wire<'static>>::DESC,
    <WlEntry<'static> as Wire<'static>>::DESC,
    <WlAddReq<'static> as Wire<'static>>::DESC,
    <WlAddRsp as Wire<'static>>::DESC,
    <WlDelReq as Wire<'static>>::DESC,
    <LogLevelReq as Wire<'static>>::DESC,
    <LogLevelRsp as Wire<'static>>::DESC,
    <CountersReq as Wire<'static>>::DESC,
    <CountersRsp<'static> as Wire<'static>>::DESC,
    <ConnsRsp<'static> as Wire<'static>>::DESC,
    <ConnInfo<'static> as Wire<'static>>::DESC,
    <ChannelsRsp<'static> as Wire<'static>>::DESC,
    <ChanInfo<'static> as Wire<'static>>::DESC,
];

/// Every fixed record type, in dependency order.
pub const RECORDS: &[&RecordDesc] = &[
    &ReqCtx::DESC,
    &Attr::DESC,
    &Statfs::DESC,
    &Termios::DESC,
    &Winsize::DESC,
    &Fsxattr::DESC,
    &EpollRec::DESC,
    &OpCounter::DESC,
];

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
