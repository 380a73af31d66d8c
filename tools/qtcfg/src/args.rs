//! The command line of qtcfg and qtinfo: the original's short options read left to right
//! plus the long ones, parsed into [`Opts`] (a list of [`Action`]s), the usage errors
//! ([`Failure`]s with `exit::USAGE`) and the help text.

use qtfs_proto::consts::{self, WlType};
use qtfs_proto::*;

use crate::target::Target;
use crate::{DEFAULT_ENGINE, DEFAULT_KMOD, DEFAULT_UDSPROXYD, Failure, Mode, exit};

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
