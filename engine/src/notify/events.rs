//! The fanotify records the watcher reads: `fanotify_event_metadata` with a DFID_NAME
//! info record (directory file handle and entry name), parsed with every length checked,
//! and what each event means for a client's caches ([`Event::flags`]).
//!
//! Owns only this parsing; it reads nothing and decides nobody's delivery.

use qtfs_proto::consts::inval;

/// One fanotify event, as much of it as the watcher uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Event {
    pub(super) mask: u64,
    /// The process that made the change (0: outside our pid namespace).
    pub(super) pid: i32,
    pub(super) fsid: u64,
    pub(super) handle_type: i32,
    pub(super) handle: Vec<u8>,
    pub(super) name: Vec<u8>,
    pub(super) overflow: bool,
}

impl Event {
    /// What to drop for this event (None: nothing a client caches).
    pub(super) fn flags(&self) -> Option<u32> {
        let m = self.mask;
        let entry = libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;
        if self.name == b"." {
            // The directory itself (its own attributes).
            return (m & (libc::FAN_ATTRIB | libc::FAN_MODIFY) != 0).then_some(inval::ATTR);
        }
        let mut f = 0;
        if m & libc::FAN_MODIFY != 0 {
            f |= inval::ATTR | inval::DATA;
        }
        if m & libc::FAN_ATTRIB != 0 {
            f |= inval::ATTR;
        }
        if m & entry != 0 {
            f |= inval::ENTRY | inval::ATTR;
        }
        (f != 0).then_some(f)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a buffer of `fanotify_event_metadata` records (with DFID_NAME info records).
/// Layout (native endian): metadata {event_len u32, vers u8, reserved u8, metadata_len
/// u16, mask u64, fd i32, pid i32}; info {type u8, pad u8, len u16, fsid [i32; 2],
/// handle_bytes u32, handle_type i32, handle, name NUL}.
pub(super) fn parse_events(buf: &[u8], out: &mut Vec<Event>) {
    let mut off = 0usize;
    while let Some(len) = u32_at(buf, off) {
        let len = len as usize;
        if len < 24 || off + len > buf.len() {
            return;
        }
        let Some(rec) = buf.get(off..off + len) else { return };
        off += len;
        let (Some(meta_len), Some(mask), Some(pid)) = (u16_at(rec, 6), u64_at(rec, 8), u32_at(rec, 20)) else {
            continue;
        };
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            out.push(Event {
                mask,
                pid: 0,
                fsid: 0,
                handle_type: 0,
                handle: Vec::new(),
                name: Vec::new(),
                overflow: true,
            });
            continue;
        }
        // The info records after the metadata; the first DFID_NAME one is ours.
        let mut i = meta_len as usize;
        while let (Some(&ty), Some(ilen)) = (rec.get(i), u16_at(rec, i + 2)) {
            let ilen = ilen as usize;
            if ilen < 4 {
                break;
            }
            if ty == libc::FAN_EVENT_INFO_TYPE_DFID_NAME
                && let Some(info) = rec.get(i..i + ilen)
                && let Some(ev) = parse_dfid_name(mask, pid as i32, info)
            {
                out.push(ev);
                break;
            }
            i += ilen;
        }
    }
}

fn parse_dfid_name(mask: u64, pid: i32, info: &[u8]) -> Option<Event> {
    // fsid: the kernel's two ints, packed as `sys::fstatfs` packs them.
    let fsid = u32_at(info, 4)? as u64 | ((u32_at(info, 8)? as u64) << 32);
    let hb = u32_at(info, 12)? as usize;
    let ht = u32_at(info, 16)? as i32;
    let handle = info.get(20..20 + hb)?.to_vec();
    let rest = info.get(20 + hb..)?;
    let name = rest.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
    if name.is_empty() {
        return None;
    }
    Some(Event { mask, pid, fsid, handle_type: ht, handle, name, overflow: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_truncated_events_never_panics() {
        let mut rec = Vec::new();
        rec.extend_from_slice(&48u32.to_ne_bytes());
        rec.extend_from_slice(&[3, 0]);
        rec.extend_from_slice(&24u16.to_ne_bytes());
        rec.extend_from_slice(&(libc::FAN_MODIFY).to_ne_bytes());
        rec.extend_from_slice(&(-1i32).to_ne_bytes());
        rec.extend_from_slice(&1i32.to_ne_bytes());
        // info: type 2, len 24, fsid, handle_bytes 2, type 1, handle, "x\0"
        rec.push(libc::FAN_EVENT_INFO_TYPE_DFID_NAME);
        rec.push(0);
        rec.extend_from_slice(&24u16.to_ne_bytes());
        rec.extend_from_slice(&7u64.to_ne_bytes());
        rec.extend_from_slice(&2u32.to_ne_bytes());
        rec.extend_from_slice(&1i32.to_ne_bytes());
        rec.extend_from_slice(&[9, 9, b'x', 0]);
        let mut out = Vec::new();
        parse_events(&rec, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, b"x");
        assert_eq!(out[0].pid, 1);
        assert_eq!(out[0].handle, vec![9, 9]);
        assert_eq!(out[0].flags(), Some(inval::ATTR | inval::DATA));
        for cut in 0..rec.len() {
            let mut o = Vec::new();
            parse_events(&rec[..cut], &mut o);
        }
    }
}
