//! The token protocol's test client: a real server on an ephemeral port ([`start`]) and a client
//! built on Tether's client library ([`Client`]) that numbers requests and keeps the events that
//! arrive between a request and its answer, in order.

#![allow(dead_code)] // Each test target uses its own part.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};
use tether_hub::{Hub, HubConfig, TokenServer};
use tether_tokio::{ClientBuilder, Message, RouteOptions, Server, ServerConfig, Transport, WebSocket};

pub async fn start(config: HubConfig) -> (String, Hub) {
    let server = Server::new(ServerConfig::default());
    let hub = Hub::new(config, server.registry());
    (serve(server, &hub).await, hub)
}

/// Serves the token protocol of `hub` on `/tether` on an ephemeral port; its URL.
pub async fn serve(server: Server, hub: &Hub) -> String {
    let token = TokenServer::new(hub.clone(), Duration::from_secs(30));
    let server = server
        .route_with("/tether", RouteOptions::protocols(["tether.json", "json"]), token)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}/tether", server.local_addr().unwrap());
    tokio::spawn(server.run());
    url
}

/// A protocol client: requests get ids; events that arrive meanwhile are kept in order.
pub struct Client {
    pub ws: WebSocket<Transport>,
    pub next_id: u64,
    pub events: VecDeque<Value>,
    pub welcome: Value,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (mut ws, response) = ClientBuilder::new(url).protocol("tether.json").connect().await.unwrap();
        assert_eq!(response.protocol.as_deref(), Some("tether.json"));
        let welcome = read_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome");
        Self { ws, next_id: 1, events: VecDeque::new(), welcome }
    }

    pub fn id(&self) -> String {
        self.welcome["connectionId"].as_str().unwrap().to_owned()
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(&Message::Text(text.into())).await.unwrap();
    }

    /// Sends a request and returns its answer (ack or error), keeping other frames as events.
    pub async fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.send_raw(&request.to_string()).await;
        loop {
            let frame = read_json(&mut self.ws).await;
            if frame["id"] == json!(id) && (frame["type"] == "ack" || frame["type"] == "error") {
                return frame;
            }
            self.events.push_back(frame);
        }
    }

    pub async fn ack(&mut self, request: Value) -> Value {
        let answer = self.request(request.clone()).await;
        assert_eq!(answer["type"], "ack", "{request} -> {answer}");
        answer
    }

    pub async fn error_code(&mut self, request: Value) -> String {
        let answer = self.request(request.clone()).await;
        assert_eq!(answer["type"], "error", "{request} -> {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        answer["code"].as_str().unwrap().to_owned()
    }

    /// The next event (from those already read, or the socket).
    pub async fn event(&mut self) -> Value {
        match self.events.pop_front() {
            Some(event) => event,
            None => read_json(&mut self.ws).await,
        }
    }

    /// The next event of a type, skipping others.
    pub async fn event_of(&mut self, kind: &str) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] == kind {
                return event;
            }
        }
    }
}

pub async fn read_json(ws: &mut WebSocket<Transport>) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("a frame in time");
    match message {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}
