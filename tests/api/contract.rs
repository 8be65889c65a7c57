//! docs/API.md against the server: its route list must name exactly the
//! operations of `/openapi.json`, with the auth the server asks for.

use crate::common::app::{spawn_app, spawn_app_with, TestApp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The contract this repository owns, as it is on disk now.
fn api_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The methods an OpenAPI path item may hold, in its (lower-case) spelling.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An operation: upper-case method and OpenAPI path (`/v1/payments/{id}`).
type Operation = (String, String);

/// Who may call an operation, as the route list's `auth` column says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Bearer,
    Operator,
}

/// The rows of the one table of docs/API.md whose header starts with
/// `| method | path | auth |`. Panics on anything in it that is not a route.
fn documented_operations(markdown: &str) -> BTreeMap<Operation, Auth> {
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim();
        let inner = line.strip_prefix('|').unwrap_or(line);
        let inner = inner.strip_suffix('|').unwrap_or(inner);
        inner
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect()
    };
    let lines: Vec<&str> = markdown.lines().collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i].trim_start().starts_with('|')
                && cells(lines[i]).starts_with(&["method".into(), "path".into(), "auth".into()])
        })
        .collect();
    assert_eq!(
        headers.len(),
        1,
        "docs/API.md must have exactly one table headed `| method | path | auth | ...`"
    );
    let start = headers[0] + 2;
    assert!(
        lines
            .get(headers[0] + 1)
            .is_some_and(|l| l.trim_start().starts_with("|---")),
        "the route list's header must be followed by its separator line"
    );
    let mut operations = BTreeMap::new();
    for line in lines[start..]
        .iter()
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let row = cells(line);
        let (method, path, auth) = match row.as_slice() {
            [method, path, auth, ..] => (method, path.trim_matches('`'), auth),
            _ => panic!("route list row with fewer than three cells: {line}"),
        };
        assert!(
            OPENAPI_METHODS.contains(&method.to_ascii_lowercase().as_str())
                && *method == method.to_ascii_uppercase(),
            "not an upper-case HTTP method in the route list: {line}"
        );
        assert!(
            path.starts_with('/'),
            "not a path in the route list: {line}"
        );
        let auth = match auth.as_str() {
            "none" => Auth::None,
            "bearer" => Auth::Bearer,
            "operator" => Auth::Operator,
            other => panic!("auth must be none, bearer or operator, not {other:?}: {line}"),
        };
        let operation = (method.clone(), path.to_owned());
        assert!(
            operations.insert(operation, auth).is_none(),
            "listed twice in the route list: {line}"
        );
    }
    assert!(!operations.is_empty(), "the route list has no rows");
    operations
}

/// (method, path) of every operation of an OpenAPI document, with whether it
/// needs no token (an empty security requirement, `security: [{}]`).
fn openapi_operations(openapi: &Value) -> BTreeMap<Operation, bool> {
    let paths = openapi["paths"]
        .as_object()
        .expect("openapi.json has paths");
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        for method in OPENAPI_METHODS {
            if let Some(operation) = item.get(method) {
                let public = operation["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
                });
                operations.insert((method.to_ascii_uppercase(), path.clone()), public);
            }
        }
    }
    operations
}

async fn served_openapi(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request is sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("openapi.json is JSON")
}

fn list(operations: &BTreeSet<&Operation>) -> String {
    operations
        .iter()
        .map(|(method, path)| format!("\n  {method} {path}"))
        .collect()
}

#[actix_web::test]
async fn docs_api_md_lists_exactly_the_operations_of_openapi_json() {
    let app = spawn_app().await;
    let served = openapi_operations(&served_openapi(&app).await);
    let documented = documented_operations(&api_md());
    // The WebSocket feed `GET /v1/feed` is described in openapi.json too (its 101),
    // so there is no exception to allow.
    let served: BTreeSet<&Operation> = served.keys().collect();
    let documented: BTreeSet<&Operation> = documented.keys().collect();
    let undocumented: BTreeSet<&Operation> = served.difference(&documented).copied().collect();
    let unserved: BTreeSet<&Operation> = documented.difference(&served).copied().collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "docs/API.md's route list and /openapi.json disagree.\n\
         In /openapi.json but not in docs/API.md:{}\n\
         In docs/API.md but not in /openapi.json:{}",
        list(&undocumented),
        list(&unserved),
    );
}

#[actix_web::test]
async fn docs_api_md_and_openapi_json_agree_on_which_operations_need_no_token() {
    let app = spawn_app().await;
    let served = openapi_operations(&served_openapi(&app).await);
    let disagreeing: Vec<String> = documented_operations(&api_md())
        .into_iter()
        .filter_map(|(operation, auth)| {
            let public = *served.get(&operation)?;
            (public != (auth == Auth::None)).then(|| {
                format!(
                    "\n  {} {}: docs/API.md says {auth:?}, openapi.json says {}",
                    operation.0,
                    operation.1,
                    if public { "no token" } else { "a token" }
                )
            })
        })
        .collect();
    assert!(disagreeing.is_empty(), "{}", disagreeing.concat());
}

#[actix_web::test]
async fn every_operation_of_docs_api_md_is_served_and_asks_for_the_documented_token() {
    // With fault injection on, `POST /admin/shards/{id}/fault` checks the role
    // (off, it is a 404 for everyone).
    let app = spawn_app_with(|settings| settings.admin.fault_injection = true).await;
    let client = app.client_token("contract", None);
    let mut wrong = Vec::new();
    for ((method, path), auth) in documented_operations(&api_md()) {
        // Every path parameter becomes "0", a valid id and shard number.
        let url = app.url(&with_zero_parameters(&path));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let anonymous = app
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("request is sent")
            .status()
            .as_u16();
        let response = app
            .http
            .request(method.clone(), &url)
            .bearer_auth(&client)
            .send()
            .await
            .expect("request is sent");
        let as_client = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // `not_found` is the answer of no route at all; a route may still answer
        // the 404 of its resource for the made-up id "0".
        let routed = body["code"] != "not_found";
        // Without a token: 2xx where none is needed, else 401. With a client
        // token: 403 exactly where an operator is needed.
        let fits = match auth {
            Auth::None => (200..300).contains(&anonymous),
            Auth::Bearer => anonymous == 401 && as_client != 403 && routed,
            Auth::Operator => anonymous == 401 && as_client == 403,
        };
        if !fits {
            wrong.push(format!(
                "\n  {method} {path} ({auth:?}): {anonymous} without a token, {as_client} with a client token"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.concat());
}

/// `/v1/items/{sku}/reservations/{id}` → `/v1/items/0/reservations/0`.
fn with_zero_parameters(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push('0');
            }
            '}' => in_parameter = false,
            _ if in_parameter => {}
            _ => out.push(c),
        }
    }
    out
}

/// The callers of the authorization matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Expired,
    Forged,
    Client,
    /// A client whose `accounts` are others than the ones the requests name.
    ScopedElsewhere,
    Operator,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Expired,
    Caller::Forged,
    Caller::Client,
    Caller::ScopedElsewhere,
    Caller::Operator,
];

fn token_of(app: &TestApp, caller: Caller) -> Option<String> {
    use surge::api::auth::{AuthKeys, Role};
    let forger = AuthKeys::from_secret(b"not-the-server-secret-0123456789");
    match caller {
        Caller::Anonymous => None,
        Caller::Expired => Some(app.expired_token()),
        Caller::Forged => Some(crate::common::tokens::mint(
            &forger,
            "ops",
            Role::Operator,
            None,
            600,
        )),
        Caller::Client => Some(app.client_token("matrix", None)),
        Caller::ScopedElsewhere => Some(app.client_token("matrix", Some(vec!["elsewhere"]))),
        Caller::Operator => Some(app.operator.clone()),
    }
}

/// Whether `status` (and the problem `code`) is what docs/API.md says `caller`
/// gets from an operation with `auth` at `path`: no token, an expired or a
/// forged one is 401 wherever a token is needed; a client is 403 where an
/// operator is; a client scoped to other accounts is 403 on an account's own
/// paths; everyone else gets past authentication (whatever the made-up ids
/// then answer, never 401 or 403).
fn expected(auth: Auth, path: &str, caller: Caller, status: u16) -> bool {
    let account_path = path.starts_with("/v1/accounts/{id}");
    match (auth, caller) {
        (Auth::None, _) => (200..300).contains(&status),
        (_, Caller::Anonymous | Caller::Expired | Caller::Forged) => status == 401,
        (Auth::Operator, Caller::Client | Caller::ScopedElsewhere) => status == 403,
        (Auth::Bearer, Caller::ScopedElsewhere) if account_path => status == 403,
        (_, Caller::Client | Caller::ScopedElsewhere | Caller::Operator) => {
            status != 401 && status != 403
        }
    }
}

#[actix_web::test]
async fn every_route_answers_every_kind_of_caller_as_docs_api_md_says() {
    let app = spawn_app_with(|settings| settings.admin.fault_injection = true).await;
    let mut wrong = Vec::new();
    for ((method, path), auth) in documented_operations(&api_md()) {
        if path == "/v1/feed" {
            continue; // the WebSocket: below
        }
        let url = app.url(&with_zero_parameters(&path));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        for caller in CALLERS {
            let mut request = app.http.request(method.clone(), &url);
            if let Some(token) = token_of(&app, caller) {
                request = request.bearer_auth(token);
            }
            let status = request
                .send()
                .await
                .expect("request is sent")
                .status()
                .as_u16();
            if !expected(auth, &path, caller, status) {
                wrong.push(format!(
                    "\n  {method} {path} ({auth:?}) as {caller:?}: {status}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.concat());
}

#[actix_web::test]
async fn every_feed_topic_answers_every_kind_of_caller_as_docs_api_md_says() {
    use crate::common::feed;
    let app = spawn_app().await;
    app.create_account("0", "USD").await;
    for caller in [Caller::Anonymous, Caller::Expired, Caller::Forged] {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                feed::url(&app.address),
            )
            .expect("a request");
        if let Some(token) = token_of(&app, caller) {
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        }
        let refused = tokio_tungstenite::connect_async(request).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
            "{caller:?}: {refused:?}"
        );
    }
    // Who may watch what: `orders` operators only; `account:<id>` a client
    // scoped to it (or to every account); `order:<id>` likewise by its payer;
    // `item:<sku>` anyone.
    let topics = ["orders", "account:0", "order:0", "item:0"];
    let allowed = |caller: Caller, topic: &str| match caller {
        Caller::Operator => true,
        Caller::Client => topic != "orders",
        Caller::ScopedElsewhere => topic == "item:0" || topic == "order:0",
        Caller::Anonymous | Caller::Expired | Caller::Forged => false,
    };
    let mut wrong = Vec::new();
    for caller in [Caller::Client, Caller::ScopedElsewhere, Caller::Operator] {
        let token = token_of(&app, caller).expect("a token");
        let mut socket = feed::connect(&app.address, &token).await;
        for topic in topics {
            feed::send(
                &mut socket,
                serde_json::json!({"op": "subscribe", "topic": topic}),
            )
            .await;
            let answer = feed::next(&mut socket).await;
            let subscribed = answer["type"] == "subscribed";
            if subscribed != allowed(caller, topic) {
                wrong.push(format!("\n  {topic} as {caller:?}: {answer}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.concat());
}

#[actix_web::test]
async fn every_error_answer_of_openapi_json_is_a_problem_document_and_the_common_ones_are_listed() {
    let app = spawn_app().await;
    let document = served_openapi(&app).await;
    let mut wrong = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in OPENAPI_METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let error = status.starts_with('4') || status.starts_with('5');
                let content = response["content"].as_object();
                // A body described as anything but a problem document (/ready's
                // 503 is its own status document, described in words) is wrong.
                if error
                    && content.is_some_and(|c| c.keys().any(|k| k != "application/problem+json"))
                {
                    wrong.push(format!(
                        "\n  {method} {path} {status}: not application/problem+json"
                    ));
                }
            }
            let public = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
            });
            if !public {
                for status in ["401", "403", "429", "503"] {
                    if !responses.contains_key(status) {
                        wrong.push(format!("\n  {method} {path}: no {status}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.concat());
}

/// The (status, code) pairs of docs/API.md's table of error codes.
fn documented_codes(markdown: &str) -> BTreeSet<(String, String)> {
    let mut codes = BTreeSet::new();
    let mut in_table = false;
    for line in markdown.lines() {
        let line = line.trim();
        if line.starts_with("| status | code | when |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            if !codes.is_empty() {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        for code in backticked(cells[1]) {
            codes.insert((cells[0].to_owned(), code));
        }
    }
    assert!(
        !codes.is_empty(),
        "docs/API.md has no `| status | code | when |` table"
    );
    codes
}

/// Every `word` in backticks of `text` that looks like an error code.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn docs_api_md_and_openapi_json_list_the_same_error_codes_under_the_same_statuses() {
    let app = spawn_app().await;
    let document = served_openapi(&app).await;
    let documented = documented_codes(&api_md());
    let mut served = BTreeSet::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for method in OPENAPI_METHODS {
            let Some(responses) = item.get(method).and_then(|o| o["responses"].as_object()) else {
                continue;
            };
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    // "`code`, `code`: why; `code`: why": the codes before each colon.
                    let description = response["description"].as_str().unwrap_or("");
                    let named = description
                        .split(';')
                        .map(|part| part.split(':').next().unwrap_or(""));
                    for code in named.flat_map(backticked) {
                        served.insert((status.clone(), code));
                    }
                }
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let never_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && never_served.is_empty(),
        "in /openapi.json, not in docs/API.md's error table: {undocumented:?}\n\
         in docs/API.md's error table, under no operation of /openapi.json: {never_served:?}"
    );
}

#[actix_web::test]
async fn operation_ids_are_unique_and_every_link_names_an_operation_and_its_parameters() {
    let app = spawn_app().await;
    let document = served_openapi(&app).await;
    let mut parameters_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for method in OPENAPI_METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation["operationId"]
                .as_str()
                .expect("an operationId")
                .to_owned();
            let names = operation["parameters"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                parameters_of.insert(id.clone(), names).is_none(),
                "operationId {id} twice"
            );
        }
    }
    let mut links = 0;
    for item in document["paths"].as_object().expect("paths").values() {
        for method in OPENAPI_METHODS {
            let Some(responses) = item.get(method).and_then(|o| o["responses"].as_object()) else {
                continue;
            };
            for response in responses.values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().expect("operationId");
                    let known = parameters_of
                        .get(target)
                        .unwrap_or_else(|| panic!("link {name}: no operation {target}"));
                    for parameter in link["parameters"].as_object().expect("parameters").keys() {
                        assert!(
                            known.contains(parameter),
                            "link {name}: {target} has no {parameter}"
                        );
                    }
                }
            }
        }
    }
    assert!(links >= 16, "only {links} links");
}
