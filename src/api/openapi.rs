//! The served OpenAPI document: `ApiDoc` as the handlers' annotations describe
//! it, then every problem answer made explicit. Each 4xx and 5xx is served as
//! `application/problem+json` (the annotations can only say `application/json`),
//! and the answers every operation of a kind can give are added where its
//! annotations leave them out, each with the `code` values it carries
//! (docs/API.md, "Errors"): a token's 401, 403 and 429 and the engine's 503 on
//! every operation that needs one; 400 where there are path or query
//! parameters, and the 404 of what the path names; 400, 413 and 415 where
//! there is a body.

use serde_json::{json, Map, Value};

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `document` (`ApiDoc`'s, as JSON) with its problem answers made explicit.
pub fn with_problems(mut document: Value) -> Value {
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let has_path_parameters = path.contains('{');
            for method in METHODS {
                if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                    complete(operation, has_path_parameters);
                    if has_path_parameters {
                        if let Some(responses) = operation
                            .get_mut("responses")
                            .and_then(Value::as_object_mut)
                        {
                            let answer = responses.entry("404").or_insert_with(|| problem(""));
                            answer["description"] = json!(not_found(path));
                        }
                    }
                    // The feed's upgrade, asked without a WebSocket handshake.
                    if path == "/v1/feed" {
                        if let Some(responses) = operation
                            .get_mut("responses")
                            .and_then(Value::as_object_mut)
                        {
                            responses.entry("400").or_insert_with(|| {
                                problem("`invalid_request`: not a WebSocket handshake")
                            });
                        }
                    }
                }
            }
        }
    }
    document
}

fn complete(operation: &mut Map<String, Value>, has_path_parameters: bool) {
    let public = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|requirements| {
            requirements
                .iter()
                .any(|r| r.as_object().is_some_and(Map::is_empty))
        });
    let has_body = operation.contains_key("requestBody");
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            as_problem(response);
        }
    }
    let mut add = |status: &str, codes: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(codes));
    };
    if !public {
        add("401", "`unauthorized`: no valid token");
        add(
            "403",
            "`forbidden`: the token's role or `accounts` do not allow it",
        );
        add(
            "429",
            "`rate_limited`: over the rate limit (`Retry-After`, `RateLimit-*`)",
        );
        add(
            "503",
            "`overloaded`, `retry`, `shutting_down` (`Retry-After`)",
        );
    }
    if has_path_parameters || has_query || has_body {
        add(
            "400",
            "`invalid_request`: malformed or invalid input, `param` names it",
        );
    }
    if has_body {
        add("413", "`payload_too_large`: body over the limit");
        add(
            "415",
            "`unsupported_media_type`: neither JSON nor MessagePack",
        );
    }
}

/// The 404 of an operation on `path`: what its path parameters can fail to name.
fn not_found(path: &str) -> &'static str {
    if path.starts_with("/v1/items/{sku}/reservations/{id}") {
        "`reservation_not_found`, `item_not_found`: no such reservation, or no such item"
    } else if path.starts_with("/v1/items/") {
        "`item_not_found`: no such item"
    } else if path.starts_with("/v1/accounts/") {
        "`account_not_found`: no such account"
    } else if path.starts_with("/v1/payments/") {
        "`payment_not_found`: no such payment"
    } else if path.starts_with("/v1/orders/") {
        "`order_not_found`: no such order"
    } else if path == "/admin/shards/{id}/fault" {
        "`shard_not_found`, `not_found`: no such shard, or fault injection is disabled"
    } else if path.starts_with("/admin/shards/") {
        "`shard_not_found`: no such shard"
    } else {
        "`not_found`"
    }
}

/// A problem answer: `codes` as its description, the problem document as its
/// body.
pub(super) fn problem(codes: &str) -> Value {
    json!({
        "description": codes,
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/ProblemDocument"}
            }
        }
    })
}

/// An error answer's body is a problem document, served as such.
fn as_problem(response: &mut Value) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(body) = content.remove("application/json") {
        content.insert("application/problem+json".into(), body);
    }
}
