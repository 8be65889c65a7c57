//! `GET /v1/feed`: one task per WebSocket connection.
//!
//! A subscription registers with the hub *before* its snapshot is read, and
//! events at or below the snapshot's version are skipped: the snapshot plus the
//! events after it are then exactly the entity's history, with no gap and no
//! repeat. For an entity topic the `seq` is the entity's version, so a client
//! can check that each event follows the one before.

use super::hub::{account_json, item_json, ConnectionHandle, Outgoing};
use super::topic::Topic;
use super::FeedState;
use crate::api::auth::{Caller, Role};
use crate::api::dto::OrderJson;
use crate::api::problem::Problem;
use crate::api::ApiState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, Session};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use surge_actors::{EngineError, Query, Rejection, Reply};

/// Largest frame a client may send (its messages are tiny JSON objects).
const CLIENT_FRAME_BYTES_MAX: usize = 4 * 1024;
/// How long the `lagged` message may take to go out before the close.
const LAGGED_NOTICE_TIMEOUT_MS: u64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientMessage {
    pub(crate) op: String,
    pub(crate) topic: Option<String>,
}

struct Subscription {
    topic: Topic,
    /// Entity topics: the version the client has seen (snapshot or last event).
    version_seen: u64,
    /// The `orders` topic: events sent on it so far (its own sequence).
    sent: u64,
}

/// Upgrades the request to a WebSocket feed connection.
#[utoipa::path(get, path = "/v1/feed", operation_id = "open_feed", tag = "feed",
    responses((status = 101, description = "WebSocket: see docs/API.md, Live feed"),
              (status = 401, body = crate::api::problem::ProblemDocument),
              (status = 503, body = crate::api::problem::ProblemDocument, description = "`overloaded`: too many connections")))]
pub async fn connect(
    request: HttpRequest,
    body: web::Payload,
    caller: Caller,
    api: web::Data<ApiState>,
    feed: web::Data<FeedState>,
) -> Result<HttpResponse, Problem> {
    let open = feed.connections.fetch_add(1, Ordering::AcqRel);
    if open >= feed.settings.connections_max {
        feed.connections.fetch_sub(1, Ordering::AcqRel);
        return Err(Problem::overloaded("too many feed connections"));
    }
    let (response, session, stream) = match actix_ws::handle(&request, body) {
        Ok(parts) => parts,
        Err(error) => {
            feed.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(Problem::invalid_request(format!(
                "not a WebSocket request: {error}"
            )));
        }
    };
    let stream = stream.max_frame_size(CLIENT_FRAME_BYTES_MAX);
    feed.metrics.connections.inc();
    let (handle, receiver) = feed.hub.connect(feed.settings.buffer_messages_max);
    let connection = Connection {
        caller,
        api: api.into_inner(),
        feed: feed.clone().into_inner(),
        handle,
        session,
        subscriptions: HashMap::new(),
    };
    actix_web::rt::spawn(connection.run(stream, receiver));
    Ok(response)
}

struct Connection {
    caller: Caller,
    api: Arc<ApiState>,
    feed: Arc<FeedState>,
    handle: Arc<ConnectionHandle>,
    session: Session,
    /// By topic name.
    subscriptions: HashMap<String, Subscription>,
}

/// Why a connection ends.
enum End {
    /// The client went away or closed.
    Gone,
    /// Closed by the server with this reason.
    Close(CloseReason),
}

impl Connection {
    async fn run(
        mut self,
        mut stream: actix_ws::MessageStream,
        mut receiver: tokio::sync::mpsc::Receiver<Outgoing>,
    ) {
        let settings = &self.feed.settings;
        let idle_timeout = Duration::from_millis(settings.idle_timeout_ms);
        let heartbeat_period = Duration::from_millis(settings.heartbeat_interval_ms);
        // The first ping goes one period after the connection opens, not at once.
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + heartbeat_period,
            heartbeat_period,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let end = loop {
            let step = tokio::select! {
                // Checked first: once lagged, nothing more may be sent on this
                // connection, since the client could not tell what it missed.
                _ = self.handle.lagged_notify.notified() => Err(self.lagged().await),
                frame = stream.recv() => match frame {
                    None => Err(End::Gone),
                    Some(Err(error)) => Err(End::Close(CloseReason {
                        code: CloseCode::Protocol,
                        description: Some(error.to_string()),
                    })),
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        self.client_frame(message).await
                    }
                },
                Some(delivery) = receiver.recv() => {
                    if self.handle.is_lagged() {
                        Err(self.lagged().await)
                    } else {
                        self.send_delivery(&delivery).await
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > idle_timeout {
                        Err(End::Close(CloseReason {
                            code: CloseCode::Normal,
                            description: Some("idle timeout".into()),
                        }))
                    } else {
                        self.session.ping(b"").await.map_err(|_| End::Gone)
                    }
                }
            };
            if let Err(end) = step {
                break end;
            }
        };
        for subscription in self.subscriptions.values() {
            self.feed
                .hub
                .unsubscribe(&subscription.topic, self.handle.id);
        }
        self.feed
            .metrics
            .subscriptions
            .sub(self.subscriptions.len() as i64);
        self.feed.metrics.connections.dec();
        self.feed.connections.fetch_sub(1, Ordering::AcqRel);
        if let End::Close(reason) = end {
            let _ = self.session.close(Some(reason)).await;
        }
    }

    /// The connection fell behind its buffer: say so and close with 1008.
    async fn lagged(&mut self) -> End {
        self.feed.metrics.lagged_closes.inc();
        let topic = self.handle.lagged_topic();
        let message = json!({"type": "lagged", "topic": topic,
            "detail": "this connection fell behind its buffer; resubscribe for a fresh snapshot"});
        // Best effort, and bounded: a client too slow to take even this message
        // is closed all the same.
        let send = self.session.text(message.to_string());
        let _ = tokio::time::timeout(Duration::from_millis(LAGGED_NOTICE_TIMEOUT_MS), send).await;
        End::Close(CloseReason {
            code: CloseCode::Policy,
            description: Some("lagged".into()),
        })
    }

    async fn send(&mut self, message: Value) -> Result<(), End> {
        self.session
            .text(message.to_string())
            .await
            .map_err(|_| End::Gone)
    }

    async fn error(&mut self, code: &str, detail: impl Into<String>) -> Result<(), End> {
        self.send(json!({"type": "error", "code": code, "detail": detail.into()}))
            .await
    }

    async fn client_frame(&mut self, message: Message) -> Result<(), End> {
        match message {
            Message::Text(text) => self.client_message(&text).await,
            Message::Ping(bytes) => self.session.pong(&bytes).await.map_err(|_| End::Gone),
            Message::Close(_) => Err(End::Gone),
            Message::Binary(_) => self.error("invalid_request", "send JSON text frames").await,
            Message::Pong(_) | Message::Continuation(_) | Message::Nop => Ok(()),
        }
    }

    async fn client_message(&mut self, text: &str) -> Result<(), End> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => return self.error("invalid_request", error.to_string()).await,
        };
        match (message.op.as_str(), message.topic) {
            ("ping", _) => self.send(json!({"type": "pong"})).await,
            ("subscribe", Some(topic)) => self.subscribe(&topic).await,
            ("unsubscribe", Some(topic)) => self.unsubscribe(&topic).await,
            ("subscribe" | "unsubscribe", None) => {
                self.error("invalid_request", "topic is required").await
            }
            (op, _) => {
                self.error(
                    "invalid_request",
                    format!("unknown op {op:?}: expected subscribe, unsubscribe or ping"),
                )
                .await
            }
        }
    }

    async fn subscribe(&mut self, raw: &str) -> Result<(), End> {
        let topic = match Topic::parse(raw) {
            Ok(topic) => topic,
            Err(detail) => return self.error("invalid_topic", detail).await,
        };
        let allowed = match &topic {
            Topic::Orders => self.caller.role == Role::Operator,
            Topic::Account(id) => self.caller.may_use_account(id.as_str()),
            // An order's payer is only known from its snapshot (checked below).
            Topic::Order(_) | Topic::Item(_) => true,
        };
        if !allowed {
            return self
                .error("forbidden", format!("this token may not watch {topic}"))
                .await;
        }
        let key = topic.to_string();
        let fresh = !self.subscriptions.contains_key(&key);
        if fresh && self.subscriptions.len() >= self.feed.settings.subscriptions_per_connection_max
        {
            return self
                .error(
                    "too_many_subscriptions",
                    format!(
                        "at most {} topics per connection",
                        self.feed.settings.subscriptions_per_connection_max
                    ),
                )
                .await;
        }
        // Registered before the snapshot is read: see the module documentation.
        self.feed.hub.subscribe(&topic, &self.handle);
        let snapshot = match self.snapshot(&topic).await {
            Ok(snapshot) => snapshot,
            Err(code) => {
                if fresh {
                    self.feed.hub.unsubscribe(&topic, self.handle.id);
                }
                let detail = match code {
                    "forbidden" => format!("this token may not watch {topic}"),
                    _ => "the shard could not answer; subscribe again".to_owned(),
                };
                return self.error(code, detail).await;
            }
        };
        if fresh {
            self.feed.metrics.subscriptions.inc();
        }
        let (value, version) = snapshot;
        self.subscriptions.insert(
            key.clone(),
            Subscription {
                topic,
                version_seen: version,
                sent: 0,
            },
        );
        self.send(json!({"type": "subscribed", "topic": key, "snapshot": value}))
            .await
    }

    /// The topic's current state and its version, or an error code.
    async fn snapshot(&self, topic: &Topic) -> Result<(Value, u64), &'static str> {
        let query = match topic {
            Topic::Orders => return Ok((Value::Null, 0)),
            Topic::Order(id) => Query::Order(id.clone()),
            Topic::Account(id) => Query::Account(id.clone()),
            Topic::Item(sku) => Query::Item(sku.clone()),
        };
        match self.api.engine.query(query).await {
            Ok(Reply::Order { order, .. }) => {
                if !self.caller.may_use_account(order.account.as_str()) {
                    return Err("forbidden");
                }
                let version = order.history.len() as u64;
                Ok((
                    serde_json::to_value(OrderJson::from(&order)).unwrap_or(Value::Null),
                    version,
                ))
            }
            Ok(Reply::Account { account, .. }) => Ok((account_json(&account), account.version)),
            Ok(Reply::Item { item, .. }) => Ok((item_json(&item), item.version)),
            // Not there (yet): its first change will be version 1.
            Ok(Reply::Rejected {
                rejection:
                    Rejection::OrderNotFound | Rejection::AccountNotFound | Rejection::ItemNotFound,
                ..
            }) => Ok((Value::Null, 0)),
            Ok(_)
            | Err(EngineError::Overloaded | EngineError::Retry | EngineError::ShuttingDown) => {
                Err("retry")
            }
        }
    }

    async fn unsubscribe(&mut self, raw: &str) -> Result<(), End> {
        let topic = match Topic::parse(raw) {
            Ok(topic) => topic,
            Err(detail) => return self.error("invalid_topic", detail).await,
        };
        if self.subscriptions.remove(&topic.to_string()).is_some() {
            self.feed.hub.unsubscribe(&topic, self.handle.id);
            self.feed.metrics.subscriptions.dec();
        }
        self.send(json!({"type": "unsubscribed", "topic": topic.to_string()}))
            .await
    }

    /// Sends a change on every subscription of this connection that it matches.
    async fn send_delivery(&mut self, delivery: &Outgoing) -> Result<(), End> {
        if let Some(payer) = &delivery.order_account {
            // A client scoped to some accounts only ever sees its own orders.
            if !self.caller.may_use_account(payer) {
                return Ok(());
            }
        }
        let mut messages = Vec::new();
        if let Some(subscription) = self.subscriptions.get_mut(&delivery.topic) {
            // Already covered by the snapshot, or a repeat.
            if delivery.version > subscription.version_seen {
                subscription.version_seen = delivery.version;
                messages.push((delivery.topic.clone(), delivery.version));
            }
        }
        if delivery.is_order() {
            if let Some(subscription) = self.subscriptions.get_mut("orders") {
                subscription.sent += 1;
                messages.push(("orders".to_owned(), subscription.sent));
            }
        }
        for (topic, seq) in messages {
            let mut fields = delivery.fields.clone();
            fields.insert("topic".into(), topic.into());
            fields.insert("seq".into(), seq.into());
            self.send(Value::Object(fields)).await?;
            self.feed.metrics.events_sent.inc();
            let now_ms = surge_actors::engine::system_clock_ms();
            self.feed
                .metrics
                .delivery_delay
                .observe(now_ms.saturating_sub(delivery.at_ms) as f64 / 1000.0);
        }
        Ok(())
    }
}
