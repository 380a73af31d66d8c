// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * dev.c - /dev/qtfs_client: the module's admin messages for qtcfg/qtinfo.
 *
 * One ioctl (QTFS_IOC_ADMIN, include/qtfs_ioctl.h) carries a whole QTP request frame
 * in and the whole response frame out, so user space uses the same codec as for the
 * engine's admin socket. Root only (the node is 0600 and CAP_SYS_ADMIN is checked).
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/capability.h>
#include <linux/jiffies.h>
#include <linux/cpumask.h>

#include "qtfs.h"
#include "qtfs_ioctl.h"

#define ADMIN_REQ_MAX (64 * 1024)
#define ADMIN_RSP_MAX (256 * 1024)

static u64 loaded_at;

static u64 percentile(const struct qtfs_op_stat *s, u64 total, u32 per_mille)
{
	u64 want = div_u64(total * per_mille + 999, 1000), seen = 0;
	int b;

	for (b = 0; b < QTFS_LAT_BUCKETS; b++) {
		seen += atomic64_read(&s->lat[b]);
		if (seen >= want && seen)
			return min_t(u64, 2ULL << b, atomic64_read(&s->lat_max)); /* bucket's upper bound */
	}
	return atomic64_read(&s->lat_max);
}

static long admin_counters(const u8 *p, u32 len, u8 *out, u32 cap)
{
	struct qtp_counters_req q;
	struct qtp_counters_rsp rsp = {};
	u8 *rec = out + QTP_COUNTERS_RSP_FIXED;
	u32 n = 0, i;
	long w;

	if (qtp_counters_req_decode(p, len, &q) != len)
		return -EBADMSG;
	for (i = 0; i < QTP_OP_INDEX_LIMIT; i++) {
		const struct qtfs_op_stat *s = &qtfs_stats[i];
		u64 req = atomic64_read(&s->requests);
		struct qtp_op_counter c;

		if (!req)
			continue;
		if (QTP_COUNTERS_RSP_FIXED + (n + 1) * QTP_OP_COUNTER_SIZE > cap)
			return -ENOSPC;
		c = (struct qtp_op_counter){
			.op = (i / 64) << 8 | (i % 64),
			.requests = req,
			.errors = atomic64_read(&s->errors),
			.bytes_in = atomic64_read(&s->bytes_in),
			.bytes_out = atomic64_read(&s->bytes_out),
			.lat_p50_ns = percentile(s, req, 500),
			.lat_p99_ns = percentile(s, req, 990),
			.lat_p999_ns = percentile(s, req, 999),
			.lat_max_ns = atomic64_read(&s->lat_max),
		};
		qtp_op_counter_put(&c, rec + n * QTP_OP_COUNTER_SIZE);
		n++;
	}
	rsp.count = n;
	rsp.window_ms = jiffies64_to_msecs(get_jiffies_64() - qtfs_stats_since);
	rsp.records = rec;
	rsp.records_len = n * QTP_OP_COUNTER_SIZE;
	/* The records are already in place; encode writes the fixed part over itself. */
	w = qtp_counters_rsp_encode(&rsp, out, cap);
	if (w >= 0 && (q.flags & QTP_COUNTERS_CLEAR))
		qtfs_stats_clear();
	return w;
}

static long admin_conns(u8 *out, u32 cap)
{
	struct qtp_conns_rsp rsp = {};
	struct qtfs_client *cl;
	u8 *pos = out + QTP_CONNS_RSP_FIXED;
	/* "tcp:" + the whole qtfs_server_ip + ":65535": never truncated */
	char peer[sizeof(qtfs_server_ip) + 16];
	u32 n = 0;
	int i;

	if (qtfs_server_ip[0])
		snprintf(peer, sizeof(peer), "tcp:%s:%d", qtfs_server_ip, qtfs_server_port);
	else
		snprintf(peer, sizeof(peer), "vsock:%u:%u", qtfs_server_vsock_cid, qtfs_server_vsock_port);
	mutex_lock(&qtfs_clients_lock);
	list_for_each_entry(cl, &qtfs_clients, node) {
		for (i = 0; i < cl->nconns; i++) {
			struct qtfs_conn *c = &cl->conns[i];
			static const u32 states[] = { QTP_CONN_RECONNECTING, QTP_CONN_HANDSHAKE, QTP_CONN_ACTIVE,
						      QTP_CONN_CLOSING };
			struct qtp_conn_info ci = {
				.conn_id = c->id,
				.session = cl->session_id,
				.core = i,
				.state = states[clamp(READ_ONCE(c->state), 0, 3)],
				.inflight = atomic_read(&c->inflight),
				.requests = atomic64_read(&c->requests),
				.bytes_in = atomic64_read(&c->bytes_in),
				.bytes_out = atomic64_read(&c->bytes_out),
				.peer = (const u8 *)peer,
				.peer_len = strlen(peer),
			};
			long w = qtp_conn_info_encode(&ci, pos, out + cap - pos);

			if (w < 0) {
				mutex_unlock(&qtfs_clients_lock);
				return w;
			}
			pos += w;
			n++;
		}
	}
	mutex_unlock(&qtfs_clients_lock);
	rsp.count = n;
	rsp.records = out + QTP_CONNS_RSP_FIXED;
	rsp.records_len = pos - rsp.records;
	return qtp_conns_rsp_encode(&rsp, out, cap);
}

static long admin_info(u8 *out, u32 cap)
{
	struct qtfs_client *cl;
	struct qtp_admin_info ai = {
		.proto_version = QTP_VERSION,
		.cores = num_online_cpus(),
		.uptime_ms = jiffies64_to_msecs(get_jiffies_64() - loaded_at),
		.log_level = READ_ONCE(qtfs_log_level),
		.component = (const u8 *)QTFS_NAME,
		.component_len = strlen(QTFS_NAME),
		.version = (const u8 *)QTFS_VERSION,
		.version_len = strlen(QTFS_VERSION),
	};

	mutex_lock(&qtfs_clients_lock);
	list_for_each_entry(cl, &qtfs_clients, node) {
		ai.sessions++;
		ai.connections += cl->nconns;
	}
	mutex_unlock(&qtfs_clients_lock);
	return qtp_admin_info_encode(&ai, out, cap);
}

/* Answers one admin request; returns the response payload length or -errno. */
static long admin(u16 op, const u8 *p, u32 len, u8 *out, u32 cap)
{
	switch (op) {
	case QTP_OP_ADMIN_INFO:
		return len ? -EBADMSG : admin_info(out, cap);
	case QTP_OP_ADMIN_LOG_LEVEL: {
		struct qtp_log_level_req q;
		struct qtp_log_level_rsp r;

		if (qtp_log_level_req_decode(p, len, &q) != len)
			return -EBADMSG;
		if (q.level != QTP_LOG_QUERY) {
			if (q.level > QTP_LOG_DEBUG)
				return -EINVAL;
			WRITE_ONCE(qtfs_log_level, q.level);
		}
		r.level = READ_ONCE(qtfs_log_level);
		return qtp_log_level_rsp_encode(&r, out, cap);
	}
	case QTP_OP_ADMIN_COUNTERS:
		return admin_counters(p, len, out, cap);
	case QTP_OP_ADMIN_CONNS:
		return len ? -EBADMSG : admin_conns(out, cap);
	case QTP_OP_ADMIN_CHANNELS: {
		struct qtp_channels_rsp r = {}; /* the module carries no channels */

		return len ? -EBADMSG : qtp_channels_rsp_encode(&r, out, cap);
	}
	case QTP_OP_ADMIN_CLEAR:
		if (len)
			return -EBADMSG;
		qtfs_stats_clear();
		return 0;
	case QTP_OP_ADMIN_WL_LIST:
	case QTP_OP_ADMIN_WL_ADD:
	case QTP_OP_ADMIN_WL_DEL:
		return -EOPNOTSUPP; /* whitelists are the engine's (qtcfg --target engine:PATH) */
	default:
		return -ENOSYS;
	}
}

static long qtfs_dev_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct qtfs_ioc_admin io;
	struct qtp_hdr h, rh;
	u8 *in = NULL, *out = NULL;
	long n, err = 0;

	if (cmd != QTFS_IOC_ADMIN)
		return -ENOTTY;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&io, (void __user *)arg, sizeof(io)))
		return -EFAULT;
	if (io.reserved || io.req_len < QTP_HEADER_SIZE || io.req_len > ADMIN_REQ_MAX)
		return -EBADMSG;
	in = kvmalloc(io.req_len, GFP_KERNEL);
	out = kvmalloc(ADMIN_RSP_MAX, GFP_KERNEL);
	if (!in || !out) {
		err = -ENOMEM;
		goto done;
	}
	if (copy_from_user(in, u64_to_user_ptr(io.req), io.req_len)) {
		err = -EFAULT;
		goto done;
	}
	if (qtp_hdr_decode(in, io.req_len, ADMIN_REQ_MAX, &h) || !(h.flags & QTP_F_REQUEST) ||
	    h.len != io.req_len - QTP_HEADER_SIZE) {
		err = -EBADMSG;
		goto done;
	}
	n = admin(h.op, in + QTP_HEADER_SIZE, h.len, out + QTP_HEADER_SIZE, ADMIN_RSP_MAX - QTP_HEADER_SIZE);
	rh = (struct qtp_hdr){ .flags = QTP_F_RESPONSE, .op = h.op, .id = h.id, .channel = h.channel };
	if (n < 0) {
		rh.flags |= QTP_F_ERROR;
		rh.status = -n;
		n = 0;
	}
	rh.len = n;
	qtp_hdr_encode(&rh, out);
	io.rsp_len = QTP_HEADER_SIZE + n;
	if (io.rsp_len > io.rsp_cap)
		err = -ENOSPC;
	else if (copy_to_user(u64_to_user_ptr(io.rsp), out, io.rsp_len))
		err = -EFAULT;
	if (copy_to_user((void __user *)arg, &io, sizeof(io)))
		err = -EFAULT;
done:
	kvfree(in);
	kvfree(out);
	return err;
}

static const struct file_operations qtfs_dev_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = qtfs_dev_ioctl,
	.compat_ioctl = qtfs_dev_ioctl, /* the layout is the same for 32-bit callers */
	.llseek = noop_llseek,
};

static struct miscdevice qtfs_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = QTFS_DEV_NAME,
	.fops = &qtfs_dev_fops,
	.mode = 0600,
};

int qtfs_dev_init(void)
{
	loaded_at = get_jiffies_64();
	return misc_register(&qtfs_misc);
}

void qtfs_dev_exit(void)
{
	misc_deregister(&qtfs_misc);
}
