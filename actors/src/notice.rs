//! Notices: what feed subscribers hear of a change, made by the shard right after
//! the event that caused it and released only once that event is durable.
//!
//! Every notice carries the entity's version after the change. Versions grow by
//! exactly one per change (an account's or item's `version`, the length of an
//! order's history), so a feed can use them as gap-free sequence numbers, and a
//! subscriber can line a snapshot up with the notices that follow it.
//!
//! With change data capture on, a batch's notices are also stored beside its
//! journal record (MessagePack, variants by name and fields by position, as
//! events are), so this enum and the views it holds follow the events' rule:
//! variants and fields only grow at the end.

use crate::command::{AccountView, ItemView, PaymentView, ReservationView};
use crate::domain::{AccountId, OrderId, TimestampMs};
use crate::order::OrderStatus;
use crate::rejection::Rejection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    /// An order's status changed.
    Order {
        id: OrderId,
        /// The payer: clients scoped to accounts may watch only their own orders.
        account: AccountId,
        status: OrderStatus,
        previous: Option<OrderStatus>,
        reason: Option<Rejection>,
        /// The order's version (length of its history) after the change.
        version: u64,
        at: TimestampMs,
    },
    /// An account's balance or hold changed (`account.version` is the sequence).
    Account {
        account: AccountView,
        at: TimestampMs,
    },
    /// An item's stock changed (`item.version` is the sequence).
    Item { item: ItemView, at: TimestampMs },
    /// A payment reached a status its client sees: its first (settled, rejected
    /// or authorized, version 1) or, after authorized, its final one (version 2).
    /// Made only for change data capture (`ShardLimits::record_changes`); feeds
    /// do not carry it.
    Payment {
        payment: PaymentView,
        version: u64,
        at: TimestampMs,
    },
    /// A reservation was held (version 1) or closed (version 2). Change data
    /// capture only, as `Payment`.
    Reservation {
        reservation: ReservationView,
        version: u64,
        at: TimestampMs,
    },
}

impl Notice {
    /// The version of the entity after this change.
    pub fn version(&self) -> u64 {
        match self {
            Notice::Order { version, .. } => *version,
            Notice::Account { account, .. } => account.version,
            Notice::Item { item, .. } => item.version,
            Notice::Payment { version, .. } | Notice::Reservation { version, .. } => *version,
        }
    }

    /// Whether live feeds carry this notice (the rest is for change data capture).
    pub fn on_feeds(&self) -> bool {
        match self {
            Notice::Order { .. } | Notice::Account { .. } | Notice::Item { .. } => true,
            Notice::Payment { .. } | Notice::Reservation { .. } => false,
        }
    }
}
