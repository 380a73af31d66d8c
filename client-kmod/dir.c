// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * dir.c - reading directories: READDIR pages of up to 32 KiB, resumed by the HOST's
 * cookies. ctx->pos is the cookie plus 2 (0 and 1 are "." and "..", which we make).
 * Every entry is checked before it reaches the VFS: a name must be a single non-empty
 * component without '/' or NUL.
 */
#include <linux/module.h>
#include <linux/slab.h>

#include "qtfs.h"

static bool name_ok(const u8 *n, u32 len)
{
	if (!len || len > QTP_MAX_NAME || memchr(n, '/', len))
		return false;
	return !(len == 1 && n[0] == '.') && !(len == 2 && n[0] == '.' && n[1] == '.');
}

static int qtfs_readdir(struct file *file, struct dir_context *ctx)
{
	struct dentry *d = file->f_path.dentry;
	struct qtfs_client *cl = QTFS_SB(d->d_sb)->cl;
	struct qtp_readdir_req rq;
	struct qtp_readdir_rsp rs;
	struct qtfs_path qp;
	struct qtfs_cred c;
	int err;

	if (!dir_emit_dots(file, ctx) || ctx->pos == LLONG_MAX)
		return 0;
	err = qtfs_path_cred_get(d, cl, &qp, &c);
	if (err)
		return err;
	for (;;) {
		bool full = false;
		struct qtfs_req *r;
		const u8 *p;
		size_t left;
		u32 i;

		rq = (struct qtp_readdir_req){ QTFS_PATH_CRED(c, qp), .cookie = ctx->pos - 2,
					       .max_bytes = QTFS_READDIR_BYTES, .flags = 0 };
		err = QTFS_CALL(cl, QTP_OP_READDIR, readdir_req, &rq, QTFS_READDIR_BYTES + 64, QTFS_IDEMPOTENT, &r);
		if (!err && qtp_readdir_rsp_decode(r->rsp, r->rsp_len, &rs) < 0)
			err = -EIO;
		if (err) {
			qtfs_req_put(r);
			break;
		}
		p = rs.entries;
		left = rs.entries_len;
		for (i = 0; i < rs.count; i++) {
			struct qtp_dir_entry e;
			long n = qtp_dir_entry_decode(p, left, &e);

			if (n < 0 || !name_ok(e.name, e.name_len)) {
				qtfs_warn("malformed directory entry from the engine in %pd", d);
				err = -EIO;
				break;
			}
			if (!dir_emit(ctx, (const char *)e.name, e.name_len, e.ino, e.dtype)) {
				full = true; /* the caller's buffer: resume at this entry next time */
				break;
			}
			/*
			 * Cookies past LLONG_MAX - 2 cannot be shifted: some file systems give
			 * the last entry an end-of-directory cookie like that, so it ends the
			 * listing (pos LLONG_MAX reads as end of directory).
			 */
			ctx->pos = e.cookie < LLONG_MAX - 2 ? e.cookie + 2 : LLONG_MAX;
			p += n;
			left -= n;
		}
		qtfs_req_put(r);
		if (err || full || !rs.count || (rs.flags & QTP_READDIR_EOF) || ctx->pos == LLONG_MAX)
			break;
	}
	qtfs_path_put(&qp);
	return err;
}

const struct file_operations qtfs_dir_fops = {
	.owner = THIS_MODULE,
	.llseek = generic_file_llseek,
	.read = generic_read_dir,
	.iterate_shared = qtfs_readdir,
};
