//! Where requests go: a [`Target`] (engine, udsproxyd or qtfs.ko), the [`Conn`] that talks
//! admin messages to it, the default target of each action, and the error when it
//! refuses or cannot be reached.

use std::path::{Path, PathBuf};

use qtfs_client::{AdminClient, ClientError, Response};
use qtfs_proto::consts::WlType;
use qtfs_proto::*;

use crate::{DEFAULT_ENGINE, DEFAULT_KMOD, DEFAULT_UDSPROXYD, Failure, exit, kmod};

/// A daemon or device to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Engine(PathBuf),
    Udsproxyd(PathBuf),
    Kmod(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        let (kind, path) = s.split_once(':')?;
        let p = PathBuf::from(path);
        match kind {
            "engine" => Some(Target::Engine(p)),
            "udsproxyd" => Some(Target::Udsproxyd(p)),
            "kmod" => Some(Target::Kmod(p)),
            _ => None,
        }
    }
    pub(crate) fn label(&self) -> String {
        match self {
            Target::Engine(p) => format!("engine at {}", p.display()),
            Target::Udsproxyd(p) => format!("udsproxyd at {}", p.display()),
            Target::Kmod(p) => format!("qtfs.ko at {}", p.display()),
        }
    }
}

/// Talks admin messages to one target.
pub enum Conn {
    Socket(AdminClient),
    Kmod(std::fs::File),
}

impl Conn {
    pub(crate) fn open(t: &Target) -> Result<Conn, Failure> {
        let unreachable =
            |e: String| Failure { code: exit::UNREACHABLE, msg: format!("cannot reach the {}: {e}", t.label()) };
        match t {
            Target::Engine(p) | Target::Udsproxyd(p) => AdminClient::connect(p).map(Conn::Socket).map_err(|e| {
                let hint = match &e {
                    ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                        " (the admin socket is root-only: run as root)"
                    }
                    ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                        " (is it running on this machine?)"
                    }
                    _ => "",
                };
                unreachable(format!("{e}{hint}"))
            }),
            Target::Kmod(p) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map(Conn::Kmod)
                .map_err(|e| unreachable(format!("{e} (is qtfs.ko loaded?)"))),
        }
    }

    pub(crate) fn call<'m, M: Wire<'m>>(&mut self, op: Op, msg: &M) -> Result<Response, ClientError> {
        match self {
            Conn::Socket(a) => a.call(op, msg),
            Conn::Kmod(f) => kmod::call(f, op, msg),
        }
    }
}

pub(crate) fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// The target for whitelist type `t` (`chosen`: the one the command line named).
pub(crate) fn wl_target(chosen: Option<&Target>, t: WlType) -> Target {
    if let Some(t) = chosen {
        return t.clone();
    }
    if t == WlType::Udsconnect && (exists(DEFAULT_UDSPROXYD) || !exists(DEFAULT_ENGINE)) {
        return Target::Udsproxyd(DEFAULT_UDSPROXYD.into());
    }
    Target::Engine(DEFAULT_ENGINE.into())
}

pub(crate) fn diag_target(chosen: Option<&Target>) -> Target {
    if let Some(t) = chosen {
        return t.clone();
    }
    if exists(DEFAULT_ENGINE) {
        Target::Engine(DEFAULT_ENGINE.into())
    } else if exists(DEFAULT_KMOD) {
        Target::Kmod(DEFAULT_KMOD.into())
    } else if exists(DEFAULT_UDSPROXYD) {
        Target::Udsproxyd(DEFAULT_UDSPROXYD.into())
    } else {
        Target::Engine(DEFAULT_ENGINE.into())
    }
}

pub(crate) fn proxy_target(chosen: Option<&Target>) -> Target {
    chosen.cloned().unwrap_or_else(|| Target::Udsproxyd(DEFAULT_UDSPROXYD.into()))
}

pub(crate) fn refused(t: &Target, what: &str, e: ClientError) -> Failure {
    let code = match &e {
        ClientError::Remote(_) => exit::REFUSED,
        _ => exit::UNREACHABLE,
    };
    let detail = match &e {
        ClientError::Remote(n) if *n == libc::ENOENT => "no such entry".to_string(),
        ClientError::Remote(n) if *n == libc::EEXIST => "already present".to_string(),
        ClientError::Remote(n) if *n == libc::ENOSPC => "the group is full (64 entries)".to_string(),
        ClientError::Remote(n) if *n == libc::EINVAL => {
            "invalid entry (absolute path without `..` expected)".to_string()
        }
        other => other.to_string(),
    };
    Failure { code, msg: format!("{what}: {} refused: {detail}", t.label()) }
}
