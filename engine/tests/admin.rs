//! The admin socket: whitelist changes take effect at once on every core, counters move,
//! log level and connection states are reported.

use qtfs_client::{AdminClient, Cred};
use qtfs_proto::consts::{self, WlType, open};
use qtfs_proto::*;
use qtfs_testkit::*;

fn list(a: &mut AdminClient, t: u32) -> Vec<(u32, u32, String)> {
    let r = a.call(Op::ADMIN_WL_LIST, &WlListReq { wl_type: t }).unwrap();
    let l = r.decode::<WlListRsp>().unwrap();
    RecordIter::<WlEntry>::new(l.entries.0)
        .map(|e| e.unwrap())
        .map(|e| (e.wl_type, e.index, e.path.display().into_owned()))
        .collect()
}

#[test]
fn whitelist_changes_apply_on_every_core_and_persist() {
    let e = TestEngine::start(Opts { cores: 2, groups: Some(vec!["Read", "Readdir"]), ..Default::default() });
    std::fs::write(e.path("f"), b"x").unwrap();
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let sessions: Vec<_> = (0..4).map(|_| e.mounted(1)).collect();
    for (s, ex) in &sessions {
        assert_eq!(s.open(*ex, b"f", open::RDONLY, 0, &Cred::root()).unwrap_err().errno(), libc::EACCES);
    }
    let p = e.export.display().to_string();
    let r = a
        .call(
            Op::ADMIN_WL_ADD,
            &WlAddReq { wl_type: WlType::Open as u32, flags: consts::WL_PERSIST, path: Path(p.as_bytes()) },
        )
        .unwrap();
    let idx = r.decode::<WlAddRsp>().unwrap().index;
    assert_eq!(idx, 0);
    for (s, ex) in &sessions {
        s.open(*ex, b"f", open::RDONLY, 0, &Cred::root()).unwrap();
    }
    assert!(std::fs::read_to_string(&e.whitelist).unwrap().contains(&format!("[Open]\nPath={p}")));
    assert!(std::fs::read_to_string(&e.whitelist).unwrap().starts_with("# test whitelist"), "comments kept");
    assert_eq!(list(&mut a, WlType::Open as u32), vec![(0, 0, p.clone())]);
    // Duplicates and bad entries are refused with a reason.
    let dup = a.call(Op::ADMIN_WL_ADD, &WlAddReq { wl_type: 0, flags: 0, path: Path(p.as_bytes()) }).unwrap_err();
    assert_eq!(dup.errno(), libc::EEXIST);
    let rel = a.call(Op::ADMIN_WL_ADD, &WlAddReq { wl_type: 0, flags: 0, path: Path(b"relative") }).unwrap_err();
    assert_eq!(rel.errno(), libc::EINVAL);
    let bad = a.call(Op::ADMIN_WL_ADD, &WlAddReq { wl_type: 99, flags: 0, path: Path(b"/x") }).unwrap_err();
    assert_eq!(bad.errno(), libc::EINVAL);
    // Delete: denied again everywhere.
    a.call(Op::ADMIN_WL_DEL, &WlDelReq { wl_type: 0, index: 0, flags: 0 }).unwrap();
    for (s, ex) in &sessions {
        assert_eq!(s.open(*ex, b"f", open::RDONLY, 0, &Cred::root()).unwrap_err().errno(), libc::EACCES);
    }
    let gone = a.call(Op::ADMIN_WL_DEL, &WlDelReq { wl_type: 0, index: 0, flags: 0 }).unwrap_err();
    assert_eq!(gone.errno(), libc::ENOENT);
    let all = list(&mut a, consts::WL_ALL);
    assert!(all.iter().any(|(t, _, _)| *t == WlType::Mount as u32));
}

#[test]
fn counters_connections_info_and_log_level() {
    let e = TestEngine::start(Opts { cores: 2, ..Default::default() });
    let (s, _, h) = e.mounted_file(2, "c");
    for _ in 0..10 {
        s.write(h, 0, &[1u8; 4096]).unwrap();
        s.read(h, 0, 4096).unwrap();
    }
    let _ = s.read(0xbad, 0, 1);
    let recs = op_counters(&e.admin);
    let read = recs.iter().find(|r| r.op == Op::READ as u16).expect("READ counted");
    assert_eq!(read.requests, 11);
    assert_eq!(read.errors, 1);
    assert!(read.bytes_out >= 10 * 4096);
    assert!(read.lat_p50_ns > 0 && read.lat_p99_ns >= read.lat_p50_ns);
    let write = recs.iter().find(|r| r.op == Op::WRITE as u16).unwrap();
    assert_eq!(write.requests, 10);
    assert!(write.bytes_in >= 10 * 4096);
    // Clear.
    let mut a = AdminClient::connect(&e.admin).unwrap();
    a.call(Op::ADMIN_CLEAR, &Empty {}).unwrap();
    let r = a.call(Op::ADMIN_COUNTERS, &CountersReq { flags: 0 }).unwrap();
    assert_eq!(r.decode::<CountersRsp>().unwrap().count, 0);
    // Connections.
    let r = a.call(Op::ADMIN_CONNS, &Empty {}).unwrap();
    let conns = r.decode::<ConnsRsp>().unwrap();
    assert_eq!(conns.count, 2);
    for ci in RecordIter::<ConnInfo>::new(conns.records.0) {
        let ci = ci.unwrap();
        assert_eq!(ci.state, consts::CONN_ACTIVE);
        assert_eq!(ci.session, s.session_id());
        assert!(ci.peer.display().starts_with("127.0.0.1:"));
    }
    // Info and log level.
    let r = a.call(Op::ADMIN_INFO, &Empty {}).unwrap();
    let info = r.decode::<AdminInfo>().unwrap();
    assert_eq!(info.component.0, b"engine");
    assert_eq!(info.cores, 2);
    assert_eq!(info.connections, 2);
    let r = a.call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: consts::LOG_WARN }).unwrap();
    assert_eq!(r.decode::<LogLevelRsp>().unwrap().level, consts::LOG_WARN);
    let r = a.call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: consts::LOG_QUERY }).unwrap();
    assert_eq!(r.decode::<LogLevelRsp>().unwrap().level, consts::LOG_WARN);
    assert_eq!(a.call(Op::ADMIN_LOG_LEVEL, &LogLevelReq { level: 9 }).unwrap_err().errno(), libc::EINVAL);
    // The admin socket is private.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&e.admin).unwrap().permissions().mode() & 0o777, 0o600);
    // Admin requests on a client connection are refused.
    assert_eq!(s.call(Op::ADMIN_WL_LIST, &WlListReq { wl_type: 0 }).unwrap_err().errno(), libc::EPERM);
}

#[test]
fn entries_added_through_a_symlink_match_its_target_and_list_as_written() {
    let e = TestEngine::start(Opts { groups: Some(vec!["Read"]), ..Default::default() });
    std::fs::write(e.path("f"), b"x").unwrap();
    let link = e.link_to_export("link");
    let (s, ex) = e.mounted(1);
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let written = format!("{}/", link.display());
    let r = a
        .call(
            Op::ADMIN_WL_ADD,
            &WlAddReq { wl_type: WlType::Open as u32, flags: consts::WL_PERSIST, path: Path(written.as_bytes()) },
        )
        .unwrap();
    assert_eq!(r.decode::<WlAddRsp>().unwrap().index, 0);
    s.open(ex, b"f", open::RDONLY, 0, &Cred::root()).expect("the entry resolves to the export");
    // Shown and persisted as written (normalised: no trailing slash), not as resolved.
    let shown = link.display().to_string();
    assert_eq!(list(&mut a, WlType::Open as u32), vec![(0, 0, shown.clone())]);
    let file = std::fs::read_to_string(&e.whitelist).unwrap();
    assert!(file.contains(&format!("[Open]\nPath={shown}\n")), "{file}");
    let note = format!("whitelist [Open] {shown} resolves to {}", e.export.display());
    assert!(wait_until(std::time::Duration::from_secs(10), || e.log_contains(&note)), "{note}");
    // Duplicates are judged on the spelling: the export's real path is another entry.
    let p = e.export.display().to_string();
    a.call(Op::ADMIN_WL_ADD, &WlAddReq { wl_type: WlType::Open as u32, flags: 0, path: Path(p.as_bytes()) }).unwrap();
    a.call(Op::ADMIN_WL_DEL, &WlDelReq { wl_type: WlType::Open as u32, index: 1, flags: 0 }).unwrap();
    assert_eq!(list(&mut a, WlType::Open as u32), vec![(0, 0, shown)]);
    s.open(ex, b"f", open::RDONLY, 0, &Cred::root()).unwrap();
}
