// SPDX-License-Identifier: GPL-2.0
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
/*
 * relay.c - `-o relay`: HOST FIFOs and character devices (a VM's console pty under the
 * HOST's /dev/pts, a FIFO) used through the mount act on the HOST object.
 *
 * Without the option such inodes get init_special_inode() and open the *local* pipe or
 * device. With it, S_IFIFO and S_IFCHR inodes get qtfs_relay_fops:
 *
 * - open: OPEN on the HOST with the caller's access mode, always O_NONBLOCK there (the
 *   engine applies --allow-devices: a device it does not allow fails with EACCES). Every
 *   wait happens here, interruptibly, never in the engine: a blocking open of a FIFO's
 *   write end while nobody reads it (ENXIO) is retried (10 ms doubling to 200 ms) until a
 *   reader comes or a signal (-ERESTARTSYS). A blocking open of a read end returns at
 *   once; its reads then wait until a writer has come (what open(2) would have waited
 *   for): while no writer was ever connected, the HOST answers a read with 0 and a poll
 *   with nothing, which is taken as "not yet", not as end of file.
 * - read/write: READ/WRITE on the handle (no offsets, no page cache, never sent twice).
 *   EAGAIN from the HOST: an O_NONBLOCK caller gets -EAGAIN; a blocking one sleeps
 *   interruptibly on the file's wait queue until an EPOLL_EVENT of the file arrives (or
 *   2 s pass: a safety net, then it simply tries again) and retries; a signal ends the
 *   wait with -ERESTARTSYS (EINTR, or a restart under SA_RESTART), or with the count
 *   already written; a write to a FIFO without readers gets EPIPE and SIGPIPE, as
 *   locally. The readiness comes from one EPOLL_CTL registration per open file
 *   (cookie = its index in cl->relays), made on first need on whichever connection the
 *   request goes out on; the engine reports on that connection, so it is made again
 *   when that connection was re-made (ups changed) or the handle was reopened (session
 *   lost). An engine that refuses EPOLL_CTL is waited on with FIFO_POLL steps of 200 ms.
 * - poll/select/epoll: the file's wait queue (woken by EPOLL_EVENT) and the readiness
 *   now (FIFO_POLL with a zero timeout), the same level a local pipe or tty reports.
 * - ioctl: TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ and TIOCSWINSZ are the engine's
 *   portable IOCTLs and act on the HOST terminal (so isatty(), tcgetattr(), `stty` and a
 *   raw-mode console see and change the HOST pty's settings); anything else is ENOTTY
 *   (a FIFO answers ENOTTY to all, as locally).
 * - llseek: no_llseek (a stream; ESPIPE); release: EPOLL_CTL DEL, then CLOSE.
 *
 * The receiver threads only look up the cookie and wake the queue (qtfs_relay_event),
 * under the xarray's lock, which release takes to remove the file: nothing else runs
 * in them. A blocked reader holds no lock of the file system and no engine resource.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/termios.h>
#include <linux/delay.h>
#include <linux/splice.h>

#include "qtfs.h"

#define RELAY_SAFETY (2 * HZ)   /* longest sleep without an event before trying again */
#define RELAY_POLL_STEP_MS 200  /* FIFO_POLL step when the engine has no EPOLL_CTL */

struct qtfs_relay {
	struct qtfs_client *cl;
	u32 cookie;               /* index in cl->relays */
	wait_queue_head_t wq;     /* woken by EPOLL_EVENT */
	atomic_t seq;             /* bumped by every EPOLL_EVENT of the file */
	u32 mask;                 /* EPOLLIN and/or EPOLLOUT, by the access mode */
	bool wait_writer;         /* FIFO read end opened blocking, no writer seen yet */
	struct mutex reg_lock;    /* the registration below */
	bool registered, no_epoll;
	struct qtfs_conn *reg_conn;
	u32 reg_ups;
	u64 reg_handle;
};

static struct qtfs_relay *relay_of(struct file *file)
{
	struct qtfs_file *qf = file->private_data;

	return qf ? qf->relay : NULL;
}

/* From a receiver thread: an EPOLL_EVENT record for cookie. */
void qtfs_relay_event(struct qtfs_client *cl, u64 cookie, u32 events)
{
	struct qtfs_relay *rl;

	if (!cookie || cookie > U32_MAX)
		return;
	xa_lock(&cl->relays);
	rl = xa_load(&cl->relays, (unsigned long)cookie);
	if (rl) {
		atomic_inc(&rl->seq);
		wake_up_interruptible_poll(&rl->wq, (__force __poll_t)events);
	}
	xa_unlock(&cl->relays);
}

static int epoll_ctl(struct qtfs_relay *rl, struct qtfs_conn *on, u64 handle, u32 op, struct qtfs_req **rp)
{
	struct qtp_epoll_ctl_req m = { .handle = handle, .op = op, .events = rl->mask, .cookie = rl->cookie };
	struct qtfs_req *r = qtfs_req_new(QTP_OP_EPOLL_CTL, qtp_epoll_ctl_req_size(&m), 0);
	long n;

	*rp = r;
	if (!r)
		return -ENOMEM;
	r->on = on;
	n = qtp_epoll_ctl_req_encode(&m, qtfs_req_payload(r), r->plen);
	return n < 0 ? (int)n : qtfs_req_run(rl->cl, r, 0);
}

/*
 * Makes sure the engine reports the readiness of handle h (see the top of the file).
 * Returns 0 when it does, an error when it cannot (the caller then polls).
 */
static int relay_register(struct qtfs_relay *rl, u64 h)
{
	struct qtfs_conn *c;
	struct qtfs_req *r;
	int err = 0;

	mutex_lock(&rl->reg_lock);
	if (rl->no_epoll) {
		err = -ENOSYS;
		goto out;
	}
	c = rl->reg_conn;
	if (rl->registered && rl->reg_handle == h && READ_ONCE(c->state) == QTFS_ACTIVE &&
	    READ_ONCE(c->ups) == rl->reg_ups)
		goto out;
	rl->registered = false;
	err = epoll_ctl(rl, NULL, h, EPOLL_CTL_ADD, &r);
	if (err == -EEXIST)
		err = 0; /* the registration of this connection survived */
	if (!err && r) {
		rl->registered = true;
		rl->reg_conn = r->conn;
		rl->reg_ups = r->conn_ups;
		rl->reg_handle = h;
	} else if (err == -ENOSYS || err == -EOPNOTSUPP || err == -EINVAL) {
		qtfs_info("EPOLL_CTL refused (%d): relayed files wait in FIFO_POLL steps", err);
		rl->no_epoll = true;
	}
	qtfs_req_put(r);
out:
	mutex_unlock(&rl->reg_lock);
	return err;
}

static void relay_unregister(struct qtfs_relay *rl, u32 generation)
{
	struct qtfs_req *r;

	mutex_lock(&rl->reg_lock);
	/* Gone already with its connection or its session; otherwise it holds the HOST fd. */
	if (rl->registered && READ_ONCE(rl->reg_conn->ups) == rl->reg_ups &&
	    generation == READ_ONCE(rl->cl->generation)) {
		if (epoll_ctl(rl, rl->reg_conn, rl->reg_handle, EPOLL_CTL_DEL, &r))
			qtfs_debug("EPOLL_CTL DEL of handle %llx failed", rl->reg_handle);
		qtfs_req_put(r);
	}
	rl->registered = false;
	mutex_unlock(&rl->reg_lock);
}

/* FIFO_POLL of handle h: the HOST object's readiness for events, waiting up to ms. */
static int fifo_poll(struct qtfs_client *cl, u64 h, u32 events, u32 ms, u32 *revents)
{
	struct qtp_poll_req p = { .handle = h, .events = events, .timeout_ms = ms };
	struct qtp_poll_rsp pr;
	struct qtfs_req *r;
	int err = QTFS_CALL(cl, QTP_OP_FIFO_POLL, poll_req, &p, 16, QTFS_IDEMPOTENT, &r);

	if (!err && qtp_poll_rsp_decode(r->rsp, r->rsp_len, &pr) != r->rsp_len)
		err = -EIO;
	if (!err)
		*revents = pr.revents;
	qtfs_req_put(r);
	return err;
}

/*
 * A blocking caller's wait for events on h, after an attempt that found the object not
 * ready; seq is the event count taken before that attempt, so an event that came in
 * between ends the wait at once. 0: try again; -ERESTARTSYS: a signal.
 */
static int relay_wait(struct qtfs_relay *rl, u64 h, u32 events, int seq)
{
	u32 rev;
	long left;

	if (relay_register(rl, h)) {
		int err = fifo_poll(rl->cl, h, events, RELAY_POLL_STEP_MS, &rev);

		if (signal_pending(current))
			return -ERESTARTSYS;
		if (err == -EINTR)
			return -ERESTARTSYS;
		if (err)
			msleep_interruptible(RELAY_POLL_STEP_MS); /* not a reason to fail the read */
		return signal_pending(current) ? -ERESTARTSYS : 0;
	}
	left = wait_event_interruptible_timeout(rl->wq, atomic_read(&rl->seq) != seq, RELAY_SAFETY);
	return left < 0 ? -ERESTARTSYS : 0;
}

static bool nonblocking(struct kiocb *iocb)
{
	return (iocb->ki_filp->f_flags & O_NONBLOCK) || (iocb->ki_flags & IOCB_NOWAIT);
}

/* One READ of up to len bytes: the count (0: end of file), or -EAGAIN, or an error. */
static ssize_t read_once(struct qtfs_relay *rl, struct qtfs_file *qf, u64 h, struct iov_iter *to)
{
	struct qtp_read_req rr = { .handle = h, .offset = 0 };
	struct qtfs_req *r;
	ssize_t ret;
	int err;

	rr.len = min_t(size_t, iov_iter_count(to), QTFS_IO_MAX);
	/* Never sent twice: the engine may have taken the bytes from the pipe. */
	err = QTFS_CALL(qf->cl, QTP_OP_READ, read_req, &rr, rr.len, 0, &r);
	if (!err && r->rsp_len > rr.len)
		err = -EIO;
	if (err) {
		qtfs_req_put(r);
		return err;
	}
	ret = r->rsp_len;
	if (ret && copy_to_iter(r->rsp, ret, to) != ret)
		ret = -EFAULT;
	qtfs_req_put(r);
	return ret;
}

static ssize_t relay_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct qtfs_file *qf = file->private_data;
	struct qtfs_relay *rl = relay_of(file);
	ssize_t n;
	u32 rev;
	u64 h;
	int err, seq;

	if (!rl)
		return -EBADF;
	if (!iov_iter_count(to))
		return 0;
	for (;;) {
		seq = atomic_read(&rl->seq);
		err = qtfs_file_handle(file, &h);
		if (err)
			return err;
		n = read_once(rl, qf, h, to);
		if (n == 0 && READ_ONCE(rl->wait_writer)) {
			/* End of file, or no writer yet? HUP (or data) says one came. */
			err = fifo_poll(rl->cl, h, EPOLLIN, 0, &rev);
			if (err)
				return err;
			if (rev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				WRITE_ONCE(rl->wait_writer, false);
				if (rev & EPOLLIN)
					continue;
				return 0;
			}
			n = -EAGAIN; /* what the blocked open(2) would still wait for */
		} else if (n > 0 && READ_ONCE(rl->wait_writer)) {
			WRITE_ONCE(rl->wait_writer, false);
		}
		if (n != -EAGAIN)
			return n;
		if (nonblocking(iocb))
			return -EAGAIN;
		err = relay_wait(rl, h, EPOLLIN, seq);
		if (err)
			return err;
	}
}

/* One WRITE of what is left in from (up to QTFS_IO_MAX): the count written or an error. */
static ssize_t write_once(struct qtfs_file *qf, u64 h, struct iov_iter *from)
{
	struct qtp_write_req w = { .handle = h, .offset = 0, .flags = 0, .data_len = 0 };
	u32 n = min_t(size_t, iov_iter_count(from), QTFS_IO_MAX);
	struct qtp_write_rsp wr;
	struct qtfs_req *r;
	int err;

	r = qtfs_req_new(QTP_OP_WRITE, QTP_WRITE_REQ_FIXED + n, 16);
	if (!r)
		return -ENOMEM;
	qtp_write_req_encode(&w, qtfs_req_payload(r), QTP_WRITE_REQ_FIXED);
	if (copy_from_iter(qtfs_req_payload(r) + QTP_WRITE_REQ_FIXED, n, from) != n) {
		iov_iter_revert(from, n);
		qtfs_req_put(r);
		return -EFAULT;
	}
	/* Never sent twice: a FIFO or terminal write is not repeatable. */
	err = qtfs_req_run(qf->cl, r, 0);
	if (!err && (qtp_write_rsp_decode(r->rsp, r->rsp_len, &wr) != r->rsp_len || wr.written > n))
		err = -EIO;
	qtfs_req_put(r);
	if (err) {
		iov_iter_revert(from, n);
		return err;
	}
	iov_iter_revert(from, n - wr.written);
	return wr.written;
}

static ssize_t relay_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct qtfs_file *qf = file->private_data;
	struct qtfs_relay *rl = relay_of(file);
	ssize_t total = 0, n;
	u64 h;
	int err = 0, seq;

	if (!rl)
		return -EBADF;
	while (iov_iter_count(from)) {
		seq = atomic_read(&rl->seq);
		err = qtfs_file_handle(file, &h);
		if (err)
			break;
		n = write_once(qf, h, from);
		if (n > 0) {
			total += n;
			if (nonblocking(iocb))
				break;
			continue;
		}
		if (n == 0)
			break;
		err = n;
		/* no reader left: SIGPIPE too, as pipe_write() does */
		if (err == -EPIPE && !total && S_ISFIFO(file_inode(file)->i_mode))
			send_sig(SIGPIPE, current, 0);
		if (err != -EAGAIN || nonblocking(iocb))
			break;
		/* a blocking write is complete, as to a local pipe or tty */
		err = relay_wait(rl, h, EPOLLOUT, seq);
		if (err)
			break;
	}
	return total ? total : err;
}

static __poll_t relay_poll(struct file *file, poll_table *pt)
{
	struct qtfs_relay *rl = relay_of(file);
	u32 rev = 0;
	u64 h;
	int err;

	if (!rl)
		return EPOLLERR;
	poll_wait(file, &rl->wq, pt);
	err = qtfs_file_handle(file, &h);
	if (err)
		return EPOLLERR;
	/* Registered before the readiness is asked: a change after the answer wakes us. */
	relay_register(rl, h);
	err = fifo_poll(rl->cl, h, rl->mask, 0, &rev);
	if (err)
		return EPOLLERR;
	/* A read end opened blocking shows nothing until a writer came (see the top). */
	if (READ_ONCE(rl->wait_writer) && (rev & (EPOLLIN | EPOLLHUP)))
		WRITE_ONCE(rl->wait_writer, false);
	return (__force __poll_t)(rev & (EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM | EPOLLPRI |
					  EPOLLERR | EPOLLHUP | EPOLLRDHUP));
}

/* ---- terminal ioctls: the engine's portable IOCTLs ---- */

static int relay_ioc(struct file *file, u32 cmd, const u8 *arg, u32 arg_len, u8 *out, u32 out_len)
{
	struct qtp_ioctl_req m = { .cmd = cmd, .arg = arg, .arg_len = arg_len };
	struct qtfs_req *r;
	int err;

	err = qtfs_file_handle(file, &m.handle);
	if (err)
		return err;
	err = QTFS_CALL(relay_of(file)->cl, QTP_OP_IOCTL, ioctl_req, &m, out_len, QTFS_IDEMPOTENT, &r);
	if (!err && r->rsp_len != out_len)
		err = -EIO;
	if (!err && out_len)
		memcpy(out, r->rsp, out_len);
	qtfs_req_put(r);
	return err;
}

static int tc_get(struct file *file, struct qtp_termios *t)
{
	u8 buf[QTP_TERMIOS_SIZE];
	int err = relay_ioc(file, QTP_IOC_TCGETS, NULL, 0, buf, sizeof(buf));

	if (!err)
		qtp_termios_get(buf, t);
	return err;
}

/*
 * Copies what struct termios (field prefix c_) and the wire's qtp_termios (no prefix)
 * share, from src to dst, either way; the wire's line speeds stay as they are.
 */
#define TC_COPY(dst, dp, src, sp)								\
	do {											\
		(dst).dp##iflag = (src).sp##iflag;						\
		(dst).dp##oflag = (src).sp##oflag;						\
		(dst).dp##cflag = (src).sp##cflag;						\
		(dst).dp##lflag = (src).sp##lflag;						\
		(dst).dp##line = (src).sp##line;						\
		memcpy((dst).dp##cc, (src).sp##cc,						\
		       min_t(size_t, sizeof((dst).dp##cc), sizeof((src).sp##cc)));		\
	} while (0)

static long relay_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *up = (void __user *)arg;
	struct qtp_termios t;
	struct qtp_winsize w;
	struct termios ut;
	struct winsize uw;
	u8 buf[QTP_TERMIOS_SIZE];
	u32 qcmd;
	int err;

	if (!relay_of(file))
		return -EBADF;
	switch (cmd) {
	case TCGETS:
		err = tc_get(file, &t);
		if (err)
			return err;
		memset(&ut, 0, sizeof(ut));
		TC_COPY(ut, c_, t, );
		return copy_to_user(up, &ut, sizeof(ut)) ? -EFAULT : 0;
	case TCSETS:
	case TCSETSW:
	case TCSETSF:
		qcmd = cmd == TCSETS ? QTP_IOC_TCSETS : cmd == TCSETSW ? QTP_IOC_TCSETSW : QTP_IOC_TCSETSF;
		if (copy_from_user(&ut, up, sizeof(ut)))
			return -EFAULT;
		/* The line speeds stay the HOST's (struct termios has none of its own). */
		err = tc_get(file, &t);
		if (err)
			return err;
		TC_COPY(t, , ut, c_);
		qtp_termios_put(&t, buf);
		return relay_ioc(file, qcmd, buf, sizeof(buf), NULL, 0);
	case TIOCGWINSZ:
		err = relay_ioc(file, QTP_IOC_TIOCGWINSZ, NULL, 0, buf, QTP_WINSIZE_SIZE);
		if (err)
			return err;
		qtp_winsize_get(buf, &w);
		uw = (struct winsize){ .ws_row = w.rows, .ws_col = w.cols, .ws_xpixel = w.xpixel,
				       .ws_ypixel = w.ypixel };
		return copy_to_user(up, &uw, sizeof(uw)) ? -EFAULT : 0;
	case TIOCSWINSZ:
		if (copy_from_user(&uw, up, sizeof(uw)))
			return -EFAULT;
		w = (struct qtp_winsize){ .rows = uw.ws_row, .cols = uw.ws_col, .xpixel = uw.ws_xpixel,
					  .ypixel = uw.ws_ypixel };
		qtp_winsize_put(&w, buf);
		return relay_ioc(file, QTP_IOC_TIOCSWINSZ, buf, QTP_WINSIZE_SIZE, NULL, 0);
	default:
		return -ENOTTY;
	}
}

/* ---- open and release ---- */

static int relay_open(struct inode *inode, struct file *file)
{
	struct qtfs_client *cl = qtfs_cl(inode);
	bool block = !(file->f_flags & O_NONBLOCK);
	unsigned long delay = msecs_to_jiffies(10);
	struct qtp_open_rsp o;
	struct qtfs_relay *rl;
	struct qtfs_file *qf;
	u32 wf, id;
	int err;

	wf = qtfs_wire_open_flags(file->f_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_DIRECT)) | QTP_O_NONBLOCK |
	     QTP_O_NOCTTY;
	for (;;) {
		err = qtfs_open_req(file->f_path.dentry, wf, &o);
		/* a FIFO's write end with no reader: a blocking open waits for one */
		if (err != -ENXIO || !block || !S_ISFIFO(inode->i_mode))
			break;
		if (schedule_timeout_interruptible(delay) || signal_pending(current))
			return -ERESTARTSYS;
		delay = min(delay * 2, msecs_to_jiffies(200));
	}
	if (err)
		return err;
	if (o.attr.ino == inode->i_ino && (o.attr.mode & S_IFMT) == (inode->i_mode & S_IFMT))
		qtfs_apply_attr(inode, &o.attr);
	rl = kzalloc(sizeof(*rl), GFP_KERNEL);
	if (!rl) {
		qtfs_close_handle(cl, o.handle);
		return -ENOMEM;
	}
	rl->cl = cl;
	init_waitqueue_head(&rl->wq);
	atomic_set(&rl->seq, 0);
	mutex_init(&rl->reg_lock);
	rl->mask = ((file->f_mode & FMODE_READ) ? EPOLLIN | EPOLLRDNORM : 0) |
		   ((file->f_mode & FMODE_WRITE) ? EPOLLOUT | EPOLLWRNORM : 0);
	/* O_RDWR never waits for a partner, as locally */
	rl->wait_writer = S_ISFIFO(inode->i_mode) && block && (file->f_flags & O_ACCMODE) == O_RDONLY;
	err = xa_alloc(&cl->relays, &id, rl, xa_limit_32b, GFP_KERNEL);
	if (err) {
		kfree(rl);
		qtfs_close_handle(cl, o.handle);
		return err;
	}
	rl->cookie = id;
	err = qtfs_file_attach(file, o.handle);
	if (err) {
		xa_erase(&cl->relays, id);
		kfree(rl);
		return err;
	}
	qf = file->private_data;
	qf->flags = wf; /* a reopen after a lost session is non-blocking too */
	qf->relay = rl;
	return stream_open(inode, file);
}

static int relay_release(struct inode *inode, struct file *file)
{
	struct qtfs_file *qf = file->private_data;
	struct qtfs_relay *rl = qf ? qf->relay : NULL;

	if (rl) {
		xa_erase(&rl->cl->relays, rl->cookie); /* no receiver touches rl after this */
		relay_unregister(rl, READ_ONCE(qf->generation));
		qf->relay = NULL;
		kfree(rl);
	}
	return qtfs_release(inode, file); /* CLOSE of the handle */
}

const struct file_operations qtfs_relay_fops = {
	.owner = THIS_MODULE,
	.open = relay_open,
	.release = relay_release,
	.llseek = QTFS_NO_LLSEEK,
	.read_iter = relay_read_iter,
	.write_iter = relay_write_iter,
	.poll = relay_poll,
	.splice_read = QTFS_RELAY_SPLICE_READ, /* through ->read_iter (sendfile of cat) */
	.splice_write = iter_file_splice_write,
	.unlocked_ioctl = relay_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
