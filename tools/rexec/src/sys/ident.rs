//! Identity that is rexec's alone: group lookup by name. Peer credentials and groups,
//! our own ids and groups, and `FsIdentity` (a thread's temporary file system identity)
//! come from `qtfs-sys` (see `sys`).

use std::io;

/// The gid of a group given by name or number (`None`: no such group).
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(Some(n));
    }
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    loop {
        // SAFETY: group is plain data filled by getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid; buf is valid for buf.len() bytes.
        let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut res) };
        if r == libc::ERANGE && buf.len() < (1 << 22) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        return Ok(if res.is_null() { None } else { Some(grp.gr_gid) });
    }
}
