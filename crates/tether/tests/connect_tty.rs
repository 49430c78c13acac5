//! `tether connect` in its interactive mode, in a real terminal: tmux runs it, `send-keys` types,
//! `capture-pane` reads the screen. Each test has a tmux server of its own (`-S`, a socket in the
//! temp dir), killed and removed at the end whatever happens.
//!
//! Needs `tmux` on the PATH. Without it the tests print a notice and pass, so that a developer
//! machine without tmux still runs the rest of the suite; CI installs tmux so that they run there.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Served;

/// How long the screen may take to show what we wait for.
const PATIENCE: Duration = Duration::from_secs(10);

/// A private tmux server with one session, `t`, running one command.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// Starts `command` in a detached 120x30 session, or returns `None` (with a notice) when tmux is
    /// not installed.
    fn start(test: &str, command: &str) -> Option<Self> {
        if !Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED {test}: tmux is not installed (apt-get install -y tmux)");
            return None;
        }
        let socket = std::env::temp_dir().join(format!("tether-tmux-{}-{test}", std::process::id()));
        let tmux = Self { socket };
        let started = tmux.run(&["new-session", "-d", "-s", "t", "-x", "120", "-y", "30", command]);
        assert!(started.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&started.stderr));
        // Keep the pane after the program exits, to read its last words and its exit status.
        tmux.run(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").args(["-f", "/dev/null", "-S"]).arg(&self.socket).args(args).output().expect("run tmux")
    }

    /// Types `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Polls the screen until `done` holds; fails with the screen after [`PATIENCE`].
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(started.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the program in the pane to end. Returns its exit status when tmux reports one:
    /// tmux marks the pane dead as soon as the terminal is closed, but learns the status only
    /// when it reaps the process, which a loaded machine was seen to delay past any patience.
    fn wait_for_exit(&self) -> Option<i32> {
        let started = Instant::now();
        loop {
            let out = self.run(&["display-message", "-p", "-t", "t", "#{pane_dead} #{pane_dead_status}"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if let Some(status) = state.strip_prefix("1 ") {
                return Some(status.parse().unwrap_or_else(|_| panic!("exit status {state:?}")));
            }
            if state == "1" && started.elapsed() > Duration::from_secs(1) {
                return None;
            }
            assert!(started.elapsed() < PATIENCE, "the program is still running; the screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The shell command that runs `tether connect` with these arguments.
fn connect_command(args: &str) -> String {
    format!("'{}' connect {args}", env!("CARGO_BIN_EXE_tether"))
}

#[test]
fn a_typed_line_comes_back_marked_a_ping_shows_its_pong_and_quit_ends_the_program() {
    let served = Served::start(&[]);
    let Some(tmux) = Tmux::start("echo", &connect_command(&format!("ws://{}/echo", served.addr))) else { return };
    tmux.wait_for("the connected banner", |screen| screen.contains("connected to ws://"));

    tmux.type_line("hello from tmux");
    tmux.wait_for("the echo", |screen| screen.lines().any(|line| line.trim_end() == "< hello from tmux"));

    tmux.type_line("/binary 00 01 ff");
    tmux.wait_for("the binary echo", |screen| screen.lines().any(|l| l.trim_end() == "< binary 3 bytes: 00 01 ff"));

    tmux.type_line("/ping are you there");
    tmux.wait_for("the pong", |screen| screen.lines().any(|l| l.trim_end() == "< pong \"are you there\""));

    tmux.type_line("/quit");
    let status = tmux.wait_for_exit();
    let screen = tmux.screen();
    // Printed only on the way to exit status 0.
    assert!(screen.contains("* closed: 1000 (normal closure)"), "{screen}");
    assert!(matches!(status, Some(0) | None), "exit status {status:?}; the screen:\n{screen}");
}

#[test]
fn when_the_server_vanishes_at_the_prompt_the_terminal_is_given_back() {
    let mut served = Served::start(&[]);
    // `stty -a` after the exit shows whether the terminal was left in raw mode.
    let command =
        format!("{}; echo \"connect exited $?\"; stty -a", connect_command(&format!("ws://{}/echo", served.addr)));
    let Some(tmux) = Tmux::start("vanish", &command) else { return };
    tmux.wait_for("the connected banner", |screen| screen.contains("connected to ws://"));
    tmux.run(&["send-keys", "-t", "t", "-l", "half a line"]);
    tmux.wait_for("the typed text", |screen| screen.contains("> half a line"));

    served.child.kill().unwrap();
    served.child.wait().unwrap();
    tmux.wait_for_exit();
    let screen = tmux.screen();
    assert!(screen.contains("tether connect: the connection ended without a closing handshake"), "{screen}");
    assert!(screen.contains("connect exited 1"), "{screen}");
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(words.contains(&"icanon") && words.contains(&"echo"), "line editing and echo are back on:\n{screen}");
    assert!(!screen.contains("> half a line"), "the abandoned prompt line is erased:\n{screen}");
}
