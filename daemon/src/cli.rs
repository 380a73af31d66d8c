//! The command-line pieces the daemons read alike: `--log-level`, the address of the
//! original's positional form, and a command line given as words (the daemons' tests).

use qtfs_proto::consts;

/// `--log-level`'s value (NONE, ERROR, WARN, INFO or DEBUG) as a QTP level.
pub fn log_level(s: &str) -> Result<u32, String> {
    consts::parse_log_level(s).ok_or_else(|| format!("--log-level {s:?}: use NONE, ERROR, WARN, INFO or DEBUG"))
}

/// The original's positional form gives an address and a port as two words: an IP
/// address is TCP, a number a vsock CID (-1, any CID, only where `any_cid`: a listener).
/// Returns the `tcp:`/`vsock:` spelling of `--listen` and `--server`.
pub fn legacy_addr(addr: &str, port: &str, any_cid: bool) -> Result<String, String> {
    let port: u16 = port.parse().map_err(|_| format!("port {port:?} is not a number"))?;
    if addr.parse::<std::net::IpAddr>().is_ok() {
        Ok(format!("tcp:{addr}:{port}"))
    } else if (any_cid && addr == "-1") || addr.parse::<u32>().is_ok() {
        Ok(format!("vsock:{addr}:{port}"))
    } else {
        Err(format!("address {addr:?} is neither an IP address nor a vsock CID"))
    }
}

/// A daemon's command line given as `args` (the words after the program `name`), read
/// as its `main` reads it: clap's parser `A`, then the daemon's `from_cli`. clap's
/// errors come back as text.
pub fn from_args<A: clap::Parser, T>(
    name: &str,
    args: &[&str],
    from_cli: impl FnOnce(A) -> Result<T, String>,
) -> Result<T, String> {
    from_cli(A::try_parse_from(std::iter::once(name).chain(args.iter().copied())).map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_addresses() {
        assert_eq!(legacy_addr("127.0.0.1", "12121", false).unwrap(), "tcp:127.0.0.1:12121");
        assert_eq!(legacy_addr("2", "12121", false).unwrap(), "vsock:2:12121");
        assert_eq!(legacy_addr("-1", "1", true).unwrap(), "vsock:-1:1");
        assert!(legacy_addr("-1", "1", false).is_err(), "connecting to any CID means nothing");
        assert!(legacy_addr("host", "1", true).unwrap_err().contains("address \"host\""));
        assert!(legacy_addr("2", "x", true).unwrap_err().contains("port \"x\""));
    }
}
