//! Codec benches: encode and decode of the main messages, and frame parsing from a
//! receive buffer holding many frames. Throughput is reported in bytes for the data
//! frames (GB/s) and in elements (frames) otherwise.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qtfs_benches::encode_frame;
use qtfs_proto::*;
use std::hint::black_box;

fn ctx() -> ReqCtx {
    ReqCtx { export: 1, uid: 1000, gid: 1000 }
}

fn small_messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let groups = [10u32, 20, 30];
    let open = OpenReq {
        ctx: ctx(),
        flags: consts::open::RDWR,
        mode: 0o644,
        groups: Groups::Ids(&groups),
        path: Path(b"images/vm1/disk0.qcow2"),
    };
    let mut buf = Vec::with_capacity(8192);
    g.bench_function("open_req", |b| b.iter(|| encode_frame(&mut buf, FrameHeader::request(Op::OPEN, 7, 0), &open)));
    let attr = AttrRsp { attr: Attr { ino: 42, size: 4096, mode: 0o100644, nlink: 1, ..Default::default() } };
    g.bench_function("attr_rsp", |b| {
        b.iter(|| encode_frame(&mut buf, FrameHeader::response(Op::GETATTR as u16, 7, 0), &attr))
    });
    let read = ReadReq { handle: 0x1_0000_0001, offset: 1 << 30, len: 4096 };
    g.bench_function("read_req", |b| b.iter(|| encode_frame(&mut buf, FrameHeader::request(Op::READ, 7, 0), &read)));
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let open_bytes = open.to_vec();
    g.bench_function("open_req", |b| b.iter(|| black_box(OpenReq::decode(black_box(&open_bytes)).unwrap())));
    let attr_bytes = attr.to_vec();
    g.bench_function("attr_rsp", |b| b.iter(|| black_box(AttrRsp::decode(black_box(&attr_bytes)).unwrap())));
    let read_bytes = read.to_vec();
    g.bench_function("read_req", |b| b.iter(|| black_box(ReadReq::decode(black_box(&read_bytes)).unwrap())));
    let mut hdr = [0u8; HEADER_SIZE];
    FrameHeader::request(Op::READ, 9, 20).write_to(&mut hdr);
    g.bench_function("header", |b| b.iter(|| black_box(FrameHeader::decode(black_box(&hdr), MAX_PAYLOAD).unwrap())));
    g.finish();
}

fn data_frames(c: &mut Criterion) {
    for size in [4096usize, 1 << 20] {
        let data = vec![0xa5u8; size];
        let mut g = c.benchmark_group("data_frame");
        g.throughput(Throughput::Bytes(size as u64));
        let w = WriteReq { handle: 1, offset: 0, flags: 0, data: Rest(&data) };
        let mut buf = Vec::with_capacity(size + 64);
        g.bench_with_input(BenchmarkId::new("encode_write", size), &size, |b, _| {
            b.iter(|| encode_frame(&mut buf, FrameHeader::request(Op::WRITE, 1, 0), &w))
        });
        let mut frame = Vec::new();
        push_frame(&mut frame, FrameHeader::request(Op::WRITE, 1, 0), &w);
        g.bench_with_input(BenchmarkId::new("decode_write", size), &size, |b, _| {
            b.iter(|| {
                let mut p = FrameParser::new(black_box(&frame), MAX_PAYLOAD);
                let f = p.next_frame().unwrap().unwrap();
                black_box(WriteReq::decode(f.payload).unwrap().data.len())
            })
        });
        g.finish();
    }
}

fn parse_many(c: &mut Criterion) {
    // A receive buffer with 256 small requests, as one recv() under load returns.
    let mut stream = Vec::new();
    for i in 0..256u64 {
        push_frame(
            &mut stream,
            FrameHeader::request(Op::READ, i, 0),
            &ReadReq { handle: 1, offset: i * 4096, len: 4096 },
        );
    }
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(256));
    g.bench_function("256_read_frames", |b| {
        b.iter(|| {
            let mut p = FrameParser::new(black_box(&stream), MAX_PAYLOAD);
            let mut n = 0u64;
            while let Some(f) = p.next_frame().unwrap() {
                n += ReadReq::decode(f.payload).unwrap().offset;
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, small_messages, data_frames, parse_many);
criterion_main!(benches);
