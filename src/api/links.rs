//! OpenAPI links from each create to the operations that can follow it (read,
//! deposit, capture, void, restock, reserve, commit, release, cancel), with
//! the ids they take from the created entity's answer. A client generator can
//! chain them; schemathesis's stateful phase does.

use serde_json::{json, Map, Value};

/// The ids of an answer, as runtime expressions.
const ID: (&str, &str) = ("id", "$response.body#/id");
const SKU: (&str, &str) = ("sku", "$response.body#/sku");

/// (path and method of a create, the answers that carry the entity, the
/// operations that can follow, with the parameters each takes).
type Chain = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static [(&'static str, &'static str)])],
);

const CHAINS: [Chain; 5] = [
    (
        "/v1/accounts",
        &["200", "201"],
        &[
            ("get_account", &[ID]),
            ("deposit", &[ID]),
            ("withdraw", &[ID]),
        ],
    ),
    (
        "/v1/payments",
        &["201"],
        &[
            ("get_payment", &[ID]),
            ("capture_payment", &[ID]),
            ("void_payment", &[ID]),
        ],
    ),
    (
        "/v1/items",
        &["200", "201"],
        &[
            ("get_item", &[SKU]),
            ("restock_item", &[SKU]),
            ("reserve", &[SKU]),
        ],
    ),
    (
        "/v1/items/{sku}/reservations",
        &["201"],
        &[
            ("get_reservation", &[SKU, ID]),
            ("commit_reservation", &[SKU, ID]),
            ("release_reservation", &[SKU, ID]),
        ],
    ),
    (
        "/v1/orders",
        &["201", "202"],
        &[("get_order", &[ID]), ("cancel_order", &[ID])],
    ),
];

/// `document` with the links of every create.
pub fn with_links(mut document: Value) -> Value {
    for (path, statuses, follows) in CHAINS {
        let Some(responses) = document
            .get_mut("paths")
            .and_then(|paths| paths.get_mut(path))
            .and_then(|item| item.get_mut("post"))
            .and_then(|operation| operation.get_mut("responses"))
        else {
            tracing::error!(path, "OpenAPI: no create to link from");
            continue;
        };
        for status in statuses {
            let Some(response) = responses.get_mut(*status).and_then(Value::as_object_mut) else {
                continue;
            };
            let links: Map<String, Value> = follows
                .iter()
                .map(|(operation_id, parameters)| {
                    let parameters: Map<String, Value> = parameters
                        .iter()
                        .map(|(name, expression)| ((*name).to_owned(), json!(expression)))
                        .collect();
                    (
                        (*operation_id).to_owned(),
                        json!({"operationId": operation_id, "parameters": parameters}),
                    )
                })
                .collect();
            response.insert("links".into(), Value::Object(links));
        }
    }
    document
}
