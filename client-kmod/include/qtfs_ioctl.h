/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * qtfs_ioctl.h - the admin ioctl of /dev/qtfs_client (qtfs.ko), for qtcfg/qtinfo.
 *
 * The module answers the same ADMIN_* messages as the engine's and udsproxyd's admin
 * sockets, so one codec serves every target: user space builds a whole QTP request
 * frame (32-byte header + payload, see qtp.h), passes it with QTFS_IOC_ADMIN, and gets
 * the whole response frame back in its buffer. The ioctl itself fails only when the
 * call cannot be made (bad pointers: EFAULT; a malformed frame: EBADMSG; a response
 * larger than rsp_cap: ENOSPC, with rsp_len set to the size needed). Refusals of the
 * request (ENOSYS for an unknown op, EOPNOTSUPP for whitelist messages: whitelists live
 * on the engine) come back as ERROR response frames, as on a socket.
 *
 * Layout is fixed-size and identical for 32- and 64-bit user space.
 */
#ifndef QTFS_IOCTL_H
#define QTFS_IOCTL_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#else
#include <stdint.h>
#include <sys/ioctl.h>
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

#define QTFS_DEV_NAME "qtfs_client"

struct qtfs_ioc_admin {
	__u64 req;      /* in: user address of the request frame */
	__u64 rsp;      /* in: user address of the response buffer */
	__u32 req_len;  /* in: bytes of the request frame (header + payload) */
	__u32 rsp_cap;  /* in: bytes available at rsp */
	__u32 rsp_len;  /* out: bytes of the response frame written (or needed) */
	__u32 reserved; /* zero */
};

/* _IOWR('q', 1, struct qtfs_ioc_admin) = 0xc0207101 */
#define QTFS_IOC_ADMIN _IOWR('q', 1, struct qtfs_ioc_admin)

#endif /* QTFS_IOCTL_H */
