//! The load drivers and what they record.
//!
//! * Closed loop (`--concurrency N`): N workers each send a request, wait for its
//!   answer, and send the next. Latency is the request's round trip. Simple, but
//!   a slow answer also delays the requests that would have followed it, so the
//!   histogram under-reports stalls (coordinated omission).
//! * Open loop (`--rate R`): request k is due at `start + k/R` whatever happened
//!   before, with at most `--concurrency` in flight. Latency is measured from the
//!   *intended* send time, so time spent queued behind a stall is counted.
//!
//! Latency goes into HDR histograms (microseconds, 3 significant digits), one for
//! the run and one per second for the timeline of the report.

use super::client::Outcome;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Highest latency the histograms hold; slower samples are clamped to it.
const LATENCY_US_MAX: u64 = 120_000_000;
/// Significant decimal digits of the histograms (0.1% resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How often the progress bar refreshes.
const PROGRESS_REFRESH_MS: u64 = 250;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low 1 >= 1, high >= 2*low,
    // 3 digits within 0..=5).
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("valid histogram bounds")
}

/// Counts of one second (or of the whole run).
#[derive(Debug, Clone)]
pub struct Tally {
    /// HTTP requests sent.
    pub requests: u64,
    /// Operations carried (a batch request carries many).
    pub operations: u64,
    pub ok: u64,
    pub rejected: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Request latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Latency of the requests the server served: every operation answered,
    /// accepted or refused on its merits (not shed as overloaded, not failed).
    pub served_latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: 0,
            operations: 0,
            ok: 0,
            rejected: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
            served_latency_us: new_histogram(),
        }
    }

    fn add(&mut self, latency: Duration, outcomes: &[Outcome]) {
        self.requests += 1;
        self.operations += outcomes.len() as u64;
        for outcome in outcomes {
            match outcome {
                Outcome::Ok => self.ok += 1,
                Outcome::Rejected(code) => *self.rejected.entry(code.clone()).or_default() += 1,
                Outcome::Error(code) => *self.errors.entry(code.clone()).or_default() += 1,
            }
        }
        let latency_us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(latency_us);
        if outcomes
            .iter()
            .all(|outcome| !matches!(outcome, Outcome::Error(_)))
        {
            self.served_latency_us.saturating_record(latency_us);
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Everything a measured phase recorded.
#[derive(Debug, Clone)]
pub struct Recording {
    pub total: Tally,
    /// One tally per second of the run, by completion time.
    pub seconds: Vec<Tally>,
    pub elapsed: Duration,
}

struct Recorder {
    start: Instant,
    total: Tally,
    seconds: Vec<Tally>,
}

impl Recorder {
    fn record(&mut self, done_at: Instant, latency: Duration, outcomes: &[Outcome]) {
        self.total.add(latency, outcomes);
        let second = done_at.saturating_duration_since(self.start).as_secs() as usize;
        while self.seconds.len() <= second {
            self.seconds.push(Tally::new());
        }
        self.seconds[second].add(latency, outcomes);
    }
}

/// How the load is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub duration: Duration,
    /// Closed loop: workers. Open loop: most requests in flight.
    pub concurrency: usize,
    /// Open loop: requests per second.
    pub rate_per_s: Option<u64>,
}

/// Runs `request(k)` for k = 0, 1, 2, ... under `shape` and records every answer.
/// `request` returns one outcome per operation the request carried.
pub async fn drive<F, Fut>(shape: Shape, label: &str, request: F) -> Recording
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Outcome>> + Send + 'static,
{
    let request = Arc::new(request);
    let start = Instant::now();
    let deadline = start + shape.duration;
    let recorder = Arc::new(Mutex::new(Recorder {
        start,
        total: Tally::new(),
        seconds: Vec::new(),
    }));
    let finished = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(show_progress(
        shape.duration,
        label.to_owned(),
        recorder.clone(),
        finished.clone(),
    ));
    match shape.rate_per_s {
        None => closed_loop(shape, deadline, request, recorder.clone()).await,
        Some(rate) => open_loop(shape, rate, start, deadline, request, recorder.clone()).await,
    }
    let elapsed = start.elapsed();
    finished.store(true, Ordering::Relaxed);
    let _ = progress.await;
    // Every task that held the recorder has finished.
    let recorder = recorder.lock().expect("recorder lock not poisoned");
    Recording {
        total: recorder.total.clone(),
        seconds: recorder.seconds.clone(),
        elapsed,
    }
}

async fn closed_loop<F, Fut>(
    shape: Shape,
    deadline: Instant,
    request: Arc<F>,
    recorder: Arc<Mutex<Recorder>>,
) where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Outcome>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..shape.concurrency)
        .map(|_| {
            let (request, recorder, next) = (request.clone(), recorder.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let sent_at = Instant::now();
                    let outcomes = request(k).await;
                    let done_at = Instant::now();
                    recorder.lock().expect("recorder lock not poisoned").record(
                        done_at,
                        done_at - sent_at,
                        &outcomes,
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

async fn open_loop<F, Fut>(
    shape: Shape,
    rate_per_s: u64,
    start: Instant,
    deadline: Instant,
    request: Arc<F>,
    recorder: Arc<Mutex<Recorder>>,
) where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Outcome>> + Send + 'static,
{
    let in_flight = Arc::new(tokio::sync::Semaphore::new(shape.concurrency));
    let interval_ns = 1_000_000_000f64 / rate_per_s as f64;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0u64.. {
        let intended = start + Duration::from_nanos((k as f64 * interval_ns) as u64);
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended).await;
        // Waiting for a free slot delays the send, not the clock: the latency
        // still runs from `intended`.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (request, recorder) = (request.clone(), recorder.clone());
        tasks.spawn(async move {
            let outcomes = request(k).await;
            let done_at = Instant::now();
            drop(permit);
            recorder.lock().expect("recorder lock not poisoned").record(
                done_at,
                done_at.saturating_duration_since(intended),
                &outcomes,
            );
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn show_progress(
    duration: Duration,
    label: String,
    recorder: Arc<Mutex<Recorder>>,
    finished: Arc<AtomicBool>,
) {
    let bar = ProgressBar::new(duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}")
            // The template is a constant that indicatif parses.
            .expect("valid progress template"),
    );
    bar.set_prefix(label);
    let mut last = (Instant::now(), 0u64);
    while !finished.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(PROGRESS_REFRESH_MS)).await;
        let (operations, ok, rejected, errors, elapsed) = {
            let recorder = recorder.lock().expect("recorder lock not poisoned");
            let total = &recorder.total;
            (
                total.operations,
                total.ok,
                total.rejected_total(),
                total.errors_total(),
                recorder.start.elapsed(),
            )
        };
        let now = Instant::now();
        let rate = (operations - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, operations);
        bar.set_position(elapsed.as_secs().min(duration.as_secs()));
        bar.set_message(format!(
            "{rate:>9.0} ops/s  ok {ok}  rejected {rejected}  errors {errors}"
        ));
    }
    bar.finish_and_clear();
}

/// Runs `work(i)` for i in 0..count with at most `concurrency` at once (setup and
/// verification, not measured); fails on the first error.
pub async fn for_each<F, Fut, T>(
    count: usize,
    concurrency: usize,
    work: F,
) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    use futures::StreamExt;
    let results: Vec<anyhow::Result<T>> = futures::stream::iter(0..count)
        .map(work)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
