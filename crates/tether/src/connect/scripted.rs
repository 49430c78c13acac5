//! The scripted mode (stdin a pipe or a file, or `-x`): each input line is one text message, and
//! stdout carries exactly one line per received message and nothing else, so the output can be
//! piped into `jq`, `grep` or a test. When the input ends it waits `--wait` seconds for replies,
//! closes with 1000 and judges how the connection ended.

use std::io::{BufRead, Write};

use tether_tokio::CloseCode;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::args::ConnectArgs;
use super::format::{scripted_line, Format};
use super::session::{verdict, Event, Session};

/// One line of stdin, or why it could not be used.
type InputLine = Result<String, String>;

/// Reads stdin on a thread of its own: a blocking read cannot be cancelled, and a thread that is
/// still blocked when the connection ends simply goes away with the process (tokio's own stdin
/// would make the runtime's shutdown wait for the next line instead).
fn spawn_stdin_reader() -> mpsc::Receiver<InputLine> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut number = 0usize;
        loop {
            let mut raw = Vec::new();
            number += 1;
            let line = match stdin.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {
                    strip_line_end(&mut raw);
                    String::from_utf8(raw)
                        .map_err(|_| format!("stdin line {number} is not UTF-8 (text messages must be)"))
                }
                Err(error) => Err(format!("cannot read stdin: {error}")),
            };
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                break;
            }
        }
    });
    rx
}

fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Sends the input, prints what arrives, closes after `--wait`, and judges how it ended.
pub(super) async fn run_scripted(session: Session, args: &ConnectArgs) -> Result<(), String> {
    let Session { conn, mut events, .. } = session;
    let format = Format { json: args.json, timestamps: args.timestamps };
    let mut input = if args.execute.is_empty() {
        Some(spawn_stdin_reader())
    } else {
        for message in &args.execute {
            // Fails only once the connection is closing; its Closed event follows.
            let _ = conn.send_text(message.clone());
        }
        None
    };
    let mut close_at = input.is_none().then(|| Instant::now() + args.wait);
    let mut we_closed = false;
    let mut problem: Option<String> = None;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    let line = format!("{}\n", scripted_line(&message, &format));
                    if let Err(error) = stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()) {
                        // Nobody reads any more (`| head -1`): a normal way for a script to stop.
                        if error.kind() != std::io::ErrorKind::BrokenPipe {
                            problem.get_or_insert(format!("cannot write to stdout: {error}"));
                        }
                        input = None;
                        close_at = Some(Instant::now());
                    }
                }
                // Scripted output is the messages only, one per line.
                Some(Event::Pong(_)) => {}
                Some(Event::Failed(error)) => {
                    problem.get_or_insert(error);
                }
                Some(Event::Closed(closed)) => return verdict(&closed, we_closed, problem),
                None => return Err("the connection ended without reporting how".into()),
            },
            line = next_line(&mut input), if input.is_some() => match line {
                Some(Ok(text)) => {
                    if conn.send_text(text).is_err() {
                        input = None;
                    }
                }
                Some(Err(error)) => {
                    problem.get_or_insert(error);
                    input = None;
                    close_at = Some(Instant::now());
                }
                None => {
                    input = None;
                    close_at = Some(Instant::now() + args.wait);
                }
            },
            () = sleep_until(close_at.unwrap_or_else(Instant::now)), if close_at.is_some() && !we_closed => {
                we_closed = true;
                // Fails only when the server closed first; its Closed event is on the way.
                let _ = conn.close(CloseCode::NORMAL, "");
            }
        }
    }
}

async fn next_line(input: &mut Option<mpsc::Receiver<InputLine>>) -> Option<InputLine> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
