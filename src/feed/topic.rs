//! Feed topics: `order:<id>`, `account:<id>`, `item:<sku>` and `orders`.

use std::fmt;
use surge_actors::domain::{AccountId, OrderId, Sku};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Order(OrderId),
    Account(AccountId),
    Item(Sku),
    /// Every order (operators only).
    Orders,
}

impl Topic {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "orders" {
            return Ok(Topic::Orders);
        }
        let (kind, id) = raw.split_once(':').ok_or_else(|| {
            format!(
                "unknown topic {raw:?}: expected order:<id>, account:<id>, item:<sku> or orders"
            )
        })?;
        let bad = |e: surge_actors::domain::IdError| format!("topic {raw:?}: {e}");
        match kind {
            "order" => OrderId::parse(id).map(Topic::Order).map_err(bad),
            "account" => AccountId::parse(id).map(Topic::Account).map_err(bad),
            "item" => Sku::parse(id).map(Topic::Item).map_err(bad),
            _ => Err(format!(
                "unknown topic {raw:?}: expected order:<id>, account:<id>, item:<sku> or orders"
            )),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Order(id) => write!(f, "order:{id}"),
            Topic::Account(id) => write!(f, "account:{id}"),
            Topic::Item(sku) => write!(f, "item:{sku}"),
            Topic::Orders => f.write_str("orders"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_bad_ones_are_refused() {
        for raw in ["order:o-1", "account:alice", "item:tv_55", "orders"] {
            assert_eq!(Topic::parse(raw).unwrap().to_string(), raw);
        }
        for raw in ["", "order:", "order", "orders:x", "thing:1", "item:a b"] {
            assert!(Topic::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }
}
