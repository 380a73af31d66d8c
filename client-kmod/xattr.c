// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * xattr.c - extended attributes, passed byte for byte to the HOST (one handler for
 * every name space; the HOST's kernel decides what a name may be).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/xattr.h>

#include "qtfs.h"

static int xattr_rsp(struct qtfs_req *r, void *buf, size_t size)
{
	struct qtp_xattr_rsp x;

	if (qtp_xattr_rsp_decode(r->rsp, r->rsp_len, &x) != r->rsp_len)
		return -EIO;
	if (!size)
		return x.size > XATTR_SIZE_MAX ? -E2BIG : x.size;
	if (x.data_len > size)
		return -EIO;
	memcpy(buf, x.data, x.data_len);
	return x.data_len;
}

/* Ends an XATTR_GET or XATTR_LIST call: its data into buf (size 0: only the size); puts r. */
static int xattr_done(int err, struct qtfs_req *r, void *buf, size_t size)
{
	if (!err)
		err = xattr_rsp(r, buf, size);
	qtfs_req_put(r);
	return err;
}

int qtfs_xattr_list(struct dentry *d, char *list, size_t size)
{
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct qtp_xattr_list_req x;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	int err;

	size = min_t(size_t, size, XATTR_LIST_MAX);
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	x = (struct qtp_xattr_list_req){ QTFS_PATH_CRED(c, qp), .size = size };
	err = QTFS_CALL(cl, QTP_OP_XATTR_LIST, xattr_list_req, &x, size + 16, QTFS_IDEMPOTENT, &r);
	qtfs_path_put(&qp);
	return xattr_done(err, r, list, size);
}

static int qtfs_xattr_get(const struct xattr_handler *h, struct dentry *d, struct inode *inode,
			  const char *name, void *buf, size_t size)
{
	struct qtfs_client *cl = qtfs_cl(inode);
	struct qtp_xattr_get_req x;
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	size_t nlen = strlen(name);
	int err;

	if (!d)
		return -ECHILD;
	if (nlen > QTP_MAX_NAME)
		return -ERANGE;
	size = min_t(size_t, size, XATTR_SIZE_MAX);
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	x = (struct qtp_xattr_get_req){ QTFS_PATH_CRED(c, qp), .size = size, .name = (const u8 *)name,
					.name_len = nlen };
	err = QTFS_CALL(cl, QTP_OP_XATTR_GET, xattr_get_req, &x, size + 16, QTFS_IDEMPOTENT, &r);
	qtfs_path_put(&qp);
	return xattr_done(err, r, buf, size);
}

static int qtfs_xattr_set(const struct xattr_handler *h, qtfs_idmap_t *idmap, struct dentry *d,
			  struct inode *inode, const char *name, const void *value, size_t size, int flags)
{
	struct qtfs_client *cl = qtfs_cl(inode);
	struct qtfs_path qp;
	struct qtfs_cred c;
	struct qtfs_req *r;
	size_t nlen = strlen(name);
	int err;

	if (nlen > QTP_MAX_NAME)
		return -ERANGE;
	if (size > XATTR_SIZE_MAX)
		return -E2BIG;
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	if (!value) {
		struct qtp_xattr_remove_req x = { QTFS_PATH_CRED(c, qp), .name = (const u8 *)name,
						  .name_len = nlen };

		err = QTFS_CALL(cl, QTP_OP_XATTR_REMOVE, xattr_remove_req, &x, 0, 0, &r);
	} else {
		struct qtp_xattr_set_req x = { QTFS_PATH_CRED(c, qp), .flags = flags, .name = (const u8 *)name,
					       .name_len = nlen, .value = value, .value_len = size };

		err = QTFS_CALL(cl, QTP_OP_XATTR_SET, xattr_set_req, &x, 0, 0, &r);
	}
	qtfs_path_put(&qp);
	qtfs_req_put(r);
	if (!err)
		QTFS_I(inode)->attr_expire = jiffies - 1; /* ctime moved */
	return err;
}

static const struct xattr_handler qtfs_xattr_handler = {
	.prefix = "",
	.get = qtfs_xattr_get,
	.set = qtfs_xattr_set,
};

const struct xattr_handler *qtfs_xattr_handlers[] = { &qtfs_xattr_handler, NULL };
