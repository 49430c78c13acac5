//! The server's `Registry`: the one given out before binding is the one the server fills with its
//! open listener connections, and empties as they close; a clone of a `Server` is another server
//! with a registry of its own, so shutting one down leaves the other's connections alone.

mod common;

use std::time::Duration;

use common::{Echo, RawClient};
use tether_proto::frame::OpCode;
use tether_tokio::{Registry, Server, ServerConfig};

/// Waits (on the paused clock: instantly unless something is stuck) until `registry` holds `len`.
async fn until_len(registry: &Registry, len: usize) {
    for _ in 0..500 {
        if registry.len() == len {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registry holds {}, not {len}", registry.len());
}

#[tokio::test(start_paused = true)]
async fn the_registry_given_before_binding_holds_the_open_connections() {
    let server = Server::new(ServerConfig::default()).route("/echo", Echo);
    let registry = server.registry();
    assert!(registry.is_empty());
    let addr = common::serve(server).await;

    let mut client = RawClient::connect(&addr, "/echo").await;
    until_len(&registry, 1).await;
    let conn = registry.connections().pop().unwrap();
    assert_eq!(conn.path(), "/echo");
    assert_eq!(registry.get(conn.id()).map(|c| c.id().to_owned()), Some(conn.id().to_owned()));
    assert!(registry.get("not-an-id").is_none());

    client.send(OpCode::Close, &1000u16.to_be_bytes()).await;
    assert_eq!(client.expect_close().await.0, 1000);
    drop(client); // the TCP close that ends the closing handshake
    until_len(&registry, 0).await;
    assert!(registry.get(conn.id()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_clone_is_another_server_with_its_own_registry() {
    let first = Server::new(ServerConfig::default()).route("/echo", Echo);
    let second = first.clone();
    let (first_registry, second_registry) = (first.registry(), second.registry());
    let first = first.bind("127.0.0.1:0").await.unwrap();
    let first_addr = first.local_addr().unwrap().to_string();
    let first_handle = first.handle();
    let first_task = tokio::spawn(first.run());
    let second_addr = common::serve(second).await;

    let mut on_first = RawClient::connect(&first_addr, "/echo").await;
    let mut on_second = RawClient::connect(&second_addr, "/echo").await;
    until_len(&first_registry, 1).await;
    until_len(&second_registry, 1).await;

    first_handle.shutdown();
    assert_eq!(on_first.expect_close().await.0, 1001);
    on_first.send(OpCode::Close, &1001u16.to_be_bytes()).await;
    drop(on_first);
    let ended = tokio::time::timeout(Duration::from_secs(30), first_task).await.expect("the first server ends");
    ended.expect("its task did not panic").expect("it served without an I/O error");

    // The second server was not asked to close anything: it still echoes.
    on_second.send(OpCode::Text, b"still here").await;
    assert_eq!(on_second.next_frame().await, Some((OpCode::Text, b"still here".to_vec())));
    assert_eq!(second_registry.len(), 1);
}
