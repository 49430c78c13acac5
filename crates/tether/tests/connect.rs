//! `tether connect` in its scripted mode (stdin a pipe, or -x), against the real `tether serve` on
//! an ephemeral port: what reaches stdout, the exit status, and the one-line errors on stderr.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Served;

/// A running `tether connect`; stdout and stderr are drained by threads so it never blocks on them.
struct Connect {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished `tether connect` left behind.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Connect {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(common::tether_bin())
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether connect");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        Self { stdin: child.stdin.take(), child, stdout: Some(stdout), stderr: Some(stderr) }
    }

    /// Writes `input` and closes stdin.
    fn feed(mut self, input: &[u8]) -> Self {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        self
    }

    /// Waits for the exit, at most `limit` (then kills it and fails the test).
    fn finish(mut self, limit: Duration) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().unwrap().join().unwrap();
                panic!("tether connect did not exit within {limit:?}; stderr: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            status,
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
            took: started.elapsed(),
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn stdin_lines_are_messages_and_stdout_has_one_line_per_reply() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/", served.addr);
    let done = Connect::start(&["-s", "json", &url]).feed(b"1\n2\n3\n").finish(LIMIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stderr, "", "nothing on stderr after a clean close");
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|line| serde_json::from_str(line).expect("each line is one JSON message")).collect();
    assert_eq!(lines.len(), 4, "{}", done.stdout);
    assert_eq!(lines[0]["type"], "welcome");
    assert_eq!(lines[0]["subProtocol"], "json", "-s json was offered and chosen");
    for (line, question) in lines[1..].iter().zip(["1", "2", "3"]) {
        assert_eq!(line["type"], "answer", "{line}");
        assert_eq!(line["question"], question, "{line}");
    }
}

#[test]
fn execute_sends_without_reading_stdin_and_waits_for_the_echo() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    // stdin stays open and unwritten: -x must not wait for it.
    let done = Connect::start(&["-x", "hello", "--wait", "1", &url]).finish(LIMIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "hello\n");

    let done = Connect::start(&["-x", "one", "-x", "two", "--wait", "0.5", &url]).finish(LIMIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "one\ntwo\n", "in order");
}

#[test]
fn crlf_and_a_missing_final_newline_still_make_one_message_per_line() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let done = Connect::start(&["--no-compression", &url]).feed("a\r\n\r\nlast é".as_bytes()).finish(LIMIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "a\n\nlast é\n", "an empty line is an empty message");
}

#[test]
fn show_handshake_goes_to_stderr_and_json_pretty_prints() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let done = Connect::start(&["--show-handshake", "--json", "-H", "X-Trace: 42", "-x", r#"{"a":[1,2]}"#, &url])
        .finish(LIMIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
    for expected in
        ["> GET /echo HTTP/1.1", "> X-Trace: 42", "< HTTP/1.1 101 Switching Protocols", "< Sec-WebSocket-Accept: "]
    {
        assert!(done.stderr.contains(expected), "{expected:?} missing from stderr:\n{}", done.stderr);
    }
}

#[test]
fn a_refused_handshake_exits_non_zero_with_the_status_on_one_line() {
    let served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    let done = Connect::start(&["--origin", "http://evil.example", &url]).feed(b"never sent\n").finish(LIMIT);
    assert!(!done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "");
    assert!(done.stderr.starts_with("tether connect: server refused the handshake: HTTP 403"), "{}", done.stderr);
    assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
}

#[test]
fn nothing_listening_exits_non_zero_quickly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let done = Connect::start(&["-x", "hello", &format!("ws://127.0.0.1:{port}/")]).finish(LIMIT);
    assert!(!done.status.success(), "{done:?}");
    assert!(done.took < Duration::from_secs(5), "took {:?}", done.took);
    assert!(done.stderr.starts_with("tether connect: cannot connect to 127.0.0.1:"), "{}", done.stderr);
}

#[test]
fn a_connection_that_drops_without_a_close_exits_non_zero() {
    let mut served = Served::start(&[]);
    let url = format!("ws://{}/echo", served.addr);
    // stdin stays open: the client is waiting for input when the server vanishes.
    let mut connect = Connect::start(&[&url]);
    connect.stdin.as_mut().unwrap().write_all(b"ping\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let done = connect.finish(LIMIT);
    assert!(!done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "ping\n");
    assert!(done.stderr.contains("without a closing handshake"), "{}", done.stderr);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let done = Connect::start(&["-H", "no colon here", "ws://127.0.0.1:1/"]).finish(LIMIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    let done = Connect::start(&["--wait", "-1", "ws://127.0.0.1:1/"]).finish(LIMIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
}

#[test]
fn a_bad_url_is_a_usage_error() {
    for url in ["ws://[bad", "ftp://127.0.0.1/", "ws://"] {
        let done = Connect::start(&["-x", "hi", url]).finish(LIMIT);
        assert_eq!(done.status.code(), Some(2), "{url}: {done:?}");
        assert!(done.stderr.starts_with("tether connect: invalid URL"), "{url}: {}", done.stderr);
        assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
    }
}

#[test]
fn a_wait_beyond_a_day_is_a_usage_error_not_a_panic() {
    let done = Connect::start(&["-x", "hi", "--wait", "1e30", "ws://127.0.0.1:9/"]).finish(LIMIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("expected seconds 0..=86400"), "{}", done.stderr);
}

#[test]
fn wss_against_a_plain_server_fails_fast_and_says_so() {
    let served = Served::start(&[]);
    let done = Connect::start(&["-x", "hi", &format!("wss://{}/echo", served.addr)]).finish(LIMIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.took < Duration::from_secs(3), "took {:?}", done.took);
    let expected = format!("tether connect: the server at {} did not answer the TLS handshake", served.addr);
    assert!(done.stderr.starts_with(&expected), "{}", done.stderr);
    assert!(done.stderr.contains(&format!("try ws://{}/echo", served.addr)), "{}", done.stderr);
}

#[test]
fn a_ca_certificate_used_as_the_server_certificate_is_explained_in_a_sentence() {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("tether-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let served = Served::start(&["--tls-cert", cert_arg, "--tls-key", key_arg]);
    let url = format!("wss://localhost:{}/echo", served.port());
    let done = Connect::start(&["--ca", cert_arg, "-x", "hi", &url]).finish(LIMIT);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("presents a CA certificate as its own"), "{}", done.stderr);
    assert!(!done.stderr.contains("OtherError"), "{}", done.stderr);
}

/// `--show-handshake` prints the bytes that went over the socket, not a copy rebuilt beside them: a
/// raw TCP server records the request it reads (key included) and refuses it, and the `> ` lines
/// on stderr put back together are that request byte for byte; the refusal is shown as received.
#[test]
fn show_handshake_prints_the_request_bytes_the_server_read() {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(socket);
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            if reader.read_until(b'\n', &mut request).unwrap() == 0 {
                break;
            }
        }
        let mut socket = reader.into_inner();
        socket.write_all(b"HTTP/1.1 403 Forbidden\r\nX-Why: test\r\nContent-Length: 0\r\n\r\n").unwrap();
        request
    });
    let url = format!("ws://{addr}/where?x=1");
    let done = Connect::start(&["--show-handshake", "-H", "X-Trace: 42", "-x", "hi", &url]).finish(LIMIT);
    let request = server.join().unwrap();
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    let sent: String = done
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("> ").or(if line == ">" { Some("") } else { None }))
        .map(|line| format!("{line}\r\n"))
        .collect();
    assert_eq!(sent, String::from_utf8(request.clone()).unwrap(), "stderr:\n{}", done.stderr);
    assert!(String::from_utf8(request).unwrap().contains("Sec-WebSocket-Key: "), "the real key, not a placeholder");
    for expected in
        ["< HTTP/1.1 403 Forbidden\n< X-Why: test\n", "tether connect: server refused the handshake: HTTP 403"]
    {
        assert!(done.stderr.contains(expected), "{expected:?} missing from stderr:\n{}", done.stderr);
    }
}
