//! The interactive mode (stdin a terminal): a prompt with line editing and history (rustyline);
//! each line typed is sent as a text message, received messages are printed above the prompt as
//! they arrive, marked `< `.
//!
//! The prompt runs on a plain thread because rustyline blocks; it hands [`Action`]s to the tokio
//! side over a channel, and received messages go back through rustyline's `ExternalPrinter`,
//! which redraws the prompt and the half-typed line below them. [`Terminal`] puts the terminal
//! back when the connection ends while a prompt is still up.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustyline::ExternalPrinter;
use tether_tokio::CloseCode;
use tokio::sync::mpsc;

use super::args::ConnectArgs;
use super::commands::{parse_line, Action, Parsed, COMMANDS};
use super::format::{binary_preview, describe_close, interactive_lines, pong_line, Format};
use super::session::{verdict, Event, Session};

/// Where interactive output goes: above the prompt while rustyline reads a line, straight to
/// stdout when there is no prompt to keep intact (the printer could not be created, or the prompt
/// thread has finished).
struct Screen {
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    format: Format,
}

impl Screen {
    fn print(&mut self, text: String) {
        let text = if text.ends_with('\n') { text } else { text + "\n" };
        if let Some(printer) = &mut self.printer {
            if printer.print(text.clone()).is_ok() {
                return;
            }
            self.printer = None;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// A line of ours (not a received message), with the timestamp when asked for.
    fn note(&mut self, marker: &str, text: &str) {
        let line = format!("{}{marker}{text}", self.format.stamp());
        self.print(line);
    }
}

/// The prompt thread's side: which actions it hands over, and whether it should stop.
struct Prompt {
    actions: mpsc::Sender<Action>,
    stop: Arc<AtomicBool>,
}

/// Runs the interactive mode: the prompt on its own thread, the connection on the runtime.
pub(super) fn run_interactive(
    runtime: &tokio::runtime::Runtime,
    session: Session,
    args: &ConnectArgs,
) -> Result<(), String> {
    let config =
        rustyline::Config::builder().auto_add_history(true).max_history_size(1000).map_err(|e| e.to_string())?;
    let mut editor = rustyline::DefaultEditor::with_config(config.build()).map_err(|e| e.to_string())?;
    let printer: Option<Box<dyn ExternalPrinter + Send>> = match editor.create_external_printer() {
        Ok(printer) => Some(Box::new(printer)),
        Err(_) => None,
    };
    // Taken before rustyline switches the terminal to raw mode, to put it back if the connection
    // ends while a prompt is still up (see `Terminal::release`).
    let terminal = Terminal::save();
    let format = Format { json: args.json, timestamps: args.timestamps };
    let mut screen = Screen { printer, format };
    let mut banner = format!("connected to {}", session.url);
    if let Some(protocol) = &session.response.protocol {
        banner.push_str(&format!(", sub-protocol {protocol}"));
    }
    if session.response.compressed {
        banner.push_str(", compressed (permessage-deflate)");
    }
    screen
        .print(format!("{banner}\ntype a message and press Enter to send it; /help lists the commands, /quit leaves"));

    let (actions_tx, actions) = mpsc::channel(16);
    let stop = Arc::new(AtomicBool::new(false));
    let prompt = Prompt { actions: actions_tx, stop: Arc::clone(&stop) };
    let prompt_thread = std::thread::spawn(move || prompt_loop(editor, prompt));

    let result = runtime.block_on(interactive_loop(session, actions, &mut screen));

    stop.store(true, Ordering::SeqCst);
    if !prompt_thread.is_finished() {
        terminal.release(screen.printer.is_some());
    }
    screen.printer = None;
    match result {
        Ok(closed_line) => {
            screen.note("* ", &closed_line);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Reads lines until the user quits or closes; runs on a blocking thread of its own.
fn prompt_loop(mut editor: rustyline::DefaultEditor, prompt: Prompt) {
    use rustyline::error::ReadlineError;
    while !prompt.stop.load(Ordering::SeqCst) {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                let _ = prompt.actions.blocking_send(Action::Quit);
                return;
            }
            Err(error) => {
                eprintln!("! cannot read the terminal: {error}");
                let _ = prompt.actions.blocking_send(Action::Quit);
                return;
            }
        };
        let action = match parse_line(&line) {
            Ok(Parsed::Nothing) => continue,
            Ok(Parsed::Help) => {
                println!("{COMMANDS}");
                continue;
            }
            Ok(Parsed::Do(Action::File(path))) => match read_file(&path) {
                Ok(bytes) => Action::Binary(bytes),
                Err(error) => {
                    eprintln!("! {error}");
                    continue;
                }
            },
            Ok(Parsed::Do(action)) => action,
            Err(error) => {
                eprintln!("! {error}");
                continue;
            }
        };
        let last = matches!(action, Action::Close(..) | Action::Quit);
        if prompt.actions.blocking_send(action).is_err() || last {
            return;
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Connects the user's actions to the connection and prints what arrives, until the connection
/// has ended. Returns the line describing the close, or why it was not a good one.
async fn interactive_loop(
    session: Session,
    mut actions: mpsc::Receiver<Action>,
    screen: &mut Screen,
) -> Result<String, String> {
    let Session { conn, mut events, .. } = session;
    let mut prompt_open = true;
    let mut we_closed = false;
    let mut problem: Option<String> = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    let text = interactive_lines(&message, &screen.format);
                    screen.print(text);
                }
                Some(Event::Pong(payload)) => screen.note("< ", &pong_line(&payload)),
                Some(Event::Failed(error)) => {
                    screen.note("! ", &error);
                    problem.get_or_insert(error);
                }
                Some(Event::Closed(closed)) => {
                    return verdict(&closed, we_closed, problem).map(|()| format!("closed: {}", describe_close(&closed)));
                }
                None => return Err("the connection ended without reporting how".into()),
            },
            action = actions.recv(), if prompt_open => {
                let sent = match action {
                    Some(Action::Text(text)) => conn.send_text(text),
                    Some(Action::Binary(bytes)) => {
                        screen.note("> ", &binary_preview(&bytes));
                        conn.send_binary(bytes)
                    }
                    Some(Action::File(_)) => Ok(()), // Turned into Binary by the prompt thread.
                    Some(Action::Ping(data)) => {
                        screen.note("> ", &format!("ping ({} bytes)", data.len()));
                        conn.ping(data)
                    }
                    Some(Action::Close(code, reason)) => {
                        prompt_open = false;
                        we_closed = true;
                        conn.close(code, &reason)
                    }
                    Some(Action::Quit) | None => {
                        prompt_open = false;
                        we_closed = true;
                        conn.close(CloseCode::NORMAL, "")
                    }
                };
                if sent.is_err() {
                    screen.note("! ", "not sent: the connection is closing");
                }
            }
        }
    }
}

/// The terminal mode from before rustyline's raw mode. rustyline restores it itself when
/// `readline` returns, but `readline` cannot be interrupted from another thread: when the server
/// ends the connection while the user sits at the prompt, we restore the mode here and exit,
/// rather than leaving the shell without echo or asking the user to press Enter.
struct Terminal(Option<nix::sys::termios::Termios>);

impl Terminal {
    fn save() -> Self {
        Self(nix::sys::termios::tcgetattr(std::io::stdin()).ok())
    }

    /// Takes the terminal back from a prompt thread that is still in `readline`.
    fn release(&self, printer_used: bool) {
        if printer_used {
            // The printer hands lines to the prompt thread through a pipe: give it a moment to
            // draw the last ones before the process ends.
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mode) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, mode);
        }
        // Bracketed paste off (rustyline turns it on), then erase the abandoned prompt line.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(b"\x1b[?2004l\r\x1b[2K");
        let _ = stdout.flush();
    }
}
