//! Reads: queries answered from the state as it stands.

use super::ShardCore;
use crate::command::{OrderView, PaymentView, Query, Reply, ReservationView};
use crate::model::ReservationKey;
use crate::rejection::Rejection;

impl ShardCore {
    /// Answers a read from the current state. The owner must only release it once
    /// everything before it is durable.
    pub fn query(&self, query: &Query) -> Reply {
        let state = &self.state;
        match query {
            Query::Account(id) => match state.accounts.get(id) {
                Some(account) => Reply::Account {
                    account: account.into(),
                    created: false,
                },
                None => Reply::rejected(Rejection::AccountNotFound),
            },
            Query::Payment(id) => match state.payments.get(id) {
                // A payment still looking for its first outcome is not visible yet:
                // its creator has not been answered.
                Some(payment) if payment.first.is_some() => Reply::Payment {
                    payment: PaymentView::current(payment),
                    replayed: false,
                },
                _ => Reply::rejected(Rejection::PaymentNotFound),
            },
            Query::Item(sku) => match state.items.get(sku) {
                Some(item) => Reply::Item {
                    item: item.into(),
                    created: false,
                    replayed: false,
                },
                None => Reply::rejected(Rejection::ItemNotFound),
            },
            Query::Reservation(sku, id) => {
                let key = ReservationKey {
                    sku: sku.clone(),
                    id: id.clone(),
                };
                match state.reservations.get(&key) {
                    Some(reservation) => Reply::Reservation {
                        reservation: ReservationView::from(reservation),
                        replayed: false,
                    },
                    None => Reply::rejected(Rejection::ReservationNotFound),
                }
            }
            Query::Order(id) => match state.orders.get(id) {
                Some(order) => Reply::Order {
                    order: OrderView::from(&**order),
                    replayed: false,
                },
                None => Reply::rejected(Rejection::OrderNotFound),
            },
        }
    }
}
