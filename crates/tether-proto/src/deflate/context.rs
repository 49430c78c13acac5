//! One connection's compression context, without one connection's zlib state.
//!
//! A zlib-rs compressor costs at least 128 KiB whatever its settings (its hash table is fixed) and
//! an inflater 40 KiB; kept per connection, as before, that was 330 KiB a browser, freed into a
//! fragmented heap at every close. Here the states live in small per-thread pools
//! ([`CompressorPool`], [`InflaterPool`]) and a connection keeps only what context takeover makes
//! it remember: the last [`PRIMING_BYTES`] (1 KiB) of what it sent ([`SendContext`]) and the whole
//! agreed window of what it received ([`ReceiveContext`]), 4 KiB at 12 bits. Before a state is
//! used for another connection's message it is reset and primed with that connection's bytes
//! (`set_dictionary`): the peer's inflater holds them too, so the stream stays valid, and a sender
//! may always refer to less of the window than was agreed.
//!
//! Each context has a [`Stamp`] that changes with every message; a pooled state remembers the
//! stamp of the context it holds, so a connection that sends (or receives) several messages in a
//! row on one thread pays no priming at all, and a state left behind on another thread (the task
//! moved) is never taken for current.
//!
//! Size: one file although it passes 400 lines: the code is some 340 of them and the rest its tests. The
//! send side (compressor pool, [`SendContext`]) and the receive side (inflater pool,
//! [`ReceiveContext`]) look like a seam, but they are one argument: both rest on [`Stamp`] and
//! [`Window`] and on the same rule for lending a pooled state (reset, prime, check the stamp), and
//! the tests that matter exercise both at once (a connection moving between threads, interleaved
//! connections). Split, each half would only be correct by reference to the other.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use super::codec::{Compressor, CompressorSettings, Decompressor};
use crate::error::ProtocolError;

/// How many differently set-up compressors a thread keeps (the server's own settings, plus one per
/// smaller window that peers asked for).
const COMPRESSORS_PER_THREAD: usize = 8;

/// How much of what a connection sent it keeps, to prime a pooled compressor with before its next
/// message when the compressor served another connection in between. Priming costs about a
/// nanosecond a byte on top of the reset (which clears zlib-rs's 128 KiB hash table, ~2 µs); on
/// chat-sized JSON the last 1 KiB gives nearly the ratio of a whole 4 KiB window (0.285 against
/// 0.273 on 4,000 generated chat messages, zlib-rs level 1, 12 bits) at half the time (3.3 against
/// 7.3 µs a message).
/// While a compressor keeps serving one connection it still refers to the whole agreed window.
const PRIMING_BYTES: usize = 1024;

/// How many idle inflaters a thread keeps. Inflaters in use (a message half received) are held by
/// their connection and are not counted.
const IDLE_INFLATERS_PER_THREAD: usize = 4;

/// Which context, at which message: the context's id (unique for the process's life, so a new
/// connection is never mistaken for an old one) and how many messages it has been through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    id: u64,
    messages: u64,
}

impl Stamp {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self { id: NEXT.fetch_add(1, Ordering::Relaxed), messages: 0 }
    }

    fn advance(&mut self) {
        self.messages += 1;
    }
}

/// The last bytes of a stream, up to `size` of them.
#[derive(Debug)]
pub(crate) struct Window {
    bytes: Vec<u8>,
    size: usize,
}

impl Window {
    fn new(size: usize) -> Self {
        Self { bytes: Vec::new(), size }
    }

    fn push(&mut self, data: &[u8]) {
        let size = self.size;
        if data.len() >= size {
            self.bytes.clear();
            self.bytes.extend_from_slice(&data[data.len() - size..]);
            return;
        }
        let excess = (self.bytes.len() + data.len()).saturating_sub(size);
        self.bytes.drain(..excess);
        if self.bytes.capacity() == 0 {
            // Exactly one window, once: a window never reallocates.
            self.bytes.reserve_exact(size);
        }
        self.bytes.extend_from_slice(data);
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    fn heap_size(&self) -> usize {
        self.bytes.capacity()
    }
}

struct PooledCompressor {
    compressor: Compressor,
    /// Whose context it holds: `Some` after a context-takeover message, `None` when it is fresh or
    /// holds a message that must not be referred to.
    holds: Option<Stamp>,
}

/// Compressors a thread lends to the connections it runs, one per set of settings.
#[derive(Default)]
struct CompressorPool {
    /// Most recently used last.
    compressors: Vec<PooledCompressor>,
}

impl CompressorPool {
    fn get(&mut self, settings: CompressorSettings) -> &mut PooledCompressor {
        match self.compressors.iter().position(|pooled| pooled.compressor.settings() == settings) {
            Some(at) => {
                let pooled = self.compressors.remove(at);
                self.compressors.push(pooled);
            }
            None => {
                if self.compressors.len() == COMPRESSORS_PER_THREAD {
                    self.compressors.remove(0);
                }
                self.compressors.push(PooledCompressor { compressor: Compressor::new(settings), holds: None });
            }
        }
        self.compressors.last_mut().expect("just pushed")
    }
}

thread_local! {
    static COMPRESSORS: RefCell<CompressorPool> = RefCell::default();
    static INFLATERS: RefCell<InflaterPool> = RefCell::default();
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest compressed message whose buffer a thread keeps for the next one.
const SCRATCH_KEPT: usize = 1 << 20;

/// An empty buffer to compress a message into before it is framed: the thread's, so a connection
/// holds none between messages.
pub(crate) fn take_scratch() -> Vec<u8> {
    SCRATCH.take()
}

/// Gives back the buffer of [`take_scratch`].
pub(crate) fn return_scratch(mut scratch: Vec<u8>) {
    if scratch.capacity() <= SCRATCH_KEPT {
        scratch.clear();
        SCRATCH.set(scratch);
    }
}

/// Compresses `payload` with a context-free stream (no reference to anything sent before), as a
/// frame shared by many connections must be, appending the wire form to `out`.
pub(crate) fn compress_standalone(settings: CompressorSettings, payload: &[u8], out: &mut Vec<u8>) {
    COMPRESSORS.with_borrow_mut(|pool| {
        let pooled = pool.get(settings);
        pooled.compressor.reset();
        pooled.compressor.compress(payload, out);
        pooled.holds = None;
    });
}

/// What we must remember about the messages we send.
#[derive(Debug)]
pub(crate) struct SendContext {
    settings: CompressorSettings,
    /// `Some` with context takeover: the last [`PRIMING_BYTES`] of what we sent compressed (the
    /// peer holds more, up to the agreed window; referring to less of it is always allowed).
    window: Option<Window>,
    stamp: Stamp,
}

impl SendContext {
    pub(crate) fn new(settings: CompressorSettings, context_takeover: bool) -> Self {
        let kept = settings.window_size().min(PRIMING_BYTES);
        Self { settings, window: context_takeover.then(|| Window::new(kept)), stamp: Stamp::new() }
    }

    pub(crate) fn settings(&self) -> CompressorSettings {
        self.settings
    }

    /// Compresses one message, appending the wire form (tail removed) to `out`.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let Some(window) = self.window.as_mut() else {
            compress_standalone(self.settings, payload, out);
            return;
        };
        let stamp = &mut self.stamp;
        COMPRESSORS.with_borrow_mut(|pool| {
            let pooled = pool.get(self.settings);
            if pooled.holds != Some(*stamp) {
                pooled.compressor.reset_to(window.as_slice());
            }
            pooled.compressor.compress(payload, out);
            stamp.advance();
            pooled.holds = Some(*stamp);
        });
        window.push(payload);
    }

    /// Records a message that went out compressed without our context (a shared frame): the peer's
    /// window now ends with it, so ours must too, and no pooled compressor holds our context now.
    pub(crate) fn sent_standalone(&mut self, payload: &[u8]) {
        if let Some(window) = self.window.as_mut() {
            window.push(payload);
            self.stamp.advance();
        }
    }

    /// Heap bytes this context holds between messages.
    pub(crate) fn heap_size(&self) -> usize {
        self.window.as_ref().map_or(0, Window::heap_size)
    }
}

struct IdleInflater {
    inflater: Decompressor,
    /// Whose context it holds, as for [`PooledCompressor::holds`].
    holds: Option<Stamp>,
}

/// Idle inflaters a thread keeps for the connections it runs.
#[derive(Default)]
struct InflaterPool {
    /// Most recently returned last.
    idle: Vec<IdleInflater>,
}

/// What we must remember about the messages we receive.
#[derive(Debug)]
pub(crate) struct ReceiveContext {
    window_bits: u8,
    /// `Some` with context takeover: the last window of what the peer sent.
    window: Option<Window>,
    stamp: Stamp,
    /// The inflater lent to the message being received, from its first compressed frame to its last.
    active: Option<Decompressor>,
    /// Where in the message's output the peer's current stream began, when a final block
    /// restarted it during this message.
    stream_start: Option<usize>,
    /// Compressed bytes of the current message so far.
    message_input: usize,
}

impl ReceiveContext {
    /// The context for a peer that compresses with at most `window_bits`.
    pub(crate) fn new(window_bits: u8, context_takeover: bool) -> Self {
        let window_bits = window_bits.clamp(9, 15);
        Self {
            window_bits,
            window: context_takeover.then(|| Window::new(1 << window_bits)),
            stamp: Stamp::new(),
            active: None,
            stream_start: None,
            message_input: 0,
        }
    }

    fn inflater(&mut self) -> &mut Decompressor {
        if self.active.is_none() {
            let (bits, stamp) = (self.window_bits, self.stamp);
            // Ours if an idle one still holds our context (only ever with context takeover: the
            // others hold none), else the one idle longest: the recent ones are likelier to be
            // their owners' next.
            let (borrowed, holds_ours) = INFLATERS.with_borrow_mut(|pool| {
                let idle = &mut pool.idle;
                match idle.iter().rposition(|idle| idle.holds == Some(stamp)) {
                    Some(at) => (Some(idle.remove(at).inflater), true),
                    None => ((!idle.is_empty()).then(|| idle.remove(0).inflater), false),
                }
            });
            let mut inflater = borrowed.unwrap_or_else(|| Decompressor::new(bits));
            if !holds_ours {
                inflater.set_window_bits(bits);
                inflater.reset_to(self.window.as_ref().map_or(&[][..], Window::as_slice));
            }
            self.active = Some(inflater);
            self.stream_start = None;
            self.message_input = 0;
        }
        self.active.as_mut().expect("just lent")
    }

    /// Inflates the next piece of the current message into `out` (which holds only this message).
    pub(crate) fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        if let Some(restarted) = self.inflater().decompress(input, out, limit)? {
            self.stream_start = Some(restarted);
        }
        self.message_input += input.len();
        Ok(())
    }

    /// Ends the current message, whose whole output is `out`: the inflater goes back to the
    /// thread's pool, and with context takeover the window moves on.
    pub(crate) fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        // An empty payload, or one that ends with a final block, leaves the inflater inside the
        // stored block the tail begins: continuing from it would read the next message's first
        // bytes as that block's length. Such a state is not lent on as anyone's context; the
        // next message primes one from the window instead, as on any other thread.
        let unfinished_tail = self.message_input == 0 || self.inflater().at_stream_start();
        if let Some(restarted) = self.inflater().finish_message(out, limit)? {
            self.stream_start = Some(restarted);
        }
        let inflater = self.active.take().expect("lent for this message");
        let holds = match self.window.as_mut() {
            Some(window) => {
                match self.stream_start {
                    Some(start) => {
                        // The peer's context restarted at `start`: nothing before it may be referred to.
                        window.clear();
                        window.push(&out[start..]);
                    }
                    None => window.push(out),
                }
                self.stamp.advance();
                (!unfinished_tail).then_some(self.stamp)
            }
            None => None,
        };
        INFLATERS.with_borrow_mut(|pool| {
            if pool.idle.len() == IDLE_INFLATERS_PER_THREAD {
                pool.idle.remove(0);
            }
            pool.idle.push(IdleInflater { inflater, holds });
        });
        Ok(())
    }

    /// Heap bytes this context holds between messages.
    pub(crate) fn heap_size(&self) -> usize {
        self.window.as_ref().map_or(0, Window::heap_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bits: u8) -> CompressorSettings {
        CompressorSettings::new(1, bits, 8)
    }

    fn receive(context: &mut ReceiveContext, wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        context.decompress(wire, &mut out, 1 << 20).unwrap();
        context.finish_message(&mut out, 1 << 20).unwrap();
        out
    }

    fn chat(i: usize) -> Vec<u8> {
        format!(r#"{{"type":"message","channel":"lobby","from":"user{}","data":{{"text":"hi {i}"}}}}"#, i % 3)
            .into_bytes()
    }

    #[test]
    fn interleaved_connections_on_one_thread_keep_their_own_contexts() {
        // Three connections take turns with the thread's one compressor and inflaters; each
        // receiver gets its sender's messages back intact.
        for takeover in [true, false] {
            let mut senders: Vec<SendContext> = (0..3).map(|_| SendContext::new(settings(12), takeover)).collect();
            let mut receivers: Vec<ReceiveContext> = (0..3).map(|_| ReceiveContext::new(12, takeover)).collect();
            for i in 0..60 {
                let who = (i * 7) % 3;
                let message = chat(i);
                let mut wire = Vec::new();
                senders[who].compress(&message, &mut wire);
                assert_eq!(receive(&mut receivers[who], &wire), message, "message {i}, takeover {takeover}");
            }
        }
    }

    /// A connection's two contexts, and the peer's side as plain long-lived codec states.
    struct Travelling {
        sender: SendContext,
        receiver: ReceiveContext,
        peer_inflater: Decompressor,
        peer_compressor: Compressor,
        takeover: bool,
        leg: usize,
    }

    #[test]
    fn a_connection_that_moves_between_threads_never_meets_its_stale_state() {
        // A task that runs on thread A, then B, then A again: A's pooled states still hold the
        // context as it was before B's messages, and must be primed afresh, not continued.
        use std::sync::mpsc::{channel, Receiver, Sender};
        fn worker(inbox: Receiver<Travelling>, next: Sender<Travelling>, done: Sender<()>) {
            for mut t in inbox {
                for k in 0..3 {
                    let message = chat(t.leg * 3 + k);
                    if !t.takeover {
                        t.peer_inflater.reset_to(&[]);
                        t.peer_compressor.reset();
                    }
                    let mut wire = Vec::new();
                    t.sender.compress(&message, &mut wire);
                    assert_eq!(inflate_with(&mut t.peer_inflater, &wire), message, "sent {}", t.leg * 3 + k);
                    wire.clear();
                    t.peer_compressor.compress(&message, &mut wire);
                    assert_eq!(receive(&mut t.receiver, &wire), message, "received {}", t.leg * 3 + k);
                }
                t.leg += 1;
                if t.leg == 20 {
                    done.send(()).unwrap();
                    return;
                }
                if next.send(t).is_err() {
                    return;
                }
            }
        }
        for takeover in [true, false] {
            let travelling = Travelling {
                sender: SendContext::new(settings(12), takeover),
                receiver: ReceiveContext::new(12, takeover),
                peer_inflater: Decompressor::new(12),
                peer_compressor: Compressor::new(settings(12)),
                takeover,
                leg: 0,
            };
            let (to_a, on_a) = channel();
            let (to_b, on_b) = channel();
            let (done, finished) = channel();
            std::thread::scope(|scope| {
                let (next, done_a) = (to_b.clone(), done.clone());
                scope.spawn(move || worker(on_a, next, done_a));
                let (next, done_b) = (to_a.clone(), done.clone());
                scope.spawn(move || worker(on_b, next, done_b));
                to_a.send(travelling).unwrap();
                // Only the workers hold senders now: if one fails, the other's inbox and `finished`
                // close, and the scope passes the failure on.
                drop((to_a, to_b, done));
                let _ = finished.recv();
            });
        }
    }

    fn inflate_with(d: &mut Decompressor, wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.decompress(wire, &mut out, 1 << 20).unwrap();
        d.finish_message(&mut out, 1 << 20).unwrap();
        out
    }

    #[test]
    fn a_stream_restarted_by_a_final_block_keeps_only_what_follows_it() {
        // An empty final block (`03 00`), then "Hello" in a new stream: the window is "Hello",
        // whatever came before, even though the restart is at output position 0.
        let mut receiver = ReceiveContext::new(12, true);
        let mut wire = Vec::new();
        SendContext::new(settings(12), true).compress(b"earlier message", &mut wire);
        assert_eq!(receive(&mut receiver, &wire), b"earlier message");
        let restart = [0x03, 0x00, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(receive(&mut receiver, &restart), b"Hello");
        assert_eq!(receiver.window.as_ref().unwrap().as_slice(), b"Hello");
    }

    #[test]
    fn a_message_that_ends_with_its_final_block_is_not_continued() {
        // §7.2.3.4's "Hello" with BFINAL but without the trailing 0x00: the appended tail leaves
        // the inflater inside a stored block. The next message must decode the same whether the
        // thread's inflater is still there (a hit) or was lent away in between.
        let bfinal_no_trailer = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        for lend_away in [false, true] {
            let mut receiver = ReceiveContext::new(15, true);
            assert_eq!(receive(&mut receiver, &bfinal_no_trailer), b"Hello");
            if lend_away {
                let mut other = ReceiveContext::new(15, true);
                let mut wire = Vec::new();
                SendContext::new(settings(15), true).compress(b"someone else", &mut wire);
                receive(&mut other, &wire);
            }
            assert_eq!(receive(&mut receiver, &hello), b"Hello", "lent away: {lend_away}");
        }
    }

    #[test]
    fn context_takeover_keeps_the_ratio_a_dedicated_compressor_has() {
        let mut dedicated = Compressor::new(settings(12));
        let mut a = SendContext::new(settings(12), true);
        let mut b = SendContext::new(settings(12), true);
        let (mut pooled_bytes, mut dedicated_bytes) = (0, 0);
        for i in 0..100 {
            let mut wire = Vec::new();
            a.compress(&chat(i), &mut wire);
            pooled_bytes += wire.len();
            wire.clear();
            b.compress(&chat(i), &mut wire); // steals the pooled compressor every time
            wire.clear();
            dedicated.compress(&chat(i), &mut wire);
            dedicated_bytes += wire.len();
        }
        assert!(pooled_bytes * 10 < dedicated_bytes * 11, "{pooled_bytes} pooled vs {dedicated_bytes}");
    }

    #[test]
    fn a_standalone_message_joins_the_window() {
        // A shared frame compressed without context goes out between two of this connection's own
        // messages; the receiver's window has it, so the sender's must have it too.
        let mut sender = SendContext::new(settings(12), true);
        let mut receiver = ReceiveContext::new(12, true);
        for i in 0..20 {
            let message = chat(i);
            let mut wire = Vec::new();
            if i % 3 == 1 {
                compress_standalone(settings(12), &message, &mut wire);
                sender.sent_standalone(&message);
            } else {
                sender.compress(&message, &mut wire);
            }
            assert_eq!(receive(&mut receiver, &wire), message, "message {i}");
        }
    }

    #[test]
    fn a_connection_keeps_at_most_one_window_each_way() {
        let mut sender = SendContext::new(settings(12), true);
        let mut receiver = ReceiveContext::new(12, true);
        for size in [10, 5000, 100, 70_000, 3] {
            let message = vec![b'x'; size];
            let mut wire = Vec::new();
            sender.compress(&message, &mut wire);
            receive(&mut receiver, &wire);
            assert!(sender.heap_size() <= 4096 && receiver.heap_size() <= 4096);
        }
        assert_eq!(SendContext::new(settings(15), false).heap_size(), 0);
        let mut receiver = ReceiveContext::new(15, false);
        let mut wire = Vec::new();
        compress_standalone(settings(15), &[b'y'; 10_000], &mut wire);
        receive(&mut receiver, &wire);
        assert_eq!(receiver.heap_size(), 0);
    }

    #[test]
    fn pools_are_bounded() {
        for bits in 9..=15 {
            for level in 0..3 {
                compress_standalone(CompressorSettings::new(level, bits, 8), b"hello", &mut Vec::new());
            }
        }
        assert_eq!(COMPRESSORS.with_borrow(|pool| pool.compressors.len()), COMPRESSORS_PER_THREAD);
        let mut receivers: Vec<ReceiveContext> = (0..10).map(|_| ReceiveContext::new(15, true)).collect();
        let mut wire = Vec::new();
        compress_standalone(settings(15), b"hello", &mut wire);
        for receiver in &mut receivers {
            let mut out = Vec::new();
            receiver.decompress(&wire, &mut out, 100).unwrap(); // ten half-received messages
        }
        for receiver in &mut receivers {
            let mut out = b"hello".to_vec();
            receiver.finish_message(&mut out, 100).unwrap();
        }
        assert_eq!(INFLATERS.with_borrow(|pool| pool.idle.len()), IDLE_INFLATERS_PER_THREAD);
    }
}
