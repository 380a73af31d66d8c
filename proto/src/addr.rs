//! Transport addresses: `tcp:IP:PORT`, `vsock:CID:PORT`, `unix:PATH`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ProtoError;

/// The original's qtfs port, our default.
pub const DEFAULT_PORT: u16 = 12345;

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Tcp(SocketAddr),
    Vsock { cid: u32, port: u32 },
    Unix(PathBuf),
}

impl Addr {
    /// Parses `tcp:IP[:PORT]`, `vsock:CID[:PORT]` or `unix:PATH`; a bare `IP:PORT` or
    /// `IP` is taken as TCP (the original's test mode spelling).
    pub fn parse(s: &str) -> Result<Addr, ProtoError> {
        let bad = || ProtoError::BadAddr(s.to_string());
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad());
            }
            return Ok(Addr::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = match rest.split_once(':') {
                Some((c, p)) => (c, p.parse::<u32>().map_err(|_| bad())?),
                None => (rest, DEFAULT_PORT as u32),
            };
            let cid = match cid {
                "any" | "-1" => u32::MAX,
                c => c.parse::<u32>().map_err(|_| bad())?,
            };
            return Ok(Addr::Vsock { cid, port });
        }
        let rest = s.strip_prefix("tcp:").unwrap_or(s);
        if let Ok(sa) = rest.parse::<SocketAddr>() {
            return Ok(Addr::Tcp(sa));
        }
        if let Ok(ip) = rest.parse::<std::net::IpAddr>() {
            return Ok(Addr::Tcp(SocketAddr::new(ip, DEFAULT_PORT)));
        }
        Err(bad())
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, Addr::Tcp(_))
    }
}

impl core::fmt::Display for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Addr::Tcp(sa) => write!(f, "tcp:{sa}"),
            Addr::Vsock { cid, port } if *cid == u32::MAX => write!(f, "vsock:any:{port}"),
            Addr::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl core::str::FromStr for Addr {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Addr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(Addr::parse("tcp:127.0.0.1:9").unwrap().to_string(), "tcp:127.0.0.1:9");
        assert_eq!(Addr::parse("127.0.0.1").unwrap().to_string(), "tcp:127.0.0.1:12345");
        assert_eq!(Addr::parse("tcp:[::1]:7").unwrap().to_string(), "tcp:[::1]:7");
        assert_eq!(Addr::parse("vsock:2:12345").unwrap(), Addr::Vsock { cid: 2, port: 12345 });
        assert_eq!(Addr::parse("vsock:any").unwrap(), Addr::Vsock { cid: u32::MAX, port: 12345 });
        assert_eq!(Addr::parse("unix:/run/x.sock").unwrap(), Addr::Unix("/run/x.sock".into()));
        for bad in ["", "unix:", "vsock:x:1", "tcp:1.2.3.4:99999", "hello", "vsock:2:y"] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
    }
}
