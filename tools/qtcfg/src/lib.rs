//! # qtcfg / qtinfo — whitelists and diagnostics, as users of the original use them
//!
//! Both commands parse the original's options left to right (`-w TYPE -x PATH -y INDEX
//! -z[TYPE]`, and for qtinfo `-a -c -l LEVEL -t -p N -u -s`) plus long options (`--json`,
//! `--watch`, `--target`, `--persist`). Requests are the admin messages of `qtfs-proto`,
//! sent to the engine's or udsproxyd's admin socket, or to `/dev/qtfs_client` (qtfs.ko),
//! so one codec serves every target.

use std::io::Write;
use std::path::{Path, PathBuf};

use qtfs_client::{AdminClient, ClientError, Response};
use qtfs_proto::consts::{self, WlType};
use qtfs_proto::*;

pub const DEFAULT_ENGINE: &str = "/var/run/qtfs/engine.sock";
pub const DEFAULT_UDSPROXYD: &str = "/var/run/qtfs/udsproxyd.sock";
pub const DEFAULT_KMOD: &str = "/dev/qtfs_client";

/// Exit statuses (documented in `--help`).
pub mod exit {
    pub const OK: i32 = 0;
    /// The target refused a request (duplicate entry, index out of range, …).
    pub const REFUSED: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// The target is not running or may not be reached (permission).
    pub const UNREACHABLE: i32 = 3;
}

/// Which command is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Qtcfg,
    Qtinfo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Qtcfg => "qtcfg",
            Mode::Qtinfo => "qtinfo",
        }
    }
}

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
    fn label(&self) -> String {
        match self {
            Target::Engine(p) => format!("engine at {}", p.display()),
            Target::Udsproxyd(p) => format!("udsproxyd at {}", p.display()),
            Target::Kmod(p) => format!("qtfs.ko at {}", p.display()),
        }
    }
}

/// One step of the command line, executed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SelectType(WlType),
    Add(Vec<u8>),
    Del(u32),
    List(Option<WlType>),
    All,
    Clear,
    LogLevel(u32),
    Sizes,
    EpollSupport(u32),
    ProxyInfo,
    ProxyLogCycle,
}

#[derive(Debug, Default)]
pub struct Opts {
    pub json: bool,
    pub watch: Option<f64>,
    pub target: Option<Target>,
    pub persist: bool,
    pub actions: Vec<Action>,
    pub help: bool,
    pub version: bool,
}

/// A command-line problem: message and exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

fn usage_err(msg: impl Into<String>) -> Failure {
    Failure { code: exit::USAGE, msg: msg.into() }
}

fn type_list() -> String {
    WlType::ALL.iter().map(|t| t.section().to_ascii_lowercase()).collect::<Vec<_>>().join(", ")
}

fn parse_type(s: &str) -> Result<WlType, Failure> {
    WlType::parse(s).ok_or_else(|| usage_err(format!("unknown whitelist type {s:?}; types: {}", type_list())))
}

/// Parses the original-style command line (options processed left to right).
pub fn parse(mode: Mode, args: &[String]) -> Result<Opts, Failure> {
    let mut o = Opts::default();
    let mut i = 0;
    let mut selected: Option<WlType> = None;
    let info = mode == Mode::Qtinfo;
    let take = |i: &mut usize, attached: &str, flag: &str| -> Result<String, Failure> {
        if !attached.is_empty() {
            return Ok(attached.to_string());
        }
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| usage_err(format!("{flag} needs an argument")))
    };
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-h" | "--help" => o.help = true,
            "-V" | "--version" => o.version = true,
            "--json" => o.json = true,
            "--persist" => o.persist = true,
            "--watch" => {
                let v = args.get(i + 1).and_then(|s| s.parse::<f64>().ok());
                if v.is_some() {
                    i += 1;
                }
                o.watch = Some(v.unwrap_or(1.0).max(0.1));
            }
            "--target" => {
                i += 1;
                let t =
                    args.get(i).ok_or_else(|| usage_err("--target needs engine:PATH, udsproxyd:PATH or kmod:PATH"))?;
                o.target = Some(Target::parse(t).ok_or_else(|| {
                    usage_err(format!("bad target {t:?}: use engine:PATH, udsproxyd:PATH or kmod:PATH"))
                })?);
            }
            _ if a.starts_with("--target=") => {
                let t = &a[9..];
                o.target = Some(Target::parse(t).ok_or_else(|| usage_err(format!("bad target {t:?}")))?);
            }
            _ if a.starts_with('-') && a.len() >= 2 && !a.starts_with("--") => {
                let flag = &a[..2];
                let attached = &a[2..];
                match flag {
                    "-w" => selected = Some(parse_type(&take(&mut i, attached, "-w")?)?),
                    "-x" => {
                        let t = selected.ok_or_else(|| {
                            usage_err(format!(
                                "-x needs a whitelist type first, e.g. `{} -w udsconnect -x /var/lib/libvirt`; types: {}",
                                mode.name(),
                                type_list()
                            ))
                        })?;
                        let p = take(&mut i, attached, "-x")?;
                        if p.is_empty() || p.len() > MAX_PATH {
                            return Err(usage_err(format!("-x: an entry is 1 to {MAX_PATH} bytes long")));
                        }
                        o.actions.push(Action::SelectType(t));
                        o.actions.push(Action::Add(p.into_bytes()));
                    }
                    "-y" => {
                        let t = selected.ok_or_else(|| {
                            usage_err(format!("-y needs a whitelist type first, e.g. `{} -w open -y 0`", mode.name()))
                        })?;
                        let v = take(&mut i, attached, "-y")?;
                        let idx = v.parse::<u32>().map_err(|_| usage_err(format!("-y: {v:?} is not an index")))?;
                        o.actions.push(Action::SelectType(t));
                        o.actions.push(Action::Del(idx));
                    }
                    "-z" => {
                        let t = if attached.is_empty() { None } else { Some(parse_type(attached)?) };
                        o.actions.push(Action::List(t));
                    }
                    "-a" if info => o.actions.push(Action::All),
                    "-c" if info => o.actions.push(Action::Clear),
                    "-t" if info => o.actions.push(Action::Sizes),
                    "-u" if info => o.actions.push(Action::ProxyInfo),
                    "-s" if info => o.actions.push(Action::ProxyLogCycle),
                    "-l" if info => {
                        let v = take(&mut i, attached, "-l")?;
                        let l = consts::parse_log_level(&v)
                            .ok_or_else(|| usage_err(format!("-l: {v:?} is not NONE, ERROR, WARN, INFO or DEBUG")))?;
                        o.actions.push(Action::LogLevel(l));
                    }
                    "-p" if info => {
                        let v = take(&mut i, attached, "-p")?;
                        let n =
                            v.parse::<u32>().ok().filter(|n| *n <= 1).ok_or_else(|| usage_err("-p takes 0 or 1"))?;
                        o.actions.push(Action::EpollSupport(n));
                    }
                    _ => return Err(usage_err(format!("unknown option {a} (see `{} --help`)", mode.name()))),
                }
            }
            _ => return Err(usage_err(format!("unexpected argument {a:?} (see `{} --help`)", mode.name()))),
        }
        i += 1;
    }
    Ok(o)
}

pub fn help(mode: Mode) -> String {
    let common = format!(
        "WHITELISTS (options run left to right)
  -w TYPE        select a whitelist type (case-insensitive): {types}
  -x PATH        add PATH to the selected type (1..4095 bytes)
  -y INDEX       delete entry INDEX of the selected type; later entries move up by one
  -z[TYPE]       list one type (attached: -zopen) or every type
                 output: `Get qtfs <Type> white list:` then `  [index:N][path:P]`
  --persist      also write changes back to the whitelist file (atomically, comments kept)

TARGETS (chosen automatically; --target forces one)
  engine:PATH     the HOST engine's admin socket (default {engine}): every type
  udsproxyd:PATH  the DPU proxy's admin socket (default {uds}): udsconnect
  kmod:PATH       the DPU kernel module (default {kmod}): counters, log level
  Automatic: udsconnect goes to udsproxyd if it runs here, else the engine; other
  types go to the engine; diagnostics to the engine, else qtfs.ko, else udsproxyd.

OUTPUT
  --json          machine-readable output

EXIT STATUS
  0 success; 1 the target refused a request (duplicate, index out of range …);
  2 bad command line; 3 target not running or not reachable (permission).",
        types = type_list(),
        engine = DEFAULT_ENGINE,
        uds = DEFAULT_UDSPROXYD,
        kmod = DEFAULT_KMOD
    );
    match mode {
        Mode::Qtcfg => format!(
            "qtcfg: configure qtfs whitelists at run time.

USAGE
  qtcfg -w TYPE -x PATH [--persist]     add
  qtcfg -w TYPE -y INDEX [--persist]    delete
  qtcfg -z[TYPE]                        list

EXAMPLES
  qtcfg -w udsconnect -x /var/lib/libvirt     allow proxied connects under /var/lib/libvirt
  qtcfg -w open -x /home/VMs --persist        allow opens, and keep it across restarts
  qtcfg -zopen                                list the [Open] entries

{common}\n"
        ),
        Mode::Qtinfo => format!(
            "qtinfo: diagnostics of qtfs (engine, udsproxyd, qtfs.ko), and whitelists like qtcfg.

USAGE
  qtinfo -a [--watch [SECS]] [--json]   everything: counters per operation (requests, errors,
                                        bytes, latency percentiles), connections, channels
  qtinfo -c                             clear the counters
  qtinfo -l LEVEL                       log level: NONE, ERROR, WARN, INFO, DEBUG
  qtinfo -t                             wire sizes of every message (fixed parts)
  qtinfo -u                             udsproxyd diagnostics (channels, bytes, errors)
  qtinfo -s                             cycle udsproxyd's log level NONE → ERROR → INFO → NONE
  qtinfo -p 0|1                         accepted for compatibility (remote readiness now works
                                        for every file type)

{common}\n"
        ),
    }
}

/// Talks admin messages to one target.
pub enum Conn {
    Socket(AdminClient),
    Kmod(std::fs::File),
}

impl Conn {
    fn open(t: &Target) -> Result<Conn, Failure> {
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

    fn call<'m, M: Wire<'m>>(&mut self, op: Op, msg: &M) -> Result<Response, ClientError> {
        match self {
            Conn::Socket(a) => a.call(op, msg),
            Conn::Kmod(f) => kmod::call(f, op, msg),
        }
    }
}

/// The kernel module's admin ioctl (see `client-kmod/include/qtfs_ioctl.h`).
pub mod kmod {
    use super::*;

    use std::os::fd::AsRawFd;

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
}

fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// The target for whitelist type `t`.
fn wl_target(o: &Opts, t: WlType) -> Target {
    if let Some(t) = &o.target {
        return t.clone();
    }
    if t == WlType::Udsconnect && (exists(DEFAULT_UDSPROXYD) || !exists(DEFAULT_ENGINE)) {
        return Target::Udsproxyd(DEFAULT_UDSPROXYD.into());
    }
    Target::Engine(DEFAULT_ENGINE.into())
}

fn diag_target(o: &Opts) -> Target {
    if let Some(t) = &o.target {
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

fn proxy_target(o: &Opts) -> Target {
    o.target.clone().unwrap_or_else(|| Target::Udsproxyd(DEFAULT_UDSPROXYD.into()))
}

fn refused(t: &Target, what: &str, e: ClientError) -> Failure {
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

/// Runs the parsed command; output goes to `out`.
pub fn run(mode: Mode, o: &Opts, out: &mut dyn Write) -> Result<(), Failure> {
    if o.help || (o.actions.is_empty() && !o.version) {
        let _ = write!(out, "{}", help(mode));
        return if o.help { Ok(()) } else { Err(Failure { code: exit::USAGE, msg: String::new() }) };
    }
    if o.version {
        let _ = writeln!(out, "{} {}", mode.name(), env!("CARGO_PKG_VERSION"));
    }
    let mut selected: Option<WlType> = None;
    let mut json_out: Vec<serde_json::Value> = Vec::new();
    let flags = if o.persist { consts::WL_PERSIST } else { 0 };
    for a in &o.actions {
        match a {
            Action::SelectType(t) => selected = Some(*t),
            Action::Add(p) => {
                let t = selected.expect("parse guarantees a type");
                let target = wl_target(o, t);
                let mut c = Conn::open(&target)?;
                let r = c
                    .call(Op::ADMIN_WL_ADD, &WlAddReq { wl_type: t as u32, flags, path: Path(p) })
                    .map_err(|e| refused(&target, "add", e))?;
                let idx = r.decode::<WlAddRsp>().map_err(|e| refused(&target, "add", e))?.index;
                let path = String::from_utf8_lossy(p);
                if o.json {
                    json_out.push(serde_json::json!({"added": {"type": t.section(), "index": idx, "path": path}}));
                } else {
                    let _ = writeln!(out, "Add qtfs {} white list: [index:{idx}][path:{path}]", t.section());
                }
            }
            Action::Del(idx) => {
                let t = selected.expect("parse guarantees a type");
                let target = wl_target(o, t);
                let mut c = Conn::open(&target)?;
                c.call(Op::ADMIN_WL_DEL, &WlDelReq { wl_type: t as u32, index: *idx, flags })
                    .map_err(|e| refused(&target, &format!("delete index {idx} of {}", t.section()), e))?;
                if o.json {
                    json_out.push(serde_json::json!({"deleted": {"type": t.section(), "index": idx}}));
                } else {
                    let _ = writeln!(out, "Delete qtfs {} white list index {idx}: done", t.section());
                }
            }
            Action::List(t) => {
                let targets: Vec<(Target, u32)> = match (t, &o.target) {
                    (Some(t), _) => vec![(wl_target(o, *t), *t as u32)],
                    (None, Some(tg)) => vec![(tg.clone(), consts::WL_ALL)],
                    (None, None) => {
                        let mut v = Vec::new();
                        if exists(DEFAULT_ENGINE) {
                            v.push((Target::Engine(DEFAULT_ENGINE.into()), consts::WL_ALL));
                        }
                        if exists(DEFAULT_UDSPROXYD) {
                            v.push((Target::Udsproxyd(DEFAULT_UDSPROXYD.into()), WlType::Udsconnect as u32));
                        }
                        if v.is_empty() {
                            v.push((Target::Engine(DEFAULT_ENGINE.into()), consts::WL_ALL));
                        }
                        v
                    }
                };
                for (target, wt) in targets {
                    let mut c = Conn::open(&target)?;
                    let r = c
                        .call(Op::ADMIN_WL_LIST, &WlListReq { wl_type: wt })
                        .map_err(|e| refused(&target, "list", e))?;
                    let l = r.decode::<WlListRsp>().map_err(|e| refused(&target, "list", e))?;
                    let entries: Vec<(u32, u32, String)> = RecordIter::<WlEntry>::new(l.entries.0)
                        .filter_map(Result::ok)
                        .map(|e| (e.wl_type, e.index, e.path.display().into_owned()))
                        .collect();
                    let types: Vec<WlType> = if wt == consts::WL_ALL {
                        WlType::ALL.to_vec()
                    } else {
                        WlType::from_u32(wt).into_iter().collect()
                    };
                    for ty in types {
                        let mine: Vec<&(u32, u32, String)> = entries.iter().filter(|e| e.0 == ty as u32).collect();
                        if o.json {
                            json_out.push(serde_json::json!({
                                "target": target.label(),
                                "type": ty.section(),
                                "entries": mine.iter().map(|e| serde_json::json!({"index": e.1, "path": e.2})).collect::<Vec<_>>(),
                            }));
                        } else {
                            let _ = writeln!(out, "Get qtfs {} white list:", ty.section());
                            for e in mine {
                                let _ = writeln!(out, "  [index:{}][path:{}]", e.1, e.2);
                            }
                        }
                    }
                }
            }
            Action::All => {
                let target = diag_target(o);
                match o.watch {
                    Some(secs) if !o.json => loop {
                        let mut buf = Vec::new();
                        let r = show_all(&target, false, &mut buf);
                        let _ = write!(out, "\x1b[H\x1b[2J{}", String::from_utf8_lossy(&buf));
                        let _ = out.flush();
                        r?;
                        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                    },
                    _ => {
                        if o.json {
                            json_out.push(all_json(&target)?);
                        } else {
                            show_all(&target, false, out)?;
                        }
                    }
                }
            }
            Action::Clear => {
                let target = diag_target(o);
                Conn::open(&target)?.call(Op::ADMIN_CLEAR, &Empty {}).map_err(|e| refused(&target, "clear", e))?;
                if !o.json {
                    let _ = writeln!(out, "counters cleared ({})", target.label());
                }
            }
            Action::LogLevel(l) => {
                let target = diag_target(o);
                let r = Conn::open(&target)?
                    .call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: *l })
                    .map_err(|e| refused(&target, "log level", e))?;
                let now = r.decode::<LogLevelRsp>().map_err(|e| refused(&target, "log level", e))?.level;
                if o.json {
                    json_out.push(serde_json::json!({"log_level": consts::log_level_name(now)}));
                } else {
                    let _ = writeln!(out, "log level of the {}: {}", target.label(), consts::log_level_name(now));
                }
            }
            Action::Sizes => {
                for m in MESSAGES {
                    if o.json {
                        json_out.push(
                            serde_json::json!({"message": m.name, "fixed_bytes": m.fixed_size, "tails": m.tails.len()}),
                        );
                    } else {
                        let tails: Vec<&str> = m.tails.iter().map(|t| t.name).collect();
                        let _ = writeln!(
                            out,
                            "{:<16} fixed {:>4} bytes{}",
                            m.name,
                            m.fixed_size,
                            if tails.is_empty() { String::new() } else { format!(" + {}", tails.join(", ")) }
                        );
                    }
                }
            }
            Action::EpollSupport(_) => {
                eprintln!(
                    "qtinfo: -p is accepted for compatibility: readiness of remote files works for every file type"
                );
            }
            Action::ProxyInfo => {
                let target = proxy_target(o);
                if o.json {
                    json_out.push(all_json(&target)?);
                } else {
                    show_all(&target, true, out)?;
                }
            }
            Action::ProxyLogCycle => {
                let target = proxy_target(o);
                let mut c = Conn::open(&target)?;
                let cur = c
                    .call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: consts::LOG_QUERY })
                    .and_then(|r| r.decode::<LogLevelRsp>().map(|l| l.level))
                    .map_err(|e| refused(&target, "log level", e))?;
                let next = match cur {
                    consts::LOG_NONE => consts::LOG_ERROR,
                    consts::LOG_ERROR => consts::LOG_INFO,
                    _ => consts::LOG_NONE,
                };
                c.call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: next })
                    .map_err(|e| refused(&target, "log level", e))?;
                let _ = writeln!(
                    out,
                    "udsproxyd log level: {} -> {}",
                    consts::log_level_name(cur),
                    consts::log_level_name(next)
                );
            }
        }
    }
    if o.json {
        let v = if json_out.len() == 1 { json_out.pop().expect("one") } else { serde_json::Value::Array(json_out) };
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(())
}

/// Owned copies of the admin records (the wire types borrow their buffers).
struct InfoRow {
    component: String,
    version: String,
    pid: u32,
    cores: u32,
    uptime_ms: u64,
    sessions: u32,
    connections: u32,
    channels: u32,
    log_level: u32,
}

struct ConnRow {
    id: u64,
    session: u64,
    core: u32,
    state: u32,
    inflight: u32,
    channels: u32,
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    peer: String,
}

struct ChanRow {
    conn: u64,
    channel: u32,
    kind: u32,
    state: u32,
    credit_tx: u32,
    credit_rx: u32,
    bytes_in: u64,
    bytes_out: u64,
    path: String,
}

struct Snapshot {
    info: Option<InfoRow>,
    counters: Vec<OpCounter>,
    window_ms: u64,
    conns: Vec<ConnRow>,
    chans: Vec<ChanRow>,
}

fn snapshot(target: &Target) -> Result<Snapshot, Failure> {
    let mut c = Conn::open(target)?;
    let info = c.call(Op::ADMIN_INFO, &Empty {}).ok().and_then(|r| {
        let i = r.decode::<AdminInfo>().ok()?;
        Some(InfoRow {
            component: i.component.display().into_owned(),
            version: i.version.display().into_owned(),
            pid: i.pid,
            cores: i.cores,
            uptime_ms: i.uptime_ms,
            sessions: i.sessions,
            connections: i.connections,
            channels: i.channels,
            log_level: i.log_level,
        })
    });
    let r = c.call(Op::ADMIN_COUNTERS, &CountersReq { flags: 0 }).map_err(|e| refused(target, "counters", e))?;
    let cr = r.decode::<CountersRsp>().map_err(|e| refused(target, "counters", e))?;
    let counters: Vec<OpCounter> =
        cr.records.0.chunks_exact(OpCounter::DESC.size).map(<OpCounter as wire::Fixed>::get).collect();
    let window_ms = cr.window_ms;
    let conns = c
        .call(Op::ADMIN_CONNS, &Empty {})
        .ok()
        .and_then(|r| {
            let l = r.decode::<ConnsRsp>().ok()?;
            Some(
                RecordIter::<ConnInfo>::new(l.records.0)
                    .filter_map(Result::ok)
                    .map(|c| ConnRow {
                        id: c.conn_id,
                        session: c.session,
                        core: c.core,
                        state: c.state,
                        inflight: c.inflight,
                        channels: c.channels,
                        requests: c.requests,
                        bytes_in: c.bytes_in,
                        bytes_out: c.bytes_out,
                        peer: c.peer.display().into_owned(),
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    let chans = c
        .call(Op::ADMIN_CHANNELS, &Empty {})
        .ok()
        .and_then(|r| {
            let l = r.decode::<ChannelsRsp>().ok()?;
            Some(
                RecordIter::<ChanInfo>::new(l.records.0)
                    .filter_map(Result::ok)
                    .map(|c| ChanRow {
                        conn: c.conn_id,
                        channel: c.channel,
                        kind: c.kind,
                        state: c.state,
                        credit_tx: c.credit_tx,
                        credit_rx: c.credit_rx,
                        bytes_in: c.bytes_in,
                        bytes_out: c.bytes_out,
                        path: c.path.display().into_owned(),
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    Ok(Snapshot { info, counters, window_ms, conns, chans })
}

fn op_name(op: u16) -> String {
    Op::from_u16(op).map(|o| o.name().to_string()).unwrap_or_else(|| format!("op{op:#06x}"))
}

fn show_all(target: &Target, proxy: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let s = snapshot(target)?;
    if let Some(i) = &s.info {
        let _ = writeln!(
            out,
            "qtfs {} {} (pid {}, {} cores, up {}) — log level {}",
            i.component,
            i.version,
            i.pid,
            i.cores,
            fmt_dur(i.uptime_ms),
            consts::log_level_name(i.log_level)
        );
        let _ = writeln!(out, "sessions {}, connections {}, channels {}", i.sessions, i.connections, i.channels);
    }
    let _ = writeln!(out, "\ncounters over the last {}:", fmt_dur(s.window_ms));
    let _ = writeln!(
        out,
        "{:<18} {:>10} {:>8} {:>12} {:>12} {:>9} {:>9} {:>9}",
        "operation", "requests", "errors", "bytes in", "bytes out", "p50 µs", "p99 µs", "p999 µs"
    );
    let mut total = (0u64, 0u64);
    for c in &s.counters {
        total.0 += c.requests;
        total.1 += c.errors;
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>8} {:>12} {:>12} {:>9.1} {:>9.1} {:>9.1}",
            op_name(c.op),
            c.requests,
            c.errors,
            c.bytes_in,
            c.bytes_out,
            c.lat_p50_ns as f64 / 1e3,
            c.lat_p99_ns as f64 / 1e3,
            c.lat_p999_ns as f64 / 1e3
        );
    }
    let _ = writeln!(out, "{:<18} {:>10} {:>8}", "total", total.0, total.1);
    if !proxy || !s.conns.is_empty() {
        let _ = writeln!(out, "\nconnections:");
        let _ = writeln!(
            out,
            "{:>6} {:>5} {:<12} {:>16} {:>8} {:>10} {:>12} {:>12}  peer",
            "id", "core", "state", "session", "inflight", "requests", "bytes in", "bytes out"
        );
        for c in &s.conns {
            let _ = writeln!(
                out,
                "{:>6} {:>5} {:<12} {:>16x} {:>8} {:>10} {:>12} {:>12}  {}",
                c.id,
                c.core,
                consts::conn_state_name(c.state),
                c.session,
                c.inflight,
                c.requests,
                c.bytes_in,
                c.bytes_out,
                c.peer
            );
        }
    }
    if proxy || !s.chans.is_empty() {
        let _ = writeln!(out, "\nchannels:");
        let _ = writeln!(
            out,
            "{:>6} {:>10} {:>5} {:>6} {:>10} {:>10} {:>12} {:>12}  path",
            "conn", "channel", "kind", "state", "credit tx", "credit rx", "bytes in", "bytes out"
        );
        for c in &s.chans {
            let _ = writeln!(
                out,
                "{:>6} {:>10x} {:>5} {:>6} {:>10} {:>10} {:>12} {:>12}  {}",
                c.conn, c.channel, c.kind, c.state, c.credit_tx, c.credit_rx, c.bytes_in, c.bytes_out, c.path
            );
        }
    }
    Ok(())
}

fn all_json(target: &Target) -> Result<serde_json::Value, Failure> {
    let s = snapshot(target)?;
    Ok(serde_json::json!({
        "target": target.label(),
        "info": s.info.as_ref().map(|i| serde_json::json!({
            "component": i.component, "version": i.version, "pid": i.pid, "cores": i.cores,
            "uptime_ms": i.uptime_ms, "sessions": i.sessions, "connections": i.connections,
            "channels": i.channels, "log_level": consts::log_level_name(i.log_level),
        })),
        "window_ms": s.window_ms,
        "counters": s.counters.iter().map(|c| serde_json::json!({
            "op": op_name(c.op), "requests": c.requests, "errors": c.errors,
            "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
            "p50_ns": c.lat_p50_ns, "p99_ns": c.lat_p99_ns, "p999_ns": c.lat_p999_ns, "max_ns": c.lat_max_ns,
        })).collect::<Vec<_>>(),
        "connections": s.conns.iter().map(|c| serde_json::json!({
            "id": c.id, "session": format!("{:x}", c.session), "core": c.core,
            "state": consts::conn_state_name(c.state), "inflight": c.inflight, "channels": c.channels,
            "requests": c.requests, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out, "peer": c.peer,
        })).collect::<Vec<_>>(),
        "channels": s.chans.iter().map(|c| serde_json::json!({
            "conn": c.conn, "channel": c.channel, "kind": c.kind, "state": c.state,
            "credit_tx": c.credit_tx, "credit_rx": c.credit_rx, "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out, "path": c.path,
        })).collect::<Vec<_>>(),
    }))
}

fn fmt_dur(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{:01}s", s, ms % 1000 / 100)
    }
}

/// Entry point of both binaries; returns the exit status.
pub fn main(mode: Mode) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let r = parse(mode, &args).and_then(|o| run(mode, &o, &mut out));
    match r {
        Ok(()) => exit::OK,
        Err(f) => {
            if !f.msg.is_empty() {
                eprintln!("{}: {}", mode.name(), f.msg);
            }
            f.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(mode: Mode, a: &[&str]) -> Result<Opts, Failure> {
        parse(mode, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn original_forms() {
        let o = p(Mode::Qtcfg, &["-w", "UDSCONNECT", "-x", "/var/lib/libvirt"]).unwrap();
        assert_eq!(o.actions, vec![Action::SelectType(WlType::Udsconnect), Action::Add(b"/var/lib/libvirt".to_vec())]);
        let o = p(Mode::Qtcfg, &["-wopen", "-y3", "-zopen", "-z"]).unwrap();
        assert_eq!(
            o.actions,
            vec![
                Action::SelectType(WlType::Open),
                Action::Del(3),
                Action::List(Some(WlType::Open)),
                Action::List(None)
            ]
        );
        let o = p(Mode::Qtinfo, &["-a", "-l", "debug", "-c", "--json"]).unwrap();
        assert_eq!(o.actions, vec![Action::All, Action::LogLevel(consts::LOG_DEBUG), Action::Clear]);
        assert!(o.json);
    }

    #[test]
    fn usage_errors_say_what_to_type() {
        let e = p(Mode::Qtcfg, &["-x", "/var/lib/libvirt/"]).unwrap_err();
        assert_eq!(e.code, exit::USAGE);
        assert!(e.msg.contains("qtcfg -w udsconnect -x /var/lib/libvirt"), "{}", e.msg);
        assert_eq!(p(Mode::Qtcfg, &["-w", "bogus"]).unwrap_err().code, exit::USAGE);
        assert_eq!(p(Mode::Qtcfg, &["-wopen", "-y", "x"]).unwrap_err().code, exit::USAGE);
        assert_eq!(p(Mode::Qtcfg, &["-a"]).unwrap_err().code, exit::USAGE, "-a is qtinfo only");
        let long = "/".to_string() + &"a".repeat(4095);
        assert_eq!(p(Mode::Qtcfg, &["-wopen", "-x", &long]).unwrap_err().code, exit::USAGE);
        assert_eq!(p(Mode::Qtinfo, &["-l", "LOUD"]).unwrap_err().code, exit::USAGE);
        assert_eq!(p(Mode::Qtinfo, &["--target", "nope"]).unwrap_err().code, exit::USAGE);
    }
}
