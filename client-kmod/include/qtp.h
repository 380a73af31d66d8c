/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * qtp.h - QTP v1, the qtfs wire protocol, for the kernel module and user space.
 *
* GENERATED from proto/src/msg.rs by `cargo run -p qtfs-proto --bin qtp-gen`.
* Do not edit: proto/tests/golden.rs fails when this file is stale.
 *
* Every message is a packed little-endian fixed part (struct qtp_X_wire, offsets
* asserted below) followed by its tails in declaration order; the lengths of the tails
* are the last fields of the fixed part. struct qtp_X is the host-order view that
* qtp_X_decode() fills (tails point into the buffer) and qtp_X_encode() writes.
 */
#ifndef QTP_H
#define QTP_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/stddef.h>
#else
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <errno.h>
#endif

#define QTP_STATIC_ASSERT(c, m) _Static_assert(c, m)

/* Alignment- and endian-independent accessors. */
static inline uint16_t qtp_get16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }
static inline uint32_t qtp_get32(const uint8_t *p) { return (uint32_t)qtp_get16(p) | (uint32_t)qtp_get16(p + 2) << 16; }
static inline uint64_t qtp_get64(const uint8_t *p) { return (uint64_t)qtp_get32(p) | (uint64_t)qtp_get32(p + 4) << 32; }
static inline void qtp_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void qtp_put32(uint8_t *p, uint32_t v) { qtp_put16(p, (uint16_t)v); qtp_put16(p + 2, (uint16_t)(v >> 16)); }
static inline void qtp_put64(uint8_t *p, uint64_t v) { qtp_put32(p, (uint32_t)v); qtp_put32(p + 4, (uint32_t)(v >> 32)); }

/* ---- constants ---- */
#define QTP_MAGIC                    0x5451ULL /* frame magic (bytes 'Q' 'T') */
#define QTP_VERSION                  0x1ULL /* protocol version */
#define QTP_HEADER_SIZE              0x20ULL /* frame header bytes */
#define QTP_MAX_PAYLOAD              0x101000ULL /* largest frame payload */
#define QTP_MAX_IO                   0x100000ULL /* largest READ/WRITE length */
#define QTP_MAX_PATH                 0xfffULL /* longest path (bytes) */
#define QTP_MAX_NAME                 0xffULL /* longest name (bytes) */
#define QTP_MAX_GROUPS               0x40ULL /* most supplementary groups */
#define QTP_F_REQUEST                0x1ULL /* frame flag */
#define QTP_F_RESPONSE               0x2ULL /* frame flag */
#define QTP_F_ERROR                  0x4ULL /* frame flag */
#define QTP_F_MORE                   0x8ULL /* frame flag */
#define QTP_AUTH_NONE                0x0ULL /* HELLO_ACK auth */
#define QTP_AUTH_HMAC_SHA256         0x1ULL /* HELLO_ACK auth */
#define QTP_FEAT_CHANNELS            0x1ULL /* feature bit */
#define QTP_FEAT_EPOLL               0x2ULL /* feature bit */
#define QTP_FEAT_SYSCALLS            0x4ULL /* feature bit */
#define QTP_FEAT_READDIR_PLUS        0x8ULL /* feature bit */
#define QTP_FEAT_INVAL               0x20ULL /* feature bit */
#define QTP_FEAT_DIR_ATTR            0x40ULL /* feature bit */
#define QTP_FEAT_NO_ECHO             0x80ULL /* feature bit */
#define QTP_FEAT_LIST_ATTR           0x100ULL /* feature bit */
#define QTP_FEAT_XATTR_NONE          0x200ULL /* feature bit */
#define QTP_ATTR_F_BTIME             0x1ULL /* Attr.flags */
#define QTP_ATTR_F_NO_XATTRS         0x2ULL /* Attr.flags */
#define QTP_MOUNT_F_READONLY         0x1ULL /* MountReq.flags */
#define QTP_GETATTR_FOLLOW           0x1ULL /* GetattrReq.flags */
#define QTP_SETATTR_MODE             0x1ULL /* SetattrReq.valid */
#define QTP_SETATTR_UID              0x2ULL /* SetattrReq.valid */
#define QTP_SETATTR_GID              0x4ULL /* SetattrReq.valid */
#define QTP_SETATTR_SIZE             0x8ULL /* SetattrReq.valid */
#define QTP_SETATTR_ATIME            0x10ULL /* SetattrReq.valid */
#define QTP_SETATTR_MTIME            0x20ULL /* SetattrReq.valid */
#define QTP_SETATTR_ATIME_NOW        0x40ULL /* SetattrReq.valid */
#define QTP_SETATTR_MTIME_NOW        0x80ULL /* SetattrReq.valid */
#define QTP_SETATTR_KILL_SUIDGID     0x100ULL /* SetattrReq.valid */
#define QTP_CREATE_NOOPEN            0x1ULL /* CreateReq.cflags */
#define QTP_READDIR_PLUS             0x1ULL /* ReaddirReq.flags */
#define QTP_READDIR_EOF              0x1ULL /* ReaddirRsp.flags */
#define QTP_READDIR_ATTR             0x2ULL /* ReaddirRsp.flags */
#define QTP_FSYNC_DATASYNC           0x1ULL /* FsyncReq.flags */
#define QTP_INVAL_ATTR               0x1ULL /* InvalMsg.flags */
#define QTP_INVAL_DATA               0x2ULL /* InvalMsg.flags */
#define QTP_INVAL_ENTRY              0x4ULL /* InvalMsg.flags */
#define QTP_INVAL_ALL                0x8ULL /* InvalMsg.flags */
#define QTP_LOCK_RD                  0x0ULL /* LockReq.ltype */
#define QTP_LOCK_WR                  0x1ULL /* LockReq.ltype */
#define QTP_LOCK_UN                  0x2ULL /* LockReq.ltype */
#define QTP_LOCK_F_WAIT              0x1ULL /* LockReq.flags */
#define QTP_LOCK_F_FLOCK             0x2ULL /* LockReq.flags */
#define QTP_SYSMOUNT_SRC_LITERAL     0x0ULL /* SysmountReq.source_kind */
#define QTP_SYSMOUNT_SRC_PATH        0x1ULL /* SysmountReq.source_kind */
#define QTP_CHAN_STREAM              0x1ULL /* channel kind */
#define QTP_CHAN_SEQPACKET           0x2ULL /* channel kind */
#define QTP_CHAN_DGRAM               0x3ULL /* channel kind */
#define QTP_CHAN_ID_PEER             0x80000000ULL /* channel id chosen by the server */
#define QTP_CHAN_SHUT_WR             0x1ULL /* ChanClose.how */
#define QTP_CHAN_CLOSE_ALL           0x2ULL /* ChanClose.how */
#define QTP_SCM_FILE                 0x1ULL /* ScmRec.kind */
#define QTP_SCM_PIPE_READ            0x2ULL /* ScmRec.kind */
#define QTP_SCM_PIPE_WRITE           0x3ULL /* ScmRec.kind */
#define QTP_SCM_LISTENER             0x4ULL /* ScmRec.kind */
#define QTP_REXEC_F_HOLD             0x1ULL /* RexecExecReq.flags */
#define QTP_REXEC_FD_FILE            0x1ULL /* RexecFd.kind */
#define QTP_REXEC_FD_PIPE_IN         0x2ULL /* RexecFd.kind */
#define QTP_REXEC_FD_PIPE_OUT        0x3ULL /* RexecFd.kind */
#define QTP_REXEC_FD_LISTENER        0x4ULL /* RexecFd.kind */
#define QTP_REXEC_EOF_WRITE          0x1ULL /* RexecEof.how */
#define QTP_REXEC_EOF_READ           0x2ULL /* RexecEof.how */
#define QTP_REXEC_SIGNAL_GROUP       0x1ULL /* RexecSignal.flags */
#define QTP_REXEC_CONN_STREAM_BASE   0x10000ULL /* first REXEC_CONN stream id */
#define QTP_REXEC_MAX_ARGV_ENV       0x100000ULL /* argv + env bytes of RexecExecReq */
#define QTP_REXEC_MAX_FDS            0x100ULL /* fd records of RexecExecReq */
#define QTP_REXEC_MAX_FD_NUMBER      0x1000ULL /* RexecFd.fd is below this */
#define QTP_REXEC_MIN_WINDOW         0x1000ULL /* smallest receive window */
#define QTP_REXEC_MAX_WINDOW         0x4000000ULL /* largest receive window */
#define QTP_IOC_TCGETS               0x1ULL /* IoctlReq.cmd */
#define QTP_IOC_TCSETS               0x2ULL /* IoctlReq.cmd */
#define QTP_IOC_TCSETSW              0x3ULL /* IoctlReq.cmd */
#define QTP_IOC_TCSETSF              0x4ULL /* IoctlReq.cmd */
#define QTP_IOC_TIOCGWINSZ           0x5ULL /* IoctlReq.cmd */
#define QTP_IOC_TIOCSWINSZ           0x6ULL /* IoctlReq.cmd */
#define QTP_IOC_FS_GETFLAGS          0x7ULL /* IoctlReq.cmd */
#define QTP_IOC_FS_SETFLAGS          0x8ULL /* IoctlReq.cmd */
#define QTP_IOC_FS_FSGETXATTR        0x9ULL /* IoctlReq.cmd */
#define QTP_IOC_FS_FSSETXATTR        0xaULL /* IoctlReq.cmd */
#define QTP_O_RDONLY                 0x0ULL /* open flags */
#define QTP_O_WRONLY                 0x1ULL /* open flags */
#define QTP_O_RDWR                   0x2ULL /* open flags */
#define QTP_O_ACCMODE                0x3ULL /* open flags */
#define QTP_O_CREAT                  0x4ULL /* open flags */
#define QTP_O_EXCL                   0x8ULL /* open flags */
#define QTP_O_TRUNC                  0x10ULL /* open flags */
#define QTP_O_APPEND                 0x20ULL /* open flags */
#define QTP_O_NONBLOCK               0x40ULL /* open flags */
#define QTP_O_DIRECTORY              0x80ULL /* open flags */
#define QTP_O_NOFOLLOW               0x100ULL /* open flags */
#define QTP_O_SYNC                   0x200ULL /* open flags */
#define QTP_O_DSYNC                  0x400ULL /* open flags */
#define QTP_O_DIRECT                 0x800ULL /* open flags */
#define QTP_O_NOATIME                0x1000ULL /* open flags */
#define QTP_O_NOCTTY                 0x2000ULL /* open flags */
#define QTP_WL_ALL                   0xffffffffULL /* WlListReq.wl_type: every group */
#define QTP_WL_PERSIST               0x1ULL /* WL_ADD/WL_DEL flag */
#define QTP_WL_MAX_ENTRIES           0x40ULL /* entries per group */
#define QTP_LOG_NONE                 0x0ULL /* log level */
#define QTP_LOG_ERROR                0x1ULL /* log level */
#define QTP_LOG_WARN                 0x2ULL /* log level */
#define QTP_LOG_INFO                 0x3ULL /* log level */
#define QTP_LOG_DEBUG                0x4ULL /* log level */
#define QTP_LOG_QUERY                0xffffffffULL /* LogLevelReq: only read */
#define QTP_COUNTERS_CLEAR           0x1ULL /* CountersReq.flags */
#define QTP_CONN_HANDSHAKE           0x1ULL /* connection state */
#define QTP_CONN_ACTIVE              0x2ULL /* connection state */
#define QTP_CONN_CLOSING             0x3ULL /* connection state */
#define QTP_CONN_RECONNECTING        0x4ULL /* connection state */
#define QTP_CHANST_OPENING           0x1ULL /* channel state */
#define QTP_CHANST_OPEN              0x2ULL /* channel state */
#define QTP_CHANST_HALF_CLOSED       0x3ULL /* channel state */
#define QTP_CHANST_CLOSING           0x4ULL /* channel state */
#define QTP_OP_INDEX_LIMIT           0x140ULL /* bound of op index ((op>>8)*64 + (op&63)) */
#define QTP_WL_OPEN                  0x0ULL /* whitelist group */
#define QTP_WL_WRITE                 0x1ULL /* whitelist group */
#define QTP_WL_READ                  0x2ULL /* whitelist group */
#define QTP_WL_READDIR               0x3ULL /* whitelist group */
#define QTP_WL_MKDIR                 0x4ULL /* whitelist group */
#define QTP_WL_RMDIR                 0x5ULL /* whitelist group */
#define QTP_WL_CREATE                0x6ULL /* whitelist group */
#define QTP_WL_UNLINK                0x7ULL /* whitelist group */
#define QTP_WL_RENAME                0x8ULL /* whitelist group */
#define QTP_WL_SETATTR               0x9ULL /* whitelist group */
#define QTP_WL_SETXATTR              0xaULL /* whitelist group */
#define QTP_WL_MOUNT                 0xbULL /* whitelist group */
#define QTP_WL_KILL                  0xcULL /* whitelist group */
#define QTP_WL_UDSCONNECT            0xdULL /* whitelist group */

/* ---- operations ---- */
#define QTP_OP_HELLO                    0x0001 /* Opens the handshake: versions, features, client nonce. */
#define QTP_OP_ATTACH                   0x0002 /* Proves the key (if any) and opens or rejoins a session. */
#define QTP_OP_PING                     0x0003 /* Echoes its payload (keepalive, latency probe, NOP benchmark). */
#define QTP_OP_MOUNT                    0x0101 /* Exports a HOST directory to this session; returns an export id. */
#define QTP_OP_UMOUNT                   0x0102 /* Forgets an export id of this session. */
#define QTP_OP_LOOKUP                   0x0103 /* Attributes of a name, final symlink not followed (ENOENT = negative entry). */
#define QTP_OP_GETATTR                  0x0104 /* Attributes of a path, following the final symlink if asked. */
#define QTP_OP_SETATTR                  0x0105 /* chmod/chown/truncate/utimes by path or open handle. */
#define QTP_OP_OPEN                     0x0106 /* Opens a file; returns a session-scoped handle. */
#define QTP_OP_CREATE                   0x0107 /* Creates (and by default opens) a regular file. */
#define QTP_OP_CLOSE                    0x0108 /* Closes a handle. */
#define QTP_OP_READ                     0x0109 /* Reads at an offset; the payload is the data (short = EOF). */
#define QTP_OP_WRITE                    0x010a /* Writes at an offset (or at the end for O_APPEND handles). */
#define QTP_OP_READDIR                  0x010b /* Lists a directory from a cookie, optionally with attributes. */
#define QTP_OP_MKDIR                    0x010c /* Creates a directory. */
#define QTP_OP_RMDIR                    0x010d /* Removes a directory. */
#define QTP_OP_MKNOD                    0x010e /* Creates a FIFO, socket or device node. */
#define QTP_OP_UNLINK                   0x010f /* Removes a name. */
#define QTP_OP_SYMLINK                  0x0110 /* Creates a symbolic link. */
#define QTP_OP_LINK                     0x0111 /* Creates a hard link. */
#define QTP_OP_READLINK                 0x0112 /* Reads a symbolic link's target. */
#define QTP_OP_RENAME                   0x0113 /* Renames, honouring NOREPLACE and EXCHANGE. */
#define QTP_OP_XATTR_LIST               0x0114 /* Lists extended attribute names. */
#define QTP_OP_XATTR_GET                0x0115 /* Reads one extended attribute. */
#define QTP_OP_XATTR_SET                0x0116 /* Sets one extended attribute (exact bytes). */
#define QTP_OP_XATTR_REMOVE             0x0117 /* Removes one extended attribute. */
#define QTP_OP_SYSMOUNT                 0x0118 /* mount(2) on the HOST at a path inside an export. */
#define QTP_OP_SYSUMOUNT                0x0119 /* umount2(2) on the HOST at a path inside an export. */
#define QTP_OP_FIFO_POLL                0x011a /* Waits (bounded) for readiness of an open handle. */
#define QTP_OP_STATFS                   0x011b /* File system statistics. */
#define QTP_OP_IOCTL                    0x011c /* One of a fixed set of portable ioctls; anything else is ENOTTY. */
#define QTP_OP_EPOLL_CTL                0x011d /* Registers readiness interest in a handle (events arrive as EPOLL_EVENT). */
#define QTP_OP_EPOLL_EVENT              0x011e /* Server to client, one-way: readiness of registered handles. */
#define QTP_OP_LLSEEK                   0x011f /* lseek on a handle (SEEK_END, SEEK_DATA, SEEK_HOLE). */
#define QTP_OP_KILL                     0x0120 /* kill(2) of a HOST process whose name is whitelisted. */
#define QTP_OP_SCHED_GETAFFINITY        0x0121 /* CPU mask of a HOST process (bytes, bit i = CPU i). */
#define QTP_OP_SCHED_SETAFFINITY        0x0122 /* Sets the CPU mask of a HOST process. */
#define QTP_OP_FSYNC                    0x0123 /* fsync/fdatasync of a handle. */
#define QTP_OP_FALLOCATE                0x0124 /* fallocate on a handle. */
#define QTP_OP_FGETATTR                 0x0125 /* Attributes of an open handle. */
#define QTP_OP_LOCK_GET                 0x0126 /* Tests for a byte-range lock conflicting with one described (F_OFD_GETLK on the handle's HOST open file description). */
#define QTP_OP_LOCK_SET                 0x0127 /* Takes, changes or releases a byte-range (OFD) or whole-file (flock) lock on a handle; LOCK_F_WAIT waits for it. */
#define QTP_OP_CANCEL                   0x0128 /* Interrupts a waiting request of this connection (a LOCK_SET with LOCK_F_WAIT), which is then answered EINTR. */
#define QTP_OP_INVAL                    0x0130 /* Server to client, one-way (feature INVAL): something at a path of an export changed on the HOST or through another client; drop what is cached of it. */
#define QTP_OP_CHAN_OPEN                0x0201 /* Opens a channel to a unix socket on the peer; the header's channel field is the new id. */
#define QTP_OP_CHAN_DATA                0x0202 /* One-way: channel bytes (MORE = message continues, for SEQPACKET/DGRAM). */
#define QTP_OP_CHAN_CREDIT              0x0203 /* One-way: grants the peer more bytes on a channel. */
#define QTP_OP_CHAN_CLOSE               0x0204 /* One-way: half-close (EOF) or close of a channel. */
#define QTP_OP_CHAN_LISTEN              0x0205 /* Listens on a unix socket path on the peer; accepted connections arrive as CHAN_OPEN from the peer. */
#define QTP_OP_CHAN_UNLISTEN            0x0206 /* Stops a listener. */
#define QTP_OP_CHAN_SCM                 0x0207 /* One-way: file descriptors that travel with the next CHAN_DATA of the channel. */
#define QTP_OP_ADMIN_INFO               0x0301 /* Who is serving: component, version, uptime, sizes. */
#define QTP_OP_ADMIN_WL_LIST            0x0302 /* Lists whitelist entries (one group or all). */
#define QTP_OP_ADMIN_WL_ADD             0x0303 /* Adds a whitelist entry (optionally persisted). */
#define QTP_OP_ADMIN_WL_DEL             0x0304 /* Deletes a whitelist entry by index (optionally persisted). */
#define QTP_OP_ADMIN_LOG_LEVEL          0x0305 /* Sets or queries the log level. */
#define QTP_OP_ADMIN_COUNTERS           0x0306 /* Per-operation counters and latency percentiles. */
#define QTP_OP_ADMIN_CONNS              0x0307 /* Connection states. */
#define QTP_OP_ADMIN_CHANNELS           0x0308 /* Channel states. */
#define QTP_OP_ADMIN_CLEAR              0x0309 /* Clears counters. */
#define QTP_OP_REXEC_EXEC               0x0401 /* Remote exec: runs a whitelisted binary with argv, env, cwd and fds; opens a session. */
#define QTP_OP_REXEC_ATTACH             0x0402 /* Remote exec: rejoins a session after a transport drop; both sides then resend what the other has not processed. */
#define QTP_OP_REXEC_DATA               0x0403 /* Remote exec, one-way: bytes of the stream named by the header's channel field. */
#define QTP_OP_REXEC_EOF                0x0404 /* Remote exec, one-way: the sender stopped writing (EOF) or reading a stream. */
#define QTP_OP_REXEC_CREDIT             0x0405 /* Remote exec, one-way: cumulative bytes of a stream consumed by the receiver (flow control). */
#define QTP_OP_REXEC_ACK                0x0406 /* Remote exec, one-way: cumulative session bytes processed (frees the sender's retransmission log). */
#define QTP_OP_REXEC_SIGNAL             0x0407 /* Remote exec, one-way, client to server: deliver a signal to the remote process. */
#define QTP_OP_REXEC_RELEASE            0x0408 /* Remote exec, one-way, client to server: let a held process exec (or abort it). */
#define QTP_OP_REXEC_CONN               0x0409 /* Remote exec, one-way, client to server: a connection accepted on a passed listening socket; the channel field is its new stream. */
#define QTP_OP_REXEC_EXIT               0x040a /* Remote exec, one-way, server to client: the remote process ended; follows all of its output. */

/* ---- frame header (32 bytes) ---- */
struct qtp_hdr_wire {
	uint16_t magic;
	uint8_t version;
	uint8_t flags;
	uint16_t op;
	uint16_t reserved;
	uint32_t channel;
	uint32_t len;
	uint64_t id;
	int32_t status;
	uint32_t reserved2;
} __attribute__((packed));
QTP_STATIC_ASSERT(sizeof(struct qtp_hdr_wire) == 32, "header size");
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, op) == 4, "hdr.op");
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, channel) == 8, "hdr.channel");
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, len) == 12, "hdr.len");
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, id) == 16, "hdr.id");
QTP_STATIC_ASSERT(offsetof(struct qtp_hdr_wire, status) == 24, "hdr.status");
struct qtp_hdr {
	uint8_t flags;
	uint16_t op;
	uint32_t channel;
	uint32_t len;
	uint64_t id;
	int32_t status;
};
static inline void qtp_hdr_encode(const struct qtp_hdr *h, void *buf)
{
	uint8_t *p = (uint8_t *)buf;
	qtp_put16(p, (uint16_t)QTP_MAGIC);
	p[2] = (uint8_t)QTP_VERSION;
	p[3] = h->flags;
	qtp_put16(p + 4, h->op);
	qtp_put16(p + 6, 0);
	qtp_put32(p + 8, h->channel);
	qtp_put32(p + 12, h->len);
	qtp_put64(p + 16, h->id);
	qtp_put32(p + 24, (uint32_t)h->status);
	qtp_put32(p + 28, 0);
}
/* Validates and decodes a header; max_payload bounds len. Returns 0 or -EBADMSG. */
static inline int qtp_hdr_decode(const void *buf, size_t len, uint32_t max_payload, struct qtp_hdr *h)
{
	const uint8_t *p = (const uint8_t *)buf;
	if (len < QTP_HEADER_SIZE || qtp_get16(p) != QTP_MAGIC || p[2] != QTP_VERSION)
		return -EBADMSG;
	if ((p[3] & ~(QTP_F_REQUEST | QTP_F_RESPONSE | QTP_F_ERROR | QTP_F_MORE)) ||
	    ((p[3] & QTP_F_REQUEST) && (p[3] & QTP_F_RESPONSE)))
		return -EBADMSG;
	if (qtp_get16(p + 6) || qtp_get32(p + 28))
		return -EBADMSG;
	h->flags = p[3];
	h->op = qtp_get16(p + 4);
	h->channel = qtp_get32(p + 8);
	h->len = qtp_get32(p + 12);
	h->id = qtp_get64(p + 16);
	h->status = (int32_t)qtp_get32(p + 24);
	if (h->len > max_payload || h->len > QTP_MAX_PAYLOAD)
		return -EBADMSG;
	return 0;
}

/* ---- fixed records ---- */
/* Export id and the caller's credentials, leading every path-based request. */
struct qtp_req_ctx_wire {
	uint32_t export;
	uint32_t uid;
	uint32_t gid;
} __attribute__((packed));
struct qtp_req_ctx {
	uint32_t export;
	uint32_t uid;
	uint32_t gid;
};
#define QTP_REQ_CTX_SIZE 12
QTP_STATIC_ASSERT(sizeof(struct qtp_req_ctx_wire) == 12, "qtp_req_ctx_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_req_ctx_wire, export) == 0, "qtp_req_ctx_wire.export");
QTP_STATIC_ASSERT(offsetof(struct qtp_req_ctx_wire, uid) == 4, "qtp_req_ctx_wire.uid");
QTP_STATIC_ASSERT(offsetof(struct qtp_req_ctx_wire, gid) == 8, "qtp_req_ctx_wire.gid");
static inline void qtp_req_ctx_get(const uint8_t *p, struct qtp_req_ctx *v)
{
	v->export = qtp_get32(p + offsetof(struct qtp_req_ctx_wire, export));
	v->uid = qtp_get32(p + offsetof(struct qtp_req_ctx_wire, uid));
	v->gid = qtp_get32(p + offsetof(struct qtp_req_ctx_wire, gid));
}
static inline void qtp_req_ctx_put(const struct qtp_req_ctx *v, uint8_t *p)
{
	qtp_put32(p + offsetof(struct qtp_req_ctx_wire, export), (uint32_t)v->export);
	qtp_put32(p + offsetof(struct qtp_req_ctx_wire, uid), (uint32_t)v->uid);
	qtp_put32(p + offsetof(struct qtp_req_ctx_wire, gid), (uint32_t)v->gid);
}

/* Portable file attributes (what `statx` reports). */
struct qtp_attr_wire {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	int64_t atime_sec;
	int64_t mtime_sec;
	int64_t ctime_sec;
	int64_t btime_sec;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
	uint32_t btime_nsec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t blksize;
	uint32_t flags;
} __attribute__((packed));
struct qtp_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	int64_t atime_sec;
	int64_t mtime_sec;
	int64_t ctime_sec;
	int64_t btime_sec;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
	uint32_t btime_nsec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t blksize;
	uint32_t flags;
};
#define QTP_ATTR_SIZE 112
QTP_STATIC_ASSERT(sizeof(struct qtp_attr_wire) == 112, "qtp_attr_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, ino) == 0, "qtp_attr_wire.ino");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, size) == 8, "qtp_attr_wire.size");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, blocks) == 16, "qtp_attr_wire.blocks");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, atime_sec) == 24, "qtp_attr_wire.atime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, mtime_sec) == 32, "qtp_attr_wire.mtime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, ctime_sec) == 40, "qtp_attr_wire.ctime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, btime_sec) == 48, "qtp_attr_wire.btime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, atime_nsec) == 56, "qtp_attr_wire.atime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, mtime_nsec) == 60, "qtp_attr_wire.mtime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, ctime_nsec) == 64, "qtp_attr_wire.ctime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, btime_nsec) == 68, "qtp_attr_wire.btime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, mode) == 72, "qtp_attr_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, nlink) == 76, "qtp_attr_wire.nlink");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, uid) == 80, "qtp_attr_wire.uid");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, gid) == 84, "qtp_attr_wire.gid");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, rdev_major) == 88, "qtp_attr_wire.rdev_major");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, rdev_minor) == 92, "qtp_attr_wire.rdev_minor");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, dev_major) == 96, "qtp_attr_wire.dev_major");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, dev_minor) == 100, "qtp_attr_wire.dev_minor");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, blksize) == 104, "qtp_attr_wire.blksize");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_wire, flags) == 108, "qtp_attr_wire.flags");
static inline void qtp_attr_get(const uint8_t *p, struct qtp_attr *v)
{
	v->ino = qtp_get64(p + offsetof(struct qtp_attr_wire, ino));
	v->size = qtp_get64(p + offsetof(struct qtp_attr_wire, size));
	v->blocks = qtp_get64(p + offsetof(struct qtp_attr_wire, blocks));
	v->atime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_attr_wire, atime_sec));
	v->mtime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_attr_wire, mtime_sec));
	v->ctime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_attr_wire, ctime_sec));
	v->btime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_attr_wire, btime_sec));
	v->atime_nsec = qtp_get32(p + offsetof(struct qtp_attr_wire, atime_nsec));
	v->mtime_nsec = qtp_get32(p + offsetof(struct qtp_attr_wire, mtime_nsec));
	v->ctime_nsec = qtp_get32(p + offsetof(struct qtp_attr_wire, ctime_nsec));
	v->btime_nsec = qtp_get32(p + offsetof(struct qtp_attr_wire, btime_nsec));
	v->mode = qtp_get32(p + offsetof(struct qtp_attr_wire, mode));
	v->nlink = qtp_get32(p + offsetof(struct qtp_attr_wire, nlink));
	v->uid = qtp_get32(p + offsetof(struct qtp_attr_wire, uid));
	v->gid = qtp_get32(p + offsetof(struct qtp_attr_wire, gid));
	v->rdev_major = qtp_get32(p + offsetof(struct qtp_attr_wire, rdev_major));
	v->rdev_minor = qtp_get32(p + offsetof(struct qtp_attr_wire, rdev_minor));
	v->dev_major = qtp_get32(p + offsetof(struct qtp_attr_wire, dev_major));
	v->dev_minor = qtp_get32(p + offsetof(struct qtp_attr_wire, dev_minor));
	v->blksize = qtp_get32(p + offsetof(struct qtp_attr_wire, blksize));
	v->flags = qtp_get32(p + offsetof(struct qtp_attr_wire, flags));
}
static inline void qtp_attr_put(const struct qtp_attr *v, uint8_t *p)
{
	qtp_put64(p + offsetof(struct qtp_attr_wire, ino), (uint64_t)v->ino);
	qtp_put64(p + offsetof(struct qtp_attr_wire, size), (uint64_t)v->size);
	qtp_put64(p + offsetof(struct qtp_attr_wire, blocks), (uint64_t)v->blocks);
	qtp_put64(p + offsetof(struct qtp_attr_wire, atime_sec), (uint64_t)v->atime_sec);
	qtp_put64(p + offsetof(struct qtp_attr_wire, mtime_sec), (uint64_t)v->mtime_sec);
	qtp_put64(p + offsetof(struct qtp_attr_wire, ctime_sec), (uint64_t)v->ctime_sec);
	qtp_put64(p + offsetof(struct qtp_attr_wire, btime_sec), (uint64_t)v->btime_sec);
	qtp_put32(p + offsetof(struct qtp_attr_wire, atime_nsec), (uint32_t)v->atime_nsec);
	qtp_put32(p + offsetof(struct qtp_attr_wire, mtime_nsec), (uint32_t)v->mtime_nsec);
	qtp_put32(p + offsetof(struct qtp_attr_wire, ctime_nsec), (uint32_t)v->ctime_nsec);
	qtp_put32(p + offsetof(struct qtp_attr_wire, btime_nsec), (uint32_t)v->btime_nsec);
	qtp_put32(p + offsetof(struct qtp_attr_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_attr_wire, nlink), (uint32_t)v->nlink);
	qtp_put32(p + offsetof(struct qtp_attr_wire, uid), (uint32_t)v->uid);
	qtp_put32(p + offsetof(struct qtp_attr_wire, gid), (uint32_t)v->gid);
	qtp_put32(p + offsetof(struct qtp_attr_wire, rdev_major), (uint32_t)v->rdev_major);
	qtp_put32(p + offsetof(struct qtp_attr_wire, rdev_minor), (uint32_t)v->rdev_minor);
	qtp_put32(p + offsetof(struct qtp_attr_wire, dev_major), (uint32_t)v->dev_major);
	qtp_put32(p + offsetof(struct qtp_attr_wire, dev_minor), (uint32_t)v->dev_minor);
	qtp_put32(p + offsetof(struct qtp_attr_wire, blksize), (uint32_t)v->blksize);
	qtp_put32(p + offsetof(struct qtp_attr_wire, flags), (uint32_t)v->flags);
}

/* Portable `statfs`. */
struct qtp_statfs_wire {
	uint64_t fs_type;
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint64_t fsid;
	uint32_t bsize;
	uint32_t frsize;
	uint32_t namelen;
	uint32_t flags;
} __attribute__((packed));
struct qtp_statfs {
	uint64_t fs_type;
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint64_t fsid;
	uint32_t bsize;
	uint32_t frsize;
	uint32_t namelen;
	uint32_t flags;
};
#define QTP_STATFS_SIZE 72
QTP_STATIC_ASSERT(sizeof(struct qtp_statfs_wire) == 72, "qtp_statfs_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, fs_type) == 0, "qtp_statfs_wire.fs_type");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, blocks) == 8, "qtp_statfs_wire.blocks");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, bfree) == 16, "qtp_statfs_wire.bfree");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, bavail) == 24, "qtp_statfs_wire.bavail");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, files) == 32, "qtp_statfs_wire.files");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, ffree) == 40, "qtp_statfs_wire.ffree");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, fsid) == 48, "qtp_statfs_wire.fsid");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, bsize) == 56, "qtp_statfs_wire.bsize");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, frsize) == 60, "qtp_statfs_wire.frsize");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, namelen) == 64, "qtp_statfs_wire.namelen");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_wire, flags) == 68, "qtp_statfs_wire.flags");
static inline void qtp_statfs_get(const uint8_t *p, struct qtp_statfs *v)
{
	v->fs_type = qtp_get64(p + offsetof(struct qtp_statfs_wire, fs_type));
	v->blocks = qtp_get64(p + offsetof(struct qtp_statfs_wire, blocks));
	v->bfree = qtp_get64(p + offsetof(struct qtp_statfs_wire, bfree));
	v->bavail = qtp_get64(p + offsetof(struct qtp_statfs_wire, bavail));
	v->files = qtp_get64(p + offsetof(struct qtp_statfs_wire, files));
	v->ffree = qtp_get64(p + offsetof(struct qtp_statfs_wire, ffree));
	v->fsid = qtp_get64(p + offsetof(struct qtp_statfs_wire, fsid));
	v->bsize = qtp_get32(p + offsetof(struct qtp_statfs_wire, bsize));
	v->frsize = qtp_get32(p + offsetof(struct qtp_statfs_wire, frsize));
	v->namelen = qtp_get32(p + offsetof(struct qtp_statfs_wire, namelen));
	v->flags = qtp_get32(p + offsetof(struct qtp_statfs_wire, flags));
}
static inline void qtp_statfs_put(const struct qtp_statfs *v, uint8_t *p)
{
	qtp_put64(p + offsetof(struct qtp_statfs_wire, fs_type), (uint64_t)v->fs_type);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, blocks), (uint64_t)v->blocks);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, bfree), (uint64_t)v->bfree);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, bavail), (uint64_t)v->bavail);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, files), (uint64_t)v->files);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, ffree), (uint64_t)v->ffree);
	qtp_put64(p + offsetof(struct qtp_statfs_wire, fsid), (uint64_t)v->fsid);
	qtp_put32(p + offsetof(struct qtp_statfs_wire, bsize), (uint32_t)v->bsize);
	qtp_put32(p + offsetof(struct qtp_statfs_wire, frsize), (uint32_t)v->frsize);
	qtp_put32(p + offsetof(struct qtp_statfs_wire, namelen), (uint32_t)v->namelen);
	qtp_put32(p + offsetof(struct qtp_statfs_wire, flags), (uint32_t)v->flags);
}

/* Portable termios (asm-generic `struct termios2` fields; identical on x86-64 and arm64). */
struct qtp_termios_wire {
	uint32_t iflag;
	uint32_t oflag;
	uint32_t cflag;
	uint32_t lflag;
	uint32_t ispeed;
	uint32_t ospeed;
	uint8_t line;
	uint8_t cc[19];
} __attribute__((packed));
struct qtp_termios {
	uint32_t iflag;
	uint32_t oflag;
	uint32_t cflag;
	uint32_t lflag;
	uint32_t ispeed;
	uint32_t ospeed;
	uint8_t line;
	uint8_t cc[19];
};
#define QTP_TERMIOS_SIZE 44
QTP_STATIC_ASSERT(sizeof(struct qtp_termios_wire) == 44, "qtp_termios_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, iflag) == 0, "qtp_termios_wire.iflag");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, oflag) == 4, "qtp_termios_wire.oflag");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, cflag) == 8, "qtp_termios_wire.cflag");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, lflag) == 12, "qtp_termios_wire.lflag");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, ispeed) == 16, "qtp_termios_wire.ispeed");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, ospeed) == 20, "qtp_termios_wire.ospeed");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, line) == 24, "qtp_termios_wire.line");
QTP_STATIC_ASSERT(offsetof(struct qtp_termios_wire, cc) == 25, "qtp_termios_wire.cc");
static inline void qtp_termios_get(const uint8_t *p, struct qtp_termios *v)
{
	v->iflag = qtp_get32(p + offsetof(struct qtp_termios_wire, iflag));
	v->oflag = qtp_get32(p + offsetof(struct qtp_termios_wire, oflag));
	v->cflag = qtp_get32(p + offsetof(struct qtp_termios_wire, cflag));
	v->lflag = qtp_get32(p + offsetof(struct qtp_termios_wire, lflag));
	v->ispeed = qtp_get32(p + offsetof(struct qtp_termios_wire, ispeed));
	v->ospeed = qtp_get32(p + offsetof(struct qtp_termios_wire, ospeed));
	v->line = *(p + offsetof(struct qtp_termios_wire, line));
	memcpy(v->cc, p + offsetof(struct qtp_termios_wire, cc), 19);
}
static inline void qtp_termios_put(const struct qtp_termios *v, uint8_t *p)
{
	qtp_put32(p + offsetof(struct qtp_termios_wire, iflag), (uint32_t)v->iflag);
	qtp_put32(p + offsetof(struct qtp_termios_wire, oflag), (uint32_t)v->oflag);
	qtp_put32(p + offsetof(struct qtp_termios_wire, cflag), (uint32_t)v->cflag);
	qtp_put32(p + offsetof(struct qtp_termios_wire, lflag), (uint32_t)v->lflag);
	qtp_put32(p + offsetof(struct qtp_termios_wire, ispeed), (uint32_t)v->ispeed);
	qtp_put32(p + offsetof(struct qtp_termios_wire, ospeed), (uint32_t)v->ospeed);
	*(p + offsetof(struct qtp_termios_wire, line)) = v->line;
	memcpy(p + offsetof(struct qtp_termios_wire, cc), v->cc, 19);
}

/* Terminal window size. */
struct qtp_winsize_wire {
	uint16_t rows;
	uint16_t cols;
	uint16_t xpixel;
	uint16_t ypixel;
} __attribute__((packed));
struct qtp_winsize {
	uint16_t rows;
	uint16_t cols;
	uint16_t xpixel;
	uint16_t ypixel;
};
#define QTP_WINSIZE_SIZE 8
QTP_STATIC_ASSERT(sizeof(struct qtp_winsize_wire) == 8, "qtp_winsize_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_winsize_wire, rows) == 0, "qtp_winsize_wire.rows");
QTP_STATIC_ASSERT(offsetof(struct qtp_winsize_wire, cols) == 2, "qtp_winsize_wire.cols");
QTP_STATIC_ASSERT(offsetof(struct qtp_winsize_wire, xpixel) == 4, "qtp_winsize_wire.xpixel");
QTP_STATIC_ASSERT(offsetof(struct qtp_winsize_wire, ypixel) == 6, "qtp_winsize_wire.ypixel");
static inline void qtp_winsize_get(const uint8_t *p, struct qtp_winsize *v)
{
	v->rows = qtp_get16(p + offsetof(struct qtp_winsize_wire, rows));
	v->cols = qtp_get16(p + offsetof(struct qtp_winsize_wire, cols));
	v->xpixel = qtp_get16(p + offsetof(struct qtp_winsize_wire, xpixel));
	v->ypixel = qtp_get16(p + offsetof(struct qtp_winsize_wire, ypixel));
}
static inline void qtp_winsize_put(const struct qtp_winsize *v, uint8_t *p)
{
	qtp_put16(p + offsetof(struct qtp_winsize_wire, rows), v->rows);
	qtp_put16(p + offsetof(struct qtp_winsize_wire, cols), v->cols);
	qtp_put16(p + offsetof(struct qtp_winsize_wire, xpixel), v->xpixel);
	qtp_put16(p + offsetof(struct qtp_winsize_wire, ypixel), v->ypixel);
}

/* `struct fsxattr` (FS_IOC_FSGETXATTR / FSSETXATTR). */
struct qtp_fsxattr_wire {
	uint32_t xflags;
	uint32_t extsize;
	uint32_t nextents;
	uint32_t projid;
	uint32_t cowextsize;
} __attribute__((packed));
struct qtp_fsxattr {
	uint32_t xflags;
	uint32_t extsize;
	uint32_t nextents;
	uint32_t projid;
	uint32_t cowextsize;
};
#define QTP_FSXATTR_SIZE 20
QTP_STATIC_ASSERT(sizeof(struct qtp_fsxattr_wire) == 20, "qtp_fsxattr_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsxattr_wire, xflags) == 0, "qtp_fsxattr_wire.xflags");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsxattr_wire, extsize) == 4, "qtp_fsxattr_wire.extsize");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsxattr_wire, nextents) == 8, "qtp_fsxattr_wire.nextents");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsxattr_wire, projid) == 12, "qtp_fsxattr_wire.projid");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsxattr_wire, cowextsize) == 16, "qtp_fsxattr_wire.cowextsize");
static inline void qtp_fsxattr_get(const uint8_t *p, struct qtp_fsxattr *v)
{
	v->xflags = qtp_get32(p + offsetof(struct qtp_fsxattr_wire, xflags));
	v->extsize = qtp_get32(p + offsetof(struct qtp_fsxattr_wire, extsize));
	v->nextents = qtp_get32(p + offsetof(struct qtp_fsxattr_wire, nextents));
	v->projid = qtp_get32(p + offsetof(struct qtp_fsxattr_wire, projid));
	v->cowextsize = qtp_get32(p + offsetof(struct qtp_fsxattr_wire, cowextsize));
}
static inline void qtp_fsxattr_put(const struct qtp_fsxattr *v, uint8_t *p)
{
	qtp_put32(p + offsetof(struct qtp_fsxattr_wire, xflags), (uint32_t)v->xflags);
	qtp_put32(p + offsetof(struct qtp_fsxattr_wire, extsize), (uint32_t)v->extsize);
	qtp_put32(p + offsetof(struct qtp_fsxattr_wire, nextents), (uint32_t)v->nextents);
	qtp_put32(p + offsetof(struct qtp_fsxattr_wire, projid), (uint32_t)v->projid);
	qtp_put32(p + offsetof(struct qtp_fsxattr_wire, cowextsize), (uint32_t)v->cowextsize);
}

/* One readiness event of EPOLL_EVENT. */
struct qtp_epoll_rec_wire {
	uint32_t events;
	uint64_t cookie;
} __attribute__((packed));
struct qtp_epoll_rec {
	uint32_t events;
	uint64_t cookie;
};
#define QTP_EPOLL_REC_SIZE 12
QTP_STATIC_ASSERT(sizeof(struct qtp_epoll_rec_wire) == 12, "qtp_epoll_rec_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_rec_wire, events) == 0, "qtp_epoll_rec_wire.events");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_rec_wire, cookie) == 4, "qtp_epoll_rec_wire.cookie");
static inline void qtp_epoll_rec_get(const uint8_t *p, struct qtp_epoll_rec *v)
{
	v->events = qtp_get32(p + offsetof(struct qtp_epoll_rec_wire, events));
	v->cookie = qtp_get64(p + offsetof(struct qtp_epoll_rec_wire, cookie));
}
static inline void qtp_epoll_rec_put(const struct qtp_epoll_rec *v, uint8_t *p)
{
	qtp_put32(p + offsetof(struct qtp_epoll_rec_wire, events), (uint32_t)v->events);
	qtp_put64(p + offsetof(struct qtp_epoll_rec_wire, cookie), (uint64_t)v->cookie);
}

/* Counters of one operation (ADMIN_COUNTERS). */
struct qtp_op_counter_wire {
	uint16_t op;
	uint64_t requests;
	uint64_t errors;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t lat_p50_ns;
	uint64_t lat_p99_ns;
	uint64_t lat_p999_ns;
	uint64_t lat_max_ns;
} __attribute__((packed));
struct qtp_op_counter {
	uint16_t op;
	uint64_t requests;
	uint64_t errors;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t lat_p50_ns;
	uint64_t lat_p99_ns;
	uint64_t lat_p999_ns;
	uint64_t lat_max_ns;
};
#define QTP_OP_COUNTER_SIZE 66
QTP_STATIC_ASSERT(sizeof(struct qtp_op_counter_wire) == 66, "qtp_op_counter_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, op) == 0, "qtp_op_counter_wire.op");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, requests) == 2, "qtp_op_counter_wire.requests");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, errors) == 10, "qtp_op_counter_wire.errors");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, bytes_in) == 18, "qtp_op_counter_wire.bytes_in");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, bytes_out) == 26, "qtp_op_counter_wire.bytes_out");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, lat_p50_ns) == 34, "qtp_op_counter_wire.lat_p50_ns");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, lat_p99_ns) == 42, "qtp_op_counter_wire.lat_p99_ns");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, lat_p999_ns) == 50, "qtp_op_counter_wire.lat_p999_ns");
QTP_STATIC_ASSERT(offsetof(struct qtp_op_counter_wire, lat_max_ns) == 58, "qtp_op_counter_wire.lat_max_ns");
static inline void qtp_op_counter_get(const uint8_t *p, struct qtp_op_counter *v)
{
	v->op = qtp_get16(p + offsetof(struct qtp_op_counter_wire, op));
	v->requests = qtp_get64(p + offsetof(struct qtp_op_counter_wire, requests));
	v->errors = qtp_get64(p + offsetof(struct qtp_op_counter_wire, errors));
	v->bytes_in = qtp_get64(p + offsetof(struct qtp_op_counter_wire, bytes_in));
	v->bytes_out = qtp_get64(p + offsetof(struct qtp_op_counter_wire, bytes_out));
	v->lat_p50_ns = qtp_get64(p + offsetof(struct qtp_op_counter_wire, lat_p50_ns));
	v->lat_p99_ns = qtp_get64(p + offsetof(struct qtp_op_counter_wire, lat_p99_ns));
	v->lat_p999_ns = qtp_get64(p + offsetof(struct qtp_op_counter_wire, lat_p999_ns));
	v->lat_max_ns = qtp_get64(p + offsetof(struct qtp_op_counter_wire, lat_max_ns));
}
static inline void qtp_op_counter_put(const struct qtp_op_counter *v, uint8_t *p)
{
	qtp_put16(p + offsetof(struct qtp_op_counter_wire, op), v->op);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, requests), (uint64_t)v->requests);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, errors), (uint64_t)v->errors);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, bytes_in), (uint64_t)v->bytes_in);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, bytes_out), (uint64_t)v->bytes_out);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, lat_p50_ns), (uint64_t)v->lat_p50_ns);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, lat_p99_ns), (uint64_t)v->lat_p99_ns);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, lat_p999_ns), (uint64_t)v->lat_p999_ns);
	qtp_put64(p + offsetof(struct qtp_op_counter_wire, lat_max_ns), (uint64_t)v->lat_max_ns);
}

/* ---- messages ---- */
/* HELLO: first frame of a connection, client to server. */
struct qtp_hello_wire {
	uint16_t version_min;
	uint16_t version_max;
	uint64_t features;
	uint8_t client_nonce[32];
	uint16_t client_name_len;
} __attribute__((packed));
struct qtp_hello {
	uint16_t version_min;
	uint16_t version_max;
	uint64_t features;
	uint8_t client_nonce[32];
	const uint8_t *client_name; /* name */
	uint32_t client_name_len;
};
#define QTP_HELLO_FIXED 46
QTP_STATIC_ASSERT(sizeof(struct qtp_hello_wire) == 46, "qtp_hello_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_wire, version_min) == 0, "qtp_hello_wire.version_min");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_wire, version_max) == 2, "qtp_hello_wire.version_max");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_wire, features) == 4, "qtp_hello_wire.features");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_wire, client_nonce) == 12, "qtp_hello_wire.client_nonce");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_wire, client_name_len) == 44, "qtp_hello_wire.client_name_len");
static inline size_t qtp_hello_size(const struct qtp_hello *v)
{
	return QTP_HELLO_FIXED + (size_t)v->client_name_len * 1;
}
static inline long qtp_hello_encode(const struct qtp_hello *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_hello_size(v);
	if (v->client_name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put16(p + offsetof(struct qtp_hello_wire, version_min), v->version_min);
	qtp_put16(p + offsetof(struct qtp_hello_wire, version_max), v->version_max);
	qtp_put64(p + offsetof(struct qtp_hello_wire, features), (uint64_t)v->features);
	memcpy(p + offsetof(struct qtp_hello_wire, client_nonce), v->client_nonce, 32);
	qtp_put16(p + offsetof(struct qtp_hello_wire, client_name_len), (uint16_t)v->client_name_len);
	p += QTP_HELLO_FIXED;
	if (v->client_name_len)
		memcpy(p, v->client_name, (size_t)v->client_name_len * 1);
	p += (size_t)v->client_name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_hello_decode(const void *buf, size_t len, struct qtp_hello *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_HELLO_FIXED;
	if (len < QTP_HELLO_FIXED)
		return -EBADMSG;
	v->version_min = qtp_get16(p + offsetof(struct qtp_hello_wire, version_min));
	v->version_max = qtp_get16(p + offsetof(struct qtp_hello_wire, version_max));
	v->features = qtp_get64(p + offsetof(struct qtp_hello_wire, features));
	memcpy(v->client_nonce, p + offsetof(struct qtp_hello_wire, client_nonce), 32);
	v->client_name_len = qtp_get16(p + offsetof(struct qtp_hello_wire, client_name_len));
	if (v->client_name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->client_name_len * 1)
		return -EBADMSG;
	v->client_name = p + pos;
	if (v->client_name_len && memchr(p + pos, 0, v->client_name_len))
		return -EBADMSG;
	pos += (size_t)v->client_name_len * 1;
	return (long)pos;
}

/* HELLO response: the server's choice and its nonce. */
struct qtp_hello_ack_wire {
	uint16_t version;
	uint16_t auth;
	uint64_t features;
	uint8_t server_nonce[32];
	uint32_t max_payload;
	uint32_t max_inflight;
	uint16_t server_name_len;
} __attribute__((packed));
struct qtp_hello_ack {
	uint16_t version;
	uint16_t auth;
	uint64_t features;
	uint8_t server_nonce[32];
	uint32_t max_payload;
	uint32_t max_inflight;
	const uint8_t *server_name; /* name */
	uint32_t server_name_len;
};
#define QTP_HELLO_ACK_FIXED 54
QTP_STATIC_ASSERT(sizeof(struct qtp_hello_ack_wire) == 54, "qtp_hello_ack_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, version) == 0, "qtp_hello_ack_wire.version");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, auth) == 2, "qtp_hello_ack_wire.auth");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, features) == 4, "qtp_hello_ack_wire.features");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, server_nonce) == 12, "qtp_hello_ack_wire.server_nonce");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, max_payload) == 44, "qtp_hello_ack_wire.max_payload");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, max_inflight) == 48, "qtp_hello_ack_wire.max_inflight");
QTP_STATIC_ASSERT(offsetof(struct qtp_hello_ack_wire, server_name_len) == 52, "qtp_hello_ack_wire.server_name_len");
static inline size_t qtp_hello_ack_size(const struct qtp_hello_ack *v)
{
	return QTP_HELLO_ACK_FIXED + (size_t)v->server_name_len * 1;
}
static inline long qtp_hello_ack_encode(const struct qtp_hello_ack *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_hello_ack_size(v);
	if (v->server_name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put16(p + offsetof(struct qtp_hello_ack_wire, version), v->version);
	qtp_put16(p + offsetof(struct qtp_hello_ack_wire, auth), v->auth);
	qtp_put64(p + offsetof(struct qtp_hello_ack_wire, features), (uint64_t)v->features);
	memcpy(p + offsetof(struct qtp_hello_ack_wire, server_nonce), v->server_nonce, 32);
	qtp_put32(p + offsetof(struct qtp_hello_ack_wire, max_payload), (uint32_t)v->max_payload);
	qtp_put32(p + offsetof(struct qtp_hello_ack_wire, max_inflight), (uint32_t)v->max_inflight);
	qtp_put16(p + offsetof(struct qtp_hello_ack_wire, server_name_len), (uint16_t)v->server_name_len);
	p += QTP_HELLO_ACK_FIXED;
	if (v->server_name_len)
		memcpy(p, v->server_name, (size_t)v->server_name_len * 1);
	p += (size_t)v->server_name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_hello_ack_decode(const void *buf, size_t len, struct qtp_hello_ack *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_HELLO_ACK_FIXED;
	if (len < QTP_HELLO_ACK_FIXED)
		return -EBADMSG;
	v->version = qtp_get16(p + offsetof(struct qtp_hello_ack_wire, version));
	v->auth = qtp_get16(p + offsetof(struct qtp_hello_ack_wire, auth));
	v->features = qtp_get64(p + offsetof(struct qtp_hello_ack_wire, features));
	memcpy(v->server_nonce, p + offsetof(struct qtp_hello_ack_wire, server_nonce), 32);
	v->max_payload = qtp_get32(p + offsetof(struct qtp_hello_ack_wire, max_payload));
	v->max_inflight = qtp_get32(p + offsetof(struct qtp_hello_ack_wire, max_inflight));
	v->server_name_len = qtp_get16(p + offsetof(struct qtp_hello_ack_wire, server_name_len));
	if (v->server_name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->server_name_len * 1)
		return -EBADMSG;
	v->server_name = p + pos;
	if (v->server_name_len && memchr(p + pos, 0, v->server_name_len))
		return -EBADMSG;
	pos += (size_t)v->server_name_len * 1;
	return (long)pos;
}

/* ATTACH: key proof and session choice, client to server. */
struct qtp_attach_wire {
	uint64_t session_id;
	uint8_t session_token[16];
	uint8_t mac[32];
} __attribute__((packed));
struct qtp_attach {
	uint64_t session_id;
	uint8_t session_token[16];
	uint8_t mac[32];
};
#define QTP_ATTACH_FIXED 56
QTP_STATIC_ASSERT(sizeof(struct qtp_attach_wire) == 56, "qtp_attach_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_wire, session_id) == 0, "qtp_attach_wire.session_id");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_wire, session_token) == 8, "qtp_attach_wire.session_token");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_wire, mac) == 24, "qtp_attach_wire.mac");
static inline size_t qtp_attach_size(const struct qtp_attach *v)
{
	(void)v;
	return QTP_ATTACH_FIXED;
}
static inline long qtp_attach_encode(const struct qtp_attach *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_attach_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_attach_wire, session_id), (uint64_t)v->session_id);
	memcpy(p + offsetof(struct qtp_attach_wire, session_token), v->session_token, 16);
	memcpy(p + offsetof(struct qtp_attach_wire, mac), v->mac, 32);
	p += QTP_ATTACH_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_attach_decode(const void *buf, size_t len, struct qtp_attach *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_ATTACH_FIXED;
	if (len < QTP_ATTACH_FIXED)
		return -EBADMSG;
	v->session_id = qtp_get64(p + offsetof(struct qtp_attach_wire, session_id));
	memcpy(v->session_token, p + offsetof(struct qtp_attach_wire, session_token), 16);
	memcpy(v->mac, p + offsetof(struct qtp_attach_wire, mac), 32);
	return (long)pos;
}

/* ATTACH response: the session and the server's proof. */
struct qtp_attach_ack_wire {
	uint64_t session_id;
	uint8_t session_token[16];
	uint8_t mac[32];
	uint32_t resumed;
} __attribute__((packed));
struct qtp_attach_ack {
	uint64_t session_id;
	uint8_t session_token[16];
	uint8_t mac[32];
	uint32_t resumed;
};
#define QTP_ATTACH_ACK_FIXED 60
QTP_STATIC_ASSERT(sizeof(struct qtp_attach_ack_wire) == 60, "qtp_attach_ack_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_ack_wire, session_id) == 0, "qtp_attach_ack_wire.session_id");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_ack_wire, session_token) == 8, "qtp_attach_ack_wire.session_token");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_ack_wire, mac) == 24, "qtp_attach_ack_wire.mac");
QTP_STATIC_ASSERT(offsetof(struct qtp_attach_ack_wire, resumed) == 56, "qtp_attach_ack_wire.resumed");
static inline size_t qtp_attach_ack_size(const struct qtp_attach_ack *v)
{
	(void)v;
	return QTP_ATTACH_ACK_FIXED;
}
static inline long qtp_attach_ack_encode(const struct qtp_attach_ack *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_attach_ack_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_attach_ack_wire, session_id), (uint64_t)v->session_id);
	memcpy(p + offsetof(struct qtp_attach_ack_wire, session_token), v->session_token, 16);
	memcpy(p + offsetof(struct qtp_attach_ack_wire, mac), v->mac, 32);
	qtp_put32(p + offsetof(struct qtp_attach_ack_wire, resumed), (uint32_t)v->resumed);
	p += QTP_ATTACH_ACK_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_attach_ack_decode(const void *buf, size_t len, struct qtp_attach_ack *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_ATTACH_ACK_FIXED;
	if (len < QTP_ATTACH_ACK_FIXED)
		return -EBADMSG;
	v->session_id = qtp_get64(p + offsetof(struct qtp_attach_ack_wire, session_id));
	memcpy(v->session_token, p + offsetof(struct qtp_attach_ack_wire, session_token), 16);
	memcpy(v->mac, p + offsetof(struct qtp_attach_ack_wire, mac), 32);
	v->resumed = qtp_get32(p + offsetof(struct qtp_attach_ack_wire, resumed));
	return (long)pos;
}

/* A message without payload. */
struct qtp_empty {
	uint8_t unused_;
};
#define QTP_EMPTY_FIXED 0
static inline size_t qtp_empty_size(const struct qtp_empty *v)
{
	(void)v;
	return QTP_EMPTY_FIXED;
}
static inline long qtp_empty_encode(const struct qtp_empty *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_empty_size(v);
	if (need > cap)
		return -ENOSPC;
	p += QTP_EMPTY_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_empty_decode(const void *buf, size_t len, struct qtp_empty *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_EMPTY_FIXED;
	(void)p;
	(void)len;
	v->unused_ = 0;
	return (long)pos;
}

/* Raw bytes: PING/PONG, READ/READLINK/IOCTL/SCHED_GETAFFINITY responses, CHAN_DATA. */
struct qtp_data {
	const uint8_t *data; /* rest */
	uint32_t data_len;
};
#define QTP_DATA_FIXED 0
static inline size_t qtp_data_size(const struct qtp_data *v)
{
	return QTP_DATA_FIXED + (size_t)v->data_len * 1;
}
static inline long qtp_data_encode(const struct qtp_data *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_data_size(v);
	if (need > cap)
		return -ENOSPC;
	p += QTP_DATA_FIXED;
	if (v->data_len)
		memcpy(p, v->data, (size_t)v->data_len * 1);
	p += (size_t)v->data_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_data_decode(const void *buf, size_t len, struct qtp_data *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_DATA_FIXED;
	v->data_len = (uint32_t)(len - pos);
	if (v->data_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->data_len * 1)
		return -EBADMSG;
	v->data = p + pos;
	pos += (size_t)v->data_len * 1;
	return (long)pos;
}

/* MOUNT: export a HOST directory (absolute path) to this session. */
struct qtp_mount_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_mount_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_MOUNT_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_mount_req_wire) == 20, "qtp_mount_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_req_wire, ctx) == 0, "qtp_mount_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_req_wire, flags) == 12, "qtp_mount_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_req_wire, groups_count) == 16, "qtp_mount_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_req_wire, path_len) == 18, "qtp_mount_req_wire.path_len");
static inline size_t qtp_mount_req_size(const struct qtp_mount_req *v)
{
	return QTP_MOUNT_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_mount_req_encode(const struct qtp_mount_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_mount_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_mount_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_mount_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_mount_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_mount_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_MOUNT_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_mount_req_decode(const void *buf, size_t len, struct qtp_mount_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_MOUNT_REQ_FIXED;
	if (len < QTP_MOUNT_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_mount_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_mount_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_mount_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_mount_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* MOUNT response. */
struct qtp_mount_rsp_wire {
	uint32_t export;
	struct qtp_attr_wire root;
} __attribute__((packed));
struct qtp_mount_rsp {
	uint32_t export;
	struct qtp_attr root;
};
#define QTP_MOUNT_RSP_FIXED 116
QTP_STATIC_ASSERT(sizeof(struct qtp_mount_rsp_wire) == 116, "qtp_mount_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_rsp_wire, export) == 0, "qtp_mount_rsp_wire.export");
QTP_STATIC_ASSERT(offsetof(struct qtp_mount_rsp_wire, root) == 4, "qtp_mount_rsp_wire.root");
static inline size_t qtp_mount_rsp_size(const struct qtp_mount_rsp *v)
{
	(void)v;
	return QTP_MOUNT_RSP_FIXED;
}
static inline long qtp_mount_rsp_encode(const struct qtp_mount_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_mount_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_mount_rsp_wire, export), (uint32_t)v->export);
	qtp_attr_put(&v->root, p + offsetof(struct qtp_mount_rsp_wire, root));
	p += QTP_MOUNT_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_mount_rsp_decode(const void *buf, size_t len, struct qtp_mount_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_MOUNT_RSP_FIXED;
	if (len < QTP_MOUNT_RSP_FIXED)
		return -EBADMSG;
	v->export = qtp_get32(p + offsetof(struct qtp_mount_rsp_wire, export));
	qtp_attr_get(p + offsetof(struct qtp_mount_rsp_wire, root), &v->root);
	return (long)pos;
}

/* UMOUNT: forget an export. */
struct qtp_umount_req_wire {
	uint32_t export;
} __attribute__((packed));
struct qtp_umount_req {
	uint32_t export;
};
#define QTP_UMOUNT_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_umount_req_wire) == 4, "qtp_umount_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_umount_req_wire, export) == 0, "qtp_umount_req_wire.export");
static inline size_t qtp_umount_req_size(const struct qtp_umount_req *v)
{
	(void)v;
	return QTP_UMOUNT_REQ_FIXED;
}
static inline long qtp_umount_req_encode(const struct qtp_umount_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_umount_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_umount_req_wire, export), (uint32_t)v->export);
	p += QTP_UMOUNT_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_umount_req_decode(const void *buf, size_t len, struct qtp_umount_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_UMOUNT_REQ_FIXED;
	if (len < QTP_UMOUNT_REQ_FIXED)
		return -EBADMSG;
	v->export = qtp_get32(p + offsetof(struct qtp_umount_req_wire, export));
	return (long)pos;
}

/* A request naming one path (LOOKUP, RMDIR, UNLINK, READLINK, STATFS). */
struct qtp_path_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_path_req {
	struct qtp_req_ctx ctx;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_PATH_REQ_FIXED 16
QTP_STATIC_ASSERT(sizeof(struct qtp_path_req_wire) == 16, "qtp_path_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_path_req_wire, ctx) == 0, "qtp_path_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_path_req_wire, groups_count) == 12, "qtp_path_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_path_req_wire, path_len) == 14, "qtp_path_req_wire.path_len");
static inline size_t qtp_path_req_size(const struct qtp_path_req *v)
{
	return QTP_PATH_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_path_req_encode(const struct qtp_path_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_path_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_path_req_wire, ctx));
	qtp_put16(p + offsetof(struct qtp_path_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_path_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_PATH_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_path_req_decode(const void *buf, size_t len, struct qtp_path_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_PATH_REQ_FIXED;
	if (len < QTP_PATH_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_path_req_wire, ctx), &v->ctx);
	v->groups_count = qtp_get16(p + offsetof(struct qtp_path_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_path_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* GETATTR. */
struct qtp_getattr_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_getattr_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_GETATTR_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_getattr_req_wire) == 20, "qtp_getattr_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_getattr_req_wire, ctx) == 0, "qtp_getattr_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_getattr_req_wire, flags) == 12, "qtp_getattr_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_getattr_req_wire, groups_count) == 16, "qtp_getattr_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_getattr_req_wire, path_len) == 18, "qtp_getattr_req_wire.path_len");
static inline size_t qtp_getattr_req_size(const struct qtp_getattr_req *v)
{
	return QTP_GETATTR_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_getattr_req_encode(const struct qtp_getattr_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_getattr_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_getattr_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_getattr_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_getattr_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_getattr_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_GETATTR_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_getattr_req_decode(const void *buf, size_t len, struct qtp_getattr_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_GETATTR_REQ_FIXED;
	if (len < QTP_GETATTR_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_getattr_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_getattr_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_getattr_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_getattr_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* A response carrying attributes. */
struct qtp_attr_rsp_wire {
	struct qtp_attr_wire attr;
} __attribute__((packed));
struct qtp_attr_rsp {
	struct qtp_attr attr;
};
#define QTP_ATTR_RSP_FIXED 112
QTP_STATIC_ASSERT(sizeof(struct qtp_attr_rsp_wire) == 112, "qtp_attr_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_attr_rsp_wire, attr) == 0, "qtp_attr_rsp_wire.attr");
static inline size_t qtp_attr_rsp_size(const struct qtp_attr_rsp *v)
{
	(void)v;
	return QTP_ATTR_RSP_FIXED;
}
static inline long qtp_attr_rsp_encode(const struct qtp_attr_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_attr_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_attr_put(&v->attr, p + offsetof(struct qtp_attr_rsp_wire, attr));
	p += QTP_ATTR_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_attr_rsp_decode(const void *buf, size_t len, struct qtp_attr_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_ATTR_RSP_FIXED;
	if (len < QTP_ATTR_RSP_FIXED)
		return -EBADMSG;
	qtp_attr_get(p + offsetof(struct qtp_attr_rsp_wire, attr), &v->attr);
	return (long)pos;
}

/* SETATTR: by path, or by handle when `handle` is not 0 (then `path` is empty). */
struct qtp_setattr_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint64_t handle;
	uint32_t valid;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t atime_sec;
	int64_t mtime_sec;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_setattr_req {
	struct qtp_req_ctx ctx;
	uint64_t handle;
	uint32_t valid;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t atime_sec;
	int64_t mtime_sec;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_SETATTR_REQ_FIXED 72
QTP_STATIC_ASSERT(sizeof(struct qtp_setattr_req_wire) == 72, "qtp_setattr_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, ctx) == 0, "qtp_setattr_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, handle) == 12, "qtp_setattr_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, valid) == 20, "qtp_setattr_req_wire.valid");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, mode) == 24, "qtp_setattr_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, uid) == 28, "qtp_setattr_req_wire.uid");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, gid) == 32, "qtp_setattr_req_wire.gid");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, size) == 36, "qtp_setattr_req_wire.size");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, atime_sec) == 44, "qtp_setattr_req_wire.atime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, mtime_sec) == 52, "qtp_setattr_req_wire.mtime_sec");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, atime_nsec) == 60, "qtp_setattr_req_wire.atime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, mtime_nsec) == 64, "qtp_setattr_req_wire.mtime_nsec");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, groups_count) == 68, "qtp_setattr_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_setattr_req_wire, path_len) == 70, "qtp_setattr_req_wire.path_len");
static inline size_t qtp_setattr_req_size(const struct qtp_setattr_req *v)
{
	return QTP_SETATTR_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_setattr_req_encode(const struct qtp_setattr_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_setattr_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_setattr_req_wire, ctx));
	qtp_put64(p + offsetof(struct qtp_setattr_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, valid), (uint32_t)v->valid);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, uid), (uint32_t)v->uid);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, gid), (uint32_t)v->gid);
	qtp_put64(p + offsetof(struct qtp_setattr_req_wire, size), (uint64_t)v->size);
	qtp_put64(p + offsetof(struct qtp_setattr_req_wire, atime_sec), (uint64_t)v->atime_sec);
	qtp_put64(p + offsetof(struct qtp_setattr_req_wire, mtime_sec), (uint64_t)v->mtime_sec);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, atime_nsec), (uint32_t)v->atime_nsec);
	qtp_put32(p + offsetof(struct qtp_setattr_req_wire, mtime_nsec), (uint32_t)v->mtime_nsec);
	qtp_put16(p + offsetof(struct qtp_setattr_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_setattr_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_SETATTR_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_setattr_req_decode(const void *buf, size_t len, struct qtp_setattr_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_SETATTR_REQ_FIXED;
	if (len < QTP_SETATTR_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_setattr_req_wire, ctx), &v->ctx);
	v->handle = qtp_get64(p + offsetof(struct qtp_setattr_req_wire, handle));
	v->valid = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, valid));
	v->mode = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, mode));
	v->uid = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, uid));
	v->gid = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, gid));
	v->size = qtp_get64(p + offsetof(struct qtp_setattr_req_wire, size));
	v->atime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_setattr_req_wire, atime_sec));
	v->mtime_sec = (int64_t)qtp_get64(p + offsetof(struct qtp_setattr_req_wire, mtime_sec));
	v->atime_nsec = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, atime_nsec));
	v->mtime_nsec = qtp_get32(p + offsetof(struct qtp_setattr_req_wire, mtime_nsec));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_setattr_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_setattr_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* OPEN. */
struct qtp_open_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint32_t mode;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_open_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	uint32_t mode;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_OPEN_REQ_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_open_req_wire) == 24, "qtp_open_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_req_wire, ctx) == 0, "qtp_open_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_req_wire, flags) == 12, "qtp_open_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_req_wire, mode) == 16, "qtp_open_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_req_wire, groups_count) == 20, "qtp_open_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_req_wire, path_len) == 22, "qtp_open_req_wire.path_len");
static inline size_t qtp_open_req_size(const struct qtp_open_req *v)
{
	return QTP_OPEN_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_open_req_encode(const struct qtp_open_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_open_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_open_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_open_req_wire, flags), (uint32_t)v->flags);
	qtp_put32(p + offsetof(struct qtp_open_req_wire, mode), (uint32_t)v->mode);
	qtp_put16(p + offsetof(struct qtp_open_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_open_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_OPEN_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_open_req_decode(const void *buf, size_t len, struct qtp_open_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_OPEN_REQ_FIXED;
	if (len < QTP_OPEN_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_open_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_open_req_wire, flags));
	v->mode = qtp_get32(p + offsetof(struct qtp_open_req_wire, mode));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_open_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_open_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* CREATE: create a regular file (honouring `O_EXCL`), opened unless `CREATE_NOOPEN`. */
struct qtp_create_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint32_t mode;
	uint32_t umask;
	uint32_t cflags;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_create_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	uint32_t mode;
	uint32_t umask;
	uint32_t cflags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_CREATE_REQ_FIXED 32
QTP_STATIC_ASSERT(sizeof(struct qtp_create_req_wire) == 32, "qtp_create_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, ctx) == 0, "qtp_create_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, flags) == 12, "qtp_create_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, mode) == 16, "qtp_create_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, umask) == 20, "qtp_create_req_wire.umask");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, cflags) == 24, "qtp_create_req_wire.cflags");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, groups_count) == 28, "qtp_create_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_create_req_wire, path_len) == 30, "qtp_create_req_wire.path_len");
static inline size_t qtp_create_req_size(const struct qtp_create_req *v)
{
	return QTP_CREATE_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_create_req_encode(const struct qtp_create_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_create_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_create_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_create_req_wire, flags), (uint32_t)v->flags);
	qtp_put32(p + offsetof(struct qtp_create_req_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_create_req_wire, umask), (uint32_t)v->umask);
	qtp_put32(p + offsetof(struct qtp_create_req_wire, cflags), (uint32_t)v->cflags);
	qtp_put16(p + offsetof(struct qtp_create_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_create_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_CREATE_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_create_req_decode(const void *buf, size_t len, struct qtp_create_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CREATE_REQ_FIXED;
	if (len < QTP_CREATE_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_create_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_create_req_wire, flags));
	v->mode = qtp_get32(p + offsetof(struct qtp_create_req_wire, mode));
	v->umask = qtp_get32(p + offsetof(struct qtp_create_req_wire, umask));
	v->cflags = qtp_get32(p + offsetof(struct qtp_create_req_wire, cflags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_create_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_create_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* OPEN/CREATE response. */
struct qtp_open_rsp_wire {
	uint64_t handle;
	struct qtp_attr_wire attr;
} __attribute__((packed));
struct qtp_open_rsp {
	uint64_t handle;
	struct qtp_attr attr;
};
#define QTP_OPEN_RSP_FIXED 120
QTP_STATIC_ASSERT(sizeof(struct qtp_open_rsp_wire) == 120, "qtp_open_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_rsp_wire, handle) == 0, "qtp_open_rsp_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_open_rsp_wire, attr) == 8, "qtp_open_rsp_wire.attr");
static inline size_t qtp_open_rsp_size(const struct qtp_open_rsp *v)
{
	(void)v;
	return QTP_OPEN_RSP_FIXED;
}
static inline long qtp_open_rsp_encode(const struct qtp_open_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_open_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_open_rsp_wire, handle), (uint64_t)v->handle);
	qtp_attr_put(&v->attr, p + offsetof(struct qtp_open_rsp_wire, attr));
	p += QTP_OPEN_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_open_rsp_decode(const void *buf, size_t len, struct qtp_open_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_OPEN_RSP_FIXED;
	if (len < QTP_OPEN_RSP_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_open_rsp_wire, handle));
	qtp_attr_get(p + offsetof(struct qtp_open_rsp_wire, attr), &v->attr);
	return (long)pos;
}

/* A request naming one handle (CLOSE, FGETATTR). */
struct qtp_handle_req_wire {
	uint64_t handle;
} __attribute__((packed));
struct qtp_handle_req {
	uint64_t handle;
};
#define QTP_HANDLE_REQ_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_handle_req_wire) == 8, "qtp_handle_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_handle_req_wire, handle) == 0, "qtp_handle_req_wire.handle");
static inline size_t qtp_handle_req_size(const struct qtp_handle_req *v)
{
	(void)v;
	return QTP_HANDLE_REQ_FIXED;
}
static inline long qtp_handle_req_encode(const struct qtp_handle_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_handle_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_handle_req_wire, handle), (uint64_t)v->handle);
	p += QTP_HANDLE_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_handle_req_decode(const void *buf, size_t len, struct qtp_handle_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_HANDLE_REQ_FIXED;
	if (len < QTP_HANDLE_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_handle_req_wire, handle));
	return (long)pos;
}

/* READ. The response payload is the data; fewer bytes than asked means end of file. */
struct qtp_read_req_wire {
	uint64_t handle;
	uint64_t offset;
	uint32_t len;
} __attribute__((packed));
struct qtp_read_req {
	uint64_t handle;
	uint64_t offset;
	uint32_t len;
};
#define QTP_READ_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_read_req_wire) == 20, "qtp_read_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_read_req_wire, handle) == 0, "qtp_read_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_read_req_wire, offset) == 8, "qtp_read_req_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_read_req_wire, len) == 16, "qtp_read_req_wire.len");
static inline size_t qtp_read_req_size(const struct qtp_read_req *v)
{
	(void)v;
	return QTP_READ_REQ_FIXED;
}
static inline long qtp_read_req_encode(const struct qtp_read_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_read_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_read_req_wire, handle), (uint64_t)v->handle);
	qtp_put64(p + offsetof(struct qtp_read_req_wire, offset), (uint64_t)v->offset);
	qtp_put32(p + offsetof(struct qtp_read_req_wire, len), (uint32_t)v->len);
	p += QTP_READ_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_read_req_decode(const void *buf, size_t len, struct qtp_read_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_READ_REQ_FIXED;
	if (len < QTP_READ_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_read_req_wire, handle));
	v->offset = qtp_get64(p + offsetof(struct qtp_read_req_wire, offset));
	v->len = qtp_get32(p + offsetof(struct qtp_read_req_wire, len));
	return (long)pos;
}

/* WRITE. */
struct qtp_write_req_wire {
	uint64_t handle;
	uint64_t offset;
	uint32_t flags;
} __attribute__((packed));
struct qtp_write_req {
	uint64_t handle;
	uint64_t offset;
	uint32_t flags;
	const uint8_t *data; /* rest */
	uint32_t data_len;
};
#define QTP_WRITE_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_write_req_wire) == 20, "qtp_write_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_write_req_wire, handle) == 0, "qtp_write_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_write_req_wire, offset) == 8, "qtp_write_req_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_write_req_wire, flags) == 16, "qtp_write_req_wire.flags");
static inline size_t qtp_write_req_size(const struct qtp_write_req *v)
{
	return QTP_WRITE_REQ_FIXED + (size_t)v->data_len * 1;
}
static inline long qtp_write_req_encode(const struct qtp_write_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_write_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_write_req_wire, handle), (uint64_t)v->handle);
	qtp_put64(p + offsetof(struct qtp_write_req_wire, offset), (uint64_t)v->offset);
	qtp_put32(p + offsetof(struct qtp_write_req_wire, flags), (uint32_t)v->flags);
	p += QTP_WRITE_REQ_FIXED;
	if (v->data_len)
		memcpy(p, v->data, (size_t)v->data_len * 1);
	p += (size_t)v->data_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_write_req_decode(const void *buf, size_t len, struct qtp_write_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WRITE_REQ_FIXED;
	if (len < QTP_WRITE_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_write_req_wire, handle));
	v->offset = qtp_get64(p + offsetof(struct qtp_write_req_wire, offset));
	v->flags = qtp_get32(p + offsetof(struct qtp_write_req_wire, flags));
	v->data_len = (uint32_t)(len - pos);
	if (v->data_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->data_len * 1)
		return -EBADMSG;
	v->data = p + pos;
	pos += (size_t)v->data_len * 1;
	return (long)pos;
}

/* WRITE response. */
struct qtp_write_rsp_wire {
	uint32_t written;
} __attribute__((packed));
struct qtp_write_rsp {
	uint32_t written;
};
#define QTP_WRITE_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_write_rsp_wire) == 4, "qtp_write_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_write_rsp_wire, written) == 0, "qtp_write_rsp_wire.written");
static inline size_t qtp_write_rsp_size(const struct qtp_write_rsp *v)
{
	(void)v;
	return QTP_WRITE_RSP_FIXED;
}
static inline long qtp_write_rsp_encode(const struct qtp_write_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_write_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_write_rsp_wire, written), (uint32_t)v->written);
	p += QTP_WRITE_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_write_rsp_decode(const void *buf, size_t len, struct qtp_write_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WRITE_RSP_FIXED;
	if (len < QTP_WRITE_RSP_FIXED)
		return -EBADMSG;
	v->written = qtp_get32(p + offsetof(struct qtp_write_rsp_wire, written));
	return (long)pos;
}

/* READDIR: entries after `cookie` (0 = start), at most `max_bytes` of records. */
struct qtp_readdir_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint64_t cookie;
	uint32_t max_bytes;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_readdir_req {
	struct qtp_req_ctx ctx;
	uint64_t cookie;
	uint32_t max_bytes;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_READDIR_REQ_FIXED 32
QTP_STATIC_ASSERT(sizeof(struct qtp_readdir_req_wire) == 32, "qtp_readdir_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, ctx) == 0, "qtp_readdir_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, cookie) == 12, "qtp_readdir_req_wire.cookie");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, max_bytes) == 20, "qtp_readdir_req_wire.max_bytes");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, flags) == 24, "qtp_readdir_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, groups_count) == 28, "qtp_readdir_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_req_wire, path_len) == 30, "qtp_readdir_req_wire.path_len");
static inline size_t qtp_readdir_req_size(const struct qtp_readdir_req *v)
{
	return QTP_READDIR_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_readdir_req_encode(const struct qtp_readdir_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_readdir_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_readdir_req_wire, ctx));
	qtp_put64(p + offsetof(struct qtp_readdir_req_wire, cookie), (uint64_t)v->cookie);
	qtp_put32(p + offsetof(struct qtp_readdir_req_wire, max_bytes), (uint32_t)v->max_bytes);
	qtp_put32(p + offsetof(struct qtp_readdir_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_readdir_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_readdir_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_READDIR_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_readdir_req_decode(const void *buf, size_t len, struct qtp_readdir_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_READDIR_REQ_FIXED;
	if (len < QTP_READDIR_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_readdir_req_wire, ctx), &v->ctx);
	v->cookie = qtp_get64(p + offsetof(struct qtp_readdir_req_wire, cookie));
	v->max_bytes = qtp_get32(p + offsetof(struct qtp_readdir_req_wire, max_bytes));
	v->flags = qtp_get32(p + offsetof(struct qtp_readdir_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_readdir_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_readdir_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* READDIR response: `count` records of `DirEntry` (or `DirEntryPlus`). */
struct qtp_readdir_rsp_wire {
	uint32_t count;
	uint32_t flags;
} __attribute__((packed));
struct qtp_readdir_rsp {
	uint32_t count;
	uint32_t flags;
	const uint8_t *entries; /* rest */
	uint32_t entries_len;
};
#define QTP_READDIR_RSP_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_readdir_rsp_wire) == 8, "qtp_readdir_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_rsp_wire, count) == 0, "qtp_readdir_rsp_wire.count");
QTP_STATIC_ASSERT(offsetof(struct qtp_readdir_rsp_wire, flags) == 4, "qtp_readdir_rsp_wire.flags");
static inline size_t qtp_readdir_rsp_size(const struct qtp_readdir_rsp *v)
{
	return QTP_READDIR_RSP_FIXED + (size_t)v->entries_len * 1;
}
static inline long qtp_readdir_rsp_encode(const struct qtp_readdir_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_readdir_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_readdir_rsp_wire, count), (uint32_t)v->count);
	qtp_put32(p + offsetof(struct qtp_readdir_rsp_wire, flags), (uint32_t)v->flags);
	p += QTP_READDIR_RSP_FIXED;
	if (v->entries_len)
		memcpy(p, v->entries, (size_t)v->entries_len * 1);
	p += (size_t)v->entries_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_readdir_rsp_decode(const void *buf, size_t len, struct qtp_readdir_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_READDIR_RSP_FIXED;
	if (len < QTP_READDIR_RSP_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_readdir_rsp_wire, count));
	v->flags = qtp_get32(p + offsetof(struct qtp_readdir_rsp_wire, flags));
	v->entries_len = (uint32_t)(len - pos);
	if (v->entries_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->entries_len * 1)
		return -EBADMSG;
	v->entries = p + pos;
	pos += (size_t)v->entries_len * 1;
	return (long)pos;
}

/* One directory entry. */
struct qtp_dir_entry_wire {
	uint64_t ino;
	uint64_t cookie;
	uint8_t dtype;
	uint16_t name_len;
} __attribute__((packed));
struct qtp_dir_entry {
	uint64_t ino;
	uint64_t cookie;
	uint8_t dtype;
	const uint8_t *name; /* name */
	uint32_t name_len;
};
#define QTP_DIR_ENTRY_FIXED 19
QTP_STATIC_ASSERT(sizeof(struct qtp_dir_entry_wire) == 19, "qtp_dir_entry_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_wire, ino) == 0, "qtp_dir_entry_wire.ino");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_wire, cookie) == 8, "qtp_dir_entry_wire.cookie");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_wire, dtype) == 16, "qtp_dir_entry_wire.dtype");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_wire, name_len) == 17, "qtp_dir_entry_wire.name_len");
static inline size_t qtp_dir_entry_size(const struct qtp_dir_entry *v)
{
	return QTP_DIR_ENTRY_FIXED + (size_t)v->name_len * 1;
}
static inline long qtp_dir_entry_encode(const struct qtp_dir_entry *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_dir_entry_size(v);
	if (v->name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_dir_entry_wire, ino), (uint64_t)v->ino);
	qtp_put64(p + offsetof(struct qtp_dir_entry_wire, cookie), (uint64_t)v->cookie);
	*(p + offsetof(struct qtp_dir_entry_wire, dtype)) = v->dtype;
	qtp_put16(p + offsetof(struct qtp_dir_entry_wire, name_len), (uint16_t)v->name_len);
	p += QTP_DIR_ENTRY_FIXED;
	if (v->name_len)
		memcpy(p, v->name, (size_t)v->name_len * 1);
	p += (size_t)v->name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_dir_entry_decode(const void *buf, size_t len, struct qtp_dir_entry *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_DIR_ENTRY_FIXED;
	if (len < QTP_DIR_ENTRY_FIXED)
		return -EBADMSG;
	v->ino = qtp_get64(p + offsetof(struct qtp_dir_entry_wire, ino));
	v->cookie = qtp_get64(p + offsetof(struct qtp_dir_entry_wire, cookie));
	v->dtype = *(p + offsetof(struct qtp_dir_entry_wire, dtype));
	v->name_len = qtp_get16(p + offsetof(struct qtp_dir_entry_wire, name_len));
	if (v->name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->name_len * 1)
		return -EBADMSG;
	v->name = p + pos;
	if (v->name_len && memchr(p + pos, 0, v->name_len))
		return -EBADMSG;
	pos += (size_t)v->name_len * 1;
	return (long)pos;
}

/* One directory entry with attributes (`READDIR_PLUS`). */
struct qtp_dir_entry_plus_wire {
	uint64_t cookie;
	struct qtp_attr_wire attr;
	uint16_t name_len;
} __attribute__((packed));
struct qtp_dir_entry_plus {
	uint64_t cookie;
	struct qtp_attr attr;
	const uint8_t *name; /* name */
	uint32_t name_len;
};
#define QTP_DIR_ENTRY_PLUS_FIXED 122
QTP_STATIC_ASSERT(sizeof(struct qtp_dir_entry_plus_wire) == 122, "qtp_dir_entry_plus_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_plus_wire, cookie) == 0, "qtp_dir_entry_plus_wire.cookie");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_plus_wire, attr) == 8, "qtp_dir_entry_plus_wire.attr");
QTP_STATIC_ASSERT(offsetof(struct qtp_dir_entry_plus_wire, name_len) == 120, "qtp_dir_entry_plus_wire.name_len");
static inline size_t qtp_dir_entry_plus_size(const struct qtp_dir_entry_plus *v)
{
	return QTP_DIR_ENTRY_PLUS_FIXED + (size_t)v->name_len * 1;
}
static inline long qtp_dir_entry_plus_encode(const struct qtp_dir_entry_plus *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_dir_entry_plus_size(v);
	if (v->name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_dir_entry_plus_wire, cookie), (uint64_t)v->cookie);
	qtp_attr_put(&v->attr, p + offsetof(struct qtp_dir_entry_plus_wire, attr));
	qtp_put16(p + offsetof(struct qtp_dir_entry_plus_wire, name_len), (uint16_t)v->name_len);
	p += QTP_DIR_ENTRY_PLUS_FIXED;
	if (v->name_len)
		memcpy(p, v->name, (size_t)v->name_len * 1);
	p += (size_t)v->name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_dir_entry_plus_decode(const void *buf, size_t len, struct qtp_dir_entry_plus *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_DIR_ENTRY_PLUS_FIXED;
	if (len < QTP_DIR_ENTRY_PLUS_FIXED)
		return -EBADMSG;
	v->cookie = qtp_get64(p + offsetof(struct qtp_dir_entry_plus_wire, cookie));
	qtp_attr_get(p + offsetof(struct qtp_dir_entry_plus_wire, attr), &v->attr);
	v->name_len = qtp_get16(p + offsetof(struct qtp_dir_entry_plus_wire, name_len));
	if (v->name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->name_len * 1)
		return -EBADMSG;
	v->name = p + pos;
	if (v->name_len && memchr(p + pos, 0, v->name_len))
		return -EBADMSG;
	pos += (size_t)v->name_len * 1;
	return (long)pos;
}

/* MKDIR. */
struct qtp_mkdir_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t mode;
	uint32_t umask;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_mkdir_req {
	struct qtp_req_ctx ctx;
	uint32_t mode;
	uint32_t umask;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_MKDIR_REQ_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_mkdir_req_wire) == 24, "qtp_mkdir_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_mkdir_req_wire, ctx) == 0, "qtp_mkdir_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_mkdir_req_wire, mode) == 12, "qtp_mkdir_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_mkdir_req_wire, umask) == 16, "qtp_mkdir_req_wire.umask");
QTP_STATIC_ASSERT(offsetof(struct qtp_mkdir_req_wire, groups_count) == 20, "qtp_mkdir_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_mkdir_req_wire, path_len) == 22, "qtp_mkdir_req_wire.path_len");
static inline size_t qtp_mkdir_req_size(const struct qtp_mkdir_req *v)
{
	return QTP_MKDIR_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_mkdir_req_encode(const struct qtp_mkdir_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_mkdir_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_mkdir_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_mkdir_req_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_mkdir_req_wire, umask), (uint32_t)v->umask);
	qtp_put16(p + offsetof(struct qtp_mkdir_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_mkdir_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_MKDIR_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_mkdir_req_decode(const void *buf, size_t len, struct qtp_mkdir_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_MKDIR_REQ_FIXED;
	if (len < QTP_MKDIR_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_mkdir_req_wire, ctx), &v->ctx);
	v->mode = qtp_get32(p + offsetof(struct qtp_mkdir_req_wire, mode));
	v->umask = qtp_get32(p + offsetof(struct qtp_mkdir_req_wire, umask));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_mkdir_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_mkdir_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* MKNOD (FIFOs, sockets, device nodes). */
struct qtp_mknod_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t mode;
	uint32_t umask;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_mknod_req {
	struct qtp_req_ctx ctx;
	uint32_t mode;
	uint32_t umask;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_MKNOD_REQ_FIXED 32
QTP_STATIC_ASSERT(sizeof(struct qtp_mknod_req_wire) == 32, "qtp_mknod_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, ctx) == 0, "qtp_mknod_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, mode) == 12, "qtp_mknod_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, umask) == 16, "qtp_mknod_req_wire.umask");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, rdev_major) == 20, "qtp_mknod_req_wire.rdev_major");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, rdev_minor) == 24, "qtp_mknod_req_wire.rdev_minor");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, groups_count) == 28, "qtp_mknod_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_mknod_req_wire, path_len) == 30, "qtp_mknod_req_wire.path_len");
static inline size_t qtp_mknod_req_size(const struct qtp_mknod_req *v)
{
	return QTP_MKNOD_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_mknod_req_encode(const struct qtp_mknod_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_mknod_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_mknod_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_mknod_req_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_mknod_req_wire, umask), (uint32_t)v->umask);
	qtp_put32(p + offsetof(struct qtp_mknod_req_wire, rdev_major), (uint32_t)v->rdev_major);
	qtp_put32(p + offsetof(struct qtp_mknod_req_wire, rdev_minor), (uint32_t)v->rdev_minor);
	qtp_put16(p + offsetof(struct qtp_mknod_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_mknod_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_MKNOD_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_mknod_req_decode(const void *buf, size_t len, struct qtp_mknod_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_MKNOD_REQ_FIXED;
	if (len < QTP_MKNOD_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_mknod_req_wire, ctx), &v->ctx);
	v->mode = qtp_get32(p + offsetof(struct qtp_mknod_req_wire, mode));
	v->umask = qtp_get32(p + offsetof(struct qtp_mknod_req_wire, umask));
	v->rdev_major = qtp_get32(p + offsetof(struct qtp_mknod_req_wire, rdev_major));
	v->rdev_minor = qtp_get32(p + offsetof(struct qtp_mknod_req_wire, rdev_minor));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_mknod_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_mknod_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* SYMLINK: create `path` pointing at `target` (target text is stored verbatim). */
struct qtp_symlink_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint16_t groups_count;
	uint16_t path_len;
	uint16_t target_len;
} __attribute__((packed));
struct qtp_symlink_req {
	struct qtp_req_ctx ctx;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
	const uint8_t *target; /* path */
	uint32_t target_len;
};
#define QTP_SYMLINK_REQ_FIXED 18
QTP_STATIC_ASSERT(sizeof(struct qtp_symlink_req_wire) == 18, "qtp_symlink_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_symlink_req_wire, ctx) == 0, "qtp_symlink_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_symlink_req_wire, groups_count) == 12, "qtp_symlink_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_symlink_req_wire, path_len) == 14, "qtp_symlink_req_wire.path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_symlink_req_wire, target_len) == 16, "qtp_symlink_req_wire.target_len");
static inline size_t qtp_symlink_req_size(const struct qtp_symlink_req *v)
{
	return QTP_SYMLINK_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1 + (size_t)v->target_len * 1;
}
static inline long qtp_symlink_req_encode(const struct qtp_symlink_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_symlink_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (v->target_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_symlink_req_wire, ctx));
	qtp_put16(p + offsetof(struct qtp_symlink_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_symlink_req_wire, path_len), (uint16_t)v->path_len);
	qtp_put16(p + offsetof(struct qtp_symlink_req_wire, target_len), (uint16_t)v->target_len);
	p += QTP_SYMLINK_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	if (v->target_len)
		memcpy(p, v->target, (size_t)v->target_len * 1);
	p += (size_t)v->target_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_symlink_req_decode(const void *buf, size_t len, struct qtp_symlink_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_SYMLINK_REQ_FIXED;
	if (len < QTP_SYMLINK_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_symlink_req_wire, ctx), &v->ctx);
	v->groups_count = qtp_get16(p + offsetof(struct qtp_symlink_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_symlink_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	v->target_len = qtp_get16(p + offsetof(struct qtp_symlink_req_wire, target_len));
	if (v->target_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->target_len * 1)
		return -EBADMSG;
	v->target = p + pos;
	if (v->target_len && memchr(p + pos, 0, v->target_len))
		return -EBADMSG;
	pos += (size_t)v->target_len * 1;
	return (long)pos;
}

/* LINK: hard link `new_path` to the existing `old_path`. */
struct qtp_link_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint16_t groups_count;
	uint16_t old_path_len;
	uint16_t new_path_len;
} __attribute__((packed));
struct qtp_link_req {
	struct qtp_req_ctx ctx;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *old_path; /* path */
	uint32_t old_path_len;
	const uint8_t *new_path; /* path */
	uint32_t new_path_len;
};
#define QTP_LINK_REQ_FIXED 18
QTP_STATIC_ASSERT(sizeof(struct qtp_link_req_wire) == 18, "qtp_link_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_link_req_wire, ctx) == 0, "qtp_link_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_link_req_wire, groups_count) == 12, "qtp_link_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_link_req_wire, old_path_len) == 14, "qtp_link_req_wire.old_path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_link_req_wire, new_path_len) == 16, "qtp_link_req_wire.new_path_len");
static inline size_t qtp_link_req_size(const struct qtp_link_req *v)
{
	return QTP_LINK_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->old_path_len * 1 + (size_t)v->new_path_len * 1;
}
static inline long qtp_link_req_encode(const struct qtp_link_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_link_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->old_path_len > 4095)
		return -EINVAL;
	if (v->new_path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_link_req_wire, ctx));
	qtp_put16(p + offsetof(struct qtp_link_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_link_req_wire, old_path_len), (uint16_t)v->old_path_len);
	qtp_put16(p + offsetof(struct qtp_link_req_wire, new_path_len), (uint16_t)v->new_path_len);
	p += QTP_LINK_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->old_path_len)
		memcpy(p, v->old_path, (size_t)v->old_path_len * 1);
	p += (size_t)v->old_path_len * 1;
	if (v->new_path_len)
		memcpy(p, v->new_path, (size_t)v->new_path_len * 1);
	p += (size_t)v->new_path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_link_req_decode(const void *buf, size_t len, struct qtp_link_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LINK_REQ_FIXED;
	if (len < QTP_LINK_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_link_req_wire, ctx), &v->ctx);
	v->groups_count = qtp_get16(p + offsetof(struct qtp_link_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->old_path_len = qtp_get16(p + offsetof(struct qtp_link_req_wire, old_path_len));
	if (v->old_path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->old_path_len * 1)
		return -EBADMSG;
	v->old_path = p + pos;
	if (v->old_path_len && memchr(p + pos, 0, v->old_path_len))
		return -EBADMSG;
	pos += (size_t)v->old_path_len * 1;
	v->new_path_len = qtp_get16(p + offsetof(struct qtp_link_req_wire, new_path_len));
	if (v->new_path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->new_path_len * 1)
		return -EBADMSG;
	v->new_path = p + pos;
	if (v->new_path_len && memchr(p + pos, 0, v->new_path_len))
		return -EBADMSG;
	pos += (size_t)v->new_path_len * 1;
	return (long)pos;
}

/* RENAME. */
struct qtp_rename_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t old_path_len;
	uint16_t new_path_len;
} __attribute__((packed));
struct qtp_rename_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *old_path; /* path */
	uint32_t old_path_len;
	const uint8_t *new_path; /* path */
	uint32_t new_path_len;
};
#define QTP_RENAME_REQ_FIXED 22
QTP_STATIC_ASSERT(sizeof(struct qtp_rename_req_wire) == 22, "qtp_rename_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rename_req_wire, ctx) == 0, "qtp_rename_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_rename_req_wire, flags) == 12, "qtp_rename_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_rename_req_wire, groups_count) == 16, "qtp_rename_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_rename_req_wire, old_path_len) == 18, "qtp_rename_req_wire.old_path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_rename_req_wire, new_path_len) == 20, "qtp_rename_req_wire.new_path_len");
static inline size_t qtp_rename_req_size(const struct qtp_rename_req *v)
{
	return QTP_RENAME_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->old_path_len * 1 + (size_t)v->new_path_len * 1;
}
static inline long qtp_rename_req_encode(const struct qtp_rename_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rename_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->old_path_len > 4095)
		return -EINVAL;
	if (v->new_path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_rename_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_rename_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_rename_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_rename_req_wire, old_path_len), (uint16_t)v->old_path_len);
	qtp_put16(p + offsetof(struct qtp_rename_req_wire, new_path_len), (uint16_t)v->new_path_len);
	p += QTP_RENAME_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->old_path_len)
		memcpy(p, v->old_path, (size_t)v->old_path_len * 1);
	p += (size_t)v->old_path_len * 1;
	if (v->new_path_len)
		memcpy(p, v->new_path, (size_t)v->new_path_len * 1);
	p += (size_t)v->new_path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rename_req_decode(const void *buf, size_t len, struct qtp_rename_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_RENAME_REQ_FIXED;
	if (len < QTP_RENAME_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_rename_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_rename_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_rename_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->old_path_len = qtp_get16(p + offsetof(struct qtp_rename_req_wire, old_path_len));
	if (v->old_path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->old_path_len * 1)
		return -EBADMSG;
	v->old_path = p + pos;
	if (v->old_path_len && memchr(p + pos, 0, v->old_path_len))
		return -EBADMSG;
	pos += (size_t)v->old_path_len * 1;
	v->new_path_len = qtp_get16(p + offsetof(struct qtp_rename_req_wire, new_path_len));
	if (v->new_path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->new_path_len * 1)
		return -EBADMSG;
	v->new_path = p + pos;
	if (v->new_path_len && memchr(p + pos, 0, v->new_path_len))
		return -EBADMSG;
	pos += (size_t)v->new_path_len * 1;
	return (long)pos;
}

/* XATTR_LIST. `size` 0 asks for the needed size only. */
struct qtp_xattr_list_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t size;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_xattr_list_req {
	struct qtp_req_ctx ctx;
	uint32_t size;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_XATTR_LIST_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_xattr_list_req_wire) == 20, "qtp_xattr_list_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_list_req_wire, ctx) == 0, "qtp_xattr_list_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_list_req_wire, size) == 12, "qtp_xattr_list_req_wire.size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_list_req_wire, groups_count) == 16, "qtp_xattr_list_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_list_req_wire, path_len) == 18, "qtp_xattr_list_req_wire.path_len");
static inline size_t qtp_xattr_list_req_size(const struct qtp_xattr_list_req *v)
{
	return QTP_XATTR_LIST_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_xattr_list_req_encode(const struct qtp_xattr_list_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_xattr_list_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_xattr_list_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_xattr_list_req_wire, size), (uint32_t)v->size);
	qtp_put16(p + offsetof(struct qtp_xattr_list_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_xattr_list_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_XATTR_LIST_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_xattr_list_req_decode(const void *buf, size_t len, struct qtp_xattr_list_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_XATTR_LIST_REQ_FIXED;
	if (len < QTP_XATTR_LIST_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_xattr_list_req_wire, ctx), &v->ctx);
	v->size = qtp_get32(p + offsetof(struct qtp_xattr_list_req_wire, size));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_xattr_list_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_xattr_list_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* XATTR_GET. `size` 0 asks for the needed size only. */
struct qtp_xattr_get_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t size;
	uint16_t groups_count;
	uint16_t path_len;
	uint16_t name_len;
} __attribute__((packed));
struct qtp_xattr_get_req {
	struct qtp_req_ctx ctx;
	uint32_t size;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
	const uint8_t *name; /* name */
	uint32_t name_len;
};
#define QTP_XATTR_GET_REQ_FIXED 22
QTP_STATIC_ASSERT(sizeof(struct qtp_xattr_get_req_wire) == 22, "qtp_xattr_get_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_get_req_wire, ctx) == 0, "qtp_xattr_get_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_get_req_wire, size) == 12, "qtp_xattr_get_req_wire.size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_get_req_wire, groups_count) == 16, "qtp_xattr_get_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_get_req_wire, path_len) == 18, "qtp_xattr_get_req_wire.path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_get_req_wire, name_len) == 20, "qtp_xattr_get_req_wire.name_len");
static inline size_t qtp_xattr_get_req_size(const struct qtp_xattr_get_req *v)
{
	return QTP_XATTR_GET_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1 + (size_t)v->name_len * 1;
}
static inline long qtp_xattr_get_req_encode(const struct qtp_xattr_get_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_xattr_get_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (v->name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_xattr_get_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_xattr_get_req_wire, size), (uint32_t)v->size);
	qtp_put16(p + offsetof(struct qtp_xattr_get_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_xattr_get_req_wire, path_len), (uint16_t)v->path_len);
	qtp_put16(p + offsetof(struct qtp_xattr_get_req_wire, name_len), (uint16_t)v->name_len);
	p += QTP_XATTR_GET_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	if (v->name_len)
		memcpy(p, v->name, (size_t)v->name_len * 1);
	p += (size_t)v->name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_xattr_get_req_decode(const void *buf, size_t len, struct qtp_xattr_get_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_XATTR_GET_REQ_FIXED;
	if (len < QTP_XATTR_GET_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_xattr_get_req_wire, ctx), &v->ctx);
	v->size = qtp_get32(p + offsetof(struct qtp_xattr_get_req_wire, size));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_xattr_get_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_xattr_get_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	v->name_len = qtp_get16(p + offsetof(struct qtp_xattr_get_req_wire, name_len));
	if (v->name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->name_len * 1)
		return -EBADMSG;
	v->name = p + pos;
	if (v->name_len && memchr(p + pos, 0, v->name_len))
		return -EBADMSG;
	pos += (size_t)v->name_len * 1;
	return (long)pos;
}

/* XATTR_LIST/XATTR_GET response: `size` is the full size; `data` is empty for a  size query (and the request fails with ERANGE when the buffer is too small). */
struct qtp_xattr_rsp_wire {
	uint32_t size;
} __attribute__((packed));
struct qtp_xattr_rsp {
	uint32_t size;
	const uint8_t *data; /* rest */
	uint32_t data_len;
};
#define QTP_XATTR_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_xattr_rsp_wire) == 4, "qtp_xattr_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_rsp_wire, size) == 0, "qtp_xattr_rsp_wire.size");
static inline size_t qtp_xattr_rsp_size(const struct qtp_xattr_rsp *v)
{
	return QTP_XATTR_RSP_FIXED + (size_t)v->data_len * 1;
}
static inline long qtp_xattr_rsp_encode(const struct qtp_xattr_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_xattr_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_xattr_rsp_wire, size), (uint32_t)v->size);
	p += QTP_XATTR_RSP_FIXED;
	if (v->data_len)
		memcpy(p, v->data, (size_t)v->data_len * 1);
	p += (size_t)v->data_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_xattr_rsp_decode(const void *buf, size_t len, struct qtp_xattr_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_XATTR_RSP_FIXED;
	if (len < QTP_XATTR_RSP_FIXED)
		return -EBADMSG;
	v->size = qtp_get32(p + offsetof(struct qtp_xattr_rsp_wire, size));
	v->data_len = (uint32_t)(len - pos);
	if (v->data_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->data_len * 1)
		return -EBADMSG;
	v->data = p + pos;
	pos += (size_t)v->data_len * 1;
	return (long)pos;
}

/* XATTR_SET: the value is stored byte for byte. */
struct qtp_xattr_set_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t path_len;
	uint16_t name_len;
	uint32_t value_len;
} __attribute__((packed));
struct qtp_xattr_set_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
	const uint8_t *name; /* name */
	uint32_t name_len;
	const uint8_t *value; /* bytes32 */
	uint32_t value_len;
};
#define QTP_XATTR_SET_REQ_FIXED 26
QTP_STATIC_ASSERT(sizeof(struct qtp_xattr_set_req_wire) == 26, "qtp_xattr_set_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, ctx) == 0, "qtp_xattr_set_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, flags) == 12, "qtp_xattr_set_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, groups_count) == 16, "qtp_xattr_set_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, path_len) == 18, "qtp_xattr_set_req_wire.path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, name_len) == 20, "qtp_xattr_set_req_wire.name_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_set_req_wire, value_len) == 22, "qtp_xattr_set_req_wire.value_len");
static inline size_t qtp_xattr_set_req_size(const struct qtp_xattr_set_req *v)
{
	return QTP_XATTR_SET_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1 + (size_t)v->name_len * 1 + (size_t)v->value_len * 1;
}
static inline long qtp_xattr_set_req_encode(const struct qtp_xattr_set_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_xattr_set_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (v->name_len > 255)
		return -EINVAL;
	if (v->value_len > 1052672)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_xattr_set_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_xattr_set_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_xattr_set_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_xattr_set_req_wire, path_len), (uint16_t)v->path_len);
	qtp_put16(p + offsetof(struct qtp_xattr_set_req_wire, name_len), (uint16_t)v->name_len);
	qtp_put32(p + offsetof(struct qtp_xattr_set_req_wire, value_len), v->value_len);
	p += QTP_XATTR_SET_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	if (v->name_len)
		memcpy(p, v->name, (size_t)v->name_len * 1);
	p += (size_t)v->name_len * 1;
	if (v->value_len)
		memcpy(p, v->value, (size_t)v->value_len * 1);
	p += (size_t)v->value_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_xattr_set_req_decode(const void *buf, size_t len, struct qtp_xattr_set_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_XATTR_SET_REQ_FIXED;
	if (len < QTP_XATTR_SET_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_xattr_set_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_xattr_set_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_xattr_set_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_xattr_set_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	v->name_len = qtp_get16(p + offsetof(struct qtp_xattr_set_req_wire, name_len));
	if (v->name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->name_len * 1)
		return -EBADMSG;
	v->name = p + pos;
	if (v->name_len && memchr(p + pos, 0, v->name_len))
		return -EBADMSG;
	pos += (size_t)v->name_len * 1;
	v->value_len = qtp_get32(p + offsetof(struct qtp_xattr_set_req_wire, value_len));
	if (v->value_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->value_len * 1)
		return -EBADMSG;
	v->value = p + pos;
	pos += (size_t)v->value_len * 1;
	return (long)pos;
}

/* XATTR_REMOVE. */
struct qtp_xattr_remove_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint16_t groups_count;
	uint16_t path_len;
	uint16_t name_len;
} __attribute__((packed));
struct qtp_xattr_remove_req {
	struct qtp_req_ctx ctx;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
	const uint8_t *name; /* name */
	uint32_t name_len;
};
#define QTP_XATTR_REMOVE_REQ_FIXED 18
QTP_STATIC_ASSERT(sizeof(struct qtp_xattr_remove_req_wire) == 18, "qtp_xattr_remove_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_remove_req_wire, ctx) == 0, "qtp_xattr_remove_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_remove_req_wire, groups_count) == 12, "qtp_xattr_remove_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_remove_req_wire, path_len) == 14, "qtp_xattr_remove_req_wire.path_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_xattr_remove_req_wire, name_len) == 16, "qtp_xattr_remove_req_wire.name_len");
static inline size_t qtp_xattr_remove_req_size(const struct qtp_xattr_remove_req *v)
{
	return QTP_XATTR_REMOVE_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1 + (size_t)v->name_len * 1;
}
static inline long qtp_xattr_remove_req_encode(const struct qtp_xattr_remove_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_xattr_remove_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (v->name_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_xattr_remove_req_wire, ctx));
	qtp_put16(p + offsetof(struct qtp_xattr_remove_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_xattr_remove_req_wire, path_len), (uint16_t)v->path_len);
	qtp_put16(p + offsetof(struct qtp_xattr_remove_req_wire, name_len), (uint16_t)v->name_len);
	p += QTP_XATTR_REMOVE_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	if (v->name_len)
		memcpy(p, v->name, (size_t)v->name_len * 1);
	p += (size_t)v->name_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_xattr_remove_req_decode(const void *buf, size_t len, struct qtp_xattr_remove_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_XATTR_REMOVE_REQ_FIXED;
	if (len < QTP_XATTR_REMOVE_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_xattr_remove_req_wire, ctx), &v->ctx);
	v->groups_count = qtp_get16(p + offsetof(struct qtp_xattr_remove_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_xattr_remove_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	v->name_len = qtp_get16(p + offsetof(struct qtp_xattr_remove_req_wire, name_len));
	if (v->name_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->name_len * 1)
		return -EBADMSG;
	v->name = p + pos;
	if (v->name_len && memchr(p + pos, 0, v->name_len))
		return -EBADMSG;
	pos += (size_t)v->name_len * 1;
	return (long)pos;
}

/* SYSMOUNT: mount(2) on the HOST with the target inside the export. */
struct qtp_sysmount_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint64_t flags;
	uint32_t source_kind;
	uint16_t groups_count;
	uint16_t target_len;
	uint16_t source_len;
	uint16_t fstype_len;
	uint16_t data_len;
} __attribute__((packed));
struct qtp_sysmount_req {
	struct qtp_req_ctx ctx;
	uint64_t flags;
	uint32_t source_kind;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *target; /* path */
	uint32_t target_len;
	const uint8_t *source; /* path */
	uint32_t source_len;
	const uint8_t *fstype; /* name */
	uint32_t fstype_len;
	const uint8_t *data; /* bytes16 */
	uint32_t data_len;
};
#define QTP_SYSMOUNT_REQ_FIXED 34
QTP_STATIC_ASSERT(sizeof(struct qtp_sysmount_req_wire) == 34, "qtp_sysmount_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, ctx) == 0, "qtp_sysmount_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, flags) == 12, "qtp_sysmount_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, source_kind) == 20, "qtp_sysmount_req_wire.source_kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, groups_count) == 24, "qtp_sysmount_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, target_len) == 26, "qtp_sysmount_req_wire.target_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, source_len) == 28, "qtp_sysmount_req_wire.source_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, fstype_len) == 30, "qtp_sysmount_req_wire.fstype_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysmount_req_wire, data_len) == 32, "qtp_sysmount_req_wire.data_len");
static inline size_t qtp_sysmount_req_size(const struct qtp_sysmount_req *v)
{
	return QTP_SYSMOUNT_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->target_len * 1 + (size_t)v->source_len * 1 + (size_t)v->fstype_len * 1 + (size_t)v->data_len * 1;
}
static inline long qtp_sysmount_req_encode(const struct qtp_sysmount_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_sysmount_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->target_len > 4095)
		return -EINVAL;
	if (v->source_len > 4095)
		return -EINVAL;
	if (v->fstype_len > 255)
		return -EINVAL;
	if (v->data_len > 65535)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_sysmount_req_wire, ctx));
	qtp_put64(p + offsetof(struct qtp_sysmount_req_wire, flags), (uint64_t)v->flags);
	qtp_put32(p + offsetof(struct qtp_sysmount_req_wire, source_kind), (uint32_t)v->source_kind);
	qtp_put16(p + offsetof(struct qtp_sysmount_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_sysmount_req_wire, target_len), (uint16_t)v->target_len);
	qtp_put16(p + offsetof(struct qtp_sysmount_req_wire, source_len), (uint16_t)v->source_len);
	qtp_put16(p + offsetof(struct qtp_sysmount_req_wire, fstype_len), (uint16_t)v->fstype_len);
	qtp_put16(p + offsetof(struct qtp_sysmount_req_wire, data_len), (uint16_t)v->data_len);
	p += QTP_SYSMOUNT_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->target_len)
		memcpy(p, v->target, (size_t)v->target_len * 1);
	p += (size_t)v->target_len * 1;
	if (v->source_len)
		memcpy(p, v->source, (size_t)v->source_len * 1);
	p += (size_t)v->source_len * 1;
	if (v->fstype_len)
		memcpy(p, v->fstype, (size_t)v->fstype_len * 1);
	p += (size_t)v->fstype_len * 1;
	if (v->data_len)
		memcpy(p, v->data, (size_t)v->data_len * 1);
	p += (size_t)v->data_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_sysmount_req_decode(const void *buf, size_t len, struct qtp_sysmount_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_SYSMOUNT_REQ_FIXED;
	if (len < QTP_SYSMOUNT_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_sysmount_req_wire, ctx), &v->ctx);
	v->flags = qtp_get64(p + offsetof(struct qtp_sysmount_req_wire, flags));
	v->source_kind = qtp_get32(p + offsetof(struct qtp_sysmount_req_wire, source_kind));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_sysmount_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->target_len = qtp_get16(p + offsetof(struct qtp_sysmount_req_wire, target_len));
	if (v->target_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->target_len * 1)
		return -EBADMSG;
	v->target = p + pos;
	if (v->target_len && memchr(p + pos, 0, v->target_len))
		return -EBADMSG;
	pos += (size_t)v->target_len * 1;
	v->source_len = qtp_get16(p + offsetof(struct qtp_sysmount_req_wire, source_len));
	if (v->source_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->source_len * 1)
		return -EBADMSG;
	v->source = p + pos;
	if (v->source_len && memchr(p + pos, 0, v->source_len))
		return -EBADMSG;
	pos += (size_t)v->source_len * 1;
	v->fstype_len = qtp_get16(p + offsetof(struct qtp_sysmount_req_wire, fstype_len));
	if (v->fstype_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->fstype_len * 1)
		return -EBADMSG;
	v->fstype = p + pos;
	if (v->fstype_len && memchr(p + pos, 0, v->fstype_len))
		return -EBADMSG;
	pos += (size_t)v->fstype_len * 1;
	v->data_len = qtp_get16(p + offsetof(struct qtp_sysmount_req_wire, data_len));
	if (v->data_len > 65535)
		return -EBADMSG;
	if (len - pos < (size_t)v->data_len * 1)
		return -EBADMSG;
	v->data = p + pos;
	pos += (size_t)v->data_len * 1;
	return (long)pos;
}

/* SYSUMOUNT. */
struct qtp_sysumount_req_wire {
	struct qtp_req_ctx_wire ctx;
	uint32_t flags;
	uint16_t groups_count;
	uint16_t target_len;
} __attribute__((packed));
struct qtp_sysumount_req {
	struct qtp_req_ctx ctx;
	uint32_t flags;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *target; /* path */
	uint32_t target_len;
};
#define QTP_SYSUMOUNT_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_sysumount_req_wire) == 20, "qtp_sysumount_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysumount_req_wire, ctx) == 0, "qtp_sysumount_req_wire.ctx");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysumount_req_wire, flags) == 12, "qtp_sysumount_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysumount_req_wire, groups_count) == 16, "qtp_sysumount_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_sysumount_req_wire, target_len) == 18, "qtp_sysumount_req_wire.target_len");
static inline size_t qtp_sysumount_req_size(const struct qtp_sysumount_req *v)
{
	return QTP_SYSUMOUNT_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->target_len * 1;
}
static inline long qtp_sysumount_req_encode(const struct qtp_sysumount_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_sysumount_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->target_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_req_ctx_put(&v->ctx, p + offsetof(struct qtp_sysumount_req_wire, ctx));
	qtp_put32(p + offsetof(struct qtp_sysumount_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_sysumount_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_sysumount_req_wire, target_len), (uint16_t)v->target_len);
	p += QTP_SYSUMOUNT_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->target_len)
		memcpy(p, v->target, (size_t)v->target_len * 1);
	p += (size_t)v->target_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_sysumount_req_decode(const void *buf, size_t len, struct qtp_sysumount_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_SYSUMOUNT_REQ_FIXED;
	if (len < QTP_SYSUMOUNT_REQ_FIXED)
		return -EBADMSG;
	qtp_req_ctx_get(p + offsetof(struct qtp_sysumount_req_wire, ctx), &v->ctx);
	v->flags = qtp_get32(p + offsetof(struct qtp_sysumount_req_wire, flags));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_sysumount_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->target_len = qtp_get16(p + offsetof(struct qtp_sysumount_req_wire, target_len));
	if (v->target_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->target_len * 1)
		return -EBADMSG;
	v->target = p + pos;
	if (v->target_len && memchr(p + pos, 0, v->target_len))
		return -EBADMSG;
	pos += (size_t)v->target_len * 1;
	return (long)pos;
}

/* FIFO_POLL: wait at most `timeout_ms` for `events` on a handle. */
struct qtp_poll_req_wire {
	uint64_t handle;
	uint32_t events;
	uint32_t timeout_ms;
} __attribute__((packed));
struct qtp_poll_req {
	uint64_t handle;
	uint32_t events;
	uint32_t timeout_ms;
};
#define QTP_POLL_REQ_FIXED 16
QTP_STATIC_ASSERT(sizeof(struct qtp_poll_req_wire) == 16, "qtp_poll_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_poll_req_wire, handle) == 0, "qtp_poll_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_poll_req_wire, events) == 8, "qtp_poll_req_wire.events");
QTP_STATIC_ASSERT(offsetof(struct qtp_poll_req_wire, timeout_ms) == 12, "qtp_poll_req_wire.timeout_ms");
static inline size_t qtp_poll_req_size(const struct qtp_poll_req *v)
{
	(void)v;
	return QTP_POLL_REQ_FIXED;
}
static inline long qtp_poll_req_encode(const struct qtp_poll_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_poll_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_poll_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_poll_req_wire, events), (uint32_t)v->events);
	qtp_put32(p + offsetof(struct qtp_poll_req_wire, timeout_ms), (uint32_t)v->timeout_ms);
	p += QTP_POLL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_poll_req_decode(const void *buf, size_t len, struct qtp_poll_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_POLL_REQ_FIXED;
	if (len < QTP_POLL_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_poll_req_wire, handle));
	v->events = qtp_get32(p + offsetof(struct qtp_poll_req_wire, events));
	v->timeout_ms = qtp_get32(p + offsetof(struct qtp_poll_req_wire, timeout_ms));
	return (long)pos;
}

/* FIFO_POLL response (0 on timeout). */
struct qtp_poll_rsp_wire {
	uint32_t revents;
} __attribute__((packed));
struct qtp_poll_rsp {
	uint32_t revents;
};
#define QTP_POLL_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_poll_rsp_wire) == 4, "qtp_poll_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_poll_rsp_wire, revents) == 0, "qtp_poll_rsp_wire.revents");
static inline size_t qtp_poll_rsp_size(const struct qtp_poll_rsp *v)
{
	(void)v;
	return QTP_POLL_RSP_FIXED;
}
static inline long qtp_poll_rsp_encode(const struct qtp_poll_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_poll_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_poll_rsp_wire, revents), (uint32_t)v->revents);
	p += QTP_POLL_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_poll_rsp_decode(const void *buf, size_t len, struct qtp_poll_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_POLL_RSP_FIXED;
	if (len < QTP_POLL_RSP_FIXED)
		return -EBADMSG;
	v->revents = qtp_get32(p + offsetof(struct qtp_poll_rsp_wire, revents));
	return (long)pos;
}

/* STATFS response. */
struct qtp_statfs_rsp_wire {
	struct qtp_statfs_wire statfs;
} __attribute__((packed));
struct qtp_statfs_rsp {
	struct qtp_statfs statfs;
};
#define QTP_STATFS_RSP_FIXED 72
QTP_STATIC_ASSERT(sizeof(struct qtp_statfs_rsp_wire) == 72, "qtp_statfs_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_statfs_rsp_wire, statfs) == 0, "qtp_statfs_rsp_wire.statfs");
static inline size_t qtp_statfs_rsp_size(const struct qtp_statfs_rsp *v)
{
	(void)v;
	return QTP_STATFS_RSP_FIXED;
}
static inline long qtp_statfs_rsp_encode(const struct qtp_statfs_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_statfs_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_statfs_put(&v->statfs, p + offsetof(struct qtp_statfs_rsp_wire, statfs));
	p += QTP_STATFS_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_statfs_rsp_decode(const void *buf, size_t len, struct qtp_statfs_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_STATFS_RSP_FIXED;
	if (len < QTP_STATFS_RSP_FIXED)
		return -EBADMSG;
	qtp_statfs_get(p + offsetof(struct qtp_statfs_rsp_wire, statfs), &v->statfs);
	return (long)pos;
}

/* IOCTL: `cmd` is an `IOC_*` value; `arg` is the portable input record, if any.  The response payload is the portable output record, if any. */
struct qtp_ioctl_req_wire {
	uint64_t handle;
	uint32_t cmd;
	uint16_t arg_len;
} __attribute__((packed));
struct qtp_ioctl_req {
	uint64_t handle;
	uint32_t cmd;
	const uint8_t *arg; /* bytes16 */
	uint32_t arg_len;
};
#define QTP_IOCTL_REQ_FIXED 14
QTP_STATIC_ASSERT(sizeof(struct qtp_ioctl_req_wire) == 14, "qtp_ioctl_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_ioctl_req_wire, handle) == 0, "qtp_ioctl_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_ioctl_req_wire, cmd) == 8, "qtp_ioctl_req_wire.cmd");
QTP_STATIC_ASSERT(offsetof(struct qtp_ioctl_req_wire, arg_len) == 12, "qtp_ioctl_req_wire.arg_len");
static inline size_t qtp_ioctl_req_size(const struct qtp_ioctl_req *v)
{
	return QTP_IOCTL_REQ_FIXED + (size_t)v->arg_len * 1;
}
static inline long qtp_ioctl_req_encode(const struct qtp_ioctl_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_ioctl_req_size(v);
	if (v->arg_len > 65535)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_ioctl_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_ioctl_req_wire, cmd), (uint32_t)v->cmd);
	qtp_put16(p + offsetof(struct qtp_ioctl_req_wire, arg_len), (uint16_t)v->arg_len);
	p += QTP_IOCTL_REQ_FIXED;
	if (v->arg_len)
		memcpy(p, v->arg, (size_t)v->arg_len * 1);
	p += (size_t)v->arg_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_ioctl_req_decode(const void *buf, size_t len, struct qtp_ioctl_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_IOCTL_REQ_FIXED;
	if (len < QTP_IOCTL_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_ioctl_req_wire, handle));
	v->cmd = qtp_get32(p + offsetof(struct qtp_ioctl_req_wire, cmd));
	v->arg_len = qtp_get16(p + offsetof(struct qtp_ioctl_req_wire, arg_len));
	if (v->arg_len > 65535)
		return -EBADMSG;
	if (len - pos < (size_t)v->arg_len * 1)
		return -EBADMSG;
	v->arg = p + pos;
	pos += (size_t)v->arg_len * 1;
	return (long)pos;
}

/* EPOLL_CTL. */
struct qtp_epoll_ctl_req_wire {
	uint64_t handle;
	uint32_t op;
	uint32_t events;
	uint64_t cookie;
} __attribute__((packed));
struct qtp_epoll_ctl_req {
	uint64_t handle;
	uint32_t op;
	uint32_t events;
	uint64_t cookie;
};
#define QTP_EPOLL_CTL_REQ_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_epoll_ctl_req_wire) == 24, "qtp_epoll_ctl_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_ctl_req_wire, handle) == 0, "qtp_epoll_ctl_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_ctl_req_wire, op) == 8, "qtp_epoll_ctl_req_wire.op");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_ctl_req_wire, events) == 12, "qtp_epoll_ctl_req_wire.events");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_ctl_req_wire, cookie) == 16, "qtp_epoll_ctl_req_wire.cookie");
static inline size_t qtp_epoll_ctl_req_size(const struct qtp_epoll_ctl_req *v)
{
	(void)v;
	return QTP_EPOLL_CTL_REQ_FIXED;
}
static inline long qtp_epoll_ctl_req_encode(const struct qtp_epoll_ctl_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_epoll_ctl_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_epoll_ctl_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_epoll_ctl_req_wire, op), (uint32_t)v->op);
	qtp_put32(p + offsetof(struct qtp_epoll_ctl_req_wire, events), (uint32_t)v->events);
	qtp_put64(p + offsetof(struct qtp_epoll_ctl_req_wire, cookie), (uint64_t)v->cookie);
	p += QTP_EPOLL_CTL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_epoll_ctl_req_decode(const void *buf, size_t len, struct qtp_epoll_ctl_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_EPOLL_CTL_REQ_FIXED;
	if (len < QTP_EPOLL_CTL_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_epoll_ctl_req_wire, handle));
	v->op = qtp_get32(p + offsetof(struct qtp_epoll_ctl_req_wire, op));
	v->events = qtp_get32(p + offsetof(struct qtp_epoll_ctl_req_wire, events));
	v->cookie = qtp_get64(p + offsetof(struct qtp_epoll_ctl_req_wire, cookie));
	return (long)pos;
}

/* EPOLL_EVENT (server to client, one-way): `count` `EpollRec` records. */
struct qtp_epoll_event_wire {
	uint32_t count;
} __attribute__((packed));
struct qtp_epoll_event {
	uint32_t count;
	const uint8_t *events; /* rest */
	uint32_t events_len;
};
#define QTP_EPOLL_EVENT_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_epoll_event_wire) == 4, "qtp_epoll_event_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_epoll_event_wire, count) == 0, "qtp_epoll_event_wire.count");
static inline size_t qtp_epoll_event_size(const struct qtp_epoll_event *v)
{
	return QTP_EPOLL_EVENT_FIXED + (size_t)v->events_len * 1;
}
static inline long qtp_epoll_event_encode(const struct qtp_epoll_event *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_epoll_event_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_epoll_event_wire, count), (uint32_t)v->count);
	p += QTP_EPOLL_EVENT_FIXED;
	if (v->events_len)
		memcpy(p, v->events, (size_t)v->events_len * 1);
	p += (size_t)v->events_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_epoll_event_decode(const void *buf, size_t len, struct qtp_epoll_event *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_EPOLL_EVENT_FIXED;
	if (len < QTP_EPOLL_EVENT_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_epoll_event_wire, count));
	v->events_len = (uint32_t)(len - pos);
	if (v->events_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->events_len * 1)
		return -EBADMSG;
	v->events = p + pos;
	pos += (size_t)v->events_len * 1;
	return (long)pos;
}

/* INVAL (server to client, one-way, only on connections that agreed on  `feat::INVAL`): the object at `path` of export `export` changed. `flags` are  `inval::*` bits; with `inval::ALL` the path is empty. */
struct qtp_inval_msg_wire {
	uint32_t export;
	uint32_t flags;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_inval_msg {
	uint32_t export;
	uint32_t flags;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_INVAL_MSG_FIXED 10
QTP_STATIC_ASSERT(sizeof(struct qtp_inval_msg_wire) == 10, "qtp_inval_msg_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_inval_msg_wire, export) == 0, "qtp_inval_msg_wire.export");
QTP_STATIC_ASSERT(offsetof(struct qtp_inval_msg_wire, flags) == 4, "qtp_inval_msg_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_inval_msg_wire, path_len) == 8, "qtp_inval_msg_wire.path_len");
static inline size_t qtp_inval_msg_size(const struct qtp_inval_msg *v)
{
	return QTP_INVAL_MSG_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_inval_msg_encode(const struct qtp_inval_msg *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_inval_msg_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_inval_msg_wire, export), (uint32_t)v->export);
	qtp_put32(p + offsetof(struct qtp_inval_msg_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_inval_msg_wire, path_len), (uint16_t)v->path_len);
	p += QTP_INVAL_MSG_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_inval_msg_decode(const void *buf, size_t len, struct qtp_inval_msg *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_INVAL_MSG_FIXED;
	if (len < QTP_INVAL_MSG_FIXED)
		return -EBADMSG;
	v->export = qtp_get32(p + offsetof(struct qtp_inval_msg_wire, export));
	v->flags = qtp_get32(p + offsetof(struct qtp_inval_msg_wire, flags));
	v->path_len = qtp_get16(p + offsetof(struct qtp_inval_msg_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* LLSEEK. */
struct qtp_llseek_req_wire {
	uint64_t handle;
	int64_t offset;
	uint32_t whence;
} __attribute__((packed));
struct qtp_llseek_req {
	uint64_t handle;
	int64_t offset;
	uint32_t whence;
};
#define QTP_LLSEEK_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_llseek_req_wire) == 20, "qtp_llseek_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_llseek_req_wire, handle) == 0, "qtp_llseek_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_llseek_req_wire, offset) == 8, "qtp_llseek_req_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_llseek_req_wire, whence) == 16, "qtp_llseek_req_wire.whence");
static inline size_t qtp_llseek_req_size(const struct qtp_llseek_req *v)
{
	(void)v;
	return QTP_LLSEEK_REQ_FIXED;
}
static inline long qtp_llseek_req_encode(const struct qtp_llseek_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_llseek_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_llseek_req_wire, handle), (uint64_t)v->handle);
	qtp_put64(p + offsetof(struct qtp_llseek_req_wire, offset), (uint64_t)v->offset);
	qtp_put32(p + offsetof(struct qtp_llseek_req_wire, whence), (uint32_t)v->whence);
	p += QTP_LLSEEK_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_llseek_req_decode(const void *buf, size_t len, struct qtp_llseek_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LLSEEK_REQ_FIXED;
	if (len < QTP_LLSEEK_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_llseek_req_wire, handle));
	v->offset = (int64_t)qtp_get64(p + offsetof(struct qtp_llseek_req_wire, offset));
	v->whence = qtp_get32(p + offsetof(struct qtp_llseek_req_wire, whence));
	return (long)pos;
}

/* LLSEEK response. */
struct qtp_llseek_rsp_wire {
	uint64_t offset;
} __attribute__((packed));
struct qtp_llseek_rsp {
	uint64_t offset;
};
#define QTP_LLSEEK_RSP_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_llseek_rsp_wire) == 8, "qtp_llseek_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_llseek_rsp_wire, offset) == 0, "qtp_llseek_rsp_wire.offset");
static inline size_t qtp_llseek_rsp_size(const struct qtp_llseek_rsp *v)
{
	(void)v;
	return QTP_LLSEEK_RSP_FIXED;
}
static inline long qtp_llseek_rsp_encode(const struct qtp_llseek_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_llseek_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_llseek_rsp_wire, offset), (uint64_t)v->offset);
	p += QTP_LLSEEK_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_llseek_rsp_decode(const void *buf, size_t len, struct qtp_llseek_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LLSEEK_RSP_FIXED;
	if (len < QTP_LLSEEK_RSP_FIXED)
		return -EBADMSG;
	v->offset = qtp_get64(p + offsetof(struct qtp_llseek_rsp_wire, offset));
	return (long)pos;
}

/* KILL. */
struct qtp_kill_req_wire {
	int32_t pid;
	int32_t signal;
} __attribute__((packed));
struct qtp_kill_req {
	int32_t pid;
	int32_t signal;
};
#define QTP_KILL_REQ_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_kill_req_wire) == 8, "qtp_kill_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_kill_req_wire, pid) == 0, "qtp_kill_req_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_kill_req_wire, signal) == 4, "qtp_kill_req_wire.signal");
static inline size_t qtp_kill_req_size(const struct qtp_kill_req *v)
{
	(void)v;
	return QTP_KILL_REQ_FIXED;
}
static inline long qtp_kill_req_encode(const struct qtp_kill_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_kill_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_kill_req_wire, pid), (uint32_t)v->pid);
	qtp_put32(p + offsetof(struct qtp_kill_req_wire, signal), (uint32_t)v->signal);
	p += QTP_KILL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_kill_req_decode(const void *buf, size_t len, struct qtp_kill_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_KILL_REQ_FIXED;
	if (len < QTP_KILL_REQ_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_kill_req_wire, pid));
	v->signal = (int32_t)qtp_get32(p + offsetof(struct qtp_kill_req_wire, signal));
	return (long)pos;
}

/* SCHED_GETAFFINITY (the response payload is the mask, bit i = CPU i). */
struct qtp_affinity_get_req_wire {
	int32_t pid;
} __attribute__((packed));
struct qtp_affinity_get_req {
	int32_t pid;
};
#define QTP_AFFINITY_GET_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_affinity_get_req_wire) == 4, "qtp_affinity_get_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_affinity_get_req_wire, pid) == 0, "qtp_affinity_get_req_wire.pid");
static inline size_t qtp_affinity_get_req_size(const struct qtp_affinity_get_req *v)
{
	(void)v;
	return QTP_AFFINITY_GET_REQ_FIXED;
}
static inline long qtp_affinity_get_req_encode(const struct qtp_affinity_get_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_affinity_get_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_affinity_get_req_wire, pid), (uint32_t)v->pid);
	p += QTP_AFFINITY_GET_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_affinity_get_req_decode(const void *buf, size_t len, struct qtp_affinity_get_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_AFFINITY_GET_REQ_FIXED;
	if (len < QTP_AFFINITY_GET_REQ_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_affinity_get_req_wire, pid));
	return (long)pos;
}

/* SCHED_SETAFFINITY. */
struct qtp_affinity_set_req_wire {
	int32_t pid;
	uint16_t mask_len;
} __attribute__((packed));
struct qtp_affinity_set_req {
	int32_t pid;
	const uint8_t *mask; /* bytes16 */
	uint32_t mask_len;
};
#define QTP_AFFINITY_SET_REQ_FIXED 6
QTP_STATIC_ASSERT(sizeof(struct qtp_affinity_set_req_wire) == 6, "qtp_affinity_set_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_affinity_set_req_wire, pid) == 0, "qtp_affinity_set_req_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_affinity_set_req_wire, mask_len) == 4, "qtp_affinity_set_req_wire.mask_len");
static inline size_t qtp_affinity_set_req_size(const struct qtp_affinity_set_req *v)
{
	return QTP_AFFINITY_SET_REQ_FIXED + (size_t)v->mask_len * 1;
}
static inline long qtp_affinity_set_req_encode(const struct qtp_affinity_set_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_affinity_set_req_size(v);
	if (v->mask_len > 65535)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_affinity_set_req_wire, pid), (uint32_t)v->pid);
	qtp_put16(p + offsetof(struct qtp_affinity_set_req_wire, mask_len), (uint16_t)v->mask_len);
	p += QTP_AFFINITY_SET_REQ_FIXED;
	if (v->mask_len)
		memcpy(p, v->mask, (size_t)v->mask_len * 1);
	p += (size_t)v->mask_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_affinity_set_req_decode(const void *buf, size_t len, struct qtp_affinity_set_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_AFFINITY_SET_REQ_FIXED;
	if (len < QTP_AFFINITY_SET_REQ_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_affinity_set_req_wire, pid));
	v->mask_len = qtp_get16(p + offsetof(struct qtp_affinity_set_req_wire, mask_len));
	if (v->mask_len > 65535)
		return -EBADMSG;
	if (len - pos < (size_t)v->mask_len * 1)
		return -EBADMSG;
	v->mask = p + pos;
	pos += (size_t)v->mask_len * 1;
	return (long)pos;
}

/* FSYNC. */
struct qtp_fsync_req_wire {
	uint64_t handle;
	uint32_t flags;
} __attribute__((packed));
struct qtp_fsync_req {
	uint64_t handle;
	uint32_t flags;
};
#define QTP_FSYNC_REQ_FIXED 12
QTP_STATIC_ASSERT(sizeof(struct qtp_fsync_req_wire) == 12, "qtp_fsync_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsync_req_wire, handle) == 0, "qtp_fsync_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_fsync_req_wire, flags) == 8, "qtp_fsync_req_wire.flags");
static inline size_t qtp_fsync_req_size(const struct qtp_fsync_req *v)
{
	(void)v;
	return QTP_FSYNC_REQ_FIXED;
}
static inline long qtp_fsync_req_encode(const struct qtp_fsync_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_fsync_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_fsync_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_fsync_req_wire, flags), (uint32_t)v->flags);
	p += QTP_FSYNC_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_fsync_req_decode(const void *buf, size_t len, struct qtp_fsync_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_FSYNC_REQ_FIXED;
	if (len < QTP_FSYNC_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_fsync_req_wire, handle));
	v->flags = qtp_get32(p + offsetof(struct qtp_fsync_req_wire, flags));
	return (long)pos;
}

/* FALLOCATE (`FALLOC_FL_*` Linux generic values). */
struct qtp_fallocate_req_wire {
	uint64_t handle;
	uint32_t mode;
	uint64_t offset;
	uint64_t len;
} __attribute__((packed));
struct qtp_fallocate_req {
	uint64_t handle;
	uint32_t mode;
	uint64_t offset;
	uint64_t len;
};
#define QTP_FALLOCATE_REQ_FIXED 28
QTP_STATIC_ASSERT(sizeof(struct qtp_fallocate_req_wire) == 28, "qtp_fallocate_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_fallocate_req_wire, handle) == 0, "qtp_fallocate_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_fallocate_req_wire, mode) == 8, "qtp_fallocate_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_fallocate_req_wire, offset) == 12, "qtp_fallocate_req_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_fallocate_req_wire, len) == 20, "qtp_fallocate_req_wire.len");
static inline size_t qtp_fallocate_req_size(const struct qtp_fallocate_req *v)
{
	(void)v;
	return QTP_FALLOCATE_REQ_FIXED;
}
static inline long qtp_fallocate_req_encode(const struct qtp_fallocate_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_fallocate_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_fallocate_req_wire, handle), (uint64_t)v->handle);
	qtp_put32(p + offsetof(struct qtp_fallocate_req_wire, mode), (uint32_t)v->mode);
	qtp_put64(p + offsetof(struct qtp_fallocate_req_wire, offset), (uint64_t)v->offset);
	qtp_put64(p + offsetof(struct qtp_fallocate_req_wire, len), (uint64_t)v->len);
	p += QTP_FALLOCATE_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_fallocate_req_decode(const void *buf, size_t len, struct qtp_fallocate_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_FALLOCATE_REQ_FIXED;
	if (len < QTP_FALLOCATE_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_fallocate_req_wire, handle));
	v->mode = qtp_get32(p + offsetof(struct qtp_fallocate_req_wire, mode));
	v->offset = qtp_get64(p + offsetof(struct qtp_fallocate_req_wire, offset));
	v->len = qtp_get64(p + offsetof(struct qtp_fallocate_req_wire, len));
	return (long)pos;
}

/* LOCK_GET and LOCK_SET. Byte-range locks are OFD locks of the handle's HOST open  file description (each OPEN is its own); `LOCK_F_FLOCK` takes a flock(2) lock on  the same description instead. */
struct qtp_lock_req_wire {
	uint64_t handle;
	uint64_t start;
	uint64_t len;
	uint32_t ltype;
	uint32_t flags;
} __attribute__((packed));
struct qtp_lock_req {
	uint64_t handle;
	uint64_t start;
	uint64_t len;
	uint32_t ltype;
	uint32_t flags;
};
#define QTP_LOCK_REQ_FIXED 32
QTP_STATIC_ASSERT(sizeof(struct qtp_lock_req_wire) == 32, "qtp_lock_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_req_wire, handle) == 0, "qtp_lock_req_wire.handle");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_req_wire, start) == 8, "qtp_lock_req_wire.start");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_req_wire, len) == 16, "qtp_lock_req_wire.len");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_req_wire, ltype) == 24, "qtp_lock_req_wire.ltype");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_req_wire, flags) == 28, "qtp_lock_req_wire.flags");
static inline size_t qtp_lock_req_size(const struct qtp_lock_req *v)
{
	(void)v;
	return QTP_LOCK_REQ_FIXED;
}
static inline long qtp_lock_req_encode(const struct qtp_lock_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_lock_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_lock_req_wire, handle), (uint64_t)v->handle);
	qtp_put64(p + offsetof(struct qtp_lock_req_wire, start), (uint64_t)v->start);
	qtp_put64(p + offsetof(struct qtp_lock_req_wire, len), (uint64_t)v->len);
	qtp_put32(p + offsetof(struct qtp_lock_req_wire, ltype), (uint32_t)v->ltype);
	qtp_put32(p + offsetof(struct qtp_lock_req_wire, flags), (uint32_t)v->flags);
	p += QTP_LOCK_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_lock_req_decode(const void *buf, size_t len, struct qtp_lock_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LOCK_REQ_FIXED;
	if (len < QTP_LOCK_REQ_FIXED)
		return -EBADMSG;
	v->handle = qtp_get64(p + offsetof(struct qtp_lock_req_wire, handle));
	v->start = qtp_get64(p + offsetof(struct qtp_lock_req_wire, start));
	v->len = qtp_get64(p + offsetof(struct qtp_lock_req_wire, len));
	v->ltype = qtp_get32(p + offsetof(struct qtp_lock_req_wire, ltype));
	v->flags = qtp_get32(p + offsetof(struct qtp_lock_req_wire, flags));
	return (long)pos;
}

/* LOCK_GET response: one lock that conflicts, or `ltype` = `LOCK_UN` (nothing does). */
struct qtp_lock_rsp_wire {
	uint64_t start;
	uint64_t len;
	uint32_t ltype;
	int32_t pid;
} __attribute__((packed));
struct qtp_lock_rsp {
	uint64_t start;
	uint64_t len;
	uint32_t ltype;
	int32_t pid;
};
#define QTP_LOCK_RSP_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_lock_rsp_wire) == 24, "qtp_lock_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_rsp_wire, start) == 0, "qtp_lock_rsp_wire.start");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_rsp_wire, len) == 8, "qtp_lock_rsp_wire.len");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_rsp_wire, ltype) == 16, "qtp_lock_rsp_wire.ltype");
QTP_STATIC_ASSERT(offsetof(struct qtp_lock_rsp_wire, pid) == 20, "qtp_lock_rsp_wire.pid");
static inline size_t qtp_lock_rsp_size(const struct qtp_lock_rsp *v)
{
	(void)v;
	return QTP_LOCK_RSP_FIXED;
}
static inline long qtp_lock_rsp_encode(const struct qtp_lock_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_lock_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_lock_rsp_wire, start), (uint64_t)v->start);
	qtp_put64(p + offsetof(struct qtp_lock_rsp_wire, len), (uint64_t)v->len);
	qtp_put32(p + offsetof(struct qtp_lock_rsp_wire, ltype), (uint32_t)v->ltype);
	qtp_put32(p + offsetof(struct qtp_lock_rsp_wire, pid), (uint32_t)v->pid);
	p += QTP_LOCK_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_lock_rsp_decode(const void *buf, size_t len, struct qtp_lock_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LOCK_RSP_FIXED;
	if (len < QTP_LOCK_RSP_FIXED)
		return -EBADMSG;
	v->start = qtp_get64(p + offsetof(struct qtp_lock_rsp_wire, start));
	v->len = qtp_get64(p + offsetof(struct qtp_lock_rsp_wire, len));
	v->ltype = qtp_get32(p + offsetof(struct qtp_lock_rsp_wire, ltype));
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_lock_rsp_wire, pid));
	return (long)pos;
}

/* CANCEL: the request `id` of this connection, if it is still waiting, is answered  EINTR. CANCEL itself is answered at once: ENOENT when nothing was waiting. */
struct qtp_cancel_req_wire {
	uint64_t id;
} __attribute__((packed));
struct qtp_cancel_req {
	uint64_t id;
};
#define QTP_CANCEL_REQ_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_cancel_req_wire) == 8, "qtp_cancel_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_cancel_req_wire, id) == 0, "qtp_cancel_req_wire.id");
static inline size_t qtp_cancel_req_size(const struct qtp_cancel_req *v)
{
	(void)v;
	return QTP_CANCEL_REQ_FIXED;
}
static inline long qtp_cancel_req_encode(const struct qtp_cancel_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_cancel_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_cancel_req_wire, id), (uint64_t)v->id);
	p += QTP_CANCEL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_cancel_req_decode(const void *buf, size_t len, struct qtp_cancel_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CANCEL_REQ_FIXED;
	if (len < QTP_CANCEL_REQ_FIXED)
		return -EBADMSG;
	v->id = qtp_get64(p + offsetof(struct qtp_cancel_req_wire, id));
	return (long)pos;
}

/* CHAN_OPEN: connect a unix socket at `path` on the receiving side. The frame's  channel field carries the new channel id chosen by the opener (`CHAN_ID_PEER` set  when the server opens). */
struct qtp_chan_open_req_wire {
	uint32_t kind;
	uint32_t credit;
	uint32_t listener;
	uint32_t uid;
	uint32_t gid;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_chan_open_req {
	uint32_t kind;
	uint32_t credit;
	uint32_t listener;
	uint32_t uid;
	uint32_t gid;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_CHAN_OPEN_REQ_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_open_req_wire) == 24, "qtp_chan_open_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, kind) == 0, "qtp_chan_open_req_wire.kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, credit) == 4, "qtp_chan_open_req_wire.credit");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, listener) == 8, "qtp_chan_open_req_wire.listener");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, uid) == 12, "qtp_chan_open_req_wire.uid");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, gid) == 16, "qtp_chan_open_req_wire.gid");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, groups_count) == 20, "qtp_chan_open_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_open_req_wire, path_len) == 22, "qtp_chan_open_req_wire.path_len");
static inline size_t qtp_chan_open_req_size(const struct qtp_chan_open_req *v)
{
	return QTP_CHAN_OPEN_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_chan_open_req_encode(const struct qtp_chan_open_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_open_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_open_req_wire, kind), (uint32_t)v->kind);
	qtp_put32(p + offsetof(struct qtp_chan_open_req_wire, credit), (uint32_t)v->credit);
	qtp_put32(p + offsetof(struct qtp_chan_open_req_wire, listener), (uint32_t)v->listener);
	qtp_put32(p + offsetof(struct qtp_chan_open_req_wire, uid), (uint32_t)v->uid);
	qtp_put32(p + offsetof(struct qtp_chan_open_req_wire, gid), (uint32_t)v->gid);
	qtp_put16(p + offsetof(struct qtp_chan_open_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_chan_open_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_CHAN_OPEN_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_open_req_decode(const void *buf, size_t len, struct qtp_chan_open_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_OPEN_REQ_FIXED;
	if (len < QTP_CHAN_OPEN_REQ_FIXED)
		return -EBADMSG;
	v->kind = qtp_get32(p + offsetof(struct qtp_chan_open_req_wire, kind));
	v->credit = qtp_get32(p + offsetof(struct qtp_chan_open_req_wire, credit));
	v->listener = qtp_get32(p + offsetof(struct qtp_chan_open_req_wire, listener));
	v->uid = qtp_get32(p + offsetof(struct qtp_chan_open_req_wire, uid));
	v->gid = qtp_get32(p + offsetof(struct qtp_chan_open_req_wire, gid));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_chan_open_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_chan_open_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* CHAN_OPEN response. */
struct qtp_chan_accept_wire {
	uint32_t credit;
} __attribute__((packed));
struct qtp_chan_accept {
	uint32_t credit;
};
#define QTP_CHAN_ACCEPT_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_accept_wire) == 4, "qtp_chan_accept_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_accept_wire, credit) == 0, "qtp_chan_accept_wire.credit");
static inline size_t qtp_chan_accept_size(const struct qtp_chan_accept *v)
{
	(void)v;
	return QTP_CHAN_ACCEPT_FIXED;
}
static inline long qtp_chan_accept_encode(const struct qtp_chan_accept *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_accept_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_accept_wire, credit), (uint32_t)v->credit);
	p += QTP_CHAN_ACCEPT_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_accept_decode(const void *buf, size_t len, struct qtp_chan_accept *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_ACCEPT_FIXED;
	if (len < QTP_CHAN_ACCEPT_FIXED)
		return -EBADMSG;
	v->credit = qtp_get32(p + offsetof(struct qtp_chan_accept_wire, credit));
	return (long)pos;
}

/* CHAN_CREDIT. */
struct qtp_chan_credit_wire {
	uint32_t bytes;
} __attribute__((packed));
struct qtp_chan_credit {
	uint32_t bytes;
};
#define QTP_CHAN_CREDIT_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_credit_wire) == 4, "qtp_chan_credit_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_credit_wire, bytes) == 0, "qtp_chan_credit_wire.bytes");
static inline size_t qtp_chan_credit_size(const struct qtp_chan_credit *v)
{
	(void)v;
	return QTP_CHAN_CREDIT_FIXED;
}
static inline long qtp_chan_credit_encode(const struct qtp_chan_credit *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_credit_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_credit_wire, bytes), (uint32_t)v->bytes);
	p += QTP_CHAN_CREDIT_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_credit_decode(const void *buf, size_t len, struct qtp_chan_credit *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_CREDIT_FIXED;
	if (len < QTP_CHAN_CREDIT_FIXED)
		return -EBADMSG;
	v->bytes = qtp_get32(p + offsetof(struct qtp_chan_credit_wire, bytes));
	return (long)pos;
}

/* CHAN_CLOSE. */
struct qtp_chan_close_wire {
	uint32_t how;
	int32_t error;
} __attribute__((packed));
struct qtp_chan_close {
	uint32_t how;
	int32_t error;
};
#define QTP_CHAN_CLOSE_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_close_wire) == 8, "qtp_chan_close_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_close_wire, how) == 0, "qtp_chan_close_wire.how");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_close_wire, error) == 4, "qtp_chan_close_wire.error");
static inline size_t qtp_chan_close_size(const struct qtp_chan_close *v)
{
	(void)v;
	return QTP_CHAN_CLOSE_FIXED;
}
static inline long qtp_chan_close_encode(const struct qtp_chan_close *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_close_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_close_wire, how), (uint32_t)v->how);
	qtp_put32(p + offsetof(struct qtp_chan_close_wire, error), (uint32_t)v->error);
	p += QTP_CHAN_CLOSE_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_close_decode(const void *buf, size_t len, struct qtp_chan_close *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_CLOSE_FIXED;
	if (len < QTP_CHAN_CLOSE_FIXED)
		return -EBADMSG;
	v->how = qtp_get32(p + offsetof(struct qtp_chan_close_wire, how));
	v->error = (int32_t)qtp_get32(p + offsetof(struct qtp_chan_close_wire, error));
	return (long)pos;
}

/* CHAN_LISTEN: listen at `path` on the receiving side. */
struct qtp_chan_listen_req_wire {
	uint32_t kind;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint16_t groups_count;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_chan_listen_req {
	uint32_t kind;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	const uint8_t *groups; /* groups */
	uint32_t groups_count;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_CHAN_LISTEN_REQ_FIXED 20
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_listen_req_wire) == 20, "qtp_chan_listen_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, kind) == 0, "qtp_chan_listen_req_wire.kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, mode) == 4, "qtp_chan_listen_req_wire.mode");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, uid) == 8, "qtp_chan_listen_req_wire.uid");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, gid) == 12, "qtp_chan_listen_req_wire.gid");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, groups_count) == 16, "qtp_chan_listen_req_wire.groups_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_req_wire, path_len) == 18, "qtp_chan_listen_req_wire.path_len");
static inline size_t qtp_chan_listen_req_size(const struct qtp_chan_listen_req *v)
{
	return QTP_CHAN_LISTEN_REQ_FIXED + (size_t)v->groups_count * 4 + (size_t)v->path_len * 1;
}
static inline long qtp_chan_listen_req_encode(const struct qtp_chan_listen_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_listen_req_size(v);
	if (v->groups_count > 64)
		return -EINVAL;
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_listen_req_wire, kind), (uint32_t)v->kind);
	qtp_put32(p + offsetof(struct qtp_chan_listen_req_wire, mode), (uint32_t)v->mode);
	qtp_put32(p + offsetof(struct qtp_chan_listen_req_wire, uid), (uint32_t)v->uid);
	qtp_put32(p + offsetof(struct qtp_chan_listen_req_wire, gid), (uint32_t)v->gid);
	qtp_put16(p + offsetof(struct qtp_chan_listen_req_wire, groups_count), (uint16_t)v->groups_count);
	qtp_put16(p + offsetof(struct qtp_chan_listen_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_CHAN_LISTEN_REQ_FIXED;
	if (v->groups_count)
		memcpy(p, v->groups, (size_t)v->groups_count * 4);
	p += (size_t)v->groups_count * 4;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_listen_req_decode(const void *buf, size_t len, struct qtp_chan_listen_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_LISTEN_REQ_FIXED;
	if (len < QTP_CHAN_LISTEN_REQ_FIXED)
		return -EBADMSG;
	v->kind = qtp_get32(p + offsetof(struct qtp_chan_listen_req_wire, kind));
	v->mode = qtp_get32(p + offsetof(struct qtp_chan_listen_req_wire, mode));
	v->uid = qtp_get32(p + offsetof(struct qtp_chan_listen_req_wire, uid));
	v->gid = qtp_get32(p + offsetof(struct qtp_chan_listen_req_wire, gid));
	v->groups_count = qtp_get16(p + offsetof(struct qtp_chan_listen_req_wire, groups_count));
	if (v->groups_count > 64)
		return -EBADMSG;
	if (len - pos < (size_t)v->groups_count * 4)
		return -EBADMSG;
	v->groups = p + pos;
	pos += (size_t)v->groups_count * 4;
	v->path_len = qtp_get16(p + offsetof(struct qtp_chan_listen_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* CHAN_LISTEN response. */
struct qtp_chan_listen_rsp_wire {
	uint32_t listener;
} __attribute__((packed));
struct qtp_chan_listen_rsp {
	uint32_t listener;
};
#define QTP_CHAN_LISTEN_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_listen_rsp_wire) == 4, "qtp_chan_listen_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_listen_rsp_wire, listener) == 0, "qtp_chan_listen_rsp_wire.listener");
static inline size_t qtp_chan_listen_rsp_size(const struct qtp_chan_listen_rsp *v)
{
	(void)v;
	return QTP_CHAN_LISTEN_RSP_FIXED;
}
static inline long qtp_chan_listen_rsp_encode(const struct qtp_chan_listen_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_listen_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_listen_rsp_wire, listener), (uint32_t)v->listener);
	p += QTP_CHAN_LISTEN_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_listen_rsp_decode(const void *buf, size_t len, struct qtp_chan_listen_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_LISTEN_RSP_FIXED;
	if (len < QTP_CHAN_LISTEN_RSP_FIXED)
		return -EBADMSG;
	v->listener = qtp_get32(p + offsetof(struct qtp_chan_listen_rsp_wire, listener));
	return (long)pos;
}

/* CHAN_UNLISTEN. */
struct qtp_chan_unlisten_req_wire {
	uint32_t listener;
} __attribute__((packed));
struct qtp_chan_unlisten_req {
	uint32_t listener;
};
#define QTP_CHAN_UNLISTEN_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_unlisten_req_wire) == 4, "qtp_chan_unlisten_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_unlisten_req_wire, listener) == 0, "qtp_chan_unlisten_req_wire.listener");
static inline size_t qtp_chan_unlisten_req_size(const struct qtp_chan_unlisten_req *v)
{
	(void)v;
	return QTP_CHAN_UNLISTEN_REQ_FIXED;
}
static inline long qtp_chan_unlisten_req_encode(const struct qtp_chan_unlisten_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_unlisten_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_unlisten_req_wire, listener), (uint32_t)v->listener);
	p += QTP_CHAN_UNLISTEN_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_unlisten_req_decode(const void *buf, size_t len, struct qtp_chan_unlisten_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_UNLISTEN_REQ_FIXED;
	if (len < QTP_CHAN_UNLISTEN_REQ_FIXED)
		return -EBADMSG;
	v->listener = qtp_get32(p + offsetof(struct qtp_chan_unlisten_req_wire, listener));
	return (long)pos;
}

/* CHAN_SCM: `count` `ScmRec` records; the descriptors belong to the next CHAN_DATA. */
struct qtp_chan_scm_wire {
	uint32_t count;
} __attribute__((packed));
struct qtp_chan_scm {
	uint32_t count;
	const uint8_t *records; /* rest */
	uint32_t records_len;
};
#define QTP_CHAN_SCM_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_scm_wire) == 4, "qtp_chan_scm_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_scm_wire, count) == 0, "qtp_chan_scm_wire.count");
static inline size_t qtp_chan_scm_size(const struct qtp_chan_scm *v)
{
	return QTP_CHAN_SCM_FIXED + (size_t)v->records_len * 1;
}
static inline long qtp_chan_scm_encode(const struct qtp_chan_scm *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_scm_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_chan_scm_wire, count), (uint32_t)v->count);
	p += QTP_CHAN_SCM_FIXED;
	if (v->records_len)
		memcpy(p, v->records, (size_t)v->records_len * 1);
	p += (size_t)v->records_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_scm_decode(const void *buf, size_t len, struct qtp_chan_scm *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_SCM_FIXED;
	if (len < QTP_CHAN_SCM_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_chan_scm_wire, count));
	v->records_len = (uint32_t)(len - pos);
	if (v->records_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->records_len * 1)
		return -EBADMSG;
	v->records = p + pos;
	pos += (size_t)v->records_len * 1;
	return (long)pos;
}

/* One passed descriptor. */
struct qtp_scm_rec_wire {
	uint32_t kind;
	uint32_t flags;
	uint64_t offset;
	uint32_t channel;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_scm_rec {
	uint32_t kind;
	uint32_t flags;
	uint64_t offset;
	uint32_t channel;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_SCM_REC_FIXED 22
QTP_STATIC_ASSERT(sizeof(struct qtp_scm_rec_wire) == 22, "qtp_scm_rec_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_scm_rec_wire, kind) == 0, "qtp_scm_rec_wire.kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_scm_rec_wire, flags) == 4, "qtp_scm_rec_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_scm_rec_wire, offset) == 8, "qtp_scm_rec_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_scm_rec_wire, channel) == 16, "qtp_scm_rec_wire.channel");
QTP_STATIC_ASSERT(offsetof(struct qtp_scm_rec_wire, path_len) == 20, "qtp_scm_rec_wire.path_len");
static inline size_t qtp_scm_rec_size(const struct qtp_scm_rec *v)
{
	return QTP_SCM_REC_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_scm_rec_encode(const struct qtp_scm_rec *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_scm_rec_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_scm_rec_wire, kind), (uint32_t)v->kind);
	qtp_put32(p + offsetof(struct qtp_scm_rec_wire, flags), (uint32_t)v->flags);
	qtp_put64(p + offsetof(struct qtp_scm_rec_wire, offset), (uint64_t)v->offset);
	qtp_put32(p + offsetof(struct qtp_scm_rec_wire, channel), (uint32_t)v->channel);
	qtp_put16(p + offsetof(struct qtp_scm_rec_wire, path_len), (uint16_t)v->path_len);
	p += QTP_SCM_REC_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_scm_rec_decode(const void *buf, size_t len, struct qtp_scm_rec *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_SCM_REC_FIXED;
	if (len < QTP_SCM_REC_FIXED)
		return -EBADMSG;
	v->kind = qtp_get32(p + offsetof(struct qtp_scm_rec_wire, kind));
	v->flags = qtp_get32(p + offsetof(struct qtp_scm_rec_wire, flags));
	v->offset = qtp_get64(p + offsetof(struct qtp_scm_rec_wire, offset));
	v->channel = qtp_get32(p + offsetof(struct qtp_scm_rec_wire, channel));
	v->path_len = qtp_get16(p + offsetof(struct qtp_scm_rec_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* REXEC_EXEC: run `argv[0]` (compared byte for byte with the server's whitelist)  with this argv, environment, working directory and descriptors. The response is  RexecStarted, or an error frame (EBADMSG malformed, E2BIG too large). Every frame  after the response belongs to the session (see "Remote exec" in PROTOCOL.md). */
struct qtp_rexec_exec_req_wire {
	uint32_t flags;
	uint32_t window;
	uint32_t fd_count;
	uint32_t argv_len;
	uint32_t env_len;
	uint16_t cwd_len;
} __attribute__((packed));
struct qtp_rexec_exec_req {
	uint32_t flags;
	uint32_t window;
	uint32_t fd_count;
	const uint8_t *argv; /* bytes32 */
	uint32_t argv_len;
	const uint8_t *env; /* bytes32 */
	uint32_t env_len;
	const uint8_t *cwd; /* path */
	uint32_t cwd_len;
	const uint8_t *fds; /* rest */
	uint32_t fds_len;
};
#define QTP_REXEC_EXEC_REQ_FIXED 22
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_exec_req_wire) == 22, "qtp_rexec_exec_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, flags) == 0, "qtp_rexec_exec_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, window) == 4, "qtp_rexec_exec_req_wire.window");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, fd_count) == 8, "qtp_rexec_exec_req_wire.fd_count");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, argv_len) == 12, "qtp_rexec_exec_req_wire.argv_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, env_len) == 16, "qtp_rexec_exec_req_wire.env_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exec_req_wire, cwd_len) == 20, "qtp_rexec_exec_req_wire.cwd_len");
static inline size_t qtp_rexec_exec_req_size(const struct qtp_rexec_exec_req *v)
{
	return QTP_REXEC_EXEC_REQ_FIXED + (size_t)v->argv_len * 1 + (size_t)v->env_len * 1 + (size_t)v->cwd_len * 1 + (size_t)v->fds_len * 1;
}
static inline long qtp_rexec_exec_req_encode(const struct qtp_rexec_exec_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_exec_req_size(v);
	if (v->argv_len > 1052672)
		return -EINVAL;
	if (v->env_len > 1052672)
		return -EINVAL;
	if (v->cwd_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_exec_req_wire, flags), (uint32_t)v->flags);
	qtp_put32(p + offsetof(struct qtp_rexec_exec_req_wire, window), (uint32_t)v->window);
	qtp_put32(p + offsetof(struct qtp_rexec_exec_req_wire, fd_count), (uint32_t)v->fd_count);
	qtp_put32(p + offsetof(struct qtp_rexec_exec_req_wire, argv_len), v->argv_len);
	qtp_put32(p + offsetof(struct qtp_rexec_exec_req_wire, env_len), v->env_len);
	qtp_put16(p + offsetof(struct qtp_rexec_exec_req_wire, cwd_len), (uint16_t)v->cwd_len);
	p += QTP_REXEC_EXEC_REQ_FIXED;
	if (v->argv_len)
		memcpy(p, v->argv, (size_t)v->argv_len * 1);
	p += (size_t)v->argv_len * 1;
	if (v->env_len)
		memcpy(p, v->env, (size_t)v->env_len * 1);
	p += (size_t)v->env_len * 1;
	if (v->cwd_len)
		memcpy(p, v->cwd, (size_t)v->cwd_len * 1);
	p += (size_t)v->cwd_len * 1;
	if (v->fds_len)
		memcpy(p, v->fds, (size_t)v->fds_len * 1);
	p += (size_t)v->fds_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_exec_req_decode(const void *buf, size_t len, struct qtp_rexec_exec_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_EXEC_REQ_FIXED;
	if (len < QTP_REXEC_EXEC_REQ_FIXED)
		return -EBADMSG;
	v->flags = qtp_get32(p + offsetof(struct qtp_rexec_exec_req_wire, flags));
	v->window = qtp_get32(p + offsetof(struct qtp_rexec_exec_req_wire, window));
	v->fd_count = qtp_get32(p + offsetof(struct qtp_rexec_exec_req_wire, fd_count));
	v->argv_len = qtp_get32(p + offsetof(struct qtp_rexec_exec_req_wire, argv_len));
	if (v->argv_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->argv_len * 1)
		return -EBADMSG;
	v->argv = p + pos;
	pos += (size_t)v->argv_len * 1;
	v->env_len = qtp_get32(p + offsetof(struct qtp_rexec_exec_req_wire, env_len));
	if (v->env_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->env_len * 1)
		return -EBADMSG;
	v->env = p + pos;
	pos += (size_t)v->env_len * 1;
	v->cwd_len = qtp_get16(p + offsetof(struct qtp_rexec_exec_req_wire, cwd_len));
	if (v->cwd_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->cwd_len * 1)
		return -EBADMSG;
	v->cwd = p + pos;
	if (v->cwd_len && memchr(p + pos, 0, v->cwd_len))
		return -EBADMSG;
	pos += (size_t)v->cwd_len * 1;
	v->fds_len = (uint32_t)(len - pos);
	if (v->fds_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->fds_len * 1)
		return -EBADMSG;
	v->fds = p + pos;
	pos += (size_t)v->fds_len * 1;
	return (long)pos;
}

/* One descriptor the remote process gets at the same number. */
struct qtp_rexec_fd_wire {
	uint32_t fd;
	uint32_t kind;
	uint32_t stream;
	uint32_t flags;
	uint64_t offset;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_rexec_fd {
	uint32_t fd;
	uint32_t kind;
	uint32_t stream;
	uint32_t flags;
	uint64_t offset;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_REXEC_FD_FIXED 26
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_fd_wire) == 26, "qtp_rexec_fd_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, fd) == 0, "qtp_rexec_fd_wire.fd");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, kind) == 4, "qtp_rexec_fd_wire.kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, stream) == 8, "qtp_rexec_fd_wire.stream");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, flags) == 12, "qtp_rexec_fd_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, offset) == 16, "qtp_rexec_fd_wire.offset");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_fd_wire, path_len) == 24, "qtp_rexec_fd_wire.path_len");
static inline size_t qtp_rexec_fd_size(const struct qtp_rexec_fd *v)
{
	return QTP_REXEC_FD_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_rexec_fd_encode(const struct qtp_rexec_fd *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_fd_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_fd_wire, fd), (uint32_t)v->fd);
	qtp_put32(p + offsetof(struct qtp_rexec_fd_wire, kind), (uint32_t)v->kind);
	qtp_put32(p + offsetof(struct qtp_rexec_fd_wire, stream), (uint32_t)v->stream);
	qtp_put32(p + offsetof(struct qtp_rexec_fd_wire, flags), (uint32_t)v->flags);
	qtp_put64(p + offsetof(struct qtp_rexec_fd_wire, offset), (uint64_t)v->offset);
	qtp_put16(p + offsetof(struct qtp_rexec_fd_wire, path_len), (uint16_t)v->path_len);
	p += QTP_REXEC_FD_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_fd_decode(const void *buf, size_t len, struct qtp_rexec_fd *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_FD_FIXED;
	if (len < QTP_REXEC_FD_FIXED)
		return -EBADMSG;
	v->fd = qtp_get32(p + offsetof(struct qtp_rexec_fd_wire, fd));
	v->kind = qtp_get32(p + offsetof(struct qtp_rexec_fd_wire, kind));
	v->stream = qtp_get32(p + offsetof(struct qtp_rexec_fd_wire, stream));
	v->flags = qtp_get32(p + offsetof(struct qtp_rexec_fd_wire, flags));
	v->offset = qtp_get64(p + offsetof(struct qtp_rexec_fd_wire, offset));
	v->path_len = qtp_get16(p + offsetof(struct qtp_rexec_fd_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* REXEC_EXEC response: the session is open. */
struct qtp_rexec_started_wire {
	int32_t pid;
	uint32_t window;
	uint8_t token[16];
} __attribute__((packed));
struct qtp_rexec_started {
	int32_t pid;
	uint32_t window;
	uint8_t token[16];
};
#define QTP_REXEC_STARTED_FIXED 24
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_started_wire) == 24, "qtp_rexec_started_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_started_wire, pid) == 0, "qtp_rexec_started_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_started_wire, window) == 4, "qtp_rexec_started_wire.window");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_started_wire, token) == 8, "qtp_rexec_started_wire.token");
static inline size_t qtp_rexec_started_size(const struct qtp_rexec_started *v)
{
	(void)v;
	return QTP_REXEC_STARTED_FIXED;
}
static inline long qtp_rexec_started_encode(const struct qtp_rexec_started *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_started_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_started_wire, pid), (uint32_t)v->pid);
	qtp_put32(p + offsetof(struct qtp_rexec_started_wire, window), (uint32_t)v->window);
	memcpy(p + offsetof(struct qtp_rexec_started_wire, token), v->token, 16);
	p += QTP_REXEC_STARTED_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_started_decode(const void *buf, size_t len, struct qtp_rexec_started *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_STARTED_FIXED;
	if (len < QTP_REXEC_STARTED_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_started_wire, pid));
	v->window = qtp_get32(p + offsetof(struct qtp_rexec_started_wire, window));
	memcpy(v->token, p + offsetof(struct qtp_rexec_started_wire, token), 16);
	return (long)pos;
}

/* REXEC_ATTACH: rejoin session `pid` on a new connection. */
struct qtp_rexec_attach_req_wire {
	int32_t pid;
	uint8_t token[16];
	uint64_t received;
} __attribute__((packed));
struct qtp_rexec_attach_req {
	int32_t pid;
	uint8_t token[16];
	uint64_t received;
};
#define QTP_REXEC_ATTACH_REQ_FIXED 28
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_attach_req_wire) == 28, "qtp_rexec_attach_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_attach_req_wire, pid) == 0, "qtp_rexec_attach_req_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_attach_req_wire, token) == 4, "qtp_rexec_attach_req_wire.token");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_attach_req_wire, received) == 20, "qtp_rexec_attach_req_wire.received");
static inline size_t qtp_rexec_attach_req_size(const struct qtp_rexec_attach_req *v)
{
	(void)v;
	return QTP_REXEC_ATTACH_REQ_FIXED;
}
static inline long qtp_rexec_attach_req_encode(const struct qtp_rexec_attach_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_attach_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_attach_req_wire, pid), (uint32_t)v->pid);
	memcpy(p + offsetof(struct qtp_rexec_attach_req_wire, token), v->token, 16);
	qtp_put64(p + offsetof(struct qtp_rexec_attach_req_wire, received), (uint64_t)v->received);
	p += QTP_REXEC_ATTACH_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_attach_req_decode(const void *buf, size_t len, struct qtp_rexec_attach_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_ATTACH_REQ_FIXED;
	if (len < QTP_REXEC_ATTACH_REQ_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_attach_req_wire, pid));
	memcpy(v->token, p + offsetof(struct qtp_rexec_attach_req_wire, token), 16);
	v->received = qtp_get64(p + offsetof(struct qtp_rexec_attach_req_wire, received));
	return (long)pos;
}

/* REXEC_ATTACH response (error ESRCH: no such session, EACCES: bad token). */
struct qtp_rexec_attached_wire {
	int32_t pid;
	uint64_t received;
} __attribute__((packed));
struct qtp_rexec_attached {
	int32_t pid;
	uint64_t received;
};
#define QTP_REXEC_ATTACHED_FIXED 12
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_attached_wire) == 12, "qtp_rexec_attached_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_attached_wire, pid) == 0, "qtp_rexec_attached_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_attached_wire, received) == 4, "qtp_rexec_attached_wire.received");
static inline size_t qtp_rexec_attached_size(const struct qtp_rexec_attached *v)
{
	(void)v;
	return QTP_REXEC_ATTACHED_FIXED;
}
static inline long qtp_rexec_attached_encode(const struct qtp_rexec_attached *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_attached_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_attached_wire, pid), (uint32_t)v->pid);
	qtp_put64(p + offsetof(struct qtp_rexec_attached_wire, received), (uint64_t)v->received);
	p += QTP_REXEC_ATTACHED_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_attached_decode(const void *buf, size_t len, struct qtp_rexec_attached *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_ATTACHED_FIXED;
	if (len < QTP_REXEC_ATTACHED_FIXED)
		return -EBADMSG;
	v->pid = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_attached_wire, pid));
	v->received = qtp_get64(p + offsetof(struct qtp_rexec_attached_wire, received));
	return (long)pos;
}

/* REXEC_EOF. */
struct qtp_rexec_eof_wire {
	uint32_t how;
	int32_t error;
} __attribute__((packed));
struct qtp_rexec_eof {
	uint32_t how;
	int32_t error;
};
#define QTP_REXEC_EOF_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_eof_wire) == 8, "qtp_rexec_eof_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_eof_wire, how) == 0, "qtp_rexec_eof_wire.how");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_eof_wire, error) == 4, "qtp_rexec_eof_wire.error");
static inline size_t qtp_rexec_eof_size(const struct qtp_rexec_eof *v)
{
	(void)v;
	return QTP_REXEC_EOF_FIXED;
}
static inline long qtp_rexec_eof_encode(const struct qtp_rexec_eof *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_eof_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_eof_wire, how), (uint32_t)v->how);
	qtp_put32(p + offsetof(struct qtp_rexec_eof_wire, error), (uint32_t)v->error);
	p += QTP_REXEC_EOF_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_eof_decode(const void *buf, size_t len, struct qtp_rexec_eof *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_EOF_FIXED;
	if (len < QTP_REXEC_EOF_FIXED)
		return -EBADMSG;
	v->how = qtp_get32(p + offsetof(struct qtp_rexec_eof_wire, how));
	v->error = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_eof_wire, error));
	return (long)pos;
}

/* REXEC_CREDIT. */
struct qtp_rexec_credit_wire {
	uint64_t consumed;
} __attribute__((packed));
struct qtp_rexec_credit {
	uint64_t consumed;
};
#define QTP_REXEC_CREDIT_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_credit_wire) == 8, "qtp_rexec_credit_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_credit_wire, consumed) == 0, "qtp_rexec_credit_wire.consumed");
static inline size_t qtp_rexec_credit_size(const struct qtp_rexec_credit *v)
{
	(void)v;
	return QTP_REXEC_CREDIT_FIXED;
}
static inline long qtp_rexec_credit_encode(const struct qtp_rexec_credit *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_credit_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_rexec_credit_wire, consumed), (uint64_t)v->consumed);
	p += QTP_REXEC_CREDIT_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_credit_decode(const void *buf, size_t len, struct qtp_rexec_credit *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_CREDIT_FIXED;
	if (len < QTP_REXEC_CREDIT_FIXED)
		return -EBADMSG;
	v->consumed = qtp_get64(p + offsetof(struct qtp_rexec_credit_wire, consumed));
	return (long)pos;
}

/* REXEC_ACK. */
struct qtp_rexec_ack_wire {
	uint64_t received;
} __attribute__((packed));
struct qtp_rexec_ack {
	uint64_t received;
};
#define QTP_REXEC_ACK_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_ack_wire) == 8, "qtp_rexec_ack_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_ack_wire, received) == 0, "qtp_rexec_ack_wire.received");
static inline size_t qtp_rexec_ack_size(const struct qtp_rexec_ack *v)
{
	(void)v;
	return QTP_REXEC_ACK_FIXED;
}
static inline long qtp_rexec_ack_encode(const struct qtp_rexec_ack *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_ack_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_rexec_ack_wire, received), (uint64_t)v->received);
	p += QTP_REXEC_ACK_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_ack_decode(const void *buf, size_t len, struct qtp_rexec_ack *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_ACK_FIXED;
	if (len < QTP_REXEC_ACK_FIXED)
		return -EBADMSG;
	v->received = qtp_get64(p + offsetof(struct qtp_rexec_ack_wire, received));
	return (long)pos;
}

/* REXEC_SIGNAL. */
struct qtp_rexec_signal_wire {
	int32_t signal;
	uint32_t flags;
} __attribute__((packed));
struct qtp_rexec_signal {
	int32_t signal;
	uint32_t flags;
};
#define QTP_REXEC_SIGNAL_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_signal_wire) == 8, "qtp_rexec_signal_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_signal_wire, signal) == 0, "qtp_rexec_signal_wire.signal");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_signal_wire, flags) == 4, "qtp_rexec_signal_wire.flags");
static inline size_t qtp_rexec_signal_size(const struct qtp_rexec_signal *v)
{
	(void)v;
	return QTP_REXEC_SIGNAL_FIXED;
}
static inline long qtp_rexec_signal_encode(const struct qtp_rexec_signal *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_signal_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_signal_wire, signal), (uint32_t)v->signal);
	qtp_put32(p + offsetof(struct qtp_rexec_signal_wire, flags), (uint32_t)v->flags);
	p += QTP_REXEC_SIGNAL_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_signal_decode(const void *buf, size_t len, struct qtp_rexec_signal *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_SIGNAL_FIXED;
	if (len < QTP_REXEC_SIGNAL_FIXED)
		return -EBADMSG;
	v->signal = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_signal_wire, signal));
	v->flags = qtp_get32(p + offsetof(struct qtp_rexec_signal_wire, flags));
	return (long)pos;
}

/* REXEC_RELEASE. */
struct qtp_rexec_release_wire {
	uint32_t go;
} __attribute__((packed));
struct qtp_rexec_release {
	uint32_t go;
};
#define QTP_REXEC_RELEASE_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_release_wire) == 4, "qtp_rexec_release_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_release_wire, go) == 0, "qtp_rexec_release_wire.go");
static inline size_t qtp_rexec_release_size(const struct qtp_rexec_release *v)
{
	(void)v;
	return QTP_REXEC_RELEASE_FIXED;
}
static inline long qtp_rexec_release_encode(const struct qtp_rexec_release *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_release_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_release_wire, go), (uint32_t)v->go);
	p += QTP_REXEC_RELEASE_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_release_decode(const void *buf, size_t len, struct qtp_rexec_release *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_RELEASE_FIXED;
	if (len < QTP_REXEC_RELEASE_FIXED)
		return -EBADMSG;
	v->go = qtp_get32(p + offsetof(struct qtp_rexec_release_wire, go));
	return (long)pos;
}

/* REXEC_CONN (the header's channel field is the new stream id). */
struct qtp_rexec_conn_wire {
	uint32_t fd;
} __attribute__((packed));
struct qtp_rexec_conn {
	uint32_t fd;
};
#define QTP_REXEC_CONN_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_conn_wire) == 4, "qtp_rexec_conn_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_conn_wire, fd) == 0, "qtp_rexec_conn_wire.fd");
static inline size_t qtp_rexec_conn_size(const struct qtp_rexec_conn *v)
{
	(void)v;
	return QTP_REXEC_CONN_FIXED;
}
static inline long qtp_rexec_conn_encode(const struct qtp_rexec_conn *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_conn_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_conn_wire, fd), (uint32_t)v->fd);
	p += QTP_REXEC_CONN_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_conn_decode(const void *buf, size_t len, struct qtp_rexec_conn *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_CONN_FIXED;
	if (len < QTP_REXEC_CONN_FIXED)
		return -EBADMSG;
	v->fd = qtp_get32(p + offsetof(struct qtp_rexec_conn_wire, fd));
	return (long)pos;
}

/* REXEC_EXIT. */
struct qtp_rexec_exit_wire {
	int32_t status;
	int32_t signal;
} __attribute__((packed));
struct qtp_rexec_exit {
	int32_t status;
	int32_t signal;
};
#define QTP_REXEC_EXIT_FIXED 8
QTP_STATIC_ASSERT(sizeof(struct qtp_rexec_exit_wire) == 8, "qtp_rexec_exit_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exit_wire, status) == 0, "qtp_rexec_exit_wire.status");
QTP_STATIC_ASSERT(offsetof(struct qtp_rexec_exit_wire, signal) == 4, "qtp_rexec_exit_wire.signal");
static inline size_t qtp_rexec_exit_size(const struct qtp_rexec_exit *v)
{
	(void)v;
	return QTP_REXEC_EXIT_FIXED;
}
static inline long qtp_rexec_exit_encode(const struct qtp_rexec_exit *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_rexec_exit_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_rexec_exit_wire, status), (uint32_t)v->status);
	qtp_put32(p + offsetof(struct qtp_rexec_exit_wire, signal), (uint32_t)v->signal);
	p += QTP_REXEC_EXIT_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_rexec_exit_decode(const void *buf, size_t len, struct qtp_rexec_exit *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_REXEC_EXIT_FIXED;
	if (len < QTP_REXEC_EXIT_FIXED)
		return -EBADMSG;
	v->status = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_exit_wire, status));
	v->signal = (int32_t)qtp_get32(p + offsetof(struct qtp_rexec_exit_wire, signal));
	return (long)pos;
}

/* ADMIN_INFO response. */
struct qtp_admin_info_wire {
	uint16_t proto_version;
	uint32_t pid;
	uint32_t cores;
	uint64_t uptime_ms;
	uint32_t sessions;
	uint32_t connections;
	uint32_t channels;
	uint32_t log_level;
	uint16_t component_len;
	uint16_t version_len;
} __attribute__((packed));
struct qtp_admin_info {
	uint16_t proto_version;
	uint32_t pid;
	uint32_t cores;
	uint64_t uptime_ms;
	uint32_t sessions;
	uint32_t connections;
	uint32_t channels;
	uint32_t log_level;
	const uint8_t *component; /* name */
	uint32_t component_len;
	const uint8_t *version; /* name */
	uint32_t version_len;
};
#define QTP_ADMIN_INFO_FIXED 38
QTP_STATIC_ASSERT(sizeof(struct qtp_admin_info_wire) == 38, "qtp_admin_info_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, proto_version) == 0, "qtp_admin_info_wire.proto_version");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, pid) == 2, "qtp_admin_info_wire.pid");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, cores) == 6, "qtp_admin_info_wire.cores");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, uptime_ms) == 10, "qtp_admin_info_wire.uptime_ms");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, sessions) == 18, "qtp_admin_info_wire.sessions");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, connections) == 22, "qtp_admin_info_wire.connections");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, channels) == 26, "qtp_admin_info_wire.channels");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, log_level) == 30, "qtp_admin_info_wire.log_level");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, component_len) == 34, "qtp_admin_info_wire.component_len");
QTP_STATIC_ASSERT(offsetof(struct qtp_admin_info_wire, version_len) == 36, "qtp_admin_info_wire.version_len");
static inline size_t qtp_admin_info_size(const struct qtp_admin_info *v)
{
	return QTP_ADMIN_INFO_FIXED + (size_t)v->component_len * 1 + (size_t)v->version_len * 1;
}
static inline long qtp_admin_info_encode(const struct qtp_admin_info *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_admin_info_size(v);
	if (v->component_len > 255)
		return -EINVAL;
	if (v->version_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put16(p + offsetof(struct qtp_admin_info_wire, proto_version), v->proto_version);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, pid), (uint32_t)v->pid);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, cores), (uint32_t)v->cores);
	qtp_put64(p + offsetof(struct qtp_admin_info_wire, uptime_ms), (uint64_t)v->uptime_ms);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, sessions), (uint32_t)v->sessions);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, connections), (uint32_t)v->connections);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, channels), (uint32_t)v->channels);
	qtp_put32(p + offsetof(struct qtp_admin_info_wire, log_level), (uint32_t)v->log_level);
	qtp_put16(p + offsetof(struct qtp_admin_info_wire, component_len), (uint16_t)v->component_len);
	qtp_put16(p + offsetof(struct qtp_admin_info_wire, version_len), (uint16_t)v->version_len);
	p += QTP_ADMIN_INFO_FIXED;
	if (v->component_len)
		memcpy(p, v->component, (size_t)v->component_len * 1);
	p += (size_t)v->component_len * 1;
	if (v->version_len)
		memcpy(p, v->version, (size_t)v->version_len * 1);
	p += (size_t)v->version_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_admin_info_decode(const void *buf, size_t len, struct qtp_admin_info *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_ADMIN_INFO_FIXED;
	if (len < QTP_ADMIN_INFO_FIXED)
		return -EBADMSG;
	v->proto_version = qtp_get16(p + offsetof(struct qtp_admin_info_wire, proto_version));
	v->pid = qtp_get32(p + offsetof(struct qtp_admin_info_wire, pid));
	v->cores = qtp_get32(p + offsetof(struct qtp_admin_info_wire, cores));
	v->uptime_ms = qtp_get64(p + offsetof(struct qtp_admin_info_wire, uptime_ms));
	v->sessions = qtp_get32(p + offsetof(struct qtp_admin_info_wire, sessions));
	v->connections = qtp_get32(p + offsetof(struct qtp_admin_info_wire, connections));
	v->channels = qtp_get32(p + offsetof(struct qtp_admin_info_wire, channels));
	v->log_level = qtp_get32(p + offsetof(struct qtp_admin_info_wire, log_level));
	v->component_len = qtp_get16(p + offsetof(struct qtp_admin_info_wire, component_len));
	if (v->component_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->component_len * 1)
		return -EBADMSG;
	v->component = p + pos;
	if (v->component_len && memchr(p + pos, 0, v->component_len))
		return -EBADMSG;
	pos += (size_t)v->component_len * 1;
	v->version_len = qtp_get16(p + offsetof(struct qtp_admin_info_wire, version_len));
	if (v->version_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->version_len * 1)
		return -EBADMSG;
	v->version = p + pos;
	if (v->version_len && memchr(p + pos, 0, v->version_len))
		return -EBADMSG;
	pos += (size_t)v->version_len * 1;
	return (long)pos;
}

/* ADMIN_WL_LIST: `wl_type` = a `WlType`, or `WL_ALL`. */
struct qtp_wl_list_req_wire {
	uint32_t wl_type;
} __attribute__((packed));
struct qtp_wl_list_req {
	uint32_t wl_type;
};
#define QTP_WL_LIST_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_list_req_wire) == 4, "qtp_wl_list_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_list_req_wire, wl_type) == 0, "qtp_wl_list_req_wire.wl_type");
static inline size_t qtp_wl_list_req_size(const struct qtp_wl_list_req *v)
{
	(void)v;
	return QTP_WL_LIST_REQ_FIXED;
}
static inline long qtp_wl_list_req_encode(const struct qtp_wl_list_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_list_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_list_req_wire, wl_type), (uint32_t)v->wl_type);
	p += QTP_WL_LIST_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_list_req_decode(const void *buf, size_t len, struct qtp_wl_list_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_LIST_REQ_FIXED;
	if (len < QTP_WL_LIST_REQ_FIXED)
		return -EBADMSG;
	v->wl_type = qtp_get32(p + offsetof(struct qtp_wl_list_req_wire, wl_type));
	return (long)pos;
}

/* ADMIN_WL_LIST response: `count` `WlEntry` records. */
struct qtp_wl_list_rsp_wire {
	uint32_t count;
} __attribute__((packed));
struct qtp_wl_list_rsp {
	uint32_t count;
	const uint8_t *entries; /* rest */
	uint32_t entries_len;
};
#define QTP_WL_LIST_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_list_rsp_wire) == 4, "qtp_wl_list_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_list_rsp_wire, count) == 0, "qtp_wl_list_rsp_wire.count");
static inline size_t qtp_wl_list_rsp_size(const struct qtp_wl_list_rsp *v)
{
	return QTP_WL_LIST_RSP_FIXED + (size_t)v->entries_len * 1;
}
static inline long qtp_wl_list_rsp_encode(const struct qtp_wl_list_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_list_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_list_rsp_wire, count), (uint32_t)v->count);
	p += QTP_WL_LIST_RSP_FIXED;
	if (v->entries_len)
		memcpy(p, v->entries, (size_t)v->entries_len * 1);
	p += (size_t)v->entries_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_list_rsp_decode(const void *buf, size_t len, struct qtp_wl_list_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_LIST_RSP_FIXED;
	if (len < QTP_WL_LIST_RSP_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_wl_list_rsp_wire, count));
	v->entries_len = (uint32_t)(len - pos);
	if (v->entries_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->entries_len * 1)
		return -EBADMSG;
	v->entries = p + pos;
	pos += (size_t)v->entries_len * 1;
	return (long)pos;
}

/* One whitelist entry. */
struct qtp_wl_entry_wire {
	uint32_t wl_type;
	uint32_t index;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_wl_entry {
	uint32_t wl_type;
	uint32_t index;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_WL_ENTRY_FIXED 10
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_entry_wire) == 10, "qtp_wl_entry_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_entry_wire, wl_type) == 0, "qtp_wl_entry_wire.wl_type");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_entry_wire, index) == 4, "qtp_wl_entry_wire.index");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_entry_wire, path_len) == 8, "qtp_wl_entry_wire.path_len");
static inline size_t qtp_wl_entry_size(const struct qtp_wl_entry *v)
{
	return QTP_WL_ENTRY_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_wl_entry_encode(const struct qtp_wl_entry *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_entry_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_entry_wire, wl_type), (uint32_t)v->wl_type);
	qtp_put32(p + offsetof(struct qtp_wl_entry_wire, index), (uint32_t)v->index);
	qtp_put16(p + offsetof(struct qtp_wl_entry_wire, path_len), (uint16_t)v->path_len);
	p += QTP_WL_ENTRY_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_entry_decode(const void *buf, size_t len, struct qtp_wl_entry *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_ENTRY_FIXED;
	if (len < QTP_WL_ENTRY_FIXED)
		return -EBADMSG;
	v->wl_type = qtp_get32(p + offsetof(struct qtp_wl_entry_wire, wl_type));
	v->index = qtp_get32(p + offsetof(struct qtp_wl_entry_wire, index));
	v->path_len = qtp_get16(p + offsetof(struct qtp_wl_entry_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* ADMIN_WL_ADD. */
struct qtp_wl_add_req_wire {
	uint32_t wl_type;
	uint32_t flags;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_wl_add_req {
	uint32_t wl_type;
	uint32_t flags;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_WL_ADD_REQ_FIXED 10
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_add_req_wire) == 10, "qtp_wl_add_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_add_req_wire, wl_type) == 0, "qtp_wl_add_req_wire.wl_type");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_add_req_wire, flags) == 4, "qtp_wl_add_req_wire.flags");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_add_req_wire, path_len) == 8, "qtp_wl_add_req_wire.path_len");
static inline size_t qtp_wl_add_req_size(const struct qtp_wl_add_req *v)
{
	return QTP_WL_ADD_REQ_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_wl_add_req_encode(const struct qtp_wl_add_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_add_req_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_add_req_wire, wl_type), (uint32_t)v->wl_type);
	qtp_put32(p + offsetof(struct qtp_wl_add_req_wire, flags), (uint32_t)v->flags);
	qtp_put16(p + offsetof(struct qtp_wl_add_req_wire, path_len), (uint16_t)v->path_len);
	p += QTP_WL_ADD_REQ_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_add_req_decode(const void *buf, size_t len, struct qtp_wl_add_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_ADD_REQ_FIXED;
	if (len < QTP_WL_ADD_REQ_FIXED)
		return -EBADMSG;
	v->wl_type = qtp_get32(p + offsetof(struct qtp_wl_add_req_wire, wl_type));
	v->flags = qtp_get32(p + offsetof(struct qtp_wl_add_req_wire, flags));
	v->path_len = qtp_get16(p + offsetof(struct qtp_wl_add_req_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* ADMIN_WL_ADD response. */
struct qtp_wl_add_rsp_wire {
	uint32_t index;
} __attribute__((packed));
struct qtp_wl_add_rsp {
	uint32_t index;
};
#define QTP_WL_ADD_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_add_rsp_wire) == 4, "qtp_wl_add_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_add_rsp_wire, index) == 0, "qtp_wl_add_rsp_wire.index");
static inline size_t qtp_wl_add_rsp_size(const struct qtp_wl_add_rsp *v)
{
	(void)v;
	return QTP_WL_ADD_RSP_FIXED;
}
static inline long qtp_wl_add_rsp_encode(const struct qtp_wl_add_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_add_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_add_rsp_wire, index), (uint32_t)v->index);
	p += QTP_WL_ADD_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_add_rsp_decode(const void *buf, size_t len, struct qtp_wl_add_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_ADD_RSP_FIXED;
	if (len < QTP_WL_ADD_RSP_FIXED)
		return -EBADMSG;
	v->index = qtp_get32(p + offsetof(struct qtp_wl_add_rsp_wire, index));
	return (long)pos;
}

/* ADMIN_WL_DEL. */
struct qtp_wl_del_req_wire {
	uint32_t wl_type;
	uint32_t index;
	uint32_t flags;
} __attribute__((packed));
struct qtp_wl_del_req {
	uint32_t wl_type;
	uint32_t index;
	uint32_t flags;
};
#define QTP_WL_DEL_REQ_FIXED 12
QTP_STATIC_ASSERT(sizeof(struct qtp_wl_del_req_wire) == 12, "qtp_wl_del_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_del_req_wire, wl_type) == 0, "qtp_wl_del_req_wire.wl_type");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_del_req_wire, index) == 4, "qtp_wl_del_req_wire.index");
QTP_STATIC_ASSERT(offsetof(struct qtp_wl_del_req_wire, flags) == 8, "qtp_wl_del_req_wire.flags");
static inline size_t qtp_wl_del_req_size(const struct qtp_wl_del_req *v)
{
	(void)v;
	return QTP_WL_DEL_REQ_FIXED;
}
static inline long qtp_wl_del_req_encode(const struct qtp_wl_del_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_wl_del_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_wl_del_req_wire, wl_type), (uint32_t)v->wl_type);
	qtp_put32(p + offsetof(struct qtp_wl_del_req_wire, index), (uint32_t)v->index);
	qtp_put32(p + offsetof(struct qtp_wl_del_req_wire, flags), (uint32_t)v->flags);
	p += QTP_WL_DEL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_wl_del_req_decode(const void *buf, size_t len, struct qtp_wl_del_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_WL_DEL_REQ_FIXED;
	if (len < QTP_WL_DEL_REQ_FIXED)
		return -EBADMSG;
	v->wl_type = qtp_get32(p + offsetof(struct qtp_wl_del_req_wire, wl_type));
	v->index = qtp_get32(p + offsetof(struct qtp_wl_del_req_wire, index));
	v->flags = qtp_get32(p + offsetof(struct qtp_wl_del_req_wire, flags));
	return (long)pos;
}

/* ADMIN_LOG_LEVEL: `LOG_*`, or `LOG_QUERY` to only read it. */
struct qtp_log_level_req_wire {
	uint32_t level;
} __attribute__((packed));
struct qtp_log_level_req {
	uint32_t level;
};
#define QTP_LOG_LEVEL_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_log_level_req_wire) == 4, "qtp_log_level_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_log_level_req_wire, level) == 0, "qtp_log_level_req_wire.level");
static inline size_t qtp_log_level_req_size(const struct qtp_log_level_req *v)
{
	(void)v;
	return QTP_LOG_LEVEL_REQ_FIXED;
}
static inline long qtp_log_level_req_encode(const struct qtp_log_level_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_log_level_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_log_level_req_wire, level), (uint32_t)v->level);
	p += QTP_LOG_LEVEL_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_log_level_req_decode(const void *buf, size_t len, struct qtp_log_level_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LOG_LEVEL_REQ_FIXED;
	if (len < QTP_LOG_LEVEL_REQ_FIXED)
		return -EBADMSG;
	v->level = qtp_get32(p + offsetof(struct qtp_log_level_req_wire, level));
	return (long)pos;
}

/* ADMIN_LOG_LEVEL response: the level now in force. */
struct qtp_log_level_rsp_wire {
	uint32_t level;
} __attribute__((packed));
struct qtp_log_level_rsp {
	uint32_t level;
};
#define QTP_LOG_LEVEL_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_log_level_rsp_wire) == 4, "qtp_log_level_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_log_level_rsp_wire, level) == 0, "qtp_log_level_rsp_wire.level");
static inline size_t qtp_log_level_rsp_size(const struct qtp_log_level_rsp *v)
{
	(void)v;
	return QTP_LOG_LEVEL_RSP_FIXED;
}
static inline long qtp_log_level_rsp_encode(const struct qtp_log_level_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_log_level_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_log_level_rsp_wire, level), (uint32_t)v->level);
	p += QTP_LOG_LEVEL_RSP_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_log_level_rsp_decode(const void *buf, size_t len, struct qtp_log_level_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_LOG_LEVEL_RSP_FIXED;
	if (len < QTP_LOG_LEVEL_RSP_FIXED)
		return -EBADMSG;
	v->level = qtp_get32(p + offsetof(struct qtp_log_level_rsp_wire, level));
	return (long)pos;
}

/* ADMIN_COUNTERS. */
struct qtp_counters_req_wire {
	uint32_t flags;
} __attribute__((packed));
struct qtp_counters_req {
	uint32_t flags;
};
#define QTP_COUNTERS_REQ_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_counters_req_wire) == 4, "qtp_counters_req_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_counters_req_wire, flags) == 0, "qtp_counters_req_wire.flags");
static inline size_t qtp_counters_req_size(const struct qtp_counters_req *v)
{
	(void)v;
	return QTP_COUNTERS_REQ_FIXED;
}
static inline long qtp_counters_req_encode(const struct qtp_counters_req *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_counters_req_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_counters_req_wire, flags), (uint32_t)v->flags);
	p += QTP_COUNTERS_REQ_FIXED;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_counters_req_decode(const void *buf, size_t len, struct qtp_counters_req *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_COUNTERS_REQ_FIXED;
	if (len < QTP_COUNTERS_REQ_FIXED)
		return -EBADMSG;
	v->flags = qtp_get32(p + offsetof(struct qtp_counters_req_wire, flags));
	return (long)pos;
}

/* ADMIN_COUNTERS response: `count` `OpCounter` records (operations with traffic). */
struct qtp_counters_rsp_wire {
	uint32_t count;
	uint64_t window_ms;
} __attribute__((packed));
struct qtp_counters_rsp {
	uint32_t count;
	uint64_t window_ms;
	const uint8_t *records; /* rest */
	uint32_t records_len;
};
#define QTP_COUNTERS_RSP_FIXED 12
QTP_STATIC_ASSERT(sizeof(struct qtp_counters_rsp_wire) == 12, "qtp_counters_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_counters_rsp_wire, count) == 0, "qtp_counters_rsp_wire.count");
QTP_STATIC_ASSERT(offsetof(struct qtp_counters_rsp_wire, window_ms) == 4, "qtp_counters_rsp_wire.window_ms");
static inline size_t qtp_counters_rsp_size(const struct qtp_counters_rsp *v)
{
	return QTP_COUNTERS_RSP_FIXED + (size_t)v->records_len * 1;
}
static inline long qtp_counters_rsp_encode(const struct qtp_counters_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_counters_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_counters_rsp_wire, count), (uint32_t)v->count);
	qtp_put64(p + offsetof(struct qtp_counters_rsp_wire, window_ms), (uint64_t)v->window_ms);
	p += QTP_COUNTERS_RSP_FIXED;
	if (v->records_len)
		memcpy(p, v->records, (size_t)v->records_len * 1);
	p += (size_t)v->records_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_counters_rsp_decode(const void *buf, size_t len, struct qtp_counters_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_COUNTERS_RSP_FIXED;
	if (len < QTP_COUNTERS_RSP_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_counters_rsp_wire, count));
	v->window_ms = qtp_get64(p + offsetof(struct qtp_counters_rsp_wire, window_ms));
	v->records_len = (uint32_t)(len - pos);
	if (v->records_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->records_len * 1)
		return -EBADMSG;
	v->records = p + pos;
	pos += (size_t)v->records_len * 1;
	return (long)pos;
}

/* ADMIN_CONNS response: `count` `ConnInfo` records. */
struct qtp_conns_rsp_wire {
	uint32_t count;
} __attribute__((packed));
struct qtp_conns_rsp {
	uint32_t count;
	const uint8_t *records; /* rest */
	uint32_t records_len;
};
#define QTP_CONNS_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_conns_rsp_wire) == 4, "qtp_conns_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_conns_rsp_wire, count) == 0, "qtp_conns_rsp_wire.count");
static inline size_t qtp_conns_rsp_size(const struct qtp_conns_rsp *v)
{
	return QTP_CONNS_RSP_FIXED + (size_t)v->records_len * 1;
}
static inline long qtp_conns_rsp_encode(const struct qtp_conns_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_conns_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_conns_rsp_wire, count), (uint32_t)v->count);
	p += QTP_CONNS_RSP_FIXED;
	if (v->records_len)
		memcpy(p, v->records, (size_t)v->records_len * 1);
	p += (size_t)v->records_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_conns_rsp_decode(const void *buf, size_t len, struct qtp_conns_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CONNS_RSP_FIXED;
	if (len < QTP_CONNS_RSP_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_conns_rsp_wire, count));
	v->records_len = (uint32_t)(len - pos);
	if (v->records_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->records_len * 1)
		return -EBADMSG;
	v->records = p + pos;
	pos += (size_t)v->records_len * 1;
	return (long)pos;
}

/* One connection's state. */
struct qtp_conn_info_wire {
	uint64_t conn_id;
	uint64_t session;
	uint32_t core;
	uint32_t state;
	uint32_t inflight;
	uint32_t channels;
	uint32_t handles;
	uint64_t requests;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint16_t peer_len;
} __attribute__((packed));
struct qtp_conn_info {
	uint64_t conn_id;
	uint64_t session;
	uint32_t core;
	uint32_t state;
	uint32_t inflight;
	uint32_t channels;
	uint32_t handles;
	uint64_t requests;
	uint64_t bytes_in;
	uint64_t bytes_out;
	const uint8_t *peer; /* name */
	uint32_t peer_len;
};
#define QTP_CONN_INFO_FIXED 62
QTP_STATIC_ASSERT(sizeof(struct qtp_conn_info_wire) == 62, "qtp_conn_info_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, conn_id) == 0, "qtp_conn_info_wire.conn_id");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, session) == 8, "qtp_conn_info_wire.session");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, core) == 16, "qtp_conn_info_wire.core");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, state) == 20, "qtp_conn_info_wire.state");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, inflight) == 24, "qtp_conn_info_wire.inflight");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, channels) == 28, "qtp_conn_info_wire.channels");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, handles) == 32, "qtp_conn_info_wire.handles");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, requests) == 36, "qtp_conn_info_wire.requests");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, bytes_in) == 44, "qtp_conn_info_wire.bytes_in");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, bytes_out) == 52, "qtp_conn_info_wire.bytes_out");
QTP_STATIC_ASSERT(offsetof(struct qtp_conn_info_wire, peer_len) == 60, "qtp_conn_info_wire.peer_len");
static inline size_t qtp_conn_info_size(const struct qtp_conn_info *v)
{
	return QTP_CONN_INFO_FIXED + (size_t)v->peer_len * 1;
}
static inline long qtp_conn_info_encode(const struct qtp_conn_info *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_conn_info_size(v);
	if (v->peer_len > 255)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_conn_info_wire, conn_id), (uint64_t)v->conn_id);
	qtp_put64(p + offsetof(struct qtp_conn_info_wire, session), (uint64_t)v->session);
	qtp_put32(p + offsetof(struct qtp_conn_info_wire, core), (uint32_t)v->core);
	qtp_put32(p + offsetof(struct qtp_conn_info_wire, state), (uint32_t)v->state);
	qtp_put32(p + offsetof(struct qtp_conn_info_wire, inflight), (uint32_t)v->inflight);
	qtp_put32(p + offsetof(struct qtp_conn_info_wire, channels), (uint32_t)v->channels);
	qtp_put32(p + offsetof(struct qtp_conn_info_wire, handles), (uint32_t)v->handles);
	qtp_put64(p + offsetof(struct qtp_conn_info_wire, requests), (uint64_t)v->requests);
	qtp_put64(p + offsetof(struct qtp_conn_info_wire, bytes_in), (uint64_t)v->bytes_in);
	qtp_put64(p + offsetof(struct qtp_conn_info_wire, bytes_out), (uint64_t)v->bytes_out);
	qtp_put16(p + offsetof(struct qtp_conn_info_wire, peer_len), (uint16_t)v->peer_len);
	p += QTP_CONN_INFO_FIXED;
	if (v->peer_len)
		memcpy(p, v->peer, (size_t)v->peer_len * 1);
	p += (size_t)v->peer_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_conn_info_decode(const void *buf, size_t len, struct qtp_conn_info *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CONN_INFO_FIXED;
	if (len < QTP_CONN_INFO_FIXED)
		return -EBADMSG;
	v->conn_id = qtp_get64(p + offsetof(struct qtp_conn_info_wire, conn_id));
	v->session = qtp_get64(p + offsetof(struct qtp_conn_info_wire, session));
	v->core = qtp_get32(p + offsetof(struct qtp_conn_info_wire, core));
	v->state = qtp_get32(p + offsetof(struct qtp_conn_info_wire, state));
	v->inflight = qtp_get32(p + offsetof(struct qtp_conn_info_wire, inflight));
	v->channels = qtp_get32(p + offsetof(struct qtp_conn_info_wire, channels));
	v->handles = qtp_get32(p + offsetof(struct qtp_conn_info_wire, handles));
	v->requests = qtp_get64(p + offsetof(struct qtp_conn_info_wire, requests));
	v->bytes_in = qtp_get64(p + offsetof(struct qtp_conn_info_wire, bytes_in));
	v->bytes_out = qtp_get64(p + offsetof(struct qtp_conn_info_wire, bytes_out));
	v->peer_len = qtp_get16(p + offsetof(struct qtp_conn_info_wire, peer_len));
	if (v->peer_len > 255)
		return -EBADMSG;
	if (len - pos < (size_t)v->peer_len * 1)
		return -EBADMSG;
	v->peer = p + pos;
	if (v->peer_len && memchr(p + pos, 0, v->peer_len))
		return -EBADMSG;
	pos += (size_t)v->peer_len * 1;
	return (long)pos;
}

/* ADMIN_CHANNELS response: `count` `ChanInfo` records. */
struct qtp_channels_rsp_wire {
	uint32_t count;
} __attribute__((packed));
struct qtp_channels_rsp {
	uint32_t count;
	const uint8_t *records; /* rest */
	uint32_t records_len;
};
#define QTP_CHANNELS_RSP_FIXED 4
QTP_STATIC_ASSERT(sizeof(struct qtp_channels_rsp_wire) == 4, "qtp_channels_rsp_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_channels_rsp_wire, count) == 0, "qtp_channels_rsp_wire.count");
static inline size_t qtp_channels_rsp_size(const struct qtp_channels_rsp *v)
{
	return QTP_CHANNELS_RSP_FIXED + (size_t)v->records_len * 1;
}
static inline long qtp_channels_rsp_encode(const struct qtp_channels_rsp *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_channels_rsp_size(v);
	if (need > cap)
		return -ENOSPC;
	qtp_put32(p + offsetof(struct qtp_channels_rsp_wire, count), (uint32_t)v->count);
	p += QTP_CHANNELS_RSP_FIXED;
	if (v->records_len)
		memcpy(p, v->records, (size_t)v->records_len * 1);
	p += (size_t)v->records_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_channels_rsp_decode(const void *buf, size_t len, struct qtp_channels_rsp *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHANNELS_RSP_FIXED;
	if (len < QTP_CHANNELS_RSP_FIXED)
		return -EBADMSG;
	v->count = qtp_get32(p + offsetof(struct qtp_channels_rsp_wire, count));
	v->records_len = (uint32_t)(len - pos);
	if (v->records_len > 1052672)
		return -EBADMSG;
	if (len - pos < (size_t)v->records_len * 1)
		return -EBADMSG;
	v->records = p + pos;
	pos += (size_t)v->records_len * 1;
	return (long)pos;
}

/* One channel's state. */
struct qtp_chan_info_wire {
	uint64_t conn_id;
	uint32_t channel;
	uint32_t kind;
	uint32_t state;
	uint32_t credit_tx;
	uint32_t credit_rx;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint16_t path_len;
} __attribute__((packed));
struct qtp_chan_info {
	uint64_t conn_id;
	uint32_t channel;
	uint32_t kind;
	uint32_t state;
	uint32_t credit_tx;
	uint32_t credit_rx;
	uint64_t bytes_in;
	uint64_t bytes_out;
	const uint8_t *path; /* path */
	uint32_t path_len;
};
#define QTP_CHAN_INFO_FIXED 46
QTP_STATIC_ASSERT(sizeof(struct qtp_chan_info_wire) == 46, "qtp_chan_info_wire size");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, conn_id) == 0, "qtp_chan_info_wire.conn_id");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, channel) == 8, "qtp_chan_info_wire.channel");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, kind) == 12, "qtp_chan_info_wire.kind");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, state) == 16, "qtp_chan_info_wire.state");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, credit_tx) == 20, "qtp_chan_info_wire.credit_tx");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, credit_rx) == 24, "qtp_chan_info_wire.credit_rx");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, bytes_in) == 28, "qtp_chan_info_wire.bytes_in");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, bytes_out) == 36, "qtp_chan_info_wire.bytes_out");
QTP_STATIC_ASSERT(offsetof(struct qtp_chan_info_wire, path_len) == 44, "qtp_chan_info_wire.path_len");
static inline size_t qtp_chan_info_size(const struct qtp_chan_info *v)
{
	return QTP_CHAN_INFO_FIXED + (size_t)v->path_len * 1;
}
static inline long qtp_chan_info_encode(const struct qtp_chan_info *v, void *buf, size_t cap)
{
	uint8_t *p = (uint8_t *)buf;
	size_t need = qtp_chan_info_size(v);
	if (v->path_len > 4095)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	qtp_put64(p + offsetof(struct qtp_chan_info_wire, conn_id), (uint64_t)v->conn_id);
	qtp_put32(p + offsetof(struct qtp_chan_info_wire, channel), (uint32_t)v->channel);
	qtp_put32(p + offsetof(struct qtp_chan_info_wire, kind), (uint32_t)v->kind);
	qtp_put32(p + offsetof(struct qtp_chan_info_wire, state), (uint32_t)v->state);
	qtp_put32(p + offsetof(struct qtp_chan_info_wire, credit_tx), (uint32_t)v->credit_tx);
	qtp_put32(p + offsetof(struct qtp_chan_info_wire, credit_rx), (uint32_t)v->credit_rx);
	qtp_put64(p + offsetof(struct qtp_chan_info_wire, bytes_in), (uint64_t)v->bytes_in);
	qtp_put64(p + offsetof(struct qtp_chan_info_wire, bytes_out), (uint64_t)v->bytes_out);
	qtp_put16(p + offsetof(struct qtp_chan_info_wire, path_len), (uint16_t)v->path_len);
	p += QTP_CHAN_INFO_FIXED;
	if (v->path_len)
		memcpy(p, v->path, (size_t)v->path_len * 1);
	p += (size_t)v->path_len * 1;
	return (long)need;
}
/* Decodes the front of buf; returns the bytes used or a negative errno. */
static inline long qtp_chan_info_decode(const void *buf, size_t len, struct qtp_chan_info *v)
{
	const uint8_t *p = (const uint8_t *)buf;
	size_t pos = QTP_CHAN_INFO_FIXED;
	if (len < QTP_CHAN_INFO_FIXED)
		return -EBADMSG;
	v->conn_id = qtp_get64(p + offsetof(struct qtp_chan_info_wire, conn_id));
	v->channel = qtp_get32(p + offsetof(struct qtp_chan_info_wire, channel));
	v->kind = qtp_get32(p + offsetof(struct qtp_chan_info_wire, kind));
	v->state = qtp_get32(p + offsetof(struct qtp_chan_info_wire, state));
	v->credit_tx = qtp_get32(p + offsetof(struct qtp_chan_info_wire, credit_tx));
	v->credit_rx = qtp_get32(p + offsetof(struct qtp_chan_info_wire, credit_rx));
	v->bytes_in = qtp_get64(p + offsetof(struct qtp_chan_info_wire, bytes_in));
	v->bytes_out = qtp_get64(p + offsetof(struct qtp_chan_info_wire, bytes_out));
	v->path_len = qtp_get16(p + offsetof(struct qtp_chan_info_wire, path_len));
	if (v->path_len > 4095)
		return -EBADMSG;
	if (len - pos < (size_t)v->path_len * 1)
		return -EBADMSG;
	v->path = p + pos;
	if (v->path_len && memchr(p + pos, 0, v->path_len))
		return -EBADMSG;
	pos += (size_t)v->path_len * 1;
	return (long)pos;
}

/* Every message, for X-macro tables: X(snake_name) */
#define QTP_FOR_EACH_MESSAGE(X) \
	X(hello) \
	X(hello_ack) \
	X(attach) \
	X(attach_ack) \
	X(empty) \
	X(data) \
	X(mount_req) \
	X(mount_rsp) \
	X(umount_req) \
	X(path_req) \
	X(getattr_req) \
	X(attr_rsp) \
	X(setattr_req) \
	X(open_req) \
	X(create_req) \
	X(open_rsp) \
	X(handle_req) \
	X(read_req) \
	X(write_req) \
	X(write_rsp) \
	X(readdir_req) \
	X(readdir_rsp) \
	X(dir_entry) \
	X(dir_entry_plus) \
	X(mkdir_req) \
	X(mknod_req) \
	X(symlink_req) \
	X(link_req) \
	X(rename_req) \
	X(xattr_list_req) \
	X(xattr_get_req) \
	X(xattr_rsp) \
	X(xattr_set_req) \
	X(xattr_remove_req) \
	X(sysmount_req) \
	X(sysumount_req) \
	X(poll_req) \
	X(poll_rsp) \
	X(statfs_rsp) \
	X(ioctl_req) \
	X(epoll_ctl_req) \
	X(epoll_event) \
	X(inval_msg) \
	X(llseek_req) \
	X(llseek_rsp) \
	X(kill_req) \
	X(affinity_get_req) \
	X(affinity_set_req) \
	X(fsync_req) \
	X(fallocate_req) \
	X(lock_req) \
	X(lock_rsp) \
	X(cancel_req) \
	X(chan_open_req) \
	X(chan_accept) \
	X(chan_credit) \
	X(chan_close) \
	X(chan_listen_req) \
	X(chan_listen_rsp) \
	X(chan_unlisten_req) \
	X(chan_scm) \
	X(scm_rec) \
	X(rexec_exec_req) \
	X(rexec_fd) \
	X(rexec_started) \
	X(rexec_attach_req) \
	X(rexec_attached) \
	X(rexec_eof) \
	X(rexec_credit) \
	X(rexec_ack) \
	X(rexec_signal) \
	X(rexec_release) \
	X(rexec_conn) \
	X(rexec_exit) \
	X(admin_info) \
	X(wl_list_req) \
	X(wl_list_rsp) \
	X(wl_entry) \
	X(wl_add_req) \
	X(wl_add_rsp) \
	X(wl_del_req) \
	X(log_level_req) \
	X(log_level_rsp) \
	X(counters_req) \
	X(counters_rsp) \
	X(conns_rsp) \
	X(conn_info) \
	X(channels_rsp) \
	X(chan_info)

#endif /* QTP_H */
