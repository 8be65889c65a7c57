//! WebSocket connections to the feed (`/v1/feed`).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The feed's address on the Surge at `base` (`http://...`).
pub fn url(base: &str) -> String {
    format!("{}/v1/feed", base.replace("http://", "ws://"))
}

/// Connects to the feed of the Surge at `base` with `token` in the
/// `Authorization` header.
pub async fn connect(base: &str, token: &str) -> Socket {
    let mut request = url(base).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("feed connects");
    socket
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON message (pings are answered by the client library); a close
/// frame comes back as `{"closed": code}`.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => return json!({"closed": frame.map(|f| u16::from(f.code))}),
            _ => continue,
        }
    }
}

/// Subscribes to `topic` and returns the answer, asserting it is the
/// subscription of that topic.
pub async fn subscribe(socket: &mut Socket, topic: &str) -> Value {
    send(socket, json!({"op": "subscribe", "topic": topic})).await;
    let answer = next(socket).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    assert_eq!(answer["topic"], topic);
    answer
}
