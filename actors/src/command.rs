//! What clients ask of the engine (commands and queries) and what it answers.
//!
//! Everything here is already parsed: ids, amounts, currencies and quantities are
//! domain types. Views are plain data; the HTTP front formats them.

use crate::archive::{ArchiveKey, Archived};
use crate::domain::{
    AccountId, Amount, Currency, OpId, OrderId, PaymentId, Quantity, ReservationId, Sku,
    TimestampMs,
};
use crate::model::{Account, Item, Payment, PaymentStatus, Reservation, ReservationStatus};
use crate::order::{Order, OrderLine, OrderStatus, OrderTerms};
use crate::rejection::Rejection;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A state-changing request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateAccount {
        id: AccountId,
        currency: Currency,
        /// Non-negative, already checked against the currency's scale.
        overdraft_limit: Decimal,
    },
    Deposit {
        account: AccountId,
        id: OpId,
        amount: Amount,
        /// When given, must equal the account's currency.
        currency: Option<Currency>,
        /// Whether the client chose the id (directly or through an idempotency
        /// key); only then is the outcome kept for replay.
        replayable: bool,
    },
    Withdraw {
        account: AccountId,
        id: OpId,
        amount: Amount,
        currency: Option<Currency>,
        replayable: bool,
    },
    CreatePayment {
        id: PaymentId,
        from: AccountId,
        to: AccountId,
        amount: Amount,
        currency: Currency,
        capture: bool,
        /// How long a two-phase payment's hold lives before it expires.
        hold_timeout_ms: u64,
    },
    CapturePayment {
        id: PaymentId,
        /// At most the authorized amount; the rest of the hold is released.
        /// `None` captures all of it.
        amount: Option<Amount>,
        op: Option<OpId>,
    },
    VoidPayment {
        id: PaymentId,
        op: Option<OpId>,
    },
    CreateItem {
        sku: Sku,
        price: Amount,
        currency: Currency,
        /// Initial stock; zero is allowed.
        stock: u64,
    },
    Restock {
        sku: Sku,
        quantity: Quantity,
        op: Option<OpId>,
    },
    Reserve {
        sku: Sku,
        id: ReservationId,
        quantity: Quantity,
        ttl_ms: u64,
    },
    CommitReservation {
        sku: Sku,
        id: ReservationId,
        op: Option<OpId>,
    },
    ReleaseReservation {
        sku: Sku,
        id: ReservationId,
        op: Option<OpId>,
    },
    CreateOrder {
        id: OrderId,
        terms: OrderTerms,
        /// How long the client waits for a final state before it is answered with
        /// the order as it stands (not part of "the same body").
        wait_ms: u64,
    },
    CancelOrder {
        id: OrderId,
        op: Option<OpId>,
    },
}

impl Command {
    /// The id whose shard owns this command.
    pub fn route_key(&self) -> &str {
        match self {
            Command::CreateAccount { id, .. } => id.as_str(),
            Command::Deposit { account, .. } | Command::Withdraw { account, .. } => {
                account.as_str()
            }
            Command::CreatePayment { id, .. }
            | Command::CapturePayment { id, .. }
            | Command::VoidPayment { id, .. } => id.as_str(),
            Command::CreateItem { sku, .. }
            | Command::Restock { sku, .. }
            | Command::Reserve { sku, .. }
            | Command::CommitReservation { sku, .. }
            | Command::ReleaseReservation { sku, .. } => sku.as_str(),
            Command::CreateOrder { id, .. } | Command::CancelOrder { id, .. } => id.as_str(),
        }
    }
}

/// A read of one entity. Reads are served by the owning shard, after any write
/// ahead of them in its mailbox is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Account(AccountId),
    Payment(PaymentId),
    Item(Sku),
    Reservation(Sku, ReservationId),
    Order(OrderId),
}

impl Query {
    pub fn route_key(&self) -> &str {
        match self {
            Query::Account(id) => id.as_str(),
            Query::Payment(id) => id.as_str(),
            Query::Item(sku) | Query::Reservation(sku, _) => sku.as_str(),
            Query::Order(id) => id.as_str(),
        }
    }

    /// The archive key of what the query reads, when that may have left memory.
    pub fn archive_key(&self) -> Option<ArchiveKey> {
        match self {
            Query::Payment(id) => Some(ArchiveKey::Payment(id.clone())),
            Query::Order(id) => Some(ArchiveKey::Order(id.clone())),
            Query::Reservation(sku, id) => {
                Some(ArchiveKey::Reservation(crate::model::ReservationKey {
                    sku: sku.clone(),
                    id: id.clone(),
                }))
            }
            Query::Account(_) | Query::Item(_) => None,
        }
    }
}

/// The engine's answer to a command or query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// `created` is false when the account already existed with the same fields.
    Account {
        account: AccountView,
        created: bool,
    },
    BalanceChange {
        change: BalanceChangeView,
        replayed: bool,
    },
    Payment {
        payment: PaymentView,
        replayed: bool,
    },
    Item {
        item: ItemView,
        created: bool,
        replayed: bool,
    },
    Reservation {
        reservation: ReservationView,
        replayed: bool,
    },
    Order {
        order: OrderView,
        replayed: bool,
    },
    Rejected {
        rejection: Rejection,
        replayed: bool,
    },
}

impl Reply {
    /// A read's answer for an archived entity: the very reply a read of it in
    /// memory gives (see `ShardCore::query`), so the JSON is the same either way.
    /// `None` for an operation's or a step's record, which no read returns.
    pub fn of_archived(entity: &Archived) -> Option<Self> {
        Some(match entity {
            Archived::Payment(payment) => Reply::Payment {
                payment: PaymentView::current(payment),
                replayed: false,
            },
            Archived::Order(order) => Reply::Order {
                order: OrderView::from(&**order),
                replayed: false,
            },
            Archived::Reservation(reservation) => Reply::Reservation {
                reservation: ReservationView::from(reservation),
                replayed: false,
            },
            Archived::Op(..) | Archived::Step(..) => return None,
        })
    }

    pub fn rejected(rejection: Rejection) -> Self {
        Reply::Rejected {
            rejection,
            replayed: false,
        }
    }

    /// Marks the reply as a replay of an earlier answer.
    pub fn into_replayed(mut self) -> Self {
        match &mut self {
            Reply::BalanceChange { replayed, .. }
            | Reply::Payment { replayed, .. }
            | Reply::Item { replayed, .. }
            | Reply::Reservation { replayed, .. }
            | Reply::Order { replayed, .. }
            | Reply::Rejected { replayed, .. } => *replayed = true,
            Reply::Account { .. } => {}
        }
        self
    }

    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Reply::Rejected { rejection, .. } => Some(*rejection),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: AccountId,
    pub currency: Currency,
    pub balance: Decimal,
    pub held: Decimal,
    pub available: Decimal,
    pub overdraft_limit: Decimal,
    pub version: u64,
    pub created_at: TimestampMs,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id.clone(),
            currency: account.currency,
            balance: account.balance,
            held: account.held,
            available: account.available(),
            overdraft_limit: account.overdraft_limit,
            version: account.version,
            created_at: account.created_at,
        }
    }
}

/// The answer to a deposit or withdrawal: `balance` is the balance right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceChangeView {
    pub id: OpId,
    pub account: AccountId,
    pub amount: Decimal,
    pub balance: Decimal,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentView {
    pub id: PaymentId,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Decimal,
    pub captured_amount: Decimal,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub code: Option<Rejection>,
    pub created_at: TimestampMs,
    pub updated_at: TimestampMs,
}

impl PaymentView {
    /// The payment as it is now.
    pub fn current(payment: &Payment) -> Self {
        Self {
            id: payment.id.clone(),
            from: payment.terms.from.clone(),
            to: payment.terms.to.clone(),
            amount: payment.terms.amount,
            captured_amount: payment.captured_amount,
            currency: payment.terms.currency,
            status: payment.status,
            code: payment.code,
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }
    }

    /// The payment as its creator was first told about it: what a replay of the
    /// create request answers, even after a later capture or void.
    pub fn first(payment: &Payment) -> Self {
        let mut view = Self::current(payment);
        if let Some(first) = payment.first {
            view.status = first.status;
            view.code = first.code;
            view.updated_at = first.at;
            view.captured_amount = if first.status == PaymentStatus::Settled {
                payment.terms.amount
            } else {
                Decimal::ZERO
            };
        }
        view
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemView {
    pub sku: Sku,
    pub price: Decimal,
    pub currency: Currency,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub version: u64,
}

impl From<&Item> for ItemView {
    fn from(item: &Item) -> Self {
        Self {
            sku: item.sku.clone(),
            price: item.price,
            currency: item.currency,
            on_hand: item.on_hand,
            reserved: item.reserved,
            available: item.available(),
            version: item.version,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationView {
    pub id: ReservationId,
    pub sku: Sku,
    pub quantity: u32,
    pub status: ReservationStatus,
    pub expires_at: TimestampMs,
}

impl From<&Reservation> for ReservationView {
    fn from(reservation: &Reservation) -> Self {
        Self {
            id: reservation.id.clone(),
            sku: reservation.sku.clone(),
            quantity: reservation.quantity,
            status: reservation.status,
            expires_at: reservation.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLineView {
    pub sku: Sku,
    pub quantity: u32,
    /// Known once the line's item has answered.
    pub unit_price: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: OrderId,
    pub account: AccountId,
    pub merchant: AccountId,
    pub lines: Vec<OrderLineView>,
    /// Known once every line is reserved and priced.
    pub total: Option<Decimal>,
    pub currency: Option<Currency>,
    pub status: OrderStatus,
    pub reason: Option<Rejection>,
    pub history: Vec<(OrderStatus, TimestampMs)>,
    pub created_at: TimestampMs,
}

impl OrderView {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

impl From<&Order> for OrderView {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id.clone(),
            account: order.terms.account.clone(),
            merchant: order.terms.merchant.clone(),
            lines: order
                .terms
                .lines
                .iter()
                .zip(&order.lines)
                .map(|(OrderLine { sku, quantity }, progress)| OrderLineView {
                    sku: sku.clone(),
                    quantity: quantity.get(),
                    unit_price: progress.unit_price,
                })
                .collect(),
            total: order.total,
            currency: order
                .currency
                .or(order.lines.iter().find_map(|l| l.currency)),
            status: order.status,
            reason: order.reason,
            history: order.history.clone(),
            created_at: order.created_at,
        }
    }
}
