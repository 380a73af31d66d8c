//! Pre-shared keys: one line of at least 32 hex characters, decoded to bytes.
//!
//! Every component reads the same format (`--psk-file F`); a key file readable by group
//! or others is refused, like ssh refuses a private key with loose permissions.
//!
//! The key bytes live in exactly one heap buffer per loaded key: clones of a [`Psk`] share
//! it (reference-counted), and the last one dropped overwrites it with zeros (`zeroize`,
//! whose writes the compiler may not elide), so a key does not outlive its last user in
//! freed memory. The text of the key file and every intermediate buffer of parsing are
//! wiped the same way.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

use crate::ProtoError;

/// Minimum hex characters (16 bytes of key).
pub const MIN_HEX: usize = 32;

/// A pre-shared key. Its bytes never appear in `Debug` output and are zeroed when the
/// last clone is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(Arc<KeyBytes>);

/// The one buffer holding a key's bytes; zeroed on drop.
#[derive(PartialEq, Eq)]
struct KeyBytes(Vec<u8>);

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for Psk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Psk(<{} bytes>)", self.0.0.len())
    }
}

impl Psk {
    /// Takes the key bytes (moved, not copied: the buffer becomes the key's; a refused one
    /// is zeroed before it is freed).
    pub fn from_bytes(b: Vec<u8>) -> Result<Self, ProtoError> {
        let b = KeyBytes(b);
        if b.0.len() * 2 < MIN_HEX {
            return Err(ProtoError::Key(format!("key too short: {} bytes, need at least {}", b.0.len(), MIN_HEX / 2)));
        }
        Ok(Psk(Arc::new(b)))
    }

    /// Parses the text of a key file: one line of hex (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let line = lines.next().ok_or_else(|| ProtoError::Key("file is empty".into()))?;
        if lines.next().is_some() {
            return Err(ProtoError::Key("expected exactly one line of hex".into()));
        }
        if line.len() < MIN_HEX {
            return Err(ProtoError::Key(format!(
                "key has {} hex characters, need at least {MIN_HEX} (e.g. `head -c 32 /dev/urandom | xxd -p -c 64`)",
                line.len()
            )));
        }
        if line.len() % 2 != 0 {
            return Err(ProtoError::Key("odd number of hex characters".into()));
        }
        // Exactly the capacity needed: the buffer never reallocates (which would leave a
        // copy of the partial key behind in freed memory).
        let mut out = Zeroizing::new(Vec::with_capacity(line.len() / 2));
        for pair in line.as_bytes().chunks(2) {
            let hi = hexval(pair[0]);
            let lo = hexval(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(ProtoError::Key("not a hex string".into())),
            }
        }
        Psk::from_bytes(std::mem::take(&mut *out))
    }

    /// Reads a key file, refusing one that group or others can read or write.
    pub fn load(path: &std::path::Path) -> Result<Self, ProtoError> {
        let meta = std::fs::metadata(path).map_err(|e| ProtoError::Key(format!("{}: {e}", path.display())))?;
        if meta.mode() & 0o077 != 0 {
            return Err(ProtoError::Key(format!(
                "{}: mode {:04o} lets others read the key; run `chmod 600 {}`",
                path.display(),
                meta.mode() & 0o7777,
                path.display()
            )));
        }
        // The file's text is the key in hex: wiped once parsed.
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| ProtoError::Key(format!("{}: {e}", path.display())))?,
        );
        Psk::parse(&text).map_err(|e| match e {
            ProtoError::Key(m) => ProtoError::Key(format!("{}: {m}", path.display())),
            o => o,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0.0
    }
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parse_rules() {
        let k = Psk::parse("00112233445566778899aabbccddeeff\n").unwrap();
        assert_eq!(k.bytes().len(), 16);
        assert_eq!(k.bytes()[15], 0xff);
        assert!(Psk::parse("").is_err());
        assert!(Psk::parse("0011").is_err(), "too short");
        assert!(Psk::parse("00112233445566778899aabbccddeefg").is_err(), "not hex");
        assert!(Psk::parse("00112233445566778899aabbccddeeff0").is_err(), "odd");
        assert!(Psk::parse("00112233445566778899aabbccddeeff\n00").is_err(), "two lines");
        assert!(format!("{k:?}").contains("16 bytes"));
        assert!(!format!("{k:?}").contains("ff"));
    }

    #[test]
    fn clones_share_one_buffer() {
        let k = Psk::parse("00112233445566778899aabbccddeeff\n").unwrap();
        let k2 = k.clone();
        assert!(std::ptr::eq(k.bytes().as_ptr(), k2.bytes().as_ptr()), "clones share one buffer");
        drop(k);
        assert_eq!(k2.bytes()[15], 0xff, "a live clone keeps the key");
    }

    #[test]
    fn load_refuses_loose_permissions() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Psk::load(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Psk::load(&p).unwrap().bytes().len(), 32);
        assert!(Psk::load(&d.path().join("missing")).is_err());
    }
}
