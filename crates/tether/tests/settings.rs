//! `tether serve` refuses settings out of their range at startup, flag or TOML alike: one line on
//! stderr naming the setting, the value and the range, exit status 2, and no server. Run against
//! the real binary (`TETHER_BIN` names another build, to show these fail on an older one).

mod common;

use std::io::Read;
use std::time::Duration;

use common::{serve_refusal, Served};
use tether_proto::handshake::client::ClientRequest;
use tether_proto::Event;

#[test]
fn out_of_range_flags_are_refused_on_one_line_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--ping-interval", "0.5"], "--ping-interval 0.5: expected whole seconds 0..=86400 (0 = off)"),
        (
            &["--idle-timeout", "18446744073709551615"],
            "--idle-timeout 18446744073709551615: expected whole seconds 0..=86400 (0 = off)",
        ),
        (&["--handshake-timeout", "0"], "--handshake-timeout 0: expected whole seconds 1..=300"),
        (&["--max-frame-size", "0"], "--max-frame-size 0: expected bytes 1024..=1073741824 (1 GiB)"),
        (&["--max-connections", "0"], "--max-connections 0: expected a whole number 1..=1000000"),
        (&["--publish-rate", "nan"], "--publish-rate nan: expected a rate per second 0.001..=1000000"),
        (&["--publish-rate", "-5"], "--publish-rate -5: expected a rate per second 0.001..=1000000"),
        (&["--threads", "0"], "--threads 0: expected a whole number 1..=1024"),
        (&["--static", "/nonexistent"], "--static /nonexistent: expected an existing directory"),
        (
            &["--allowed-origin", "not an origin"],
            "--allowed-origin not an origin: expected `*` or an origin scheme://host[:port], e.g. https://app.example.com",
        ),
        (&["--max-channels", "0"], "--max-channels 0: expected a whole number 1..=10000000"),
        (&["--request-burst", "0.5"], "--request-burst 0.5: expected a number 1..=1000000"),
    ];
    for (args, message) in cases {
        let (status, stderr) = serve_refusal(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("tether: {message}\n"), "{args:?}");
    }
}

#[test]
fn out_of_range_toml_values_are_refused_naming_the_file_and_the_key() {
    let dir = std::env::temp_dir().join(format!("tether-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("max_frame_size = 0\n", "max_frame_size = 0: expected bytes 1024..=1073741824 (1 GiB)"),
        (
            "port = 8787\nping_interval = 0.5  # half a second\n",
            "ping_interval = 0.5: expected whole seconds 0..=86400 (0 = off)",
        ),
        ("publish_rate = nan\n", "publish_rate = NaN: expected a rate per second 0.001..=1000000"),
        ("static = \"/nonexistent\"\n", "static = \"/nonexistent\": expected an existing directory"),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (status, stderr) = serve_refusal(&["--config", path.to_str().unwrap()]);
        assert_eq!(status, Some(2), "{text}: {stderr}");
        assert_eq!(stderr, format!("tether: {}: {message}\n", path.display()), "{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// 0 turns the two timers off: a connection is neither pinged nor closed for being quiet. (Before,
/// `--ping-interval 0` sent hundreds of pings a second and `--idle-timeout 0` closed every
/// connection at once. Needs the library's Duration::ZERO = off.)
#[test]
fn zero_turns_pings_and_the_idle_timeout_off() {
    let served = Served::start(&["--ping-interval", "0", "--idle-timeout", "0"]);
    let mut client = served.open("/echo", ClientRequest::default());
    client.stream.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8; 1];
    let quiet = client.stream.read(&mut byte);
    assert!(
        matches!(&quiet, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "expected 1.5 s without a byte from the server, got {quiet:?}"
    );
    client.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.send_text("still open");
    assert_eq!(client.next_event().unwrap(), Event::Message(tether_proto::Message::Text("still open".into())));
}
