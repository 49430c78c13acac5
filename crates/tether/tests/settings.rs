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
    assert_files_refused(&dir, "bad", &cases);
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

/// The engine's settings (`--redis` and the `[engine]` table) are refused like the others: one
/// line naming the setting, exit status 2, and never a Redis password in it.
#[test]
fn bad_engine_settings_are_refused_on_one_line_and_hide_the_password() {
    let dir = std::env::temp_dir().join(format!("tether-engine-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty-password");
    std::fs::write(&empty, "\n").unwrap();
    let not_pem = dir.join("ca.txt");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let url = "expected a redis:// or rediss:// (TLS) URL: [[USER]:PASSWORD@]HOST[:PORT][/DB], no query";
    let name = "expected 1..=64 characters of A-Z a-z 0-9 _ . : -";
    let (empty, not_pem) = (empty.to_str().unwrap(), not_pem.to_str().unwrap());
    let cases: &[(&[&str], String)] = &[
        (&["--redis", "http://127.0.0.1:6379"], format!("--redis http://127.0.0.1:6379: {url}")),
        (&["--redis", "redis://:hunter2@127.0.0.1:0/0"], format!("--redis redis://:***@127.0.0.1:0/0: {url}")),
        (&["--redis", "redis://:hunter2@h/x"], format!("--redis redis://:***@h/x: {url}")),
        (&["--node-name", "node 1"], format!("--node-name node 1: {name}")),
        (&["--redis-prefix", "a/b"], format!("--redis-prefix a/b: {name}")),
        (&["--presence-ttl-secs", "0"], "--presence-ttl-secs 0: expected whole seconds 1..=3600".into()),
        (&["--presence-ttl-secs", "3601"], "--presence-ttl-secs 3601: expected whole seconds 1..=3600".into()),
        (&["--presence-ttl-secs", "1.5"], "--presence-ttl-secs 1.5: expected whole seconds 1..=3600".into()),
        (
            &["--redis", "redis://127.0.0.1:6379", "--redis-password-file", "/nonexistent/pw"],
            "--redis-password-file /nonexistent/pw: cannot read: No such file or directory (os error 2)".into(),
        ),
        (
            &["--redis", "redis://127.0.0.1:6379", "--redis-password-file", empty],
            format!("--redis-password-file {empty}: expected a file holding the Redis password (it is empty)"),
        ),
        (
            &["--redis", "rediss://127.0.0.1:6379", "--redis-ca-file", not_pem],
            format!("--redis-ca-file {not_pem}: expected a PEM file of CA certificates"),
        ),
    ];
    for (args, message) in cases {
        let (status, stderr) = serve_refusal(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("tether: {message}\n"), "{args:?}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let files = [
        ("[engine]\nredis = \"ftp://h\"\n", format!("engine.redis = \"ftp://h\": {url}")),
        ("[engine]\nredis = \"redis://:hunter2@h:99999\"\n", format!("engine.redis = \"redis://:***@h:99999\": {url}")),
        ("[engine]\nredis = 6379\n", "redis = <hidden>: expected a string".into()),
        ("[engine]\nnode_name = \"\"\n", format!("engine.node_name = \"\": {name}")),
        ("[engine]\nredis_prefix = \"é\"\n", format!("engine.redis_prefix = \"é\": {name}")),
        ("[engine]\npresence_ttl_secs = 0\n", "engine.presence_ttl_secs = 0: expected whole seconds 1..=3600".into()),
        (
            "[engine]\npresence_ttl_secs = \"60\"\n",
            "presence_ttl_secs = \"60\": expected whole seconds 1..=3600".into(),
        ),
    ];
    assert_files_refused(&dir, "engine", &files);
}

/// Without `--redis` the node runs the in-memory engine, named HOSTNAME:PORT after the port it
/// listens on (`--port 0` included), and the engine's other settings are accepted; the startup
/// log says which engine.
#[test]
fn the_engine_defaults_to_memory_and_the_node_to_its_host_and_port() {
    use std::io::BufRead;
    let engine_line = |extra: &[&str]| {
        let mut child = common::serve_command(&[&["--log-format", "json"], extra].concat())
            .env("TETHER_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start tether");
        let mut listening = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut listening).unwrap();
        let port = listening.trim().rsplit_once(':').expect("listening line").1.to_owned();
        let line = std::io::BufReader::new(child.stderr.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .take_while(|line| !line.contains("listening"))
            .find(|line| line.contains("engine: "))
            .expect("an engine line");
        let _ = child.kill();
        let _ = child.wait();
        let fields = serde_json::from_str::<serde_json::Value>(&line).unwrap()["fields"].clone();
        (fields, port)
    };
    let (fields, port) = engine_line(&[]);
    assert_eq!(fields["message"], "engine: memory (this node alone)");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    if hostname.len() <= 58 && hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        assert_eq!(fields["node"], format!("{hostname}:{port}"), "the port listened on, not 0");
    }
    let (fields, _) = engine_line(&["--node-name", "eu-1", "--presence-ttl-secs", "3600"]);
    assert_eq!(
        (fields["message"].as_str(), fields["node"].as_str()),
        (Some("engine: memory (this node alone)"), Some("eu-1"))
    );
}

/// With `--redis` the settings reach the engine: two nodes on one Redis (which needs a password,
/// given in the URL to one and as `--redis-password-file` to the other) see each other in `info`,
/// the one without `--node-name` as HOSTNAME:PORT of the port it listens on (`--port 0`), and
/// neither logs the password. Needs `redis-server` (scripts/test.sh installs it); skipped without.
#[test]
fn the_engine_settings_reach_redis_and_info_names_the_nodes() {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("skipped: no redis-server on PATH");
        return;
    }
    /// Killed on drop, a failed assertion too.
    struct Redis(std::process::Child);
    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", "s3cret-redis-pw"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map(Redis)
        .expect("start redis-server");
    let dir = std::env::temp_dir().join(format!("tether-engine-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "s3cret-redis-pw\n").unwrap();
    let key = "an-api-key-of-the-engine-test";
    let prefix = format!("settings-{}", std::process::id());
    let node = |extra: &[&str], log: &str| {
        let log = std::fs::File::create(dir.join(log)).unwrap();
        let args = [&["--api-key", key, "--redis-prefix", prefix.as_str()], extra].concat();
        let mut child = common::serve_command(&args)
            .env("TETHER_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start tether");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let addr = line.trim().rsplit_once("://").expect("listening line").1.to_owned();
        Served { child, addr }
    };
    let with_url = format!("redis://:s3cret-redis-pw@127.0.0.1:{port}/0");
    let a = node(&["--redis", &with_url], "a.log");
    let with_file = format!("redis://127.0.0.1:{port}/0");
    let b = node(
        &["--redis", &with_file, "--redis-password-file", password.to_str().unwrap(), "--node-name", "b"],
        "b.log",
    );
    let info = || {
        let answer = common::http_request(&a.addr, "POST", "/api/info", &[("X-API-Key", key)], b"{}");
        (answer.status, answer.json())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let nodes = loop {
        let (status, body) = info();
        let nodes = body["result"]["nodes"].as_array().cloned().unwrap_or_default();
        if status == 200 && nodes.len() == 2 {
            assert_eq!(body["result"]["engine"], "redis");
            break nodes;
        }
        assert!(std::time::Instant::now() < deadline, "info never listed both nodes: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    let a_port = a.addr.rsplit_once(':').unwrap().1;
    let mut names: Vec<(String, bool)> =
        nodes.iter().map(|node| (node["name"].as_str().unwrap().to_owned(), node["this"] == true)).collect();
    names.sort();
    let a_name = names.iter().find(|(_, this)| *this).expect("the answering node").0.clone();
    assert!(names.contains(&("b".to_owned(), false)), "{names:?}");
    assert!(a_name.ends_with(&format!(":{a_port}")) && !a_name.ends_with(":0"), "{a_name}");
    if hostname.len() <= 58 && hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        assert_eq!(a_name, format!("{hostname}:{a_port}"));
    }
    for node in nodes {
        for field in ["connections", "users", "uptimeSecs"] {
            assert!(node[field].is_u64(), "{field} in {node}");
        }
        assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    }
    drop((a, b, redis));
    for log in ["a.log", "b.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(text.contains("engine: redis"), "{log}: {text}");
        assert!(!text.contains("s3cret-redis-pw"), "{log} shows the password: {text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each config file `text` (written in `dir`, removed after) makes `tether serve` exit 2 with
/// the one line `tether: FILE: message`.
fn assert_files_refused<T: AsRef<str>, M: std::fmt::Display>(dir: &std::path::Path, stem: &str, cases: &[(T, M)]) {
    for (i, (text, message)) in cases.iter().enumerate() {
        let text = text.as_ref();
        let path = dir.join(format!("{stem}{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (status, stderr) = serve_refusal(&["--config", path.to_str().unwrap()]);
        assert_eq!(status, Some(2), "{text}: {stderr}");
        assert_eq!(stderr, format!("tether: {}: {message}\n", path.display()), "{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
