//! Executes the parsed actions in order: whitelist add/delete/list, log level, counters
//! reset, connection and channel listings, and qtinfo's views (`--watch` included).

use std::io::Write;

use qtfs_proto::consts::{self, WlType};
use qtfs_proto::*;

use crate::Failure;
use crate::args::{Action, Opts};
use crate::show::{all_json, show_all};
use crate::target::{Conn, Target, diag_target, exists, proxy_target, refused, wl_target};
use crate::{DEFAULT_ENGINE, DEFAULT_UDSPROXYD, Mode, exit, help};

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
                let target = wl_target(o.target.as_ref(), t);
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
                let target = wl_target(o.target.as_ref(), t);
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
                    (Some(t), _) => vec![(wl_target(o.target.as_ref(), *t), *t as u32)],
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
                let target = diag_target(o.target.as_ref());
                match o.watch {
                    Some(secs) if !o.json => loop {
                        let mut buf = Vec::new();
                        let r = show_all(&target, false, &mut buf);
                        let _ = write!(out, "\x1b[H\x1b[2J{}", String::from_utf8_lossy(&buf));
                        let _ = out.flush();
                        r?;
                        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                    },
                    _ => show(&target, false, o.json, out, &mut json_out)?,
                }
            }
            Action::Clear => {
                let target = diag_target(o.target.as_ref());
                Conn::open(&target)?.call(Op::ADMIN_CLEAR, &Empty {}).map_err(|e| refused(&target, "clear", e))?;
                if !o.json {
                    let _ = writeln!(out, "counters cleared ({})", target.label());
                }
            }
            Action::LogLevel(l) => {
                let target = diag_target(o.target.as_ref());
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
                show(&proxy_target(o.target.as_ref()), true, o.json, out, &mut json_out)?;
            }
            Action::ProxyLogCycle => {
                let target = proxy_target(o.target.as_ref());
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

/// `-a` of one target: its tables on `out`, or (`json`) its object added to `json_out`.
fn show(
    target: &Target,
    proxy: bool,
    json: bool,
    out: &mut dyn Write,
    json_out: &mut Vec<serde_json::Value>,
) -> Result<(), Failure> {
    if json {
        json_out.push(all_json(target)?);
    } else {
        show_all(target, proxy, out)?;
    }
    Ok(())
}
