//! The in-process event bus: shards hand it durable notices, it hands them to the
//! WebSocket connections subscribed to their topics (and to Redis when configured).
//!
//! Publishing runs on the shard's thread, so it never waits: each connection has a
//! bounded queue, and a connection whose queue is full is marked lagged and closed
//! by its own task instead of slowing the shard or anyone else.

use super::topic::Topic;
use crate::api::dto::{format_time, AccountJson, ItemJson, PaymentJson, ReservationJson};
use dashmap::DashMap;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use surge_actors::command::{PaymentView, ReservationView};
use surge_actors::domain::format_money;
use surge_actors::notice::Notice;
use tokio::sync::{mpsc, Notify};

/// One change, ready to send to any subscriber of its topic. The connection adds
/// `topic` and `seq` (which depend on the subscription) when it sends it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// The entity's own topic (`order:…`, `account:…`, `item:…`).
    pub topic: String,
    /// The entity's version after the change: the sequence number on its topic.
    pub version: u64,
    /// For order changes: the payer, so that scoped clients only see their orders.
    pub order_account: Option<String>,
    /// When the change happened (shard clock, ms since the epoch).
    pub at_ms: u64,
    /// The message fields other than `topic` and `seq`.
    pub fields: Map<String, Value>,
}

impl Delivery {
    pub fn from_notice(notice: &Notice) -> Self {
        let (topic, order_account, at_ms, fields) = match notice {
            Notice::Order {
                id,
                account,
                status,
                previous,
                reason,
                at,
                ..
            } => {
                let mut fields = json!({
                    "type": "order.status",
                    "order_id": id.as_str(),
                    "status": status.as_str(),
                    "previous": previous.map(|p| p.as_str()),
                    "at": format_time(*at),
                });
                if let Some(reason) = reason {
                    fields["reason"] = reason.code().into();
                }
                (
                    Topic::Order(id.clone()).to_string(),
                    Some(account.to_string()),
                    *at,
                    fields,
                )
            }
            Notice::Account { account, at } => {
                let money = |value| format_money(value, account.currency);
                let fields = json!({
                    "type": "account.balance",
                    "account_id": account.id.as_str(),
                    "balance": money(account.balance),
                    "held": money(account.held),
                    "available": money(account.available),
                    "at": format_time(*at),
                });
                (
                    Topic::Account(account.id.clone()).to_string(),
                    None,
                    *at,
                    fields,
                )
            }
            Notice::Item { item, at } => {
                let fields = json!({
                    "type": "item.stock",
                    "sku": item.sku.as_str(),
                    "on_hand": item.on_hand,
                    "reserved": item.reserved,
                    "available": item.available,
                    "at": format_time(*at),
                });
                (Topic::Item(item.sku.clone()).to_string(), None, *at, fields)
            }
            Notice::Payment { payment, at, .. } => payment_parts(payment, *at),
            Notice::Reservation {
                reservation, at, ..
            } => reservation_parts(reservation, *at),
        };
        let Value::Object(fields) = fields else {
            unreachable!("json! of an object literal is an object")
        };
        Self {
            topic,
            version: notice.version(),
            order_account,
            at_ms,
            fields,
        }
    }

    pub fn is_order(&self) -> bool {
        self.order_account.is_some()
    }
}

/// Topic, payer, time and fields of a payment's change (change data capture only).
fn payment_parts(payment: &PaymentView, at: u64) -> (String, Option<String>, u64, Value) {
    let fields = entity_fields(
        "payment.status",
        "payment_id",
        &PaymentJson::from(payment),
        at,
    );
    (format!("payment:{}", payment.id), None, at, fields)
}

/// The same for a reservation's change.
fn reservation_parts(
    reservation: &ReservationView,
    at: u64,
) -> (String, Option<String>, u64, Value) {
    let json = ReservationJson::from(reservation);
    let fields = entity_fields("reservation.status", "reservation_id", &json, at);
    let topic = format!("reservation:{}/{}", reservation.sku, reservation.id);
    (topic, None, at, fields)
}

/// A change message of an entity the API answers with `json`: its fields, `id`
/// renamed `id_field`, with `type` and `at` (change data capture only).
fn entity_fields(kind: &str, id_field: &str, json: &impl serde::Serialize, at: u64) -> Value {
    let mut fields = json!({ "type": kind });
    if let Ok(Value::Object(entity)) = serde_json::to_value(json) {
        for (name, value) in entity {
            let name = if name == "id" {
                id_field.to_owned()
            } else {
                name
            };
            fields[name] = value;
        }
    }
    fields["at"] = format_time(at).into();
    fields
}

/// What a connection's queue carries.
pub type Outgoing = Arc<Delivery>;

/// The shared half of a connection: its queue and its lagged flag.
pub struct ConnectionHandle {
    pub id: u64,
    sender: mpsc::Sender<Outgoing>,
    lagged: AtomicBool,
    /// The topic whose event did not fit, for the `lagged` message.
    lagged_topic: Mutex<Option<String>>,
    /// Woken when the connection is marked lagged.
    pub lagged_notify: Notify,
}

impl ConnectionHandle {
    pub fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    pub fn lagged_topic(&self) -> Option<String> {
        self.lagged_topic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn offer(&self, delivery: &Outgoing, hub: &FeedHub) {
        if self.is_lagged() {
            return;
        }
        match self.sender.try_send(delivery.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                *self
                    .lagged_topic
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some(delivery.topic.clone());
                self.lagged.store(true, Ordering::Release);
                self.lagged_notify.notify_one();
                hub.lagged_total.fetch_add(1, Ordering::Relaxed);
            }
            // The connection is closing; it unsubscribes itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Where durable notices go besides local subscribers (the Redis bridge).
pub trait Forward: Send + Sync {
    fn forward(&self, deliveries: &[Outgoing]);
}

/// Topic → subscribed connections.
pub struct FeedHub {
    topics: DashMap<String, Vec<Arc<ConnectionHandle>>>,
    /// Connections subscribed to `orders` (every order).
    all_orders: DashMap<u64, Arc<ConnectionHandle>>,
    next_connection_id: AtomicU64,
    /// Set once at start, before any shard publishes.
    forward: OnceLock<Arc<dyn Forward>>,
    pub lagged_total: AtomicU64,
    pub published_total: AtomicU64,
}

impl Default for FeedHub {
    fn default() -> Self {
        Self {
            topics: DashMap::new(),
            all_orders: DashMap::new(),
            next_connection_id: AtomicU64::new(1),
            forward: OnceLock::new(),
            lagged_total: AtomicU64::new(0),
            published_total: AtomicU64::new(0),
        }
    }
}

impl FeedHub {
    /// A new connection with a queue of `buffer_messages_max` messages.
    pub fn connect(
        &self,
        buffer_messages_max: usize,
    ) -> (Arc<ConnectionHandle>, mpsc::Receiver<Outgoing>) {
        let (sender, receiver) = mpsc::channel(buffer_messages_max);
        let handle = Arc::new(ConnectionHandle {
            id: self.next_connection_id.fetch_add(1, Ordering::Relaxed),
            sender,
            lagged: AtomicBool::new(false),
            lagged_topic: Mutex::new(None),
            lagged_notify: Notify::new(),
        });
        (handle, receiver)
    }

    /// Where notices go besides local subscribers; only the first call counts.
    pub fn set_forward(&self, forward: Arc<dyn Forward>) {
        let _ = self.forward.set(forward);
    }

    pub fn subscribe(&self, topic: &Topic, connection: &Arc<ConnectionHandle>) {
        match topic {
            Topic::Orders => {
                self.all_orders.insert(connection.id, connection.clone());
            }
            _ => {
                let mut subscribers = self.topics.entry(topic.to_string()).or_default();
                if !subscribers.iter().any(|c| c.id == connection.id) {
                    subscribers.push(connection.clone());
                }
            }
        }
    }

    pub fn unsubscribe(&self, topic: &Topic, connection_id: u64) {
        match topic {
            Topic::Orders => {
                self.all_orders.remove(&connection_id);
            }
            _ => {
                let key = topic.to_string();
                let now_empty = match self.topics.get_mut(&key) {
                    Some(mut subscribers) => {
                        subscribers.retain(|c| c.id != connection_id);
                        subscribers.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    self.topics
                        .remove_if(&key, |_, subscribers| subscribers.is_empty());
                }
            }
        }
    }

    /// Durable notices of this node's shards: to local subscribers and onwards.
    pub fn publish_local(&self, notices: &[Notice]) {
        let forward = self.forward.get();
        let wanted = forward.is_some() || !self.topics.is_empty() || !self.all_orders.is_empty();
        if !wanted {
            return;
        }
        // Without Redis, only changes someone watches are formatted: this runs on
        // the shard's thread for every durable change.
        let deliveries: Vec<Outgoing> = notices
            .iter()
            .filter(|notice| notice.on_feeds() && (forward.is_some() || self.watched(notice)))
            .map(|notice| Arc::new(Delivery::from_notice(notice)))
            .collect();
        for delivery in &deliveries {
            self.deliver(delivery);
        }
        if let Some(forward) = forward {
            forward.forward(&deliveries);
        }
    }

    /// Whether a local connection subscribes to this notice's topic.
    fn watched(&self, notice: &Notice) -> bool {
        let topic = match notice {
            Notice::Order { id, .. } => {
                if !self.all_orders.is_empty() {
                    return true;
                }
                Topic::Order(id.clone())
            }
            Notice::Account { account, .. } => Topic::Account(account.id.clone()),
            Notice::Item { item, .. } => Topic::Item(item.sku.clone()),
            Notice::Payment { .. } | Notice::Reservation { .. } => return false,
        };
        !self.topics.is_empty() && self.topics.contains_key(&topic.to_string())
    }

    /// A notice from another node (through Redis), or from this one.
    pub fn deliver(&self, delivery: &Outgoing) {
        self.published_total.fetch_add(1, Ordering::Relaxed);
        // Each connection gets a delivery once, however many of its subscriptions
        // it matches; the connection sends it on each of them.
        let mut offered: Vec<u64> = Vec::new();
        if let Some(subscribers) = self.topics.get(&delivery.topic) {
            for connection in subscribers.iter() {
                connection.offer(delivery, self);
                offered.push(connection.id);
            }
        }
        if delivery.is_order() {
            for connection in self.all_orders.iter() {
                if !offered.contains(&connection.id) {
                    connection.offer(delivery, self);
                }
            }
        }
    }

    /// Subscriptions currently registered (every topic, every connection).
    pub fn subscriptions(&self) -> usize {
        self.topics
            .iter()
            .map(|entry| entry.value().len())
            .sum::<usize>()
            + self.all_orders.len()
    }
}

/// Formats an account or item snapshot as docs/API.md's resource JSON.
pub fn account_json(view: &surge_actors::command::AccountView) -> Value {
    serde_json::to_value(AccountJson::from(view)).unwrap_or(Value::Null)
}

pub fn item_json(view: &surge_actors::command::ItemView) -> Value {
    serde_json::to_value(ItemJson::from(view)).unwrap_or(Value::Null)
}
