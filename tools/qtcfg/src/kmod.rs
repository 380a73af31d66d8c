//! The kernel module's admin ioctl (see `client-kmod/include/qtfs_ioctl.h`): how qtcfg
//! and qtinfo reach qtfs.ko through `/dev/qtfs_client`.

use std::os::fd::AsRawFd;

use qtfs_client::{ClientError, Response};
use qtfs_proto::{FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, Wire, push_frame};

/// `struct qtfs_ioc_admin` of `qtfs_ioctl.h` (fixed layout, 32 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub struct IocAdmin {
    pub req: u64,
    pub rsp: u64,
    pub req_len: u32,
    pub rsp_cap: u32,
    pub rsp_len: u32,
    pub reserved: u32,
}

/// `_IOWR('q', 1, struct qtfs_ioc_admin)`.
pub const QTFS_IOC_ADMIN: u64 = (3 << 30) | ((std::mem::size_of::<IocAdmin>() as u64) << 16) | (0x71 << 8) | 1;

/// Largest response the module sends (its counters table at most).
const RSP_CAP: usize = 256 * 1024;

/// Sends an admin request frame through `/dev/qtfs_client` and returns its response.
pub fn call<'m, M: Wire<'m>>(f: &mut std::fs::File, op: Op, msg: &M) -> Result<Response, ClientError> {
    let mut req = Vec::new();
    push_frame(&mut req, FrameHeader::request(op, 1, 0), msg);
    let mut rsp = vec![0u8; RSP_CAP];
    let mut io = IocAdmin {
        req: req.as_ptr() as u64,
        rsp: rsp.as_mut_ptr() as u64,
        req_len: req.len() as u32,
        rsp_cap: rsp.len() as u32,
        ..Default::default()
    };
    // SAFETY: `io` points at two live buffers of the lengths it states; the module
    // reads req_len bytes of `req`, writes at most rsp_cap bytes into `rsp` and
    // updates `io` itself, all before the call returns.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), QTFS_IOC_ADMIN as _, &mut io as *mut IocAdmin) };
    if rc < 0 {
        return Err(ClientError::io("ioctl QTFS_IOC_ADMIN", std::io::Error::last_os_error()));
    }
    let n = (io.rsp_len as usize).min(rsp.len());
    let h = FrameHeader::decode(&rsp[..n], MAX_PAYLOAD)?;
    if h.id != 1 || !h.is_response() || HEADER_SIZE + h.len as usize != n {
        return Err(qtfs_proto::ProtoError::Handshake("qtfs.ko: response does not match the request").into());
    }
    rsp.truncate(n);
    rsp.drain(..HEADER_SIZE);
    Response { header: h, payload: rsp }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number_matches_the_c_header() {
        // qtfs_ioctl.h: _IOWR('q', 1, struct qtfs_ioc_admin) = 0xc0207101
        assert_eq!(std::mem::size_of::<IocAdmin>(), 32);
        assert_eq!(QTFS_IOC_ADMIN, 0xc020_7101);
        let h = include_str!("../../../client-kmod/include/qtfs_ioctl.h");
        assert!(h.contains("0xc0207101"), "qtfs_ioctl.h documents another number");
    }
}
