//! The test Redis itself (common/redis.rs), before any node relies on it: it answers, keeps
//! nothing on disk or across a restart, dies on a kill and comes back on the same port, so the
//! outage tests measure Tether, not the harness.

mod common;

use common::redis::RedisServer;

#[test]
fn the_test_redis_answers_and_persists_nothing() {
    let redis = RedisServer::start();
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/0", redis.port()));
    assert_eq!(redis.command(&["SET", "k", "v w"]), "OK");
    assert_eq!(redis.command(&["GET", "k"]), "v w");
    assert_eq!(redis.command(&["GET", "missing"]), "(nil)");
    assert_eq!(redis.command(&["HSET", "h", "a", "1", "b", "2"]), "2");
    assert_eq!(redis.command(&["HGETALL", "h"]), "a\n1\nb\n2");
    assert_eq!(redis.command(&["CONFIG", "GET", "save"]), "save\n");
    assert_eq!(redis.command(&["CONFIG", "GET", "appendonly"]), "appendonly\nno");
    assert_eq!(redis.command(&["CONFIG", "GET", "bind"]), "bind\n127.0.0.1");
    assert!(redis.command(&["NOSUCHCOMMAND"]).starts_with("-ERR"));
}

#[test]
fn the_test_redis_dies_on_kill_and_comes_back_empty_on_the_same_port() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.command(&["SET", "k", "v"]);
    redis.kill();
    assert!(redis.try_command(&["PING"]).is_err(), "nothing answers after the kill");
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.command(&["GET", "k"]), "(nil)", "nothing survives a restart");
    redis.restart();
    assert_eq!(redis.command(&["PING"]), "PONG", "a restart of a running server works too");
}

#[test]
fn two_test_redis_servers_get_two_ports() {
    let (one, two) = (RedisServer::start(), RedisServer::start());
    assert_ne!(one.port(), two.port());
    one.command(&["SET", "k", "one"]);
    assert_eq!(two.command(&["GET", "k"]), "(nil)");
}
