//! What each permessage-deflate setting costs and gives, on typical JSON: the compression ratio,
//! the CPU per message, and the memory a connection keeps between messages.
//!
//! `cargo run --release -p tether-proto --example deflate_settings` prints a markdown table (the
//! one in docs/limits.md). Two corpora, made deterministically: chat messages (100-300 bytes, as
//! in bench/compression-soak.py) and feed items (1-4 KiB). Each setting runs on 64 server
//! connections that agreed to it with a browser's offer; "interleaved" sends round-robin over all
//! 64 (each message first primes the thread's compressor with its connection's window), "in a row"
//! sends a connection's messages back to back (the compressor still holds its context).
//! Times are wall clock on this machine's one thread: compare rows, not machines.

use std::hint::black_box;
use std::time::Instant;

use tether_proto::deflate::negotiation::{accept_offer, accept_response};
use tether_proto::deflate::DeflateConfig;
use tether_proto::handshake::extensions::parse_extensions;
use tether_proto::{Config, Connection, Role};

const CONNECTIONS: usize = 64;
const MESSAGES: usize = 20_000;

/// A small deterministic generator (no dependency for an example).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() % items.len()]
    }
}

const WORDS: &[&str] = &[
    "hello",
    "there",
    "anyone",
    "around",
    "for",
    "the",
    "standup",
    "today",
    "shipping",
    "new",
    "release",
    "tonight",
    "please",
    "review",
    "my",
    "pull",
    "request",
    "build",
    "is",
    "green",
    "again",
    "lunch",
    "at",
    "noon",
    "who",
    "broke",
    "staging",
    "database",
    "sorry",
    "rolling",
    "back",
    "meeting",
    "moved",
    "three",
    "great",
    "work",
    "dashboard",
    "faster",
    "roadmap",
    "thanks",
    "fix",
    "deploy",
    "finished",
    "latency",
    "down",
];
const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
const ROOMS: &[&str] = &["general", "random", "dev", "ops", "design", "support"];

fn sentence(rng: &mut Lcg, words: usize) -> String {
    (0..words).map(|_| rng.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

fn chat(rng: &mut Lcg, i: usize) -> String {
    let (name, room) = (rng.pick(NAMES), rng.pick(ROOMS));
    let words = 3 + rng.next() % 25;
    format!(
        r#"{{"type":"message","channel":"chat:{room}","offset":{},"from":"{name}","data":{{"user":"{name}","text":"{}","ts":{}}}}}"#,
        1000 + i,
        sentence(rng, words),
        1_733_050_000_000u64 + i as u64 * 917
    )
}

fn feed(rng: &mut Lcg, i: usize) -> String {
    let items: Vec<String> = (0..4 + rng.next() % 12)
        .map(|k| {
            let author = rng.pick(NAMES);
            let (likes, replies, words) = (rng.next() % 5000, rng.next() % 300, 8 + rng.next() % 20);
            format!(
                r#"{{"id":"post-{i}-{k}","author":{{"name":"{author}","avatar":"https://cdn.example.com/a/{author}.png"}},"text":"{}","likes":{likes},"replies":{replies},"tags":["{}","{}"]}}"#,
                sentence(rng, words),
                rng.pick(WORDS),
                rng.pick(WORDS)
            )
        })
        .collect();
    format!(r#"{{"type":"feed","channel":"feed:home","offset":{i},"data":{{"items":[{}]}}}}"#, items.join(","))
}

fn server(deflate: &DeflateConfig, offer: &str) -> Connection {
    let offers = parse_extensions([offer.as_bytes()]).unwrap();
    let (params, _) = accept_offer(deflate, &offers).expect("the offer is acceptable");
    Connection::new(Role::Server, Config { deflate: deflate.clone(), ..Config::default() }, Some(params))
}

/// `server`'s memory for compression after a client (ours, allowed any window) sent it some
/// messages.
fn after_receiving(deflate: &DeflateConfig, offer: &str, server: &mut Connection, corpus: &[String]) -> usize {
    let offers = parse_extensions([offer.as_bytes()]).unwrap();
    let (_, response) = accept_offer(deflate, &offers).unwrap();
    let answer = parse_extensions([response.as_bytes()]).unwrap();
    let params =
        accept_response(&DeflateConfig { max_window_bits: 15, ..DeflateConfig::default() }, &answer[0]).unwrap();
    let client_deflate = DeflateConfig { max_window_bits: 15, ..DeflateConfig::default() };
    let mut client =
        Connection::new(Role::Client, Config { deflate: client_deflate, ..Config::default() }, Some(params));
    for message in &corpus[..50] {
        client.send_text(message).unwrap();
        let mut wire = client.take_output();
        while let Some(event) = server.receive(&mut wire).unwrap() {
            black_box(event);
        }
    }
    server.compression_memory()
}

/// Sends every message once; returns (payload bytes on the wire, ns per message).
fn run(connections: &mut [Connection], corpus: &[String], interleaved: bool) -> (usize, f64) {
    let mut wire = 0;
    let start = Instant::now();
    for i in 0..MESSAGES {
        let who =
            if interleaved { i % connections.len() } else { i / (MESSAGES / connections.len()) % connections.len() };
        let conn = &mut connections[who];
        conn.send_text(&corpus[i % corpus.len()]).unwrap();
        let out = conn.take_output();
        let header = if out[1] & 0x7f == 126 {
            4
        } else if out[1] & 0x7f == 127 {
            10
        } else {
            2
        };
        wire += out.len() - header;
        black_box(out);
    }
    (wire, start.elapsed().as_nanos() as f64 / MESSAGES as f64)
}

fn main() {
    let mut rng = Lcg(17);
    let chats: Vec<String> = (0..4000).map(|i| chat(&mut rng, i)).collect();
    let feeds: Vec<String> = (0..1000).map(|i| feed(&mut rng, i)).collect();
    let offer = "permessage-deflate; client_max_window_bits";
    println!(
        "| window bits | memLevel | level | context takeover | corpus | avg message | ratio interleaved | ratio in a row | ns/message interleaved | ns/message in a row | kept per connection |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let settings = [
        (15, 8, 1, true),
        (12, 8, 1, true),
        (12, 5, 1, true),
        (12, 1, 1, true),
        (12, 8, 6, true),
        (10, 8, 1, true),
        (9, 1, 1, true),
        (12, 8, 1, false),
        (15, 8, 1, false),
    ];
    for (bits, mem_level, level, takeover) in settings {
        let deflate = DeflateConfig {
            max_window_bits: bits,
            mem_level,
            level,
            no_context_takeover: !takeover,
            request_peer_no_context_takeover: !takeover,
            request_peer_max_window_bits: Some(bits),
            ..DeflateConfig::server()
        };
        for (name, corpus) in [("chat", &chats), ("feed", &feeds)] {
            let plain: usize = (0..MESSAGES).map(|i| corpus[i % corpus.len()].len()).sum();
            let mut connections: Vec<Connection> = (0..CONNECTIONS).map(|_| server(&deflate, offer)).collect();
            let (wire, interleaved_ns) = run(&mut connections, corpus, true);
            let mut connections: Vec<Connection> = (0..CONNECTIONS).map(|_| server(&deflate, offer)).collect();
            let (wire_in_a_row, in_a_row_ns) = run(&mut connections, corpus, false);
            // What a connection keeps once it has also received a few of the client's messages.
            let kept = after_receiving(&deflate, offer, &mut connections[0], corpus);
            println!(
                "| {bits} | {mem_level} | {level} | {} | {name} | {} B | {:.3} | {:.3} | {:.0} | {:.0} | {:.1} KiB |",
                if takeover { "yes" } else { "no" },
                plain / MESSAGES,
                wire as f64 / plain as f64,
                wire_in_a_row as f64 / plain as f64,
                interleaved_ns,
                in_a_row_ns,
                kept as f64 / 1024.0,
            );
        }
    }
}
