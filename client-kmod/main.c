// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - module parameters, logging, counters, load and unload.
 *
 * The parameter names are the original qtfs.ko's, so existing start scripts keep
 * working. The pre-shared key is deliberately not a parameter (parameters show in
 * sysfs): it comes from the kernel keyring (`keyctl add user qtfs:psk <hex> @u`).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/jiffies.h>

#include "qtfs.h"

static const char *const level_names[] = { "NONE", "ERROR", "WARN", "INFO", "DEBUG" };

int qtfs_log_level = QTP_LOG_ERROR;

static int log_level_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (sysfs_streq(val, level_names[i])) {
			qtfs_log_level = i;
			return 0;
		}
	}
	if (!kstrtoint(val, 10, &i) && i >= 0 && i < ARRAY_SIZE(level_names)) {
		qtfs_log_level = i;
		return 0;
	}
	pr_err("qtfs: qtfs_log_level=%s: use NONE, ERROR, WARN, INFO or DEBUG\n", val);
	return -EINVAL;
}

static int log_level_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", level_names[clamp(qtfs_log_level, 0, 4)]);
}

static const struct kernel_param_ops log_level_ops = { .set = log_level_set, .get = log_level_get };
module_param_cb(qtfs_log_level, &log_level_ops, NULL, 0600);
MODULE_PARM_DESC(qtfs_log_level, "NONE|ERROR|WARN|INFO|DEBUG (default ERROR)");

char qtfs_server_ip[64];
module_param_string(qtfs_server_ip, qtfs_server_ip, sizeof(qtfs_server_ip), 0600);
MODULE_PARM_DESC(qtfs_server_ip, "engine IPv4 address: use TCP (test set-ups); empty: use vsock");

int qtfs_server_port = 12345;
module_param(qtfs_server_port, int, 0600);
MODULE_PARM_DESC(qtfs_server_port, "engine TCP port (default 12345)");

unsigned int qtfs_server_vsock_cid = 2;
module_param(qtfs_server_vsock_cid, uint, 0600);
MODULE_PARM_DESC(qtfs_server_vsock_cid, "engine vsock CID (default 2, the host)");

unsigned int qtfs_server_vsock_port = 12345;
module_param(qtfs_server_vsock_port, uint, 0600);
MODULE_PARM_DESC(qtfs_server_vsock_port, "engine vsock port (default 12345)");

int qtfs_conn_max_conn = 2;
module_param(qtfs_conn_max_conn, int, 0600);
MODULE_PARM_DESC(qtfs_conn_max_conn, "connections per mount, 1..16 (default 2)");

int qtfs_req_timeout_ms = 30000;
module_param(qtfs_req_timeout_ms, int, 0600);
MODULE_PARM_DESC(qtfs_req_timeout_ms, "a request unanswered this long fails with ETIMEDOUT and the connection is re-made (default 30000)");

int qtfs_attr_timeout_ms = 1000;
module_param(qtfs_attr_timeout_ms, int, 0600);
MODULE_PARM_DESC(qtfs_attr_timeout_ms, "attribute and name cache lifetime in ms (default 1000; mount option attr_timeout_ms overrides)");

bool qtfs_insecure_test_mode;
module_param(qtfs_insecure_test_mode, bool, 0600);
MODULE_PARM_DESC(qtfs_insecure_test_mode, "accept an engine without a key (test set-ups only; default off)");

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
	if (qtfs_conn_max_conn < 1 || qtfs_conn_max_conn > QTFS_MAX_CONNS) {
		pr_err("qtfs: qtfs_conn_max_conn=%d: must be 1..%d\n", qtfs_conn_max_conn, QTFS_MAX_CONNS);
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
		qtfs_info("loaded: engine at tcp:%s:%d, %d connection(s) per mount", qtfs_server_ip,
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
MODULE_DESCRIPTION("qtfs: remote HOST file system over QTP v1 (vsock or TCP)");
MODULE_VERSION(QTFS_VERSION);
MODULE_ALIAS_FS("qtfs");
