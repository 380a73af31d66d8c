//! Generators driven by the message declarations: the C mirror `qtp.h` (kernel and user
//! space), the C golden-test table, the golden vectors, and the tables of `PROTOCOL.md`.
//!
//! `cargo run -p qtfs-proto --bin qtp-gen` rewrites the committed files; the test
//! `proto/tests/golden.rs` fails when they are stale.

use std::fmt::Write as _;

use crate::consts::{self, feat, ioc, open, rexec, setattr};
use crate::header::{HEADER_SIZE, MAGIC, flags};
use crate::wire::{FieldDesc, FieldType, MessageDesc, RecordDesc, Scalar, TailKind, get_len};
use crate::{MAX_GROUPS, MAX_IO, MAX_NAME, MAX_PATH, MAX_PAYLOAD, MESSAGES, Op, RECORDS, VERSION};

/// `OpenReq` → `open_req`.
pub fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn upper(name: &str) -> String {
    snake(name).to_ascii_uppercase()
}

/// Integer constants mirrored into C (`#define NAME value`).
pub fn c_constants() -> Vec<(&'static str, u64, &'static str)> {
    let mut v: Vec<(&'static str, u64, &'static str)> = vec![
        ("QTP_MAGIC", MAGIC as u64, "frame magic (bytes 'Q' 'T')"),
        ("QTP_VERSION", VERSION as u64, "protocol version"),
        ("QTP_HEADER_SIZE", HEADER_SIZE as u64, "frame header bytes"),
        ("QTP_MAX_PAYLOAD", MAX_PAYLOAD as u64, "largest frame payload"),
        ("QTP_MAX_IO", MAX_IO as u64, "largest READ/WRITE length"),
        ("QTP_MAX_PATH", MAX_PATH as u64, "longest path (bytes)"),
        ("QTP_MAX_NAME", MAX_NAME as u64, "longest name (bytes)"),
        ("QTP_MAX_GROUPS", MAX_GROUPS as u64, "most supplementary groups"),
        ("QTP_F_REQUEST", flags::REQUEST as u64, "frame flag"),
        ("QTP_F_RESPONSE", flags::RESPONSE as u64, "frame flag"),
        ("QTP_F_ERROR", flags::ERROR as u64, "frame flag"),
        ("QTP_F_MORE", flags::MORE as u64, "frame flag"),
        ("QTP_AUTH_NONE", consts::AUTH_NONE as u64, "HELLO_ACK auth"),
        ("QTP_AUTH_HMAC_SHA256", consts::AUTH_HMAC_SHA256 as u64, "HELLO_ACK auth"),
        ("QTP_FEAT_CHANNELS", feat::CHANNELS, "feature bit"),
        ("QTP_FEAT_EPOLL", feat::EPOLL, "feature bit"),
        ("QTP_FEAT_SYSCALLS", feat::SYSCALLS, "feature bit"),
        ("QTP_FEAT_READDIR_PLUS", feat::READDIR_PLUS, "feature bit"),
        ("QTP_FEAT_INVAL", feat::INVAL, "feature bit"),
        ("QTP_FEAT_DIR_ATTR", feat::DIR_ATTR, "feature bit"),
        ("QTP_FEAT_NO_ECHO", feat::NO_ECHO, "feature bit"),
        ("QTP_FEAT_LIST_ATTR", feat::LIST_ATTR, "feature bit"),
        ("QTP_FEAT_XATTR_NONE", feat::XATTR_NONE, "feature bit"),
        ("QTP_ATTR_F_BTIME", consts::ATTR_F_BTIME as u64, "Attr.flags"),
        ("QTP_ATTR_F_NO_XATTRS", consts::ATTR_F_NO_XATTRS as u64, "Attr.flags"),
        ("QTP_MOUNT_F_READONLY", consts::MOUNT_F_READONLY as u64, "MountReq.flags"),
        ("QTP_GETATTR_FOLLOW", consts::GETATTR_FOLLOW as u64, "GetattrReq.flags"),
        ("QTP_SETATTR_MODE", setattr::MODE as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_UID", setattr::UID as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_GID", setattr::GID as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_SIZE", setattr::SIZE as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_ATIME", setattr::ATIME as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_MTIME", setattr::MTIME as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_ATIME_NOW", setattr::ATIME_NOW as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_MTIME_NOW", setattr::MTIME_NOW as u64, "SetattrReq.valid"),
        ("QTP_SETATTR_KILL_SUIDGID", setattr::KILL_SUIDGID as u64, "SetattrReq.valid"),
        ("QTP_CREATE_NOOPEN", consts::CREATE_NOOPEN as u64, "CreateReq.cflags"),
        ("QTP_READDIR_PLUS", consts::READDIR_PLUS as u64, "ReaddirReq.flags"),
        ("QTP_READDIR_EOF", consts::READDIR_EOF as u64, "ReaddirRsp.flags"),
        ("QTP_READDIR_ATTR", consts::READDIR_ATTR as u64, "ReaddirRsp.flags"),
        ("QTP_FSYNC_DATASYNC", consts::FSYNC_DATASYNC as u64, "FsyncReq.flags"),
        ("QTP_INVAL_ATTR", consts::inval::ATTR as u64, "InvalMsg.flags"),
        ("QTP_INVAL_DATA", consts::inval::DATA as u64, "InvalMsg.flags"),
        ("QTP_INVAL_ENTRY", consts::inval::ENTRY as u64, "InvalMsg.flags"),
        ("QTP_INVAL_ALL", consts::inval::ALL as u64, "InvalMsg.flags"),
        ("QTP_LOCK_RD", consts::LOCK_RD as u64, "LockReq.ltype"),
        ("QTP_LOCK_WR", consts::LOCK_WR as u64, "LockReq.ltype"),
        ("QTP_LOCK_UN", consts::LOCK_UN as u64, "LockReq.ltype"),
        ("QTP_LOCK_F_WAIT", consts::LOCK_F_WAIT as u64, "LockReq.flags"),
        ("QTP_LOCK_F_FLOCK", consts::LOCK_F_FLOCK as u64, "LockReq.flags"),
        ("QTP_SYSMOUNT_SRC_LITERAL", consts::SYSMOUNT_SRC_LITERAL as u64, "SysmountReq.source_kind"),
        ("QTP_SYSMOUNT_SRC_PATH", consts::SYSMOUNT_SRC_PATH as u64, "SysmountReq.source_kind"),
        ("QTP_CHAN_STREAM", consts::CHAN_STREAM as u64, "channel kind"),
        ("QTP_CHAN_SEQPACKET", consts::CHAN_SEQPACKET as u64, "channel kind"),
        ("QTP_CHAN_DGRAM", consts::CHAN_DGRAM as u64, "channel kind"),
        ("QTP_CHAN_ID_PEER", consts::CHAN_ID_PEER as u64, "channel id chosen by the server"),
        ("QTP_CHAN_SHUT_WR", consts::CHAN_SHUT_WR as u64, "ChanClose.how"),
        ("QTP_CHAN_CLOSE_ALL", consts::CHAN_CLOSE_ALL as u64, "ChanClose.how"),
        ("QTP_SCM_FILE", consts::SCM_FILE as u64, "ScmRec.kind"),
        ("QTP_SCM_PIPE_READ", consts::SCM_PIPE_READ as u64, "ScmRec.kind"),
        ("QTP_SCM_PIPE_WRITE", consts::SCM_PIPE_WRITE as u64, "ScmRec.kind"),
        ("QTP_SCM_LISTENER", consts::SCM_LISTENER as u64, "ScmRec.kind"),
        ("QTP_REXEC_F_HOLD", rexec::F_HOLD as u64, "RexecExecReq.flags"),
        ("QTP_REXEC_FD_FILE", rexec::FD_FILE as u64, "RexecFd.kind"),
        ("QTP_REXEC_FD_PIPE_IN", rexec::FD_PIPE_IN as u64, "RexecFd.kind"),
        ("QTP_REXEC_FD_PIPE_OUT", rexec::FD_PIPE_OUT as u64, "RexecFd.kind"),
        ("QTP_REXEC_FD_LISTENER", rexec::FD_LISTENER as u64, "RexecFd.kind"),
        ("QTP_REXEC_EOF_WRITE", rexec::EOF_WRITE as u64, "RexecEof.how"),
        ("QTP_REXEC_EOF_READ", rexec::EOF_READ as u64, "RexecEof.how"),
        ("QTP_REXEC_SIGNAL_GROUP", rexec::SIGNAL_GROUP as u64, "RexecSignal.flags"),
        ("QTP_REXEC_CONN_STREAM_BASE", rexec::CONN_STREAM_BASE as u64, "first REXEC_CONN stream id"),
        ("QTP_REXEC_MAX_ARGV_ENV", rexec::MAX_ARGV_ENV as u64, "argv + env bytes of RexecExecReq"),
        ("QTP_REXEC_MAX_FDS", rexec::MAX_FDS as u64, "fd records of RexecExecReq"),
        ("QTP_REXEC_MAX_FD_NUMBER", rexec::MAX_FD_NUMBER as u64, "RexecFd.fd is below this"),
        ("QTP_REXEC_MIN_WINDOW", rexec::MIN_WINDOW as u64, "smallest receive window"),
        ("QTP_REXEC_MAX_WINDOW", rexec::MAX_WINDOW as u64, "largest receive window"),
        ("QTP_IOC_TCGETS", ioc::TCGETS as u64, "IoctlReq.cmd"),
        ("QTP_IOC_TCSETS", ioc::TCSETS as u64, "IoctlReq.cmd"),
        ("QTP_IOC_TCSETSW", ioc::TCSETSW as u64, "IoctlReq.cmd"),
        ("QTP_IOC_TCSETSF", ioc::TCSETSF as u64, "IoctlReq.cmd"),
        ("QTP_IOC_TIOCGWINSZ", ioc::TIOCGWINSZ as u64, "IoctlReq.cmd"),
        ("QTP_IOC_TIOCSWINSZ", ioc::TIOCSWINSZ as u64, "IoctlReq.cmd"),
        ("QTP_IOC_FS_GETFLAGS", ioc::FS_GETFLAGS as u64, "IoctlReq.cmd"),
        ("QTP_IOC_FS_SETFLAGS", ioc::FS_SETFLAGS as u64, "IoctlReq.cmd"),
        ("QTP_IOC_FS_FSGETXATTR", ioc::FS_FSGETXATTR as u64, "IoctlReq.cmd"),
        ("QTP_IOC_FS_FSSETXATTR", ioc::FS_FSSETXATTR as u64, "IoctlReq.cmd"),
        ("QTP_O_RDONLY", open::RDONLY as u64, "open flags"),
        ("QTP_O_WRONLY", open::WRONLY as u64, "open flags"),
        ("QTP_O_RDWR", open::RDWR as u64, "open flags"),
        ("QTP_O_ACCMODE", open::ACCMODE as u64, "open flags"),
        ("QTP_O_CREAT", open::CREAT as u64, "open flags"),
        ("QTP_O_EXCL", open::EXCL as u64, "open flags"),
        ("QTP_O_TRUNC", open::TRUNC as u64, "open flags"),
        ("QTP_O_APPEND", open::APPEND as u64, "open flags"),
        ("QTP_O_NONBLOCK", open::NONBLOCK as u64, "open flags"),
        ("QTP_O_DIRECTORY", open::DIRECTORY as u64, "open flags"),
        ("QTP_O_NOFOLLOW", open::NOFOLLOW as u64, "open flags"),
        ("QTP_O_SYNC", open::SYNC as u64, "open flags"),
        ("QTP_O_DSYNC", open::DSYNC as u64, "open flags"),
        ("QTP_O_DIRECT", open::DIRECT as u64, "open flags"),
        ("QTP_O_NOATIME", open::NOATIME as u64, "open flags"),
        ("QTP_O_NOCTTY", open::NOCTTY as u64, "open flags"),
        ("QTP_WL_ALL", consts::WL_ALL as u64, "WlListReq.wl_type: every group"),
        ("QTP_WL_PERSIST", consts::WL_PERSIST as u64, "WL_ADD/WL_DEL flag"),
        ("QTP_WL_MAX_ENTRIES", consts::WL_MAX_ENTRIES as u64, "entries per group"),
        ("QTP_LOG_NONE", consts::LOG_NONE as u64, "log level"),
        ("QTP_LOG_ERROR", consts::LOG_ERROR as u64, "log level"),
        ("QTP_LOG_WARN", consts::LOG_WARN as u64, "log level"),
        ("QTP_LOG_INFO", consts::LOG_INFO as u64, "log level"),
        ("QTP_LOG_DEBUG", consts::LOG_DEBUG as u64, "log level"),
        ("QTP_LOG_QUERY", consts::LOG_QUERY as u64, "LogLevelReq: only read"),
        ("QTP_COUNTERS_CLEAR", consts::COUNTERS_CLEAR as u64, "CountersReq.flags"),
        ("QTP_CONN_HANDSHAKE", consts::CONN_HANDSHAKE as u64, "connection state"),
        ("QTP_CONN_ACTIVE", consts::CONN_ACTIVE as u64, "connection state"),
        ("QTP_CONN_CLOSING", consts::CONN_CLOSING as u64, "connection state"),
        ("QTP_CONN_RECONNECTING", consts::CONN_RECONNECTING as u64, "connection state"),
        ("QTP_CHANST_OPENING", consts::CHANST_OPENING as u64, "channel state"),
        ("QTP_CHANST_OPEN", consts::CHANST_OPEN as u64, "channel state"),
        ("QTP_CHANST_HALF_CLOSED", consts::CHANST_HALF_CLOSED as u64, "channel state"),
        ("QTP_CHANST_CLOSING", consts::CHANST_CLOSING as u64, "channel state"),
        ("QTP_OP_INDEX_LIMIT", Op::INDEX_LIMIT as u64, "bound of op index ((op>>8)*64 + (op&63))"),
    ];
    for t in consts::WlType::ALL {
        let name: &'static str = Box::leak(format!("QTP_WL_{}", t.section().to_ascii_uppercase()).into_boxed_str());
        v.push((name, t as u64, "whitelist group"));
    }
    v
}

/// A field's C declaration in the decoded struct.
fn c_field_decl(f: &FieldDesc) -> String {
    c_decl(f, "")
}

/// A field's C declaration in the packed wire struct (a record as its own wire struct).
fn c_wire_decl(f: &FieldDesc) -> String {
    c_decl(f, "_wire")
}

fn c_decl(f: &FieldDesc, record_suffix: &str) -> String {
    match f.ty {
        FieldType::Scalar(s) => format!("{} {};", s.c_type(), f.name),
        FieldType::Bytes(n) => format!("uint8_t {}[{}];", f.name, n),
        FieldType::Record(r) => format!("struct qtp_{}{record_suffix} {};", snake(r.name), f.name),
    }
}

fn c_get(f: &FieldDesc, wire: &str) -> String {
    let at = format!("p + offsetof(struct {wire}, {})", f.name);
    match f.ty {
        FieldType::Scalar(Scalar::U8) => format!("v->{} = *({at});", f.name),
        FieldType::Scalar(s) => {
            // The getters return unsigned values: a signed field takes its own type.
            let cast = if matches!(s, Scalar::I32 | Scalar::I64) { format!("({})", s.c_type()) } else { String::new() };
            format!("v->{} = {cast}qtp_get{}({at});", f.name, s.size() * 8)
        }
        FieldType::Bytes(n) => format!("memcpy(v->{}, {at}, {n});", f.name),
        FieldType::Record(r) => format!("qtp_{}_get({at}, &v->{});", snake(r.name), f.name),
    }
}

fn c_put(f: &FieldDesc, wire: &str) -> String {
    let at = format!("p + offsetof(struct {wire}, {})", f.name);
    match f.ty {
        FieldType::Scalar(Scalar::U8) => format!("*({at}) = v->{};", f.name),
        FieldType::Scalar(Scalar::U16) => format!("qtp_put16({at}, v->{});", f.name),
        FieldType::Scalar(s) => {
            let bits = s.size() * 8;
            format!("qtp_put{bits}({at}, (uint{bits}_t)v->{});", f.name)
        }
        FieldType::Bytes(n) => format!("memcpy({at}, v->{}, {n});", f.name),
        FieldType::Record(r) => format!("qtp_{}_put(&v->{}, {at});", snake(r.name), f.name),
    }
}

fn tail_len_field(name: &str, kind: TailKind) -> String {
    if kind == TailKind::Groups { format!("{name}_count") } else { format!("{name}_len") }
}

fn emit_record(out: &mut String, r: &RecordDesc) {
    let s = snake(r.name);
    let wire = format!("qtp_{s}_wire");
    let _ = writeln!(out, "/* {} */", r.doc.trim().replace('\n', " "));
    let _ = writeln!(out, "struct {wire} {{");
    for f in r.fields {
        let _ = writeln!(out, "\t{}", c_wire_decl(f));
    }
    let _ = writeln!(out, "}} __attribute__((packed));");
    let _ = writeln!(out, "struct qtp_{s} {{");
    for f in r.fields {
        let _ = writeln!(out, "\t{}", c_field_decl(f));
    }
    let _ = writeln!(out, "}};");
    let _ = writeln!(out, "#define QTP_{}_SIZE {}", upper(r.name), r.size);
    let _ = writeln!(out, "QTP_STATIC_ASSERT(sizeof(struct {wire}) == {}, \"{wire} size\");", r.size);
    let mut off = 0;
    for f in r.fields {
        let _ =
            writeln!(out, "QTP_STATIC_ASSERT(offsetof(struct {wire}, {}) == {off}, \"{wire}.{}\");", f.name, f.name);
        off += f.ty.size();
    }
    let _ = writeln!(out, "static inline void qtp_{s}_get(const uint8_t *p, struct qtp_{s} *v)\n{{");
    for f in r.fields {
        let _ = writeln!(out, "\t{}", c_get(f, &wire));
    }
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "static inline void qtp_{s}_put(const struct qtp_{s} *v, uint8_t *p)\n{{");
    for f in r.fields {
        let _ = writeln!(out, "\t{}", c_put(f, &wire));
    }
    let _ = writeln!(out, "}}\n");
}

fn emit_message(out: &mut String, m: &MessageDesc) {
    let s = snake(m.name);
    let up = upper(m.name);
    let wire = format!("qtp_{s}_wire");
    let _ = writeln!(out, "/* {} */", m.doc.trim().replace('\n', " "));
    let has_fixed = m.fixed_size > 0;
    if has_fixed {
        let _ = writeln!(out, "struct {wire} {{");
        for f in m.fields {
            let _ = writeln!(out, "\t{}", c_wire_decl(f));
        }
        for t in m.tails {
            if let Some(bits) = len_bits(t.kind) {
                let _ = writeln!(out, "\tuint{bits}_t {};", tail_len_field(t.name, t.kind));
            }
        }
        let _ = writeln!(out, "}} __attribute__((packed));");
    }
    let _ = writeln!(out, "struct qtp_{s} {{");
    for f in m.fields {
        let _ = writeln!(out, "\t{}", c_field_decl(f));
    }
    for t in m.tails {
        let _ = writeln!(out, "\tconst uint8_t *{}; /* {} */", t.name, t.kind.name());
        let _ = writeln!(out, "\tuint32_t {};", tail_len_field(t.name, t.kind));
    }
    if m.fields.is_empty() && m.tails.is_empty() {
        let _ = writeln!(out, "\tuint8_t unused_;");
    }
    let _ = writeln!(out, "}};");
    let _ = writeln!(out, "#define QTP_{up}_FIXED {}", m.fixed_size);
    if has_fixed {
        let _ = writeln!(out, "QTP_STATIC_ASSERT(sizeof(struct {wire}) == {}, \"{wire} size\");", m.fixed_size);
        let mut off = 0;
        for f in m.fields {
            let _ = writeln!(
                out,
                "QTP_STATIC_ASSERT(offsetof(struct {wire}, {}) == {off}, \"{wire}.{}\");",
                f.name, f.name
            );
            off += f.ty.size();
        }
        for t in m.tails {
            if t.kind.len_size() > 0 {
                let lf = tail_len_field(t.name, t.kind);
                let _ = writeln!(out, "QTP_STATIC_ASSERT(offsetof(struct {wire}, {lf}) == {off}, \"{wire}.{lf}\");");
                off += t.kind.len_size();
            }
        }
    }
    // size
    let _ = write!(out, "static inline size_t qtp_{s}_size(const struct qtp_{s} *v)\n{{\n\treturn QTP_{up}_FIXED");
    for t in m.tails {
        let _ = write!(out, " + (size_t)v->{} * {}", tail_len_field(t.name, t.kind), t.kind.unit());
    }
    let _ = writeln!(out, ";\n}}");
    if m.tails.is_empty() {
        // Keep -Wunused-parameter quiet for fixed-size messages.
        *out = out.replacen(
            &format!("qtp_{s}_size(const struct qtp_{s} *v)\n{{\n"),
            &format!("qtp_{s}_size(const struct qtp_{s} *v)\n{{\n\t(void)v;\n"),
            1,
        );
    }
    // encode
    let _ = writeln!(out, "static inline long qtp_{s}_encode(const struct qtp_{s} *v, void *buf, size_t cap)\n{{");
    let _ = writeln!(out, "\tuint8_t *p = (uint8_t *)buf;\n\tsize_t need = qtp_{s}_size(v);");
    for t in m.tails {
        if t.kind != TailKind::Rest {
            let _ =
                writeln!(out, "\tif (v->{} > {})\n\t\treturn -EINVAL;", tail_len_field(t.name, t.kind), t.kind.max());
        }
    }
    let _ = writeln!(out, "\tif (need > cap)\n\t\treturn -ENOSPC;");
    for f in m.fields {
        let _ = writeln!(out, "\t{}", c_put(f, &wire));
    }
    for t in m.tails {
        let lf = tail_len_field(t.name, t.kind);
        if let Some(bits) = len_bits(t.kind) {
            // The length is a uint32_t: a 16-bit field takes it narrowed.
            let cast = if bits == 16 { "(uint16_t)" } else { "" };
            let _ = writeln!(out, "\tqtp_put{bits}(p + offsetof(struct {wire}, {lf}), {cast}v->{lf});");
        }
    }
    let _ = writeln!(out, "\tp += QTP_{up}_FIXED;");
    for t in m.tails {
        let lf = tail_len_field(t.name, t.kind);
        let _ = writeln!(
            out,
            "\tif (v->{lf})\n\t\tmemcpy(p, v->{}, (size_t)v->{lf} * {});\n\tp += (size_t)v->{lf} * {};",
            t.name,
            t.kind.unit(),
            t.kind.unit()
        );
    }
    let _ = writeln!(out, "\treturn (long)need;\n}}");
    // decode
    let _ = writeln!(
        out,
        "/* Decodes the front of buf; returns the bytes used or a negative errno. */\nstatic inline long qtp_{s}_decode(const void *buf, size_t len, struct qtp_{s} *v)\n{{"
    );
    let _ = writeln!(out, "\tconst uint8_t *p = (const uint8_t *)buf;\n\tsize_t pos = QTP_{up}_FIXED;");
    if m.fixed_size > 0 {
        let _ = writeln!(out, "\tif (len < QTP_{up}_FIXED)\n\t\treturn -EBADMSG;");
    }
    if m.fields.is_empty() && m.tails.is_empty() {
        let _ = writeln!(out, "\t(void)p;\n\t(void)len;");
    }
    for f in m.fields {
        let _ = writeln!(out, "\t{}", c_get(f, &wire));
    }
    for t in m.tails {
        let lf = tail_len_field(t.name, t.kind);
        let _ = match len_bits(t.kind) {
            Some(bits) => writeln!(out, "\tv->{lf} = qtp_get{bits}(p + offsetof(struct {wire}, {lf}));"),
            None => writeln!(out, "\tv->{lf} = (uint32_t)(len - pos);"),
        };
        let _ = writeln!(out, "\tif (v->{lf} > {})\n\t\treturn -EBADMSG;", t.kind.max());
        let _ = writeln!(out, "\tif (len - pos < (size_t)v->{lf} * {})\n\t\treturn -EBADMSG;", t.kind.unit());
        let _ = writeln!(out, "\tv->{} = p + pos;", t.name);
        if t.kind.is_string() {
            let _ = writeln!(out, "\tif (v->{lf} && memchr(p + pos, 0, v->{lf}))\n\t\treturn -EBADMSG;");
        }
        let _ = writeln!(out, "\tpos += (size_t)v->{lf} * {};", t.kind.unit());
    }
    if m.fields.is_empty() && m.tails.is_empty() {
        let _ = writeln!(out, "\tv->unused_ = 0;");
    }
    let _ = writeln!(out, "\treturn (long)pos;\n}}\n");
}

/// The width in bits of a tail's length field in the fixed part (`None`: a `rest` tail
/// has none).
fn len_bits(k: TailKind) -> Option<usize> {
    Some(k.len_size() * 8).filter(|&b| b > 0)
}

/// The whole of `client-kmod/include/qtp.h`.
pub fn c_header() -> String {
    let mut o = String::new();
    o.push_str(
        "/* SPDX-License-Identifier: GPL-2.0 OR MIT */\n\
/*\n * qtp.h - QTP v1, the qtfs wire protocol, for the kernel module and user space.\n *\n\
 * GENERATED from proto/src/msg.rs by `cargo run -p qtfs-proto --bin qtp-gen`.\n\
 * Do not edit: proto/tests/golden.rs fails when this file is stale.\n *\n\
 * Every message is a packed little-endian fixed part (struct qtp_X_wire, offsets\n\
 * asserted below) followed by its tails in declaration order; the lengths of the tails\n\
 * are the last fields of the fixed part. struct qtp_X is the host-order view that\n\
 * qtp_X_decode() fills (tails point into the buffer) and qtp_X_encode() writes.\n */\n\
#ifndef QTP_H\n#define QTP_H\n\n\
#ifdef __KERNEL__\n#include <linux/types.h>\n#include <linux/errno.h>\n#include <linux/string.h>\n#include <linux/stddef.h>\n\
#else\n#include <stdint.h>\n#include <stddef.h>\n#include <string.h>\n#include <errno.h>\n#endif\n\n\
#define QTP_STATIC_ASSERT(c, m) _Static_assert(c, m)\n\n\
/* Alignment- and endian-independent accessors. */\n\
static inline uint16_t qtp_get16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }\n\
static inline uint32_t qtp_get32(const uint8_t *p) { return (uint32_t)qtp_get16(p) | (uint32_t)qtp_get16(p + 2) << 16; }\n\
static inline uint64_t qtp_get64(const uint8_t *p) { return (uint64_t)qtp_get32(p) | (uint64_t)qtp_get32(p + 4) << 32; }\n\
static inline void qtp_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }\n\
static inline void qtp_put32(uint8_t *p, uint32_t v) { qtp_put16(p, (uint16_t)v); qtp_put16(p + 2, (uint16_t)(v >> 16)); }\n\
static inline void qtp_put64(uint8_t *p, uint64_t v) { qtp_put32(p, (uint32_t)v); qtp_put32(p + 4, (uint32_t)(v >> 32)); }\n\n",
    );
    o.push_str("/* ---- constants ---- */\n");
    for (name, val, doc) in c_constants() {
        let _ = writeln!(o, "#define {name:<28} {val:#x}ULL /* {doc} */");
    }
    o.push_str("\n/* ---- operations ---- */\n");
    for op in Op::ALL {
        let _ = writeln!(o, "#define QTP_OP_{:<24} {:#06x} /* {} */", op.name(), *op as u16, op.info().doc);
    }
    o.push_str(
        "\n/* ---- frame header (32 bytes) ---- */\n\
struct qtp_hdr_wire {\n\tuint16_t magic;\n\tuint8_t version;\n\tuint8_t flags;\n\tuint16_t op;\n\tuint16_t reserved;\n\
\tuint32_t channel;\n\tuint32_t len;\n\tuint64_t id;\n\tint32_t status;\n\tuint32_t reserved2;\n} __attribute__((packed));\n\
QTP_STATIC_ASSERT(sizeof(struct qtp_hdr_wire) == 32, \"header size\");\n\
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, op) == 4, \"hdr.op\");\n\
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, channel) == 8, \"hdr.channel\");\n\
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, len) == 12, \"hdr.len\");\n\
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, id) == 16, \"hdr.id\");\n\
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, status) == 24, \"hdr.status\");\n\
struct qtp_hdr {\n\tuint8_t flags;\n\tuint16_t op;\n\tuint32_t channel;\n\tuint32_t len;\n\tuint64_t id;\n\tint32_t status;\n};\n\
static inline void qtp_hdr_encode(const struct qtp_hdr *h, void *buf)\n{\n\tuint8_t *p = (uint8_t *)buf;\n\
\tqtp_put16(p, (uint16_t)QTP_MAGIC);\n\tp[2] = (uint8_t)QTP_VERSION;\n\tp[3] = h->flags;\n\tqtp_put16(p + 4, h->op);\n\tqtp_put16(p + 6, 0);\n\
\tqtp_put32(p + 8, h->channel);\n\tqtp_put32(p + 12, h->len);\n\tqtp_put64(p + 16, h->id);\n\tqtp_put32(p + 24, (uint32_t)h->status);\n\tqtp_put32(p + 28, 0);\n}\n\
/* Validates and decodes a header; max_payload bounds len. Returns 0 or -EBADMSG. */\n\
static inline int qtp_hdr_decode(const void *buf, size_t len, uint32_t max_payload, struct qtp_hdr *h)\n{\n\
\tconst uint8_t *p = (const uint8_t *)buf;\n\
\tif (len < QTP_HEADER_SIZE || qtp_get16(p) != QTP_MAGIC || p[2] != QTP_VERSION)\n\t\treturn -EBADMSG;\n\
\tif ((p[3] & ~(QTP_F_REQUEST | QTP_F_RESPONSE | QTP_F_ERROR | QTP_F_MORE)) ||\n\t    ((p[3] & QTP_F_REQUEST) && (p[3] & QTP_F_RESPONSE)))\n\t\treturn -EBADMSG;\n\
\tif (qtp_get16(p + 6) || qtp_get32(p + 28))\n\t\treturn -EBADMSG;\n\
\th->flags = p[3];\n\th->op = qtp_get16(p + 4);\n\th->channel = qtp_get32(p + 8);\n\th->len = qtp_get32(p + 12);\n\
\th->id = qtp_get64(p + 16);\n\th->status = (int32_t)qtp_get32(p + 24);\n\
\tif (h->len > max_payload || h->len > QTP_MAX_PAYLOAD)\n\t\treturn -EBADMSG;\n\treturn 0;\n}\n\n",
    );
    o.push_str("/* ---- fixed records ---- */\n");
    for r in RECORDS {
        emit_record(&mut o, r);
    }
    o.push_str("/* ---- messages ---- */\n");
    for m in MESSAGES {
        emit_message(&mut o, m);
    }
    o.push_str("/* Every message, for X-macro tables: X(snake_name) */\n#define QTP_FOR_EACH_MESSAGE(X) \\\n");
    for (i, m) in MESSAGES.iter().enumerate() {
        let sep = if i + 1 == MESSAGES.len() { "" } else { " \\" };
        let _ = writeln!(o, "\tX({}){sep}", snake(m.name));
    }
    o.push_str("\n#endif /* QTP_H */\n");
    o
}

fn dump_c_field(out: &mut String, prefix: &str, f: &FieldDesc) {
    match f.ty {
        FieldType::Scalar(s) => {
            let (fmt, cast) = match s {
                Scalar::I32 | Scalar::I64 => ("%lld", "(long long)"),
                _ => ("%llu", "(unsigned long long)"),
            };
            let _ = writeln!(
                out,
                "\tQTP_OUT(\"{prefix}{}={fmt}\\n\", {cast}v->{}{});",
                f.name,
                prefix_path(prefix),
                f.name
            );
        }
        FieldType::Bytes(n) => {
            let _ = writeln!(out, "\tqtp_dump_hex(\"{prefix}{}\", v->{}{}, {n});", f.name, prefix_path(prefix), f.name);
        }
        FieldType::Record(r) => {
            for sub in r.fields {
                dump_c_field(out, &format!("{prefix}{}.", f.name), sub);
            }
        }
    }
}

/// `"Msg.a.b."` → `"a.b."` (member path below the message).
fn prefix_path(prefix: &str) -> String {
    match prefix.split_once('.') {
        Some((_, rest)) => rest.to_string(),
        None => String::new(),
    }
}

/// The user-space golden test table: `client-kmod/tests/qtp_golden_gen.h`.
pub fn c_golden_table() -> String {
    let mut o = String::new();
    o.push_str(
        "/* GENERATED by `cargo run -p qtfs-proto --bin qtp-gen`; do not edit. */\n\
/* User-space only: dump functions and the decode/encode table of the golden test. */\n\
#ifndef QTP_GOLDEN_GEN_H\n#define QTP_GOLDEN_GEN_H\n#include <stdio.h>\n#include \"qtp.h\"\n\n\
/* Where dumps go; NULL silences them. */\nstatic FILE *qtp_dump_out;\n\
#define QTP_OUT(...) do { if (qtp_dump_out) fprintf(qtp_dump_out, __VA_ARGS__); } while (0)\n\
static void qtp_dump_hex(const char *name, const uint8_t *p, size_t n)\n{\n\tsize_t i;\n\tQTP_OUT(\"%s=len:%zu hex:\", name, n);\n\
\tfor (i = 0; i < n; i++)\n\t\tQTP_OUT(\"%02x\", p[i]);\n\tQTP_OUT(\"\\n\");\n}\n\n",
    );
    for m in MESSAGES {
        let s = snake(m.name);
        let _ = writeln!(o, "static void dump_{s}(const struct qtp_{s} *v)\n{{");
        for f in m.fields {
            dump_c_field(&mut o, &format!("{}.", m.name), f);
        }
        for t in m.tails {
            let lf = tail_len_field(t.name, t.kind);
            let _ = writeln!(
                o,
                "\tqtp_dump_hex(\"{}.{}\", v->{}, (size_t)v->{lf} * {});",
                m.name,
                t.name,
                t.name,
                t.kind.unit()
            );
        }
        if m.fields.is_empty() && m.tails.is_empty() {
            let _ = writeln!(o, "\t(void)v;");
        }
        let _ = writeln!(o, "}}");
        let _ = writeln!(
            o,
            "static long golden_{s}(const uint8_t *in, size_t len, uint8_t *out, size_t cap)\n{{\n\tstruct qtp_{s} v;\n\tlong n;\n\n\tmemset(&v, 0, sizeof(v));\n\tn = qtp_{s}_decode(in, len, &v);\n\
\tif (n < 0)\n\t\treturn n;\n\tif ((size_t)n != len)\n\t\treturn -EMSGSIZE;\n\tdump_{s}(&v);\n\treturn qtp_{s}_encode(&v, out, cap);\n}}\n"
        );
    }
    o.push_str(
        "struct golden_case {\n\tconst char *name;\n\tlong (*run)(const uint8_t *, size_t, uint8_t *, size_t);\n};\n",
    );
    o.push_str("static const struct golden_case golden_cases[] = {\n");
    for m in MESSAGES {
        let _ = writeln!(o, "\t{{ \"{}\", golden_{} }},", m.name, snake(m.name));
    }
    o.push_str("};\n#endif\n");
    o
}

fn dump_rust_field(out: &mut String, prefix: &str, f: &FieldDesc, b: &[u8]) {
    match f.ty {
        FieldType::Scalar(s) => {
            let mut raw = [0u8; 8];
            raw[..s.size()].copy_from_slice(&b[..s.size()]);
            let u = u64::from_le_bytes(raw);
            let v = match s {
                Scalar::I32 => (u as u32 as i32 as i64).to_string(),
                Scalar::I64 => (u as i64).to_string(),
                _ => u.to_string(),
            };
            let _ = writeln!(out, "{prefix}{}={v}", f.name);
        }
        FieldType::Bytes(n) => {
            let _ = writeln!(out, "{prefix}{}=len:{n} hex:{}", f.name, hex(&b[..n]));
        }
        FieldType::Record(r) => {
            let mut off = 0;
            for sub in r.fields {
                dump_rust_field(out, &format!("{prefix}{}.", f.name), sub, &b[off..]);
                off += sub.ty.size();
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The dump the C golden test must print for the sample of `m`, derived from the
/// field table alone (not from the Rust decoder).
pub fn expected_dump(m: &MessageDesc, bytes: &[u8]) -> String {
    let mut o = String::new();
    let mut off = 0;
    for f in m.fields {
        dump_rust_field(&mut o, &format!("{}.", m.name), f, &bytes[off..]);
        off += f.ty.size();
    }
    let mut pos = m.fixed_size;
    for t in m.tails {
        let n = if t.kind.len_size() == 0 {
            bytes.len() - pos
        } else {
            let c = get_len(&bytes[off..], t.kind.len_size()) * t.kind.unit();
            off += t.kind.len_size();
            c
        };
        let _ = writeln!(o, "{}.{}=len:{n} hex:{}", m.name, t.name, hex(&bytes[pos..pos + n]));
        pos += n;
    }
    o
}

/// Golden vectors: (file name, bytes) for every message and the frame header.
pub fn golden_vectors() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for m in MESSAGES {
        let mut b = Vec::new();
        (m.sample)(&mut b);
        v.push((format!("{}.bin", m.name), b));
    }
    let h = crate::FrameHeader {
        flags: flags::REQUEST,
        op: Op::OPEN as u16,
        channel: 0x0102_0304,
        len: 0x11,
        id: 0x0807_0605_0403_0201,
        status: -2,
    };
    v.push(("FrameHeader.bin".to_string(), h.encode().to_vec()));
    v
}

/// A section of `PROTOCOL.md` for a record or message: its heading, doc and `size` line,
/// then the table of its fixed fields; returns the offset after them.
fn md_fields(o: &mut String, name: &str, doc: &str, size: &str, fields: &[FieldDesc]) -> usize {
    let _ = writeln!(o, "### {name}\n\n{}\n\n{size}\n", doc.trim());
    o.push_str("| field | offset | size | type | meaning |\n|---|---|---|---|---|\n");
    let mut off = 0;
    for f in fields {
        let _ = writeln!(o, "| `{}` | {off} | {} | {} | {} |", f.name, f.ty.size(), md_type(f), f.doc.trim());
        off += f.ty.size();
    }
    off
}

fn md_type(f: &FieldDesc) -> String {
    match f.ty {
        FieldType::Scalar(s) => s.name().to_string(),
        FieldType::Bytes(n) => format!("u8[{n}]"),
        FieldType::Record(r) => format!("[{}](#{})", r.name, r.name.to_ascii_lowercase()),
    }
}

/// The generated reference part of `PROTOCOL.md`.
pub fn protocol_tables() -> String {
    let mut o = String::new();
    o.push_str(
        "## Operations\n\n| op | code | request | response | whitelist gate | meaning |\n|---|---|---|---|---|---|\n",
    );
    for op in Op::ALL {
        let i = op.info();
        let link =
            |n: &str| if n.is_empty() { "—".to_string() } else { format!("[{n}](#{})", n.to_ascii_lowercase()) };
        let _ = writeln!(
            o,
            "| {} | `{:#06x}` | {} | {} | {} | {} |",
            i.name,
            *op as u16,
            link(i.request),
            link(i.response),
            if i.gate.is_empty() { "—" } else { i.gate },
            i.doc
        );
    }
    o.push_str("\n## Records\n\nFixed-size structures embedded in messages.\n\n");
    for r in RECORDS {
        md_fields(&mut o, r.name, r.doc, &format!("Size: {} bytes.", r.size), r.fields);
        o.push('\n');
    }
    o.push_str(
        "## Messages\n\nOffsets are from the start of the payload. `var` = after the fixed part, tails in order.\n\n",
    );
    for m in MESSAGES {
        let mut off = md_fields(&mut o, m.name, m.doc, &format!("Fixed part: {} bytes.", m.fixed_size), m.fields);
        for t in m.tails {
            if t.kind.len_size() > 0 {
                let unit = if t.kind == TailKind::Groups { "count" } else { "length" };
                let _ = writeln!(
                    o,
                    "| `{}` | {off} | {} | u{} | {unit} of `{}` |",
                    tail_len_field(t.name, t.kind),
                    t.kind.len_size(),
                    t.kind.len_size() * 8,
                    t.name
                );
                off += t.kind.len_size();
            }
        }
        for t in m.tails {
            let kind = match t.kind {
                TailKind::Path => format!("path (≤ {MAX_PATH} B, no NUL)"),
                TailKind::Name => format!("name (≤ {MAX_NAME} B, no NUL)"),
                TailKind::Bytes16 => "bytes".into(),
                TailKind::Bytes32 => "bytes".into(),
                TailKind::Groups => format!("u32[] (≤ {MAX_GROUPS})"),
                TailKind::Rest => "bytes (rest of payload)".into(),
            };
            let _ = writeln!(o, "| `{}` | var | var | {kind} | {} |", t.name, t.doc.trim());
        }
        o.push('\n');
    }
    o.push_str("## Constants\n\n| name | value | use |\n|---|---|---|\n");
    for (n, v, d) in c_constants() {
        let _ = writeln!(o, "| `{n}` | `{v:#x}` | {d} |");
    }
    o
}

/// Marker lines framing the generated part of `PROTOCOL.md`.
pub const MD_BEGIN: &str = "<!-- BEGIN GENERATED: cargo run -p qtfs-proto --bin qtp-gen -->";
pub const MD_END: &str = "<!-- END GENERATED -->";

/// Replaces the generated part of a `PROTOCOL.md` text.
pub fn splice_protocol_md(text: &str) -> Option<String> {
    let b = text.find(MD_BEGIN)?;
    let e = text.find(MD_END)?;
    if e < b {
        return None;
    }
    Some(format!("{}{}\n\n{}\n{}", &text[..b], MD_BEGIN, protocol_tables(), &text[e..]))
}

/// Every generated file: (path relative to the workspace root, expected content).
/// `PROTOCOL.md` is spliced into its current text (prose outside the markers stays).
pub fn generated_files(root: &std::path::Path) -> std::io::Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
    let mut v = vec![
        (root.join("client-kmod/include/qtp.h"), c_header().into_bytes()),
        (root.join("client-kmod/tests/qtp_golden_gen.h"), c_golden_table().into_bytes()),
    ];
    let md_path = root.join("proto/PROTOCOL.md");
    let md = std::fs::read_to_string(&md_path)?;
    let spliced = splice_protocol_md(&md).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "PROTOCOL.md lacks the generated-section markers")
    })?;
    v.push((md_path, spliced.into_bytes()));
    for (name, bytes) in golden_vectors() {
        v.push((root.join("proto/golden").join(name), bytes));
    }
    Ok(v)
}

/// Files whose committed content differs from the generated one.
pub fn stale_files(root: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    Ok(generated_files(root)?
        .into_iter()
        .filter(|(p, want)| std::fs::read(p).map(|have| &have != want).unwrap_or(true))
        .map(|(p, _)| p)
        .collect())
}
