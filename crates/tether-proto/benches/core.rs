//! Micro-benchmarks of the protocol core's hot paths: unmasking (against the byte-by-byte loop),
//! frame parsing, UTF-8 validation and permessage-deflate.
//!
//! Run with `cargo bench -p tether-proto`; throughput is reported in bytes per second.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tether_proto::deflate::negotiation::accept_offer;
use tether_proto::deflate::{Compressor, CompressorSettings, Decompressor, DeflateConfig};
use tether_proto::frame::mask::{apply_mask, apply_mask_bytewise};
use tether_proto::frame::{encode_frame, OpCode};
use tether_proto::handshake::extensions::parse_extensions;
use tether_proto::{Config, Connection, Role, Utf8Validator};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn unmasking(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [64usize, 1024, 64 * 1024, 1 << 20] {
        let mut buf = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("word_at_a_time", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 1))
        });
        group.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), KEY, 1))
        });
    }
    group.finish();
}

/// Decoding a buffer of many small masked text frames through the whole connection state machine
/// (frame parse, unmask, UTF-8, message assembly).
fn frame_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("receive");
    for (count, size) in [(1000usize, 16usize), (100, 1024), (4, 1 << 20)] {
        let payload = "x".repeat(size);
        let mut wire = BytesMut::new();
        for _ in 0..count {
            encode_frame(&mut wire, OpCode::Text, true, false, payload.as_bytes(), Some(KEY));
        }
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("text_frames", format!("{count}x{size}")), |b| {
            b.iter(|| {
                let mut conn = Connection::new(Role::Server, Config::default(), None);
                let mut input = wire.clone();
                let mut messages = 0;
                while let Some(_event) = conn.receive(&mut input).unwrap() {
                    messages += 1;
                }
                assert_eq!(messages, count);
            })
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let ascii = "tether ".repeat(10_000);
    let mixed = "κόσμε tether 𝄞 ".repeat(3_000);
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut v = Utf8Validator::default();
                for piece in text.as_bytes().chunks(4096) {
                    v.feed(black_box(piece)).unwrap();
                }
                v.finish().unwrap();
            })
        });
    }
    group.finish();
}

fn deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    let json = r#"{"type":"message","channel":"chat.lobby","offset":1234,"data":{"text":"hello there"}}"#.repeat(50);
    group.throughput(Throughput::Bytes(json.len() as u64));
    let settings = CompressorSettings::new(1, 12, 8);
    let mut compressor = Compressor::new(settings);
    let mut wire = Vec::new();
    group.bench_function("compress_json_level1", |b| {
        b.iter(|| {
            wire.clear();
            compressor.compress(black_box(json.as_bytes()), &mut wire);
        })
    });
    let mut reference = Vec::new();
    Compressor::new(settings).compress(json.as_bytes(), &mut reference);
    let mut decompressor = Decompressor::new(12);
    let mut out = Vec::new();
    group.bench_function("inflate_json", |b| {
        b.iter(|| {
            out.clear();
            decompressor.reset_to(&[]);
            decompressor.decompress(black_box(&reference), &mut out, 1 << 20).unwrap();
            decompressor.finish_message(&mut out, 1 << 20).unwrap();
        })
    });
    group.finish();
}

/// A server connection that agreed to permessage-deflate on a browser's offer.
fn compressing_server(deflate: DeflateConfig, offer: &str) -> Connection {
    let offers = parse_extensions([offer.as_bytes()]).unwrap();
    let (params, _) = accept_offer(&deflate, &offers).unwrap();
    Connection::new(Role::Server, Config { deflate, ..Config::default() }, Some(params))
}

/// The CPU a server spends on one compressed chat-sized message (about 180 bytes of JSON), per
/// setting: the window, memLevel, and context takeover. "one" sends on one connection (the thread's
/// pooled compressor still holds its context); "interleaved" round-robins over 64 connections, so
/// every message first primes the compressor with its connection's window.
fn compressed_sends(c: &mut Criterion) {
    let mut group = c.benchmark_group("compressed_send");
    let message = r#"{"type":"message","channel":"chat:lobby","offset":1042,"epoch":"k3j2h1","from":"carol","data":{"user":"carol","text":"the game starts at nine tonight see you there","ts":1733050955000}}"#;
    group.throughput(Throughput::Elements(1));
    for (bits, mem_level) in [(15, 8), (12, 8), (12, 5), (10, 8), (9, 1)] {
        for (takeover, offer) in [
            ("takeover", "permessage-deflate; client_max_window_bits"),
            ("no_takeover", "permessage-deflate; server_no_context_takeover"),
        ] {
            let deflate = DeflateConfig { max_window_bits: bits, mem_level, ..DeflateConfig::server() };
            for (shape, connections) in [("one", 1usize), ("interleaved", 64)] {
                let mut servers: Vec<Connection> =
                    (0..connections).map(|_| compressing_server(deflate.clone(), offer)).collect();
                let mut next = 0;
                let id = format!("{bits}_bits_mem_level_{mem_level}/{takeover}/{shape}");
                group.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| {
                        let server = &mut servers[next];
                        next = (next + 1) % connections;
                        server.send_text(black_box(message)).unwrap();
                        black_box(server.take_output());
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, unmasking, frame_parsing, utf8, deflate, compressed_sends);
criterion_main!(benches);
