//! Rate limits across nodes: two `surge serve` processes with the same Redis
//! share one limit per subject; with Redis unreachable, each node keeps to its
//! own limit and says so in `/metrics`. 429s carry `Retry-After` and
//! `RateLimit-*`.

mod common;

use common::process::{Serve, SurgeProcess};

const SECRET: &str = "surge-rate-limit-test-secret-012345";
const BURST: usize = 10;

fn redis_url() -> String {
    std::env::var("SURGE_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

async fn node(redis: &str, prefix: &str) -> SurgeProcess {
    Serve::new(SECRET)
        .env("SURGE__REDIS__URL", redis)
        .env("SURGE__RATE_LIMIT__REQUESTS_PER_S", "1")
        .env("SURGE__RATE_LIMIT__BURST", &BURST.to_string())
        .env("SURGE__RATE_LIMIT__REDIS_KEY_PREFIX", prefix)
        .start()
        .await
}

/// Statuses of `count` reads by `token`'s subject, alternating between `nodes`.
async fn reads(nodes: &[&SurgeProcess], token: &str, count: usize) -> Vec<reqwest::Response> {
    let mut answers = Vec::new();
    for i in 0..count {
        let api = nodes[i % nodes.len()].api(token);
        answers.push(api.get("/admin/shards").await);
    }
    answers
}

#[tokio::test]
async fn two_nodes_sharing_redis_share_one_limit_per_subject() {
    // A prefix of this run's own: the shared Redis holds nothing else of it.
    let prefix = format!("surge-test-rate:{}:", uuid::Uuid::new_v4().simple());
    let redis = redis_url();
    let (first, second) = (node(&redis, &prefix).await, node(&redis, &prefix).await);
    let token = common::tokens::operator_token(SECRET, "shared-subject");
    let answers = reads(&[&first, &second], &token, 3 * BURST).await;
    let allowed = answers.iter().filter(|r| r.status() == 200).count();
    // One burst in all (and the odd token refilled at 1/s while they ran), not
    // one burst per node.
    assert!(
        (BURST..BURST + 3).contains(&allowed),
        "{allowed} of {} allowed across two nodes with a burst of {BURST}",
        answers.len()
    );
    let refused = answers
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("some refused");
    for header in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(
            refused.headers().contains_key(header),
            "429 without {header}"
        );
    }
    assert_eq!(
        refused.headers()["ratelimit-limit"],
        BURST.to_string().as_str()
    );
    // Another subject has its own limit.
    let other = common::tokens::operator_token(SECRET, "another-subject");
    assert_eq!(first.api(&other).get("/admin/shards").await.status(), 200);
    let client = redis::Client::open(redis.as_str()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    for subject in ["shared-subject", "another-subject"] {
        let _: () = redis::cmd("DEL")
            .arg(format!("{prefix}{subject}"))
            .query_async(&mut connection)
            .await
            .expect("clean up");
    }
}

#[tokio::test]
async fn with_redis_unreachable_each_node_keeps_its_own_limit_and_says_so() {
    // A port nothing listens on.
    let dead = format!("redis://127.0.0.1:{}", common::free_port());
    let node = node(&dead, "surge-test-rate-dead:").await;
    let token = common::tokens::operator_token(SECRET, "alone");
    let answers = reads(&[&node], &token, 2 * BURST).await;
    let allowed = answers.iter().filter(|r| r.status() == 200).count();
    assert!(
        (BURST..BURST + 2).contains(&allowed),
        "{allowed} allowed by the local limit"
    );
    let metrics = reqwest::get(format!("{}/metrics", node.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    };
    assert!(value("surge_rate_limit_fallbacks_total") >= (2 * BURST) as f64);
    assert_eq!(value("surge_rate_limit_redis_up"), 0.0);
}
