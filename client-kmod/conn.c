// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * conn.c - the connection pool of one mount: sockets (TCP or vsock), the QTP handshake
 * (HELLO/ATTACH with HMAC-SHA256 over both nonces), pipelined requests and reconnects.
 *
 * Each connection has one receiver thread that owns its socket: it connects, does the
 * handshake, reads every frame and hands responses to the waiting requests by id, and
 * when the socket fails it fails what was in flight and connects again with back-off.
 * Senders only write whole frames under send_lock, and only while the connection is
 * ACTIVE. Every wait is bounded (qtfs_req_timeout_ms) and killable, so a vanished
 * engine gives EIO or ETIMEDOUT, never a hung task; responses that are short, too
 * large, of the wrong operation or for an unknown id fail that request or are dropped,
 * never trusted.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/kthread.h>
#include <linux/random.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/vm_sockets.h>
#include <uapi/linux/virtio_vsock.h>
#include <linux/sched/mm.h>
#include <linux/key.h>
#include <keys/user-type.h>
#include <crypto/hash.h>
#include <crypto/algapi.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "qtfs.h"

LIST_HEAD(qtfs_clients);
DEFINE_MUTEX(qtfs_clients_lock);
static atomic64_t qtfs_conn_ids = ATOMIC64_INIT(0);

#define HS_TIMEOUT (10 * HZ)
#define QTFS_RXBUF (2 * PAGE_SIZE)

/* ---- requests ---- */

struct qtfs_req *qtfs_req_new(u16 op, u32 plen, u32 rsp_cap)
{
	struct qtfs_req *r = kzalloc(sizeof(*r), GFP_NOFS);

	if (!r)
		return NULL;
	kref_init(&r->ref);
	init_completion(&r->done);
	r->op = op;
	r->plen = plen;
	r->sbuf = kvmalloc(QTP_HEADER_SIZE + plen, GFP_NOFS);
	if (rsp_cap)
		r->rsp = kvmalloc(rsp_cap, GFP_NOFS);
	if (!r->sbuf || (rsp_cap && !r->rsp)) {
		kvfree(r->sbuf);
		kvfree(r->rsp);
		kfree(r);
		return NULL;
	}
	r->rsp_cap = rsp_cap;
	return r;
}

static void req_release(struct kref *ref)
{
	struct qtfs_req *r = container_of(ref, struct qtfs_req, ref);

	kvfree(r->sbuf);
	kvfree(r->rsp);
	kfree(r);
}

void qtfs_req_put(struct qtfs_req *r)
{
	if (r)
		kref_put(&r->ref, req_release);
}

/* ---- socket helpers ---- */

/*
 * The most one sendmsg on vsock hands to the transport. Since "vsock/virtio: Allocate
 * nonlinear SKBs for handling large transmit buffers" (2025; also in stable kernels:
 * Debian's 6.12.118 has it, 6.1.0-57 does not), virtio-vsock puts a packet of more than
 * SKB_WITH_OVERHEAD(32 KiB), its header included, in a nonlinear skb whose payload spans
 * several TX descriptors. vhost-device-vsock 0.3.0 (virtio-vsock 0.10) reads a payload
 * from one descriptor only and drops such a packet without completing it: its bytes
 * never reach the engine, the credit never comes back, and the sender waits in
 * vsock_connectible_sendmsg until its send timeout. Packets up to this size stay linear
 * (one payload descriptor) on every kernel; the in-kernel vhost-vsock takes either.
 */
#define QTFS_VSOCK_SEND_MAX \
	(SKB_WITH_OVERHEAD(PAGE_SIZE << PAGE_ALLOC_COSTLY_ORDER) - sizeof(struct virtio_vsock_hdr))

/*
 * Sends all of buf, one whole frame. Every signal but SIGKILL is blocked meanwhile, so
 * none can cut a frame short: the send sleeps until the socket has room (bounded by
 * its send timeout), and the signal is handled when the system call returns. What
 * cannot be blocked (a fatal signal, a freezer or task-work notification) interrupts:
 * before the first byte the result is -ERESTARTSYS (nothing was sent, the stream is
 * intact, the request can be taken back); after it, -EINTR, and the stream is broken
 * like on any other error: the caller closes the connection and its receiver thread
 * reconnects. Nothing here waits in a loop, so send_lock is never held by a sender
 * that polls the socket. On vsock each sendmsg takes at most QTFS_VSOCK_SEND_MAX bytes.
 */
static int sock_send_all(struct socket *sock, const void *buf, size_t len)
{
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	size_t chunk = sock->sk->sk_family == AF_VSOCK ? QTFS_VSOCK_SEND_MAX : len;
	bool user = !(current->flags & PF_KTHREAD);
	sigset_t blocked, old;
	size_t sent = 0;
	struct kvec v;
	int n, err = 0;

	if (user) {
		siginitsetinv(&blocked, sigmask(SIGKILL));
		sigprocmask(SIG_BLOCK, &blocked, &old);
	}
	while (sent < len) {
		v.iov_base = (void *)buf + sent;
		v.iov_len = min(len - sent, chunk);
		n = kernel_sendmsg(sock, &msg, &v, 1, v.iov_len);
		if (n > 0) {
			sent += n;
			continue;
		}
		if (n == -ERESTARTSYS || n == -EINTR)
			err = sent ? -EINTR : -ERESTARTSYS;
		else
			err = n ? n : -EPIPE;
		break;
	}
	if (user)
		sigprocmask(SIG_SETMASK, &old, NULL);
	return err;
}

/*
 * Reads exactly len bytes. The socket's receive timeout is short so the thread can
 * notice it should stop; an idle timeout before the first byte is reported as -EAGAIN
 * when idle_ok, and waited through in the middle of a frame.
 */
static int sock_recv_all(struct socket *sock, void *buf, size_t len, bool idle_ok)
{
	struct msghdr msg = {};
	struct kvec v;
	size_t got = 0;
	int n;

	while (got < len) {
		/* vsock refuses (ENOMEM) a MSG_WAITALL target beyond its receive buffer. */
		size_t want = min_t(size_t, len - got, 64 * 1024);

		v.iov_base = buf + got;
		v.iov_len = want;
		n = kernel_recvmsg(sock, &msg, &v, 1, want, MSG_WAITALL);
		if (n == -EAGAIN || n == -EINTR || n == -ERESTARTSYS) {
			if (current->flags & PF_KTHREAD) {
				if (kthread_should_stop())
					return -ESHUTDOWN;
			} else if (n != -EAGAIN) {
				return -EINTR; /* a mount interrupted by its caller */
			}
			if (got == 0 && idle_ok)
				return -EAGAIN;
			continue;
		}
		if (n < 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		got += n;
	}
	return 0;
}

static int sock_open(struct socket **out)
{
	struct socket *sock;
	int err;

	if (qtfs_server_ip[0]) {
		/* Parsed and validated at load; the parameters are read-only after it. */
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(qtfs_server_port),
					   .sin_addr.s_addr = qtfs_server_in4 };

		err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &sock);
		if (err)
			return err;
		sock->sk->sk_sndtimeo = 5 * HZ; /* bounds connect() */
		err = kernel_connect(sock, (struct sockaddr *)&sin, sizeof(sin), 0);
		if (!err)
			tcp_sock_set_nodelay(sock->sk);
	} else {
		struct sockaddr_vm svm = {
			.svm_family = AF_VSOCK,
			.svm_cid = qtfs_server_vsock_cid,
			.svm_port = qtfs_server_vsock_port,
		};

		err = sock_create_kern(&init_net, AF_VSOCK, SOCK_STREAM, 0, &sock);
		if (err) {
			if (err == -EAFNOSUPPORT)
				qtfs_err("vsock is not available: load vmw_vsock_virtio_transport (or set qtfs_server_ip for TCP)");
			return err;
		}
		sock->sk->sk_sndtimeo = 5 * HZ;
		err = kernel_connect(sock, (struct sockaddr *)&svm, sizeof(svm), 0);
	}
	if (err) {
		sock_release(sock);
		return err;
	}
	/* The file system must not recurse into itself to free memory for its own I/O. */
	sock->sk->sk_allocation = GFP_NOFS;
	QTFS_SK_NO_TASK_FRAG(sock->sk);
	sock->sk->sk_sndtimeo = 30 * HZ;
	sock->sk->sk_rcvtimeo = HZ;
	*out = sock;
	return 0;
}

/* One request/response on a socket nobody else uses yet (handshake, re-mount). */
static int sync_call(struct socket *sock, u16 op, u64 id, const void *p, u32 plen, void *rsp, u32 cap, u32 *rsp_len)
{
	u8 hb[QTP_HEADER_SIZE];
	struct qtp_hdr h = { .flags = QTP_F_REQUEST, .op = op, .len = plen, .id = id };
	unsigned long end = jiffies + HS_TIMEOUT;
	int err;

	qtp_hdr_encode(&h, hb);
	err = sock_send_all(sock, hb, sizeof(hb));
	if (!err && plen)
		err = sock_send_all(sock, p, plen);
	if (err)
		return err;
	for (;;) {
		err = sock_recv_all(sock, hb, sizeof(hb), true);
		if (err != -EAGAIN)
			break;
		if (time_after(jiffies, end))
			return -ETIMEDOUT;
	}
	if (err)
		return err;
	if (qtp_hdr_decode(hb, sizeof(hb), QTP_MAX_PAYLOAD, &h) || !(h.flags & QTP_F_RESPONSE) || h.op != op || h.id != id)
		return -EPROTO;
	if (h.flags & QTP_F_ERROR)
		return h.status > 0 && h.status < 4096 ? -h.status : -EPROTO;
	if (h.len > cap)
		return -EPROTO;
	err = sock_recv_all(sock, rsp, h.len, false);
	*rsp_len = h.len;
	return err;
}

/* ---- keys and MACs ---- */

/* Not hmac_sha256(): newer kernels' <crypto/sha2.h> declares one (lib/crypto). */
static int qtfs_hmac_sha256(const u8 *key, int klen, const struct kvec *parts, int n, u8 *out)
{
	struct crypto_shash *tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	int err, i;

	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	err = crypto_shash_setkey(tfm, key, klen);
	if (!err) {
		SHASH_DESC_ON_STACK(desc, tfm);

		desc->tfm = tfm;
		err = crypto_shash_init(desc);
		for (i = 0; !err && i < n; i++)
			err = crypto_shash_update(desc, parts[i].iov_base, parts[i].iov_len);
		if (!err)
			err = crypto_shash_final(desc, out);
		shash_desc_zero(desc);
	}
	crypto_free_shash(tfm);
	return err;
}

/* The key from the caller's keyring: user key "qtfs:psk", one line of >= 32 hex digits. */
static int load_psk(struct qtfs_client *cl)
{
	const struct user_key_payload *up;
	struct key *key;
	char hex[129];
	int len, err = 0;

	key = request_key(&key_type_user, "qtfs:psk", NULL);
	if (IS_ERR(key)) {
		if (PTR_ERR(key) == -ENOKEY && qtfs_insecure_test_mode)
			return 0;
		if (PTR_ERR(key) == -ENOKEY)
			qtfs_err("no key: add one with `keyctl add user qtfs:psk <hex> @u` (or load with qtfs_insecure_test_mode=1 for an engine in --insecure-test-mode)");
		return PTR_ERR(key);
	}
	down_read(&key->sem);
	up = user_key_payload_locked(key);
	len = up ? up->datalen : 0;
	while (len && (up->data[len - 1] == '\n' || up->data[len - 1] == ' '))
		len--;
	if (len < 32 || len > 128 || len % 2) {
		err = -EKEYREJECTED;
	} else {
		memcpy(hex, up->data, len);
		hex[len] = 0;
		if (hex2bin(cl->psk, hex, len / 2))
			err = -EKEYREJECTED;
		else
			cl->psk_len = len / 2;
		memzero_explicit(hex, sizeof(hex));
	}
	up_read(&key->sem);
	key_put(key);
	if (err)
		qtfs_err("key qtfs:psk must be 32 to 128 hex digits");
	return err;
}

/* ---- handshake ---- */

static void mount_cred(struct qtfs_client *cl, struct qtfs_cred *c);

/*
 * HELLO + ATTACH on a fresh socket, joining the client's session (or creating it, or a
 * new one when the engine lost it, in which case the export is mounted again and open
 * handles become stale). Called with cl->sess_lock held.
 */
static int handshake(struct qtfs_client *cl, struct socket *sock, bool *remount)
{
	u8 buf[512], nc[32], mac[32];
	struct qtp_hello hello = { .version_min = 1, .version_max = 1, .features = QTP_FEAT_INVAL,
				   .client_name = (const u8 *)"qtfs.ko", .client_name_len = 7 };
	struct qtp_hello_ack ack;
	struct qtp_attach at = {};
	struct qtp_attach_ack aa;
	u8 le_ver[2], le_feat[8], le_sid[8], le_res[4];
	struct kvec parts[9];
	u32 n;
	long len;
	int err;

	get_random_bytes(nc, sizeof(nc));
	memcpy(hello.client_nonce, nc, 32);
	len = qtp_hello_encode(&hello, buf, sizeof(buf));
	if (len < 0)
		return len;
	err = sync_call(sock, QTP_OP_HELLO, 1, buf, len, buf, sizeof(buf), &n);
	if (err)
		return err;
	if (qtp_hello_ack_decode(buf, n, &ack) != n || ack.version != 1)
		return -EPROTO;
	if (ack.auth == QTP_AUTH_NONE) {
		if (cl->psk_len) {
			qtfs_err("the engine offers no authentication but a key is configured: refused (no downgrade)");
			return -EACCES;
		}
		if (!qtfs_insecure_test_mode) {
			qtfs_err("the engine runs without a key: load qtfs.ko with qtfs_insecure_test_mode=1 to accept that");
			return -EACCES;
		}
	} else if (ack.auth != QTP_AUTH_HMAC_SHA256) {
		return -EPROTO;
	} else if (!cl->psk_len) {
		qtfs_err("the engine wants a key: add one with `keyctl add user qtfs:psk <hex> @u`");
		return -ENOKEY;
	}
	/* Every connection of the session agrees on the same features. */
	cl->inval_on = ack.features & QTP_FEAT_INVAL;
	cl->max_payload = min_t(u32, ack.max_payload, QTP_MAX_PAYLOAD);
	if (cl->max_payload < QTFS_IO_MAX + 64)
		return -EPROTO;

	at.session_id = cl->session_id;
	memcpy(at.session_token, cl->session_token, 16);
	qtp_put16(le_ver, ack.version);
	qtp_put64(le_feat, ack.features);
	qtp_put64(le_sid, at.session_id);
	if (ack.auth == QTP_AUTH_HMAC_SHA256) {
		parts[0] = (struct kvec){ (void *)"qtp1 client", 11 };
		parts[1] = (struct kvec){ (void *)"qtp1 server", 11 };
		parts[2] = (struct kvec){ le_ver, 2 };
		parts[3] = (struct kvec){ le_feat, 8 };
		parts[4] = (struct kvec){ nc, 32 };
		parts[5] = (struct kvec){ (void *)ack.server_nonce, 32 };
		parts[6] = (struct kvec){ le_sid, 8 };
		parts[7] = (struct kvec){ at.session_token, 16 };
		err = qtfs_hmac_sha256(cl->psk, cl->psk_len, parts, 8, at.mac);
		if (err)
			return err;
	}
	len = qtp_attach_encode(&at, buf, sizeof(buf));
	if (len < 0)
		return len;
	err = sync_call(sock, QTP_OP_ATTACH, 2, buf, len, buf, sizeof(buf), &n);
	if (err == -EACCES || err == -EPERM)
		qtfs_err("the engine refused the key (is qtfs:psk the engine's --psk-file?)");
	if (err)
		return err;
	if (qtp_attach_ack_decode(buf, n, &aa) != n)
		return -EPROTO;
	if (ack.auth == QTP_AUTH_HMAC_SHA256) {
		qtp_put64(le_sid, aa.session_id);
		qtp_put32(le_res, aa.resumed);
		parts[0] = (struct kvec){ (void *)"qtp1 server", 11 };
		parts[1] = (struct kvec){ (void *)"qtp1 client", 11 };
		parts[7] = (struct kvec){ (void *)aa.session_token, 16 };
		parts[8] = (struct kvec){ le_res, 4 };
		err = qtfs_hmac_sha256(cl->psk, cl->psk_len, parts, 9, mac);
		if (err)
			return err;
		if (crypto_memneq(mac, aa.mac, 32)) {
			qtfs_err("the engine's proof of the key is wrong: refused");
			return -EKEYREJECTED;
		}
	}
	if (cl->session_id && (!aa.resumed || aa.session_id != cl->session_id)) {
		qtfs_warn("session %llx was lost by the engine; now %llx (open files will be reopened)",
			  cl->session_id, aa.session_id);
		cl->generation++;
		*remount = true;
	}
	cl->session_id = aa.session_id;
	memcpy(cl->session_token, aa.session_token, 16);
	return 0;
}

/* MOUNT on a socket during (re)connection; fills the export id and root attributes. */
static int mount_on(struct qtfs_client *cl, struct socket *sock, struct qtp_attr *root)
{
	struct qtfs_cred c;
	struct qtp_mount_req m = {};
	struct qtp_mount_rsp mr;
	u8 *buf;
	u32 n;
	long len;
	int err;

	buf = kmalloc(QTP_MAX_PATH + 1024, GFP_NOFS);
	if (!buf)
		return -ENOMEM;
	mount_cred(cl, &c);
	m.ctx = c.ctx;
	m.ctx.export = 0;
	m.flags = cl->readonly ? QTP_MOUNT_F_READONLY : 0;
	m.groups = c.groups;
	m.groups_count = c.ngroups;
	m.path = (const u8 *)cl->remote;
	m.path_len = strlen(cl->remote);
	len = qtp_mount_req_encode(&m, buf, QTP_MAX_PATH + 1024);
	err = len < 0 ? len : sync_call(sock, QTP_OP_MOUNT, 3, buf, len, buf, 512, &n);
	if (!err && qtp_mount_rsp_decode(buf, n, &mr) != n)
		err = -EPROTO;
	if (!err) {
		cl->export_id = mr.export;
		if (root)
			*root = mr.root;
	}
	kfree(buf);
	return err;
}

/* The mounter's identity, kept for re-mounts done by the receiver threads. */
static void mount_cred(struct qtfs_client *cl, struct qtfs_cred *c)
{
	memset(c, 0, sizeof(*c));
	c->ctx.uid = cl->mount_uid;
	c->ctx.gid = cl->mount_gid;
}

/* ---- receiving ---- */

static int discard(struct qtfs_conn *c, u32 len)
{
	while (len) {
		u32 n = min_t(u32, len, PAGE_SIZE);
		int err = sock_recv_all(c->sock, c->rxbuf, n, false);

		if (err)
			return err;
		len -= n;
	}
	return 0;
}

/*
 * The body of a one-way message (len bytes, at least fixed) into c->rxbuf: 0 when it is
 * there, 1 when its length is out of bounds (read and dropped), else a negative errno.
 */
static int recv_body(struct qtfs_conn *c, u32 len, u32 fixed)
{
	int err;

	if (len > QTFS_RXBUF || len < fixed) {
		err = discard(c, len);
		return err ? err : 1;
	}
	return sock_recv_all(c->sock, c->rxbuf, len, false);
}

/*
 * INVAL (one-way): queued for the mount's work item (inval.c); the receiver never
 * touches the dcache or the page cache itself. Only for our export.
 */
static int recv_inval(struct qtfs_conn *c, u32 len)
{
	struct qtp_inval_msg m;
	int err;

	err = recv_body(c, len, QTP_INVAL_MSG_FIXED);
	if (err)
		return err < 0 ? err : 0; /* 1: dropped */
	if (qtp_inval_msg_decode(c->rxbuf, len, &m) < 0) {
		qtfs_debug("conn %d: malformed INVAL dropped", c->idx);
		return 0;
	}
	if (m.export != READ_ONCE(c->cl->export_id))
		return 0;
	qtfs_inval_queue(c->cl, m.flags, m.path, m.path_len);
	return 0;
}

/* EPOLL_EVENT (one-way): readiness of relayed files; wakes their waiters (relay.c). */
static int recv_epoll_event(struct qtfs_conn *c, u32 len)
{
	struct qtp_epoll_event m;
	struct qtp_epoll_rec rec;
	u32 i;
	int err;

	err = recv_body(c, len, QTP_EPOLL_EVENT_FIXED);
	if (err)
		return err < 0 ? err : 0; /* 1: dropped */
	if (qtp_epoll_event_decode(c->rxbuf, len, &m) < 0 || m.events_len < (u64)m.count * 12) {
		qtfs_debug("conn %d: malformed EPOLL_EVENT dropped", c->idx);
		return 0;
	}
	for (i = 0; i < m.count; i++) {
		qtp_epoll_rec_get(m.events + 12 * i, &rec);
		qtfs_relay_event(c->cl, rec.cookie, rec.events);
	}
	return 0;
}

static int recv_frame(struct qtfs_conn *c)
{
	u8 hb[QTP_HEADER_SIZE];
	struct qtp_hdr h;
	struct qtfs_req *r;
	int err;

	err = sock_recv_all(c->sock, hb, sizeof(hb), true);
	if (err)
		return err;
	if (qtp_hdr_decode(hb, sizeof(hb), QTP_MAX_PAYLOAD, &h)) {
		qtfs_err("conn %d: malformed frame header from the engine: reconnecting", c->idx);
		return -EBADMSG;
	}
	atomic64_add(QTP_HEADER_SIZE + h.len, &c->bytes_in);
	if (!(h.flags & QTP_F_RESPONSE)) {
		if (h.op == QTP_OP_INVAL && (h.flags & QTP_F_REQUEST) == 0)
			return recv_inval(c, h.len);
		if (h.op == QTP_OP_EPOLL_EVENT && (h.flags & QTP_F_REQUEST) == 0)
			return recv_epoll_event(c, h.len);
		return discard(c, h.len); /* other one-way frames: nothing we subscribe to */
	}
	r = xa_erase(&c->pending, h.id);
	if (!r) {
		qtfs_debug("conn %d: response for unknown request %llu dropped", c->idx, h.id);
		return discard(c, h.len);
	}
	if (h.op != r->op) {
		qtfs_warn("conn %d: response op %#x for a %#x request: failed", c->idx, h.op, r->op);
		r->err = -EIO;
		err = discard(c, h.len);
	} else if (h.flags & QTP_F_ERROR) {
		r->err = h.status > 0 && h.status < 4096 ? -h.status : -EIO;
		r->answered = true;
		err = discard(c, h.len);
	} else if (h.len > r->rsp_cap) {
		qtfs_warn("conn %d: %u-byte response to op %#x exceeds %u: failed", c->idx, h.len, h.op, r->rsp_cap);
		r->err = -EIO;
		err = discard(c, h.len);
	} else {
		err = sock_recv_all(c->sock, r->rsp, h.len, false);
		r->rsp_len = h.len;
		if (err)
			r->err = -ECONNRESET;
		else
			r->answered = true;
	}
	atomic_dec(&c->inflight);
	complete(&r->done);
	qtfs_req_put(r);
	return err;
}

/* The socket failed: fail what is in flight (ECONNRESET, retried if idempotent). */
static void conn_down(struct qtfs_conn *c, int why)
{
	struct socket *sock;
	struct qtfs_req *r;
	unsigned long id;

	mutex_lock(&c->send_lock);
	sock = c->sock;
	c->sock = NULL;
	if (c->state != QTFS_STOPPING)
		c->state = QTFS_DOWN;
	mutex_unlock(&c->send_lock);
	if (sock) {
		if (c->state == QTFS_STOPPING) {
			qtfs_debug("conn %d: closed", c->idx);
		} else {
			qtfs_info("conn %d: down (%d)", c->idx, why);
			/* INVALs in flight on it are lost: forget what is cached */
			if (c->cl->inval_on)
				qtfs_inval_queue(c->cl, QTP_INVAL_ALL, NULL, 0);
		}
		kernel_sock_shutdown(sock, SHUT_RDWR);
		sock_release(sock);
	}
	xa_for_each(&c->pending, id, r) {
		if (xa_erase(&c->pending, id) != r)
			continue;
		r->err = -ECONNRESET;
		atomic_dec(&c->inflight);
		complete(&r->done);
		qtfs_req_put(r);
	}
	wake_up_all(&c->cl->state_wq);
}

static int conn_up(struct qtfs_conn *c)
{
	struct qtfs_client *cl = c->cl;
	struct socket *sock;
	bool remount = false;
	int err;

	err = sock_open(&sock);
	if (err)
		return err;
	mutex_lock(&cl->sess_lock);
	err = handshake(cl, sock, &remount);
	if (!err && remount)
		err = mount_on(cl, sock, NULL);
	mutex_unlock(&cl->sess_lock);
	if (err) {
		sock_release(sock);
		return err;
	}
	mutex_lock(&c->send_lock);
	c->sock = sock;
	c->ups++;
	if (c->state != QTFS_STOPPING)
		c->state = QTFS_ACTIVE;
	mutex_unlock(&c->send_lock);
	qtfs_info("conn %d: connected (session %llx)", c->idx, cl->session_id);
	wake_up_all(&cl->state_wq);
	return 0;
}

static int rx_thread(void *arg)
{
	struct qtfs_conn *c = arg;
	unsigned int nofs = memalloc_nofs_save();
	unsigned long backoff = HZ / 4;
	int err;

	while (!kthread_should_stop()) {
		if (!c->sock) {
			err = conn_up(c);
			if (err) {
				qtfs_debug("conn %d: connect failed (%d), retrying", c->idx, err);
				schedule_timeout_interruptible(backoff);
				backoff = min(backoff * 2, 2 * HZ);
				continue;
			}
			backoff = HZ / 4;
		}
		err = recv_frame(c);
		if (err == -EAGAIN)
			continue;
		if (err)
			conn_down(c, err);
	}
	conn_down(c, -ESHUTDOWN);
	memalloc_nofs_restore(nofs);
	return 0;
}

/* ---- sending ---- */

static bool any_active(struct qtfs_client *cl)
{
	int i;

	for (i = 0; i < cl->nconns; i++)
		if (READ_ONCE(cl->conns[i].state) == QTFS_ACTIVE)
			return true;
	return false;
}

static struct qtfs_conn *pick_conn(struct qtfs_client *cl, unsigned long deadline, int *err)
{
	for (;;) {
		int start = atomic_inc_return(&cl->next_conn), i;
		long left;

		for (i = 0; i < cl->nconns; i++) {
			struct qtfs_conn *c = &cl->conns[(unsigned int)(start + i) % cl->nconns];

			if (READ_ONCE(c->state) == QTFS_ACTIVE)
				return c;
		}
		left = (long)(deadline - jiffies);
		if (left <= 0) {
			*err = -EIO;
			return NULL;
		}
		left = wait_event_killable_timeout(cl->state_wq, any_active(cl), left);
		if (left < 0) {
			*err = -EINTR;
			return NULL;
		}
	}
}

static void kick(struct qtfs_conn *c)
{
	mutex_lock(&c->send_lock);
	if (c->sock)
		kernel_sock_shutdown(c->sock, SHUT_RDWR);
	mutex_unlock(&c->send_lock);
}

/* Takes r off c's pending table if the receiver has not completed it. */
static void take_back(struct qtfs_conn *c, struct qtfs_req *r)
{
	if (xa_erase(&c->pending, r->id) == r) {
		atomic_dec(&c->inflight);
		qtfs_req_put(r);
	}
}

/*
 * Sends r on c. 0: it went out, or the stream broke under it and the receiver will
 * fail it (r->sent tells whether any of it left); -EAGAIN: c is not active (nothing
 * sent, pick another); -ERESTARTSYS, -EINTR or another error: nothing sent.
 * With killable, a fatal signal stops the wait for send_lock.
 */
static int send_on(struct qtfs_conn *c, struct qtfs_req *r, bool killable)
{
	struct qtp_hdr h;
	int err;

	r->id = atomic64_inc_return(&c->cl->next_id);
	r->err = 0;
	r->rsp_len = 0;
	r->conn = c;
	r->sent = false;
	r->answered = false;
	reinit_completion(&r->done);
	h = (struct qtp_hdr){ .flags = QTP_F_REQUEST, .op = r->op, .len = r->plen, .id = r->id };
	qtp_hdr_encode(&h, r->sbuf);

	/* Killable: the holder may sleep up to the socket's send timeout. */
	if (killable) {
		if (mutex_lock_killable(&c->send_lock))
			return -EINTR;
	} else {
		mutex_lock(&c->send_lock);
	}
	if (c->state != QTFS_ACTIVE || !c->sock) {
		mutex_unlock(&c->send_lock);
		return -EAGAIN;
	}
	r->conn_ups = c->ups;
	kref_get(&r->ref);
	err = xa_insert(&c->pending, r->id, r, GFP_NOFS);
	if (err) {
		mutex_unlock(&c->send_lock);
		qtfs_req_put(r);
		return err;
	}
	atomic_inc(&c->inflight);
	atomic64_inc(&c->requests);
	atomic64_add(QTP_HEADER_SIZE + r->plen, &c->bytes_out);
	err = sock_send_all(c->sock, r->sbuf, QTP_HEADER_SIZE + r->plen);
	if (err == -ERESTARTSYS) {
		/* Nothing went out: take the request back; the syscall may restart. */
		mutex_unlock(&c->send_lock);
		take_back(c, r);
		return err;
	}
	r->sent = true;
	/*
	 * A broken stream (also a frame cut short by a fatal signal) wakes the
	 * receiver, which fails this request (ECONNRESET) and reconnects.
	 */
	if (err)
		kernel_sock_shutdown(c->sock, SHUT_RDWR);
	mutex_unlock(&c->send_lock);
	return 0;
}

int qtfs_req_run(struct qtfs_client *cl, struct qtfs_req *r, unsigned int flags)
{
	int timeout_ms = READ_ONCE(qtfs_req_timeout_ms); /* range-checked when set */
	unsigned long timeout = msecs_to_jiffies(max(timeout_ms, QTFS_REQ_TIMEOUT_MIN_MS));
	/* Waiting for a connection gets a third of the budget, answering the rest. */
	unsigned long conn_deadline = jiffies + timeout / 3;
	int tries = (flags & QTFS_IDEMPOTENT) ? 3 : 1;
	ktime_t t0 = ktime_get();
	struct qtfs_conn *c;
	long left;
	int err;

	for (;;) {
		if (r->on) {
			/* A request about per-connection engine state (EPOLL_CTL): there or nowhere. */
			c = r->on;
			tries = 1;
		} else {
			c = pick_conn(cl, conn_deadline, &err);
			if (!c)
				goto out;
		}
		err = send_on(c, r, true);
		if (err == -EAGAIN && r->on)
			err = -ENOTCONN;
		if (err == -EAGAIN)
			continue;
		if (err)
			goto out;

		left = wait_for_completion_killable_timeout(&r->done, timeout);
		if (left <= 0) {
			take_back(c, r);
			if (left == 0) {
				qtfs_warn("conn %d: op %#x unanswered for %d ms: reconnecting", c->idx, r->op,
					  timeout_ms);
				kick(c);
				err = -ETIMEDOUT;
			} else {
				err = -EINTR;
			}
			goto out;
		}
		err = r->err;
		if (err == -ECONNRESET && --tries > 0) {
			conn_deadline = jiffies + timeout / 3;
			continue;
		}
		if (err == -ECONNRESET)
			err = -EIO;
		break;
	}
out:
	qtfs_stat_account(r->op, err, r->plen, r->rsp_len, ktime_to_ns(ktime_sub(ktime_get(), t0)));
	return err;
}

/* CANCEL of request id on c; its answer is not awaited (the receiver drops it). */
static void send_cancel(struct qtfs_conn *c, u64 id)
{
	struct qtp_cancel_req m = { .id = id };
	struct qtfs_req *r = qtfs_req_new(QTP_OP_CANCEL, qtp_cancel_req_size(&m), 0);

	if (!r)
		return;
	qtp_cancel_req_encode(&m, qtfs_req_payload(r), r->plen);
	/* Not killable: a dying waiter must still tell the engine to stop. */
	if (send_on(c, r, false))
		qtfs_debug("conn %d: CANCEL of request %llu not sent", c->idx, id);
	qtfs_req_put(r);
}

int qtfs_req_run_wait(struct qtfs_client *cl, struct qtfs_req *r, bool *unknown)
{
	int timeout_ms = READ_ONCE(qtfs_req_timeout_ms);
	unsigned long timeout = msecs_to_jiffies(max(timeout_ms, QTFS_REQ_TIMEOUT_MIN_MS));
	unsigned long conn_deadline = jiffies + timeout / 3;
	ktime_t t0 = ktime_get();
	struct qtfs_conn *c;
	int err;

	*unknown = false;
	for (;;) {
		c = pick_conn(cl, conn_deadline, &err);
		if (!c)
			goto out;
		err = send_on(c, r, true);
		if (err != -EAGAIN)
			break;
	}
	if (err)
		goto out;
	/* Held by the engine as long as the lock is taken elsewhere: no time limit. */
	if (wait_for_completion_interruptible(&r->done)) {
		send_cancel(c, r->id);
		/*
		 * The engine answers a cancelled wait at once (EINTR), or the grant that
		 * raced the CANCEL; not interruptible: the answer decides whether we hold
		 * the lock. Bounded, so a vanished engine cannot hold us.
		 */
		if (!wait_for_completion_timeout(&r->done, min_t(unsigned long, timeout, 5 * HZ))) {
			take_back(c, r);
			*unknown = true;
			err = -EINTR;
			goto out;
		}
		if (r->answered && !r->err) {
			err = 0; /* granted before the CANCEL arrived: we hold it */
			goto out;
		}
		*unknown = !r->answered;
		err = *unknown ? -EINTR : -ERESTARTSYS;
		goto out;
	}
	err = r->err;
	if (err && !r->answered) {
		*unknown = true; /* the connection dropped while the engine held it */
		err = -EIO;
	}
out:
	qtfs_stat_account(r->op, err, r->plen, r->rsp_len, ktime_to_ns(ktime_sub(ktime_get(), t0)));
	return err;
}

/* ---- the client of one mount ---- */

struct qtfs_client *qtfs_client_start(const char *remote, bool readonly, struct qtp_attr *root, int *errp)
{
	/* Read-only after load and range-checked then; checked again: it sizes conns[]. */
	int nconns = READ_ONCE(qtfs_conn_max_conn);
	struct qtfs_client *cl;
	struct socket *sock = NULL;
	bool remount = false;
	int i, err;

	if (nconns < 1 || nconns > QTFS_MAX_CONNS) {
		qtfs_err("qtfs_conn_max_conn=%d: must be 1..%d", nconns, QTFS_MAX_CONNS);
		*errp = -EINVAL;
		return NULL;
	}
	cl = kzalloc(sizeof(*cl), GFP_KERNEL);
	if (!cl) {
		*errp = -ENOMEM;
		return NULL;
	}
	INIT_LIST_HEAD(&cl->node);
	cl->remote = kstrdup(remote, GFP_KERNEL);
	cl->readonly = readonly;
	cl->nconns = nconns;
	cl->mount_uid = from_kuid_munged(&init_user_ns, current_fsuid());
	cl->mount_gid = from_kgid_munged(&init_user_ns, current_fsgid());
	init_waitqueue_head(&cl->state_wq);
	mutex_init(&cl->sess_lock);
	xa_init_flags(&cl->relays, XA_FLAGS_ALLOC1);
	qtfs_inval_init(cl);
	for (i = 0; i < cl->nconns; i++) {
		struct qtfs_conn *c = &cl->conns[i];

		c->cl = cl;
		c->idx = i;
		c->id = atomic64_inc_return(&qtfs_conn_ids);
		mutex_init(&c->send_lock);
		xa_init(&c->pending);
		c->rxbuf = kmalloc(QTFS_RXBUF, GFP_KERNEL); /* an INVAL's path fits */
		if (!c->rxbuf) {
			err = -ENOMEM;
			goto fail;
		}
	}
	err = cl->remote ? load_psk(cl) : -ENOMEM;
	if (err)
		goto fail;

	/* The first connection is made here, so a mount fails with the real reason. */
	err = sock_open(&sock);
	if (err) {
		qtfs_err("cannot reach the engine (%d)", err);
		goto fail;
	}
	err = handshake(cl, sock, &remount);
	if (!err)
		err = mount_on(cl, sock, root);
	if (err) {
		sock_release(sock);
		goto fail;
	}
	cl->conns[0].sock = sock;
	cl->conns[0].state = QTFS_ACTIVE;
	for (i = 0; i < cl->nconns; i++) {
		struct task_struct *t = kthread_run(rx_thread, &cl->conns[i], "qtfs-rx/%d", i);

		if (IS_ERR(t)) {
			/*
			 * Every connection is set up: stop() stops the threads that run and
			 * closes the sockets of those without one (conns[0]'s, made above).
			 */
			err = PTR_ERR(t);
			qtfs_err("cannot start receiver thread %d (%d)", i, err);
			qtfs_client_stop(cl);
			*errp = err;
			return NULL;
		}
		cl->conns[i].rx = t;
	}
	mutex_lock(&qtfs_clients_lock);
	list_add(&cl->node, &qtfs_clients);
	mutex_unlock(&qtfs_clients_lock);
	qtfs_info("mounted %s: export %u, session %llx", remote, cl->export_id, cl->session_id);
	return cl;
fail:
	for (i = 0; i < cl->nconns; i++)
		kfree(cl->conns[i].rxbuf);
	memzero_explicit(cl->psk, sizeof(cl->psk));
	kfree(cl->remote);
	kfree(cl);
	*errp = err;
	return NULL;
}

void qtfs_client_stop(struct qtfs_client *cl)
{
	int i;

	mutex_lock(&qtfs_clients_lock);
	list_del_init(&cl->node);
	mutex_unlock(&qtfs_clients_lock);
	for (i = 0; i < cl->nconns; i++) {
		struct qtfs_conn *c = &cl->conns[i];

		mutex_lock(&c->send_lock);
		c->state = QTFS_STOPPING;
		if (c->sock)
			kernel_sock_shutdown(c->sock, SHUT_RDWR);
		mutex_unlock(&c->send_lock);
		if (c->rx)
			kthread_stop(c->rx);
		else
			conn_down(c, -ESHUTDOWN);
	}
	qtfs_inval_detach(cl); /* receivers are gone: nothing queues any more */
	xa_destroy(&cl->relays); /* empty: every relayed file was released before umount */
	for (i = 0; i < cl->nconns; i++) {
		xa_destroy(&cl->conns[i].pending);
		kfree(cl->conns[i].rxbuf);
	}
	memzero_explicit(cl->psk, sizeof(cl->psk));
	kfree(cl->remote);
	kfree(cl);
}
