// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * main.c - module parameters, logging, counters, load and unload.
 *
 * The parameter names are the original qtfs.ko's, so existing start scripts keep
 * working. The pre-shared key is deliberately not a parameter (parameters show in
 * sysfs): it comes from the kernel keyring (`keyctl add user qtfs:psk <hex> @u`).
 *
 * Parameters are validated when they are set. Those that say where and how to connect
 * (server address and port, vsock CID and port, connections per mount, insecure test
 * mode) are read-only after load (0444): receiver threads and mounts read them at any
 * time, so they must not change under them. Only the log level and the timeouts are
 * writable at run time (0600), through set functions that check their range.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/jiffies.h>
#include <linux/inet.h>

#include "qtfs.h"

static const char *const level_names[] = { "NONE", "ERROR", "WARN", "INFO", "DEBUG" };

int qtfs_log_level = QTP_LOG_ERROR;

static int log_level_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (sysfs_streq(val, level_names[i])) {
			WRITE_ONCE(qtfs_log_level, i);
			return 0;
		}
	}
	if (!kstrtoint(val, 10, &i) && i >= 0 && i < ARRAY_SIZE(level_names)) {
		WRITE_ONCE(qtfs_log_level, i);
		return 0;
	}
	pr_err("qtfs_log_level=%.*s: use NONE, ERROR, WARN, INFO or DEBUG\n", (int)strcspn(val, "\n"), val);
	return -EINVAL;
}

static int log_level_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", level_names[clamp(READ_ONCE(qtfs_log_level), 0, 4)]);
}

static const struct kernel_param_ops log_level_ops = { .set = log_level_set, .get = log_level_get };
module_param_cb(qtfs_log_level, &log_level_ops, NULL, 0600);
MODULE_PARM_DESC(qtfs_log_level, "NONE|ERROR|WARN|INFO|DEBUG (default ERROR; DEBUG messages are also pr_debug)");

/* An int parameter that only takes min..max (at load, and at run time if writable). */
static int int_range_set(const char *val, const struct kernel_param *kp, int min, int max)
{
	int v;

	if (kstrtoint(val, 0, &v) || v < min || v > max) {
		pr_err("%s=%.*s: must be %d..%d\n", kp->name, (int)strcspn(val, "\n"), val, min, max);
		return -EINVAL;
	}
	WRITE_ONCE(*(int *)kp->arg, v);
	return 0;
}

#define QTFS_INT_RANGE_PARAM(name, min, max, perm)						\
static int name##_set(const char *val, const struct kernel_param *kp)			\
{											\
	return int_range_set(val, kp, min, max);					\
}											\
static const struct kernel_param_ops name##_ops = { .set = name##_set, .get = param_get_int }; \
module_param_cb(name, &name##_ops, &name, perm)

/* ---- where to connect: read-only after load ---- */
char qtfs_server_ip[64];
module_param_string(qtfs_server_ip, qtfs_server_ip, sizeof(qtfs_server_ip), 0444);
MODULE_PARM_DESC(qtfs_server_ip, "engine IPv4 address: use TCP (test set-ups); empty: use vsock (read-only after load)");
__be32 qtfs_server_in4; /* qtfs_server_ip, parsed at load */

int qtfs_server_port = 12345;
QTFS_INT_RANGE_PARAM(qtfs_server_port, 1, 65535, 0444);
MODULE_PARM_DESC(qtfs_server_port, "engine TCP port (default 12345; read-only after load)");

unsigned int qtfs_server_vsock_cid = 2;
module_param(qtfs_server_vsock_cid, uint, 0444);
MODULE_PARM_DESC(qtfs_server_vsock_cid, "engine vsock CID (default 2, the host; read-only after load)");

unsigned int qtfs_server_vsock_port = 12345;
module_param(qtfs_server_vsock_port, uint, 0444);
MODULE_PARM_DESC(qtfs_server_vsock_port, "engine vsock port (default 12345; read-only after load)");

int qtfs_conn_max_conn = 2;
QTFS_INT_RANGE_PARAM(qtfs_conn_max_conn, 1, QTFS_MAX_CONNS, 0444);
MODULE_PARM_DESC(qtfs_conn_max_conn, "connections per mount, 1..16 (default 2; read-only after load)");

bool qtfs_insecure_test_mode;
module_param(qtfs_insecure_test_mode, bool, 0444);
MODULE_PARM_DESC(qtfs_insecure_test_mode, "accept an engine without a key (test set-ups only; default off; read-only after load)");

/* ---- timeouts: writable, range-checked ---- */
int qtfs_req_timeout_ms = 30000;
QTFS_INT_RANGE_PARAM(qtfs_req_timeout_ms, QTFS_REQ_TIMEOUT_MIN_MS, QTFS_TIMEOUT_MAX_MS, 0600);
MODULE_PARM_DESC(qtfs_req_timeout_ms, "a request unanswered this long fails with ETIMEDOUT and the connection is re-made (100..3600000, default 30000)");

int qtfs_attr_timeout_ms = 1000;
QTFS_INT_RANGE_PARAM(qtfs_attr_timeout_ms, 0, QTFS_TIMEOUT_MAX_MS, 0600);
MODULE_PARM_DESC(qtfs_attr_timeout_ms, "attribute and name cache lifetime in ms (0..3600000, default 1000; mount option attr_timeout_ms overrides)");

/* ---- counters ---- */
struct qtfs_op_stat qtfs_stats[QTP_OP_INDEX_LIMIT];
u64 qtfs_stats_since;

void qtfs_stat_account(u16 op, int err, u32 out, u32 in, u64 ns)
{
	int i = qtfs_op_index(op);
	struct qtfs_op_stat *s;
	int b;
	u64 old;

	if (i < 0)
		return;
	s = &qtfs_stats[i];
	atomic64_inc(&s->requests);
	if (err)
		atomic64_inc(&s->errors);
	atomic64_add(out, &s->bytes_out);
	atomic64_add(in, &s->bytes_in);
	b = ns ? min_t(int, fls64(ns) - 1, QTFS_LAT_BUCKETS - 1) : 0;
	atomic64_inc(&s->lat[b]);
	old = atomic64_read(&s->lat_max);
	while (ns > old) {
		u64 seen = atomic64_cmpxchg(&s->lat_max, old, ns);

		if (seen == old)
			break;
		old = seen;
	}
}

void qtfs_stats_clear(void)
{
	int i, b;

	for (i = 0; i < QTP_OP_INDEX_LIMIT; i++) {
		atomic64_set(&qtfs_stats[i].requests, 0);
		atomic64_set(&qtfs_stats[i].errors, 0);
		atomic64_set(&qtfs_stats[i].bytes_in, 0);
		atomic64_set(&qtfs_stats[i].bytes_out, 0);
		atomic64_set(&qtfs_stats[i].lat_max, 0);
		for (b = 0; b < QTFS_LAT_BUCKETS; b++)
			atomic64_set(&qtfs_stats[i].lat[b], 0);
	}
	qtfs_stats_since = get_jiffies_64();
}

static int __init qtfs_init(void)
{
	int err;

	qtfs_stats_since = get_jiffies_64();
	/* The range parameters were checked as they were set; the address is parsed once. */
	if (qtfs_server_ip[0] && !in4_pton(qtfs_server_ip, -1, (u8 *)&qtfs_server_in4, -1, NULL)) {
		pr_err("qtfs_server_ip=%s is not an IPv4 address\n", qtfs_server_ip);
		return -EINVAL;
	}
	err = qtfs_dev_init();
	if (err)
		return err;
	err = qtfs_fs_init();
	if (err) {
		qtfs_dev_exit();
		return err;
	}
	if (qtfs_server_ip[0])
		qtfs_info("loaded: engine at tcp:%pI4:%d, %d connection(s) per mount", &qtfs_server_in4,
			  qtfs_server_port, qtfs_conn_max_conn);
	else
		qtfs_info("loaded: engine at vsock:%u:%u, %d connection(s) per mount", qtfs_server_vsock_cid,
			  qtfs_server_vsock_port, qtfs_conn_max_conn);
	return 0;
}

static void __exit qtfs_exit(void)
{
	qtfs_fs_exit();
	qtfs_dev_exit();
	qtfs_info("unloaded");
}

module_init(qtfs_init);
module_exit(qtfs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("qtfs: remote HOST file system over QTP v1 (vsock or TCP); mount options: proc (no page cache, for /proc and /sys), relay (HOST FIFOs and character devices relayed), attr_timeout_ms=N, ro");
MODULE_VERSION(QTFS_VERSION);
MODULE_ALIAS_FS("qtfs");
