/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qtfs.h - internals shared by the files of qtfs.ko.
 *
 * Ownership: conn.c owns sockets, the handshake, request ids and waiting; super.c the
 * mount and its client; inode.c/dir.c/file.c/xattr.c translate VFS calls into QTP
 * requests and never touch a socket; dev.c answers /dev/qtfs_client; main.c holds the
 * module parameters, logging and counters.
 */
#ifndef QTFS_H
#define QTFS_H

#include <linux/fs.h>
#include <linux/net.h>
#include <linux/kref.h>
#include <linux/completion.h>
#include <linux/xarray.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "qtp.h"
#include "compat.h"

#define QTFS_MAGIC 0x51544653 /* "QTFS" */
#define QTFS_MAX_CONNS 16
#define QTFS_IO_MAX ((u32)QTP_MAX_IO)
#define QTFS_READDIR_BYTES (32 * 1024)
#define QTFS_NAME "qtfs.ko"
#define QTFS_VERSION "0.1.0"

/*
 * ---- logging ----
 * Every .c file defines pr_fmt (the "qtfs: " prefix) before its first #include.
 * qtfs_log_level (the parameter, or `qtinfo -l`) filters the ERROR, WARN and INFO
 * messages, printed with pr_err/pr_warn/pr_info. DEBUG messages are pr_debug, so
 * dynamic debug can turn them on alone (`echo 'module qtfs +p' >
 * /sys/kernel/debug/dynamic_debug/control`); qtfs_log_level=DEBUG prints them too.
 */
extern int qtfs_log_level;
#define qtfs_log_on(level) (READ_ONCE(qtfs_log_level) >= (int)(level))
#define qtfs_err(fmt, ...) do { if (qtfs_log_on(QTP_LOG_ERROR)) pr_err(fmt "\n", ##__VA_ARGS__); } while (0)
#define qtfs_warn(fmt, ...) do { if (qtfs_log_on(QTP_LOG_WARN)) pr_warn(fmt "\n", ##__VA_ARGS__); } while (0)
#define qtfs_info(fmt, ...) do { if (qtfs_log_on(QTP_LOG_INFO)) pr_info(fmt "\n", ##__VA_ARGS__); } while (0)
#define qtfs_debug(fmt, ...) do {							\
	if (qtfs_log_on(QTP_LOG_DEBUG))							\
		printk(KERN_DEBUG pr_fmt(fmt) "\n", ##__VA_ARGS__);			\
	else										\
		pr_debug(fmt "\n", ##__VA_ARGS__);					\
} while (0)

/* ---- module parameters (main.c) ---- */
/* Read-only after load (0444), validated at load. */
extern char qtfs_server_ip[64];
extern __be32 qtfs_server_in4;   /* qtfs_server_ip parsed; used when qtfs_server_ip[0] */
extern int qtfs_server_port;
extern unsigned int qtfs_server_vsock_cid;
extern unsigned int qtfs_server_vsock_port;
extern int qtfs_conn_max_conn;
extern bool qtfs_insecure_test_mode;
/* Writable at run time, range-checked on every write: read them with READ_ONCE. */
#define QTFS_REQ_TIMEOUT_MIN_MS 100
#define QTFS_TIMEOUT_MAX_MS 3600000
extern int qtfs_req_timeout_ms;
extern int qtfs_attr_timeout_ms;

/* ---- counters (main.c), per operation, module-wide ---- */
#define QTFS_LAT_BUCKETS 40 /* log2 of nanoseconds */
struct qtfs_op_stat {
	atomic64_t requests, errors, bytes_in, bytes_out, lat_max;
	atomic64_t lat[QTFS_LAT_BUCKETS];
};
extern struct qtfs_op_stat qtfs_stats[QTP_OP_INDEX_LIMIT];
extern u64 qtfs_stats_since; /* jiffies64 of the last clear */
static inline int qtfs_op_index(u16 op)
{
	int i = (op >> 8) * 64 + (op & 63);
	return i < (int)QTP_OP_INDEX_LIMIT ? i : -1;
}
void qtfs_stat_account(u16 op, int err, u32 out, u32 in, u64 ns);
void qtfs_stats_clear(void);

/* ---- connections and requests (conn.c) ---- */
enum qtfs_conn_state { QTFS_DOWN = 0, QTFS_HANDSHAKE, QTFS_ACTIVE, QTFS_STOPPING };

struct qtfs_client;

struct qtfs_conn {
	struct qtfs_client *cl;
	int idx;
	struct socket *sock;     /* set and released by the receiver thread only */
	struct mutex send_lock;  /* serialises frames on the socket; guards state for senders */
	int state;               /* enum qtfs_conn_state */
	struct xarray pending;   /* request id -> struct qtfs_req (holds one reference) */
	struct task_struct *rx;
	u8 *rxbuf;               /* discarded payloads */
	atomic64_t requests, bytes_in, bytes_out;
	atomic_t inflight;
	u64 id;                  /* for ADMIN_CONNS */
	u32 ups;                 /* bumped (under send_lock) each time the socket is made: what the
				  * engine keeps per connection (EPOLL_CTL registrations) is gone
				  * when it changed */
};

/* One mount's view of the engine: a session over a small pool of connections. */
struct qtfs_client {
	struct list_head node;   /* qtfs_clients, for /dev/qtfs_client */
	int nconns;
	struct qtfs_conn conns[QTFS_MAX_CONNS];
	atomic_t next_conn;
	atomic64_t next_id;
	wait_queue_head_t state_wq; /* a connection changed state */

	struct mutex sess_lock;  /* session id/token/export/generation */
	u64 session_id;
	u8 session_token[16];
	u32 export_id;
	u32 generation;          /* bumped when the session (and its handles) was lost */
	u32 max_payload;
	bool inval_on;           /* the engine agreed on feat::INVAL (sends INVAL frames) */

	/*
	 * INVAL frames waiting for the work item (inval.c): the receiver threads only queue
	 * them, so a receiver never waits for the page cache or the dcache. inval_sb is set
	 * by the super block once it is ready and cleared (under inval_lock) before it
	 * goes away; frames that come while it is NULL are dropped (nothing is cached).
	 */
	spinlock_t inval_lock;
	struct list_head inval_q;
	unsigned int inval_n;
	bool inval_all;          /* everything of the mount is to be dropped */
	struct super_block *inval_sb;
	struct work_struct inval_work;

	/* Relayed files (relay.c, -o relay) by EPOLL_CTL cookie; EPOLL_EVENT wakes them. */
	struct xarray relays;

	u8 psk[64];
	int psk_len;             /* 0: no key (insecure test mode only) */
	char *remote;            /* exported HOST directory */
	u32 mount_uid, mount_gid; /* the mounter, for re-mounts after a lost session */
	bool readonly;
};

#define QTFS_IDEMPOTENT 0x1 /* safe to send again after the connection dropped */

struct qtfs_req {
	struct kref ref;
	struct completion done;
	u64 id;
	u16 op;
	int err;                 /* 0, or -errno of the failure */
	bool sent;               /* (part of) the frame went out: the engine may have acted */
	bool answered;           /* the engine answered it (err is the engine's) */
	u8 *sbuf;                /* header + payload */
	u32 plen;                /* payload bytes */
	u8 *rsp;                 /* response payload (rsp_len of rsp_cap) */
	u32 rsp_cap, rsp_len;
	struct qtfs_conn *on;    /* set by the caller: send on this connection only (no retry) */
	struct qtfs_conn *conn;  /* where it was last sent, and that connection's ups then */
	u32 conn_ups;
};

struct qtfs_req *qtfs_req_new(u16 op, u32 plen, u32 rsp_cap);
static inline u8 *qtfs_req_payload(struct qtfs_req *r) { return r->sbuf + QTP_HEADER_SIZE; }
int qtfs_req_run(struct qtfs_client *cl, struct qtfs_req *r, unsigned int flags);
void qtfs_req_put(struct qtfs_req *r);
/*
 * For requests the engine may hold (LOCK_SET with LOCK_F_WAIT): no time limit, the
 * wait ends on the answer or a signal; on a signal the engine is sent CANCEL for it and
 * its answer is awaited (bounded): 0 when the lock was granted all the same (the
 * signal is handled on the way out), -ERESTARTSYS when it was cancelled. *unknown is
 * set when the outcome cannot be known (the connection dropped, no answer to CANCEL).
 */
int qtfs_req_run_wait(struct qtfs_client *cl, struct qtfs_req *r, bool *unknown);

struct qtfs_client *qtfs_client_start(const char *remote, bool readonly, struct qtp_attr *root, int *err);
void qtfs_client_stop(struct qtfs_client *cl);
extern struct list_head qtfs_clients;
extern struct mutex qtfs_clients_lock;

/* ---- super block and inodes ---- */
struct qtfs_sb {
	struct qtfs_client *cl;
	bool proc;               /* -o proc: sizes unknown, never cache data */
	bool relay;              /* -o relay: HOST FIFOs and character devices relayed (relay.c) */
	unsigned long attr_timeout; /* jiffies */
	/* INVAL ALL (or a lost connection): names and attributes cached at or before this
	 * jiffy are stale (see qtfs_stamp_fresh) */
	unsigned long valid_after;
};

struct qtfs_inode {
	struct inode vfs_inode;
	unsigned long attr_expire;  /* jiffies after which attributes are refreshed */
	struct timespec64 data_mtime; /* mtime the cached pages belong to */
	loff_t data_size;
	bool own_write;             /* we changed the data since the last attributes */
	spinlock_t wlock;
	struct list_head wfiles;    /* writable qtfs_files, for write-back */
	struct list_head ofiles;    /* every open qtfs_file, for fstat once the name is gone */
	struct mutex lock_mutex;    /* lowners */
	struct list_head lowners;   /* struct qtfs_lock_owner: the engine handles locks are on */
};

/* An open file's HOST handle; outlives the struct file while write-back uses it. */
struct qtfs_file {
	struct kref ref;
	struct mutex lock;
	struct qtfs_client *cl;
	struct dentry *dentry;   /* for a reopen by path */
	struct list_head wnode;  /* in qtfs_inode.wfiles when writable */
	struct list_head onode;  /* in qtfs_inode.ofiles while open */
	bool writable;
	u64 handle;
	u32 generation;
	u32 flags;               /* QTP_O_* used at open, for a reopen after a lost session */
	struct qtfs_relay *relay; /* relay.c state of a relayed FIFO or device, else NULL */
};

static inline struct qtfs_sb *QTFS_SB(struct super_block *sb) { return sb->s_fs_info; }
static inline struct qtfs_inode *QTFS_I(struct inode *inode) { return container_of(inode, struct qtfs_inode, vfs_inode); }
static inline struct qtfs_client *qtfs_cl(struct inode *inode) { return QTFS_SB(inode->i_sb)->cl; }

/* Caller's identity as it goes on the wire. */
struct qtfs_cred {
	struct qtp_req_ctx ctx;
	u32 ngroups;
	u8 groups[QTP_MAX_GROUPS * 4];
};
void qtfs_cred_fill(struct qtfs_client *cl, struct qtfs_cred *c);

struct inode *qtfs_iget(struct super_block *sb, const struct qtp_attr *a);
void qtfs_apply_attr(struct inode *inode, const struct qtp_attr *a);
int qtfs_revalidate_inode(struct dentry *d, bool force);
int qtfs_wire_open_flags(unsigned int f_flags);
void qtfs_close_handle(struct qtfs_client *cl, u64 handle);
int qtfs_file_attach(struct file *file, u64 handle);
int qtfs_open_file_attr(struct inode *inode, struct qtp_attr *a);
int qtfs_xattr_list(struct dentry *d, char *list, size_t size);
int qtfs_open_req(struct dentry *d, u32 wflags, struct qtp_open_rsp *o);
int qtfs_file_handle(struct file *file, u64 *h);
int qtfs_release(struct inode *inode, struct file *file);

/* ---- relayed FIFOs and character devices (relay.c, -o relay) ---- */
struct qtfs_relay;
extern const struct file_operations qtfs_relay_fops;
void qtfs_relay_event(struct qtfs_client *cl, u64 cookie, u32 events);

/* ---- locks (lock.c) ---- */
int qtfs_lock(struct file *file, int cmd, struct file_lock *fl);
int qtfs_flock(struct file *file, int cmd, struct file_lock *fl);
void qtfs_locks_flush(struct file *file, fl_owner_t id);
void qtfs_locks_release(struct file *file);
void qtfs_locks_evict(struct inode *inode);

/* ---- invalidations (inval.c) ---- */
void qtfs_inval_init(struct qtfs_client *cl);
void qtfs_inval_queue(struct qtfs_client *cl, u32 flags, const u8 *path, u32 len);
void qtfs_inval_attach(struct qtfs_client *cl, struct super_block *sb);
void qtfs_inval_detach(struct qtfs_client *cl);

extern const struct inode_operations qtfs_dir_iops, qtfs_file_iops, qtfs_symlink_iops, qtfs_special_iops;
extern const struct file_operations qtfs_dir_fops, qtfs_file_fops;
extern const struct address_space_operations qtfs_aops;
extern const struct dentry_operations qtfs_dentry_ops;
extern const struct xattr_handler *qtfs_xattr_handlers[];

int qtfs_fs_init(void);
void qtfs_fs_exit(void);
int qtfs_dev_init(void);
void qtfs_dev_exit(void);

/*
 * Builds, sends and waits for one request: msg is encoded with qtp_<kind>_encode;
 * *rp receives the request (response in (*rp)->rsp) for the caller to qtfs_req_put(),
 * also on failure (NULL-safe).
 */
#define QTFS_CALL(cl, op, kind, msg, cap, flags, rp) ({					\
	struct qtfs_req *__r = qtfs_req_new(op, qtp_##kind##_size(msg), cap);		\
	int __e = __r ? 0 : -ENOMEM;							\
	if (!__e) {									\
		long __n = qtp_##kind##_encode(msg, qtfs_req_payload(__r), __r->plen);	\
		__e = __n < 0 ? (int)__n : qtfs_req_run(cl, __r, flags);		\
	}										\
	*(rp) = __r;									\
	__e;										\
})

/* A dentry's wire path in a PATH_MAX buffer of its own. */
struct qtfs_path {
	char *buf;
	const u8 *p;
	u32 len;
};
int qtfs_path_get(struct dentry *d, struct qtfs_path *qp);
void qtfs_path_put(struct qtfs_path *qp);
/* What a request on one path starts with: qtfs_path_get, then the caller's credentials. */
int qtfs_path_cred_get(struct dentry *d, struct qtfs_client *cl, struct qtfs_path *qp, struct qtfs_cred *c);
/* The fields every such request carries (designated initializers of its qtp_*_req). */
#define QTFS_PATH_CRED(c, qp) \
	.ctx = (c).ctx, .groups = (c).groups, .groups_count = (c).ngroups, .path = (qp).p, .path_len = (qp).len
/* A PathReq-shaped request (LOOKUP, RMDIR, UNLINK, READLINK, STATFS) for dentry d. */
int qtfs_path_call(struct dentry *d, u16 op, u32 cap, unsigned int flags, struct qtfs_req **rp);

/* Is the page cache of this inode usable? Not with -o proc (sizes unknown). */
static inline bool qtfs_cached(struct inode *inode)
{
	return !QTFS_SB(inode->i_sb)->proc && S_ISREG(inode->i_mode);
}

/* Our own data change moved the HOST's size and mtime: refresh, but keep our pages. */
static inline void qtfs_data_changed(struct inode *inode)
{
	struct qtfs_inode *qi = QTFS_I(inode);

	qi->data_size = i_size_read(inode);
	qi->own_write = true;
	qi->attr_expire = jiffies - 1;
}

/*
 * A stamp (a dentry's d_time, an inode's attribute time) is fresh while it is younger
 * than the attribute timeout and newer than the last INVAL ALL.
 */
static inline bool qtfs_stamp_fresh(unsigned long stamp, struct super_block *sb)
{
	struct qtfs_sb *s = QTFS_SB(sb);

	return time_before(jiffies, stamp + s->attr_timeout) && time_after(stamp, READ_ONCE(s->valid_after));
}

/* A stamp that is never fresh (0 is fresh in the first minutes after boot). */
static inline unsigned long qtfs_stale_stamp(struct super_block *sb)
{
	return jiffies - QTFS_SB(sb)->attr_timeout - 1;
}

/* Response payload checks shared by the operations. */
static inline int qtfs_rsp_attr(struct qtfs_req *r, struct qtp_attr *a)
{
	if (r->rsp_len != QTP_ATTR_SIZE)
		return -EIO;
	qtp_attr_get(r->rsp, a);
	return 0;
}

/* Ends a call answered with an AttrRsp: decodes it on success, always puts r. */
static inline int qtfs_attr_done(int err, struct qtfs_req *r, struct qtp_attr *a)
{
	if (!err)
		err = qtfs_rsp_attr(r, a);
	qtfs_req_put(r);
	return err;
}

/* Ends a call answered with an OpenRsp (OPEN, CREATE): the same for an OpenRsp. */
static inline int qtfs_open_done(int err, struct qtfs_req *r, struct qtp_open_rsp *o)
{
	if (!err && qtp_open_rsp_decode(r->rsp, r->rsp_len, o) != r->rsp_len)
		err = -EIO;
	qtfs_req_put(r);
	return err;
}

#endif /* QTFS_H */
