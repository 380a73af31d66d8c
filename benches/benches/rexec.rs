//! Remote exec message handling: encoding a realistic REXEC_EXEC (a libvirt qemu-kvm
//! command line with its environment and descriptors), the server's validation of it,
//! and the DATA relay path (sender link → socket → receiver link → stream → /dev/null)
//! that carries a remote process's output.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qtfs_benches::encode_frame;
use qtfs_proto::consts::rexec as k;
use qtfs_proto::*;
use qtfs_rexec::link::{self, Link};
use qtfs_rexec::relay::{Endpoint, IoMode, Relay, Rx, Stream};
use qtfs_rexec::server::spawn::ExecRequest;
use std::hint::black_box;

/// argv, env and fd records of a typical `virsh start` (about 3 KiB of argv).
fn qemu_request() -> (Vec<u8>, Vec<u8>, Vec<u8>, u32) {
    let mut args: Vec<String> = vec!["/usr/bin/qemu-kvm".into(), "-name".into(), "guest=vm1,debug-threads=on".into()];
    for a in [
        "-S -object {\"qom-type\":\"secret\",\"id\":\"masterKey0\",\"format\":\"raw\",\"file\":\"/var/lib/libvirt/qemu/domain-1-vm1/master-key.aes\"}",
        "-machine pc-q35-8.2,usb=off,dump-guest-core=off,memory-backend=pc.ram,hpet=off,acpi=on",
        "-accel kvm -cpu host,migratable=on -m size=4194304k",
        "-object {\"qom-type\":\"memory-backend-ram\",\"id\":\"pc.ram\",\"size\":4294967296}",
        "-overcommit mem-lock=off -smp 4,sockets=4,cores=1,threads=1",
        "-uuid 7f8e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b -no-user-config -nodefaults",
        "-chardev socket,id=charmonitor,fd=29,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control",
        "-rtc base=utc,driftfix=slew -global kvm-pit.lost_tick_policy=delay -no-shutdown -boot strict=on",
        "-blockdev {\"driver\":\"file\",\"filename\":\"/home/VMs/vm1.qcow2\",\"node-name\":\"libvirt-1-storage\"}",
        "-device {\"driver\":\"virtio-blk-pci\",\"bus\":\"pci.3\",\"addr\":\"0x0\",\"drive\":\"libvirt-1-format\"}",
        "-netdev {\"type\":\"tap\",\"fd\":\"31\",\"vhost\":true,\"vhostfd\":\"33\",\"id\":\"hostnet0\"}",
        "-chardev pty,id=charserial0 -device isa-serial,chardev=charserial0,id=serial0,index=0",
        "-audiodev {\"id\":\"audio1\",\"driver\":\"none\"} -vnc 127.0.0.1:0,audiodev=audio1",
        "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny -msg timestamp=on",
    ] {
        args.extend(a.split(' ').map(str::to_string));
    }
    let mut argv = Vec::new();
    for a in &args {
        argv.extend_from_slice(a.as_bytes());
        argv.push(0);
    }
    let mut env = Vec::new();
    for i in 0..30 {
        env.extend_from_slice(format!("VAR_{i}=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:{i}").as_bytes());
        env.push(0);
    }
    let mut fds = Vec::new();
    let recs = [
        (0, k::FD_PIPE_IN, 0, 0, &b""[..]),
        (1, k::FD_PIPE_OUT, 1, 0, &b""[..]),
        (2, k::FD_PIPE_OUT, 2, 0, &b""[..]),
        (29, k::FD_LISTENER, 0, 1, &b""[..]),
        (30, k::FD_PIPE_OUT, 30, 0, &b""[..]),
        (31, k::FD_FILE, 0, consts::open::RDWR, &b"/var/lib/libvirt/qemu/domain-1-vm1/master-key.aes"[..]),
    ];
    for (fd, kind, stream, flags, path) in recs {
        RexecFd { fd, kind, stream, flags, offset: 0, path: Path(path) }.encode(&mut fds);
    }
    (argv, env, fds, recs.len() as u32)
}

fn exec_request(c: &mut Criterion) {
    let (argv, env, fds, count) = qemu_request();
    let req = RexecExecReq {
        flags: 0,
        window: 1 << 20,
        fd_count: count,
        argv: Bytes32(&argv),
        env: Bytes32(&env),
        cwd: Path(b"/"),
        fds: Rest(&fds),
    };
    let mut g = c.benchmark_group("rexec_exec");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(8192);
    g.bench_function("encode", |b| b.iter(|| encode_frame(&mut buf, FrameHeader::request(Op::REXEC_EXEC, 1, 0), &req)));
    let payload = req.to_vec();
    g.bench_function("decode_validate", |b| {
        b.iter(|| black_box(ExecRequest::parse(black_box(&payload)).map(|r| r.argv.len()).unwrap_or(0)))
    });
    g.finish();
}

fn data_relay(c: &mut Criterion) {
    for size in [4096usize, 64 << 10, 256 << 10] {
        let data = vec![0x5au8; size];
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut tx = Link::new();
        let mut rx = Relay::new();
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        rx.streams
            .insert(1, Stream { tx: None, rx: Some(Rx::new(Endpoint::new(null.into(), IoMode::Always), 1 << 20)) });
        let mut g = c.benchmark_group("rexec_data_relay");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |bch, _| {
            bch.iter(|| {
                tx.push_data(1, black_box(&data));
                while tx.wants_write() {
                    tx.flush(a.as_raw_fd()).unwrap();
                    while let Ok(n) = rx.link.fill(b.as_raw_fd()) {
                        if n == 0 {
                            break;
                        }
                    }
                    link::for_each_frame(&mut rx, |r| &mut r.link, |r, h, p| r.on_data(h.channel, p)).unwrap();
                }
                // Both logs are acknowledged at once (no retransmission in this bench).
                tx.on_ack(tx.end()).unwrap();
                let end = rx.link.end();
                rx.link.on_ack(end).unwrap();
            })
        });
        g.finish();
    }
}

criterion_group!(benches, exec_request, data_relay);
criterion_main!(benches);
