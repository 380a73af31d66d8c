//! Which files bypass the page cache: those of pseudo file systems (procfs, sysfs,
//! cgroupfs, debugfs …), decided per file by the type of the HOST file system that holds
//! it.
//!
//! Their files report a size that says nothing about their content (0 for procfs and
//! cgroupfs, 4096 for every sysfs attribute) and produce it anew on every read, so the
//! page cache, which trusts `st_size`, would read them as empty or padded. Those files
//! are opened with `FOPEN_DIRECT_IO`: every read(2) and write(2) is one engine request,
//! nothing is cached, reads are not clamped to `st_size`, and a short read is the end.
//!
//! The rule is the file system type (`f_type` of the engine's STATFS on the file's path,
//! asked once per HOST device and remembered), not "a regular file of size 0": a real
//! file of size 0 (just created, or truncated before an `mmap`) must keep the page cache,
//! because `MAP_SHARED` mappings of direct-I/O files are refused by kernels before 6.6,
//! and a sysfs attribute (size 4096) would escape a size rule. The device, not the
//! export, is the unit: an export of `/sys` holds cgroupfs at `/sys/fs/cgroup` and
//! debugfs at `/sys/kernel/debug`, and an export of a real directory may hold a procfs
//! mount.
//!
//! Owns the magic-number list and the per-device answers.

use std::collections::HashMap;

use parking_lot::Mutex;

/// `f_type` values (linux/magic.h) of file systems whose files are made on the fly.
pub const PSEUDO_MAGICS: &[(u64, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6265_6570, "configfs"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6573_5543, "fusectl"),
];

/// Is `f_type` a pseudo file system?
pub fn is_pseudo_magic(f_type: u64) -> bool {
    PSEUDO_MAGICS.iter().any(|(m, _)| *m == f_type)
}

/// Per HOST device: does it hold a pseudo file system?
#[derive(Debug, Default)]
pub struct PseudoDevs {
    by_dev: Mutex<HashMap<u64, bool>>,
}

impl PseudoDevs {
    /// What is known about device `dev`.
    pub fn known(&self, dev: u64) -> Option<bool> {
        self.by_dev.lock().get(&dev).copied()
    }

    /// Records the type of the file system on `dev`.
    pub fn record(&self, dev: u64, f_type: u64) -> bool {
        let pseudo = is_pseudo_magic(f_type);
        self.by_dev.lock().insert(dev, pseudo);
        pseudo
    }

    /// Forgets everything (after an engine restart the HOST may have re-mounted things,
    /// and device numbers are reused).
    pub fn clear(&self) {
        self.by_dev.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert!(is_pseudo_magic(0x9fa0));
        assert!(is_pseudo_magic(0x6367_7270));
        assert!(!is_pseudo_magic(0xef53), "ext4");
        assert!(!is_pseudo_magic(0x0102_1994), "tmpfs");
        let d = PseudoDevs::default();
        assert_eq!(d.known(7), None);
        assert!(d.record(7, 0x6265_6572));
        assert_eq!(d.known(7), Some(true));
        assert!(!d.record(8, 0xef53));
        d.clear();
        assert_eq!(d.known(7), None);
    }
}
