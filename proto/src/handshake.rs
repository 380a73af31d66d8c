//! The QTP handshake as two small state machines, free of I/O.
//!
//! ```text
//! client                                   server
//!   HELLO {versions, features, Nc}  ──►
//!                                   ◄──  HELLO_ACK {version, auth, features, Ns, limits}
//!   ATTACH {session?, token?, MACc} ──►
//!                                   ◄──  ATTACH_ACK {session, token, MACs, resumed}
//! ```
//!
//! With a pre-shared key K (auth = HMAC-SHA256):
//!
//! ```text
//! MACc = HMAC(K, "qtp1 client" | "qtp1 server" | ver | feat | Nc | Ns | sid_req | token_req)
//! MACs = HMAC(K, "qtp1 server" | "qtp1 client" | ver | feat | Nc | Ns | sid | token | resumed)
//! ```
//!
//! (`|` is concatenation; integers little-endian: ver u16, feat u64, sid u64, resumed u32.)
//! Each side's label comes first, so a MAC can never be reflected back as the other
//! side's proof; both nonces make it fresh; the version and features bind the
//! negotiation, so none of it can be altered or replayed. A client holding a key refuses
//! a server that offers no authentication (no downgrade).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::consts::{AUTH_HMAC_SHA256, AUTH_NONE};
use crate::msg::{Attach, AttachAck, Hello, HelloAck};
use crate::psk::Psk;
use crate::wire::Name;
use crate::{MAX_PAYLOAD, ProtoError, VERSION};

const LABEL_CLIENT: &[u8] = b"qtp1 client";
const LABEL_SERVER: &[u8] = b"qtp1 server";

type HmacSha256 = Hmac<Sha256>;

/// What both proofs of the key cover, after their two labels (the prover's first).
struct Transcript<'a> {
    ver: u16,
    feat: u64,
    client_nonce: &'a [u8; 32],
    server_nonce: &'a [u8; 32],
    sid: u64,
    token: &'a [u8; 16],
}

impl Transcript<'_> {
    /// The client's proof (ATTACH).
    fn client_mac(&self, key: &Psk) -> HmacSha256 {
        self.mac(key, LABEL_CLIENT, LABEL_SERVER)
    }

    /// The server's proof (ATTACH_ACK), which covers `resumed` too.
    fn server_mac(&self, key: &Psk, resumed: u32) -> HmacSha256 {
        let mut m = self.mac(key, LABEL_SERVER, LABEL_CLIENT);
        m.update(&resumed.to_le_bytes());
        m
    }

    fn mac(&self, key: &Psk, first: &[u8], second: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length: this never fails.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(key.bytes()).expect("HMAC takes any key length");
        m.update(first);
        m.update(second);
        m.update(&self.ver.to_le_bytes());
        m.update(&self.feat.to_le_bytes());
        m.update(self.client_nonce);
        m.update(self.server_nonce);
        m.update(&self.sid.to_le_bytes());
        m.update(self.token);
        m
    }
}

/// Fills `buf` with random bytes from the kernel.
pub fn random_bytes(buf: &mut [u8]) {
    // Without the kernel's entropy no handshake can be safe; getrandom(2) does not fail
    // on the kernels the engine supports (≥ 5.19).
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("getrandom failed");
}

/// What a finished handshake agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub version: u16,
    pub features: u64,
    pub authenticated: bool,
    pub session_id: u64,
    pub session_token: [u8; 16],
    pub resumed: bool,
    pub max_payload: u32,
    pub max_inflight: u32,
}

/// Client side.
#[derive(Debug)]
pub struct ClientHandshake<'k> {
    key: Option<&'k Psk>,
    allow_insecure: bool,
    features: u64,
    nonce: [u8; 32],
    resume: Option<(u64, [u8; 16])>,
    ack: Option<(u16, u64, [u8; 32], bool, u32, u32)>,
}

impl<'k> ClientHandshake<'k> {
    /// `allow_insecure`: accept a server that offers no authentication even though no key
    /// is configured. With a key the server must always prove it.
    pub fn new(key: Option<&'k Psk>, allow_insecure: bool, features: u64, resume: Option<(u64, [u8; 16])>) -> Self {
        let mut nonce = [0u8; 32];
        random_bytes(&mut nonce);
        Self { key, allow_insecure, features, nonce, resume, ack: None }
    }

    /// The HELLO to send.
    pub fn hello<'n>(&self, name: &'n str) -> Hello<'n> {
        Hello {
            version_min: VERSION as u16,
            version_max: VERSION as u16,
            features: self.features,
            client_nonce: self.nonce,
            client_name: Name(name.as_bytes().get(..name.len().min(crate::MAX_NAME)).unwrap_or_default()),
        }
    }

    /// Handles HELLO_ACK and returns the ATTACH to send.
    pub fn on_hello_ack(&mut self, ack: &HelloAck<'_>) -> Result<Attach, ProtoError> {
        if ack.version != VERSION as u16 {
            return Err(ProtoError::Handshake("server chose an unsupported version"));
        }
        if ack.features & !self.features != 0 {
            return Err(ProtoError::Handshake("server enabled features the client did not offer"));
        }
        let authed = match ack.auth {
            AUTH_HMAC_SHA256 => {
                if self.key.is_none() {
                    return Err(ProtoError::Handshake("server requires a pre-shared key (use --psk-file)"));
                }
                true
            }
            AUTH_NONE => {
                if self.key.is_some() {
                    return Err(ProtoError::Handshake(
                        "server offers no authentication but a key is configured (refusing a downgrade)",
                    ));
                }
                if !self.allow_insecure {
                    return Err(ProtoError::Handshake(
                        "server is unauthenticated; use --psk-file, or --insecure-test-mode for tests",
                    ));
                }
                false
            }
            _ => return Err(ProtoError::Handshake("unknown authentication mode")),
        };
        if (ack.max_payload as usize) < 64 * 1024 || ack.max_payload as usize > MAX_PAYLOAD {
            return Err(ProtoError::Handshake("server announced an unusable max_payload"));
        }
        let (sid, token) = self.resume.unwrap_or((0, [0; 16]));
        let mac = match self.key {
            Some(k) if authed => {
                let (ver, feat, client_nonce, server_nonce) =
                    (ack.version, ack.features, &self.nonce, &ack.server_nonce);
                Transcript { ver, feat, client_nonce, server_nonce, sid, token: &token }
                    .client_mac(k)
                    .finalize()
                    .into_bytes()
                    .into()
            }
            _ => [0u8; 32],
        };
        self.ack = Some((ack.version, ack.features, ack.server_nonce, authed, ack.max_payload, ack.max_inflight));
        Ok(Attach { session_id: sid, session_token: token, mac })
    }

    /// Checks ATTACH_ACK and returns what was agreed.
    pub fn on_attach_ack(&self, ack: &AttachAck) -> Result<Agreed, ProtoError> {
        let (ver, feat, ns, authed, max_payload, max_inflight) =
            self.ack.ok_or(ProtoError::Handshake("ATTACH_ACK before HELLO_ACK"))?;
        if authed {
            let key = self.key.ok_or(ProtoError::Handshake("no key"))?;
            let (client_nonce, sid, token) = (&self.nonce, ack.session_id, &ack.session_token);
            Transcript { ver, feat, client_nonce, server_nonce: &ns, sid, token }
                .server_mac(key, ack.resumed)
                .verify_slice(&ack.mac)
                .map_err(|_| ProtoError::Handshake("server failed to prove the key (wrong key?)"))?;
        }
        if let Some((sid, _)) = self.resume
            && ack.resumed == 1
            && ack.session_id != sid
        {
            return Err(ProtoError::Handshake("server resumed a different session"));
        }
        Ok(Agreed {
            version: ver,
            features: feat,
            authenticated: authed,
            session_id: ack.session_id,
            session_token: ack.session_token,
            resumed: ack.resumed == 1,
            max_payload,
            max_inflight,
        })
    }
}

/// Server side. It shares the server's key (a reference-counted [`Psk`], never a copy of
/// its bytes), so a connection in its handshake needs no borrow of the server's
/// configuration and the key is wiped when the server drops its last reference; `'k` is
/// kept only so that existing `ServerHandshake<'static>` fields keep their type.
#[derive(Debug)]
pub struct ServerHandshake<'k> {
    key: Option<Psk>,
    _k: core::marker::PhantomData<&'k Psk>,
    nonce: [u8; 32],
    client_nonce: [u8; 32],
    version: u16,
    features: u64,
}

/// What the server must decide after a verified ATTACH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachRequest {
    /// 0 for a new session.
    pub session_id: u64,
    pub session_token: [u8; 16],
}

impl<'k> ServerHandshake<'k> {
    /// `key`: when set, clients must prove it.
    pub fn new(key: Option<&Psk>) -> Self {
        let mut nonce = [0u8; 32];
        random_bytes(&mut nonce);
        Self { key: key.cloned(), _k: core::marker::PhantomData, nonce, client_nonce: [0; 32], version: 0, features: 0 }
    }

    /// Handles HELLO and returns HELLO_ACK.
    pub fn on_hello<'n>(
        &mut self,
        hello: &Hello<'_>,
        server_features: u64,
        max_inflight: u32,
        name: &'n str,
    ) -> Result<HelloAck<'n>, ProtoError> {
        let v = VERSION as u16;
        if hello.version_min > v || hello.version_max < v {
            return Err(ProtoError::Handshake("no common protocol version"));
        }
        self.version = v;
        self.features = hello.features & server_features;
        self.client_nonce = hello.client_nonce;
        Ok(HelloAck {
            version: v,
            auth: if self.key.is_some() { AUTH_HMAC_SHA256 } else { AUTH_NONE },
            features: self.features,
            server_nonce: self.nonce,
            max_payload: MAX_PAYLOAD as u32,
            max_inflight,
            server_name: Name(name.as_bytes().get(..name.len().min(crate::MAX_NAME)).unwrap_or_default()),
        })
    }

    /// Verifies ATTACH. On success the caller looks the session up (or creates one) and
    /// calls [`ServerHandshake::attach_ack`].
    pub fn on_attach(&self, attach: &Attach) -> Result<AttachRequest, ProtoError> {
        if let Some(k) = &self.key {
            self.transcript(attach.session_id, &attach.session_token)
                .client_mac(k)
                .verify_slice(&attach.mac)
                .map_err(|_| ProtoError::Handshake("client failed to prove the key"))?;
        }
        Ok(AttachRequest { session_id: attach.session_id, session_token: attach.session_token })
    }

    /// What the proofs of this handshake cover, for session `sid`.
    fn transcript<'a>(&'a self, sid: u64, token: &'a [u8; 16]) -> Transcript<'a> {
        let (ver, feat) = (self.version, self.features);
        Transcript { ver, feat, client_nonce: &self.client_nonce, server_nonce: &self.nonce, sid, token }
    }

    /// Builds ATTACH_ACK for the session chosen.
    pub fn attach_ack(&self, session_id: u64, session_token: [u8; 16], resumed: bool) -> AttachAck {
        let resumed = resumed as u32;
        let mac = match &self.key {
            Some(k) => {
                self.transcript(session_id, &session_token).server_mac(k, resumed).finalize().into_bytes().into()
            }
            None => [0u8; 32],
        };
        AttachAck { session_id, session_token, mac, resumed }
    }

    pub fn features(&self) -> u64 {
        self.features
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::feat;

    fn key(b: u8) -> Psk {
        Psk::from_bytes(vec![b; 32]).unwrap()
    }

    fn run(ck: Option<&Psk>, sk: Option<&Psk>, insecure: bool) -> Result<Agreed, ProtoError> {
        let mut c = ClientHandshake::new(ck, insecure, feat::ALL, None);
        let mut s = ServerHandshake::new(sk);
        let hello = c.hello("test");
        let hack = s.on_hello(&hello, feat::CHANNELS, 128, "srv")?;
        let attach = c.on_hello_ack(&hack)?;
        let req = s.on_attach(&attach)?;
        assert_eq!(req.session_id, 0);
        let aack = s.attach_ack(7, [9; 16], false);
        c.on_attach_ack(&aack)
    }

    /// Both sides with key `k`, the server's HELLO_ACK to the client's HELLO made.
    fn keyed(k: &Psk) -> (ClientHandshake<'_>, ServerHandshake<'static>, HelloAck<'static>) {
        let c = ClientHandshake::new(Some(k), false, feat::ALL, None);
        let mut s = ServerHandshake::new(Some(k));
        let hack = s.on_hello(&c.hello("t"), feat::ALL, 1, "s").unwrap();
        (c, s, hack)
    }

    #[test]
    fn psk_success_and_features_intersect() {
        let k = key(1);
        let a = run(Some(&k), Some(&k), false).unwrap();
        assert!(a.authenticated);
        assert_eq!(a.features, feat::CHANNELS);
        assert_eq!(a.session_id, 7);
    }

    #[test]
    fn wrong_key_rejected_by_server() {
        let e = run(Some(&key(1)), Some(&key(2)), false).unwrap_err();
        assert_eq!(e, ProtoError::Handshake("client failed to prove the key"));
    }

    #[test]
    fn missing_key_and_downgrade_rejected() {
        let k = key(1);
        assert!(run(None, Some(&k), true).is_err(), "client without key vs server with key");
        assert!(run(Some(&k), None, true).is_err(), "downgrade to no auth");
        assert!(run(None, None, false).is_err(), "insecure needs explicit opt-in");
        assert!(!run(None, None, true).unwrap().authenticated);
    }

    #[test]
    fn tampered_server_mac_or_session_rejected() {
        let k = key(3);
        let (mut c, s, hack) = keyed(&k);
        let attach = c.on_hello_ack(&hack).unwrap();
        s.on_attach(&attach).unwrap();
        let mut aack = s.attach_ack(5, [1; 16], false);
        aack.session_id = 6;
        assert!(c.on_attach_ack(&aack).is_err());
        let mut aack = s.attach_ack(5, [1; 16], false);
        aack.mac[0] ^= 1;
        assert!(c.on_attach_ack(&aack).is_err());
    }

    #[test]
    fn tampered_features_rejected() {
        let k = key(4);
        let (mut c, s, mut hack) = keyed(&k);
        // A man in the middle strips a feature: the client's MAC then covers a feature
        // set that differs from the server's, so the server rejects it.
        hack.features &= !feat::EPOLL;
        let attach = c.on_hello_ack(&hack).unwrap();
        assert!(s.on_attach(&attach).is_err());
    }

    #[test]
    fn replayed_attach_rejected_on_new_nonce() {
        let k = key(5);
        let (mut c, s1, hack) = keyed(&k);
        let attach = c.on_hello_ack(&hack).unwrap();
        assert!(s1.on_attach(&attach).is_ok());
        let mut s2 = ServerHandshake::new(Some(&k));
        s2.on_hello(&c.hello("t"), feat::ALL, 1, "s").unwrap();
        assert!(s2.on_attach(&attach).is_err(), "a recorded ATTACH is useless against a fresh nonce");
    }

    #[test]
    fn server_mac_cannot_be_reflected() {
        // The client MAC and server MAC differ for identical inputs (labels are ordered).
        let k = key(6);
        let t = Transcript { ver: 1, feat: 0, client_nonce: &[0; 32], server_nonce: &[0; 32], sid: 0, token: &[0; 16] };
        let a: [u8; 32] = t.client_mac(&k).finalize().into_bytes().into();
        let b: [u8; 32] = t.server_mac(&k, 0).finalize().into_bytes().into();
        assert_ne!(a, b);
    }
}
