//! SCM_RIGHTS control messages of the ring's sendmsg/recvmsg.

use super::*;

/// Writes one SCM_RIGHTS control message for `fds` into `buf`; returns its length.
pub(super) fn put_rights(buf: &mut [u64; CMSG_WORDS], fds: &[RawFd]) -> usize {
    let fds = fds.get(..qtfs_chan::MAX_SCM_FDS).unwrap_or(fds);
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
    let (space, len) =
        unsafe { (libc::CMSG_SPACE(data_len as u32) as usize, libc::CMSG_LEN(data_len as u32) as usize) };
    let bytes: &mut [u8] =
        // SAFETY: the u64 array is viewed as bytes of the same total size.
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), CMSG_WORDS * 8) };
    // CMSG_SPACE of qtfs_chan::MAX_SCM_FDS descriptors (1,032 bytes) fits the 1,280-byte buffer.
    bytes.get_mut(..space).unwrap_or_default().fill(0);
    let hdr = libc::cmsghdr { cmsg_len: len as _, cmsg_level: libc::SOL_SOCKET, cmsg_type: libc::SCM_RIGHTS };
    // SAFETY: the buffer is 8-byte aligned and larger than a cmsghdr.
    unsafe { std::ptr::write(bytes.as_mut_ptr().cast::<libc::cmsghdr>(), hdr) };
    let data_off = len - data_len;
    let data = bytes.get_mut(data_off..data_off + data_len).unwrap_or_default();
    for (dst, fd) in data.chunks_exact_mut(4).zip(fds) {
        dst.copy_from_slice(&fd.to_ne_bytes());
    }
    space
}

/// The descriptors of the SCM_RIGHTS messages a receive returned.
pub(super) fn take_rights(b: &MsgBox) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    let total = b.msg.msg_controllen.min(CMSG_WORDS * 8);
    // SAFETY: the control buffer is owned by the box and `total` bytes were written.
    let bytes = unsafe { std::slice::from_raw_parts(b.cmsg.as_ptr().cast::<u8>(), total) };
    let hdr_len = std::mem::size_of::<libc::cmsghdr>();
    let mut pos = 0usize;
    while let Some(hb) = bytes.get(pos..pos + hdr_len) {
        // SAFETY: hb is a whole header's bytes, 8-byte aligned (pos is CMSG_ALIGNed in an
        // array of u64).
        let h = unsafe { std::ptr::read(hb.as_ptr().cast::<libc::cmsghdr>()) };
        let clen = h.cmsg_len as usize;
        if clen < hdr_len || pos + clen > bytes.len() {
            break;
        }
        // SAFETY: CMSG_LEN(0) is pure arithmetic.
        let data_off = unsafe { libc::CMSG_LEN(0) } as usize;
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            let data = bytes.get(pos + data_off..pos + clen).unwrap_or_default();
            for fd in data.chunks_exact(4).filter_map(|c| c.first_chunk::<4>()).map(|b| i32::from_ne_bytes(*b)) {
                if fd >= 0 {
                    // SAFETY: the kernel installed this descriptor for us with this receive.
                    out.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        pos += (clen + 7) & !7;
    }
    out
}
