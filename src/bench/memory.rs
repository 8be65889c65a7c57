//! The server as an outside client sees it: its resident memory, CPU time and
//! open entities, read from its `/metrics` once a second for the whole run
//! (setup, load and verification), and what the report derives from them.
//!
//! Against an in-process target the process is the bench's own, so its figures
//! include the load generator; the report's description says which it was.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often the server's `/metrics` is read.
const SAMPLE_INTERVAL_MS: u64 = 1_000;
/// How long one read of `/metrics` may take before that second has no sample.
const SAMPLE_TIMEOUT_MS: u64 = 2_000;

/// One reading of the server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemorySample {
    /// Seconds since the measured phase began (negative during setup).
    pub second: f64,
    pub rss_bytes: u64,
    /// The server process's user + system CPU time so far.
    pub cpu_seconds: f64,
    /// Open payments, orders and reservations over every shard.
    pub open_entities: u64,
}

/// Reads `/metrics` every second until stopped.
pub struct Sampler {
    http: reqwest::Client,
    url: String,
    started: Instant,
    samples: Arc<Mutex<Vec<(f64, Reading)>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Reading {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_entities: u64,
}

impl Sampler {
    pub fn start(base: &str) -> anyhow::Result<Self> {
        let http = super::http_client()
            .timeout(Duration::from_millis(SAMPLE_TIMEOUT_MS))
            .build()?;
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let started = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let into = samples.clone();
        let (task_http, task_url) = (http.clone(), url.clone());
        let task = tokio::spawn(async move {
            let (http, url) = (task_http, task_url);
            let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let at = started.elapsed().as_secs_f64();
                let Ok(response) = http.get(&url).send().await else {
                    continue;
                };
                let Ok(text) = response.text().await else {
                    continue;
                };
                if let Some(reading) = parse(&text) {
                    into.lock()
                        .expect("samples lock not poisoned")
                        .push((at, reading));
                }
            }
        });
        Ok(Self {
            http,
            url,
            started,
            samples,
            task,
        })
    }

    /// Seconds since the sampler started, to mark a phase.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Takes one reading now, outside the second's rhythm (a phase's edge).
    pub async fn mark(&self) -> f64 {
        let at = self.now();
        let read = async {
            let text = self
                .http
                .get(&self.url)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            parse(&text)
        };
        if let Ok(Some(reading)) =
            tokio::time::timeout(Duration::from_millis(SAMPLE_TIMEOUT_MS), read).await
        {
            let mut samples = self.samples.lock().expect("samples lock not poisoned");
            samples.push((at, reading));
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        at
    }

    /// Stops sampling; every sample, timed from `measured_from` (sampler seconds).
    pub fn finish(self, measured_from: f64) -> Vec<MemorySample> {
        self.task.abort();
        let samples = self.samples.lock().expect("samples lock not poisoned");
        samples
            .iter()
            .map(|(at, reading)| MemorySample {
                second: at - measured_from,
                rss_bytes: reading.rss_bytes,
                cpu_seconds: reading.cpu_seconds,
                open_entities: reading.open_entities,
            })
            .collect()
    }
}

/// The figures of one Prometheus text page this module needs; `None` when the
/// page has no resident-memory line (a server without the process collector).
fn parse(text: &str) -> Option<Reading> {
    let mut reading = Reading::default();
    let mut rss = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let metric = name.split('{').next().unwrap_or(name);
        match metric {
            "surge_process_resident_memory_bytes" => rss = Some(value as u64),
            "surge_process_cpu_seconds_total" => reading.cpu_seconds = value,
            "surge_shard_open_entities" => reading.open_entities += value as u64,
            _ => {}
        }
    }
    reading.rss_bytes = rss?;
    Some(reading)
}

/// What the report says about the server's memory and CPU.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Every reading, timed from the start of the measured phase.
    pub samples: Vec<MemorySample>,
    pub rss_before_setup_bytes: u64,
    /// At the start of the measured phase (after setup).
    pub rss_at_start_bytes: u64,
    pub rss_at_end_bytes: u64,
    pub rss_max_bytes: u64,
    /// The highest resident size over the last two thirds of the measured phase
    /// against the size at its first third, in percent (the 30-minute soak's
    /// "growth over the last 20 minutes").
    pub growth_last_two_thirds_percent: f64,
    /// Resident memory setup added, per account it created (items included).
    pub bytes_per_account: f64,
    /// Resident memory above the fixture during the measured phase, per open
    /// entity: an upper bound, since it also counts what just finished and waits
    /// for the archive, the filter of archived ids, and buffers.
    pub bytes_per_open_entity: Option<f64>,
    /// Mean open entities over the measured phase.
    pub open_entities_mean: f64,
    /// The server's CPU time over the measured phase per operation, in µs.
    pub server_cpu_us_per_operation: Option<f64>,
}

impl MemoryReport {
    /// `samples` timed from the measured phase's start; it lasted `duration_s`
    /// and carried `operations`; setup created `accounts`.
    pub fn new(
        samples: Vec<MemorySample>,
        duration_s: f64,
        operations: u64,
        accounts: usize,
    ) -> Option<Self> {
        let first = samples.first()?;
        let at = |second: f64| {
            samples
                .iter()
                .min_by(|a, b| {
                    (a.second - second)
                        .abs()
                        .total_cmp(&(b.second - second).abs())
                })
                .copied()
                .unwrap_or(*first)
        };
        let start = at(0.0);
        let end = at(duration_s);
        let measured: Vec<&MemorySample> = samples
            .iter()
            .filter(|s| (0.0..=duration_s).contains(&s.second))
            .collect();
        let third = at(duration_s / 3.0);
        let late_max = measured
            .iter()
            .filter(|s| s.second >= duration_s / 3.0)
            .map(|s| s.rss_bytes)
            .max()
            .unwrap_or(third.rss_bytes);
        let mean = |value: fn(&MemorySample) -> f64| {
            measured.iter().map(|s| value(s)).sum::<f64>() / measured.len().max(1) as f64
        };
        let open_entities_mean = mean(|s| s.open_entities as f64);
        let rss_mean = mean(|s| s.rss_bytes as f64);
        let cpu = end.cpu_seconds - start.cpu_seconds;
        Some(Self {
            rss_before_setup_bytes: first.rss_bytes,
            rss_at_start_bytes: start.rss_bytes,
            rss_at_end_bytes: end.rss_bytes,
            rss_max_bytes: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            growth_last_two_thirds_percent: (late_max as f64 - third.rss_bytes as f64) * 100.0
                / third.rss_bytes.max(1) as f64,
            bytes_per_account: start.rss_bytes.saturating_sub(first.rss_bytes) as f64
                / accounts.max(1) as f64,
            bytes_per_open_entity: (open_entities_mean >= 1.0)
                .then(|| (rss_mean - start.rss_bytes as f64).max(0.0) / open_entities_mean),
            open_entities_mean,
            server_cpu_us_per_operation: (operations > 0 && cpu > 0.0)
                .then(|| cpu * 1e6 / operations as f64),
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metrics_page_gives_memory_cpu_and_open_entities_over_every_shard() {
        let page = "# HELP surge_process_resident_memory_bytes Resident memory size in bytes.\n\
                    # TYPE surge_process_resident_memory_bytes gauge\n\
                    surge_process_resident_memory_bytes 123456789\n\
                    surge_process_cpu_seconds_total 12.5\n\
                    surge_shard_open_entities{shard=\"0\"} 10\n\
                    surge_shard_open_entities{shard=\"1\"} 32\n\
                    surge_shard_open_entities_max{shard=\"0\"} 1000000\n";
        assert_eq!(
            parse(page),
            Some(Reading {
                rss_bytes: 123_456_789,
                cpu_seconds: 12.5,
                open_entities: 42,
            })
        );
        assert_eq!(parse("surge_shard_open_entities{shard=\"0\"} 1\n"), None);
    }

    fn sample(second: f64, rss_mb: u64, cpu_seconds: f64, open_entities: u64) -> MemorySample {
        MemorySample {
            second,
            rss_bytes: rss_mb << 20,
            cpu_seconds,
            open_entities,
        }
    }

    #[test]
    fn the_report_reads_growth_per_account_and_cpu_per_operation_off_the_samples() {
        let samples = vec![
            sample(-10.0, 20, 0.0, 0),
            sample(0.0, 120, 1.0, 0),
            sample(10.0, 200, 3.0, 100),
            sample(20.0, 210, 5.0, 100),
            sample(30.0, 220, 7.0, 100),
        ];
        let report = MemoryReport::new(samples, 30.0, 1_000_000, 100).expect("samples");
        assert_eq!(report.rss_before_setup_bytes, 20 << 20);
        assert_eq!(report.rss_at_end_bytes, 220 << 20);
        assert!((report.growth_last_two_thirds_percent - 10.0).abs() < 1e-9);
        assert!((report.bytes_per_account - (100 << 20) as f64 / 100.0).abs() < 1e-6);
        assert!((report.server_cpu_us_per_operation.unwrap() - 6.0).abs() < 1e-9);
        assert!((report.open_entities_mean - 75.0).abs() < 1e-9);
        assert!(MemoryReport::new(Vec::new(), 30.0, 1, 1).is_none());
    }
}
