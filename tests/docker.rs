//! The files under `docker/` cannot be run here (no Docker engine), so what can
//! be checked without one is checked: the Grafana dashboard only graphs metrics
//! Surge defines, the compose file wires the services the engine is configured
//! for, and the Dockerfile builds the binary the compose file runs.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `surge_…` names in a text, with histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("surge_") {
        let name: String = text[start + "surge_".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |name, suffix| {
                name.strip_suffix(suffix).map(str::to_owned).unwrap_or(name)
            });
        names.insert(name);
    }
    names
}

#[test]
fn the_dashboard_only_graphs_metrics_surge_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("docker/grafana/dashboards/surge.json")).unwrap();
    let exprs: String = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let defined = format!("{}{}", read("src/metrics.rs"), read("src/feed/mod.rs"));
    let graphed = metric_names(&exprs);
    assert!(graphed.len() >= 10, "{graphed:?}");
    for name in graphed {
        assert!(
            defined.contains(&format!("\"{name}\"")),
            "the dashboard graphs surge_{name}, which Surge does not define"
        );
    }
}

#[test]
fn the_compose_file_runs_the_engine_against_postgres_and_redis() {
    let compose = read("docker/compose.yml");
    for needle in [
        "dockerfile: docker/Dockerfile",
        "SURGE__STORAGE__URL: postgres://",
        "SURGE__REDIS__URL: redis://redis:6379",
        "SURGE__AUTH__JWT_SECRET",
        "SURGE__ENGINE__HASH_SEED",
        "image: postgres:",
        "image: redis:",
        "image: prom/prometheus",
        "image: grafana/grafana",
        "./prometheus.yml:/etc/prometheus/prometheus.yml",
    ] {
        assert!(compose.contains(needle), "compose.yml lacks {needle:?}");
    }
    assert!(read("docker/prometheus.yml").contains("surge:8080"));
    let dockerfile = read("docker/Dockerfile");
    // The image builds with the toolchain everything else uses.
    let channel = read("rust-toolchain.toml")
        .lines()
        .find_map(|line| line.trim().strip_prefix("channel = "))
        .expect("rust-toolchain.toml names its channel")
        .trim_matches('"')
        .to_owned();
    assert!(
        dockerfile.contains(&format!("FROM rust:{channel}-")),
        "docker/Dockerfile does not build with the toolchain of rust-toolchain.toml ({channel})"
    );
    // The image has no `surge bench`: both builds leave out its feature.
    assert_eq!(
        dockerfile
            .matches("cargo build --release --no-default-features --bin surge")
            .count(),
        2,
        "both builds of docker/Dockerfile must leave out the default features"
    );
    // Every declared benchmark and test target needs a placeholder in the
    // dependency-caching layer.
    let manifest = read("Cargo.toml");
    for (table, dir) in [("[[bench]]", "benches"), ("[[test]]", "tests")] {
        for target in manifest.split(table).skip(1) {
            let name = target
                .lines()
                .find_map(|line| line.trim().strip_prefix("name = "))
                .unwrap()
                .trim_matches('"');
            assert!(
                dockerfile.contains(name),
                "docker/Dockerfile does not stub {dir}/{name}.rs"
            );
        }
    }
}
