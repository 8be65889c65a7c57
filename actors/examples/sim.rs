//! Long simulator soaks: `cargo run -p surge-actors --release --example sim --
//! --seeds N --steps N [--seed S] [--trace] [--keep-going]`. Runs seeds `S..S+N` (S defaults to 0),
//! prints progress and the steps per second, and on the first failure prints the
//! seed, the step and the command that replays it, and exits with status 1.

use std::process::ExitCode;
use std::time::Instant;
use surge_actors::sim::{self, SimConfig};

struct Args {
    seeds: u64,
    steps: u64,
    first_seed: u64,
    trace: bool,
    /// Reports every failing seed instead of stopping at the first.
    keep_going: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seeds: 100,
        steps: 10_000,
        first_seed: 0,
        trace: false,
        keep_going: false,
    };
    let mut seed_given = false;
    let mut seeds_given = false;
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = raw.next().ok_or(format!("{name} needs a value"))?;
            text.parse()
                .map_err(|_| format!("{name}: not a number: {text}"))
        };
        match flag.as_str() {
            "--seeds" => {
                args.seeds = value("--seeds")?;
                seeds_given = true;
            }
            "--steps" => args.steps = value("--steps")?,
            "--seed" => {
                args.first_seed = value("--seed")?;
                seed_given = true;
            }
            "--trace" => args.trace = true,
            "--keep-going" => args.keep_going = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: sim --seeds N --steps N [--seed S] [--trace] [--keep-going]"
                ))
            }
        }
    }
    // `--seed S` alone replays that one seed.
    if seed_given && !seeds_given {
        args.seeds = 1;
    }
    Ok(args)
}

#[expect(
    clippy::too_many_lines,
    reason = "the soak's loop, progress and failure report in one place"
)]
fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut steps_total = 0u64;
    let mut requests_total = 0u64;
    let mut crashes_total = 0u64;
    let (mut long_faults_total, mut partitions_total) = (0u64, 0u64);
    let mut orders_total = surge_actors::sim::OrderTally::default();
    let mut failures = 0u64;
    for seed in args.first_seed..args.first_seed + args.seeds {
        let config = SimConfig {
            seed,
            steps: args.steps,
            trace: args.trace,
        };
        match sim::run(&config) {
            Ok(report) => {
                steps_total += report.steps;
                requests_total += report.requests;
                crashes_total += report.crashes;
                long_faults_total += report.long_faults;
                partitions_total += report.partitions;
                orders_total.confirmed += report.orders.confirmed;
                orders_total.rejected += report.orders.rejected;
                orders_total.cancelled += report.orders.cancelled;
                orders_total.expired += report.orders.expired;
                if args.seeds <= 10 || (seed - args.first_seed + 1) % 10 == 0 {
                    let elapsed = started.elapsed().as_secs_f64();
                    println!(
                        "seed {seed} ok: {} shards, {} steps, {} requests, {} events, {} crashes, \
                         {} failed writes, {} messages ({} duplicated, {} lost), orders {}/{}/{}/{} \
                         (confirmed/rejected/cancelled/expired), {} archive rounds, {} recalls, \
                         {} step floors, {} long faults, {} partitions | total {:.0} steps/s",
                        report.shards,
                        report.steps,
                        report.requests,
                        report.events,
                        report.crashes,
                        report.failed_writes,
                        report.messages_delivered,
                        report.messages_duplicated,
                        report.messages_lost,
                        report.orders.confirmed,
                        report.orders.rejected,
                        report.orders.cancelled,
                        report.orders.expired,
                        report.archive_rounds,
                        report.recalls,
                        report.floors_raised,
                        report.long_faults,
                        report.partitions,
                        steps_total as f64 / elapsed
                    );
                }
            }
            Err(failure) => {
                eprintln!("{failure}");
                failures += 1;
                if !args.keep_going {
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if failures > 0 {
        eprintln!("{failures} of {} seeds failed", args.seeds);
        return ExitCode::FAILURE;
    }
    println!(
        "{} seeds passed: {steps_total} steps, {requests_total} client requests, {crashes_total} \
         crashes, {long_faults_total} jumps and downtimes longer than the retention, \
         {partitions_total} partitions, {} orders ({} confirmed, {} rejected, {} cancelled, \
         {} expired) in {elapsed:.1} s: {:.0} steps/s, {:.0} requests/s",
        args.seeds,
        orders_total.total(),
        orders_total.confirmed,
        orders_total.rejected,
        orders_total.cancelled,
        orders_total.expired,
        steps_total as f64 / elapsed,
        requests_total as f64 / elapsed
    );
    ExitCode::SUCCESS
}
