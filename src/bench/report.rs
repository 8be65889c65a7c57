//! What a run reports: the summary table on stdout, `report.json`, and a
//! self-contained `report.html` whose charts are inline SVG drawn by `plotters`
//! (no script, no CDN: it opens offline).

use super::args::BenchArgs;
use super::load::{Recording, Tally};
use super::memory::MemoryReport;
use super::target::TargetKind;
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Latency percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencyMs {
    fn of(tally: &Tally) -> Self {
        Self::of_histogram(&tally.latency_us)
    }

    fn of_histogram(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The invariants of docs/ARCHITECTURE.md as this run checked them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Invariants {
    /// Units sold by confirmed orders beyond a SKU's initial stock, summed.
    pub oversold_units: u64,
    /// The run's accounts hold exactly what it deposited.
    pub money_conserved: bool,
    /// Orders still not terminal when verification gave up waiting.
    pub non_terminal_orders: u64,
    /// Feed subscribers that missed a status, saw one out of order, saw a `seq`
    /// gap, or never saw the order's final status.
    pub feed_gaps: u64,
    pub feed_subscribers: u64,
    /// Items whose on_hand/reserved/available disagree with the orders.
    pub stock_inconsistencies: u64,
    pub balances_total: String,
    pub deposited_total: String,
    pub notes: Vec<String>,
}

impl Invariants {
    pub fn hold(&self) -> bool {
        self.oversold_units == 0
            && self.money_conserved
            && self.non_terminal_orders == 0
            && self.feed_gaps == 0
            && self.stock_inconsistencies == 0
    }
}

/// One second of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct SecondJson {
    pub second: usize,
    pub requests: u64,
    pub throughput_per_s: u64,
    pub latency_ms: LatencyMs,
}

/// One run of one scenario against one target.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub target: String,
    pub description: String,
    pub duration_s: f64,
    pub concurrency: usize,
    /// Open loop: the requested rate; absent for closed loop.
    pub rate_per_s: Option<u64>,
    pub requests: u64,
    /// Operations carried by the requests (a batch carries many).
    pub operations: u64,
    pub ok: u64,
    pub rejected: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Operations (orders, payments; reads in mixed) per second, not HTTP requests.
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    /// Operations shed with 503 `overloaded` (a subset of `errors`).
    pub shed: u64,
    /// Operations served (accepted, or refused on their merits) per second:
    /// throughput without the shed and failed ones.
    pub goodput_per_s: f64,
    /// Latency of the requests served (see `Tally::served_latency_us`).
    pub served_latency_ms: LatencyMs,
    /// Open loop: whether the generator sent its requests later than scheduled
    /// (the phase ran past its duration): then the offered rate was not reached.
    pub behind_schedule: bool,
    /// The phase's planned duration (`--duration-s`).
    pub duration_s_planned: u64,
    pub invariants: Invariants,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders_confirmed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_sold: Option<u64>,
    pub timeline: Vec<SecondJson>,
    /// (percentile, latency ms) points of the whole run's distribution.
    pub latency_distribution: Vec<(f64, f64)>,
    /// The server's resident memory, CPU time and open entities, sampled each
    /// second from its `/metrics` (Surge only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
}

/// How the client labels an operation shed by the server.
const SHED_LABEL: &str = "503 overloaded";

/// Percentiles drawn in the distribution chart and listed in the JSON.
const DISTRIBUTION_PERCENTILES: [f64; 12] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0,
];

impl RunReport {
    pub fn new(
        args: &BenchArgs,
        kind: TargetKind,
        description: String,
        recording: &Recording,
        invariants: Invariants,
        orders: Option<(u64, u64)>,
    ) -> Self {
        let total = &recording.total;
        let duration_s = recording.elapsed.as_secs_f64();
        let timeline = recording
            .seconds
            .iter()
            .enumerate()
            .map(|(second, tally)| SecondJson {
                second,
                requests: tally.requests,
                throughput_per_s: tally.operations,
                latency_ms: LatencyMs::of(tally),
            })
            .collect();
        let latency_distribution = DISTRIBUTION_PERCENTILES
            .iter()
            .map(|&p| {
                let us = if total.latency_us.is_empty() {
                    0
                } else {
                    total.latency_us.value_at_percentile(p)
                };
                (p, us as f64 / 1_000.0)
            })
            .collect();
        Self {
            scenario: args.scenario.name().into(),
            target: kind.name().into(),
            description,
            duration_s,
            concurrency: args.concurrency,
            rate_per_s: args.rate,
            requests: total.requests,
            operations: total.operations,
            ok: total.ok,
            rejected: total.rejected_total(),
            rejected_by_code: total.rejected.clone(),
            errors: total.errors_total(),
            errors_by_code: total.errors.clone(),
            throughput_per_s: if duration_s > 0.0 {
                total.operations as f64 / duration_s
            } else {
                0.0
            },
            latency_ms: LatencyMs::of(total),
            shed: total.errors.get(SHED_LABEL).copied().unwrap_or(0),
            goodput_per_s: if duration_s > 0.0 {
                (total.ok + total.rejected_total()) as f64 / duration_s
            } else {
                0.0
            },
            served_latency_ms: LatencyMs::of_histogram(&total.served_latency_us),
            // A second of slack: the last requests' answers arrive after it ends.
            behind_schedule: args.rate.is_some() && duration_s > args.duration_s as f64 + 1.0,
            duration_s_planned: args.duration_s,
            invariants,
            orders_confirmed: orders.map(|(confirmed, _)| confirmed),
            units_sold: orders.map(|(_, units)| units),
            timeline,
            latency_distribution,
            memory: None,
        }
    }
}

/// Surge's run, and the baseline's when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    #[serde(flatten)]
    pub surge: RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<RunReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
}

/// Surge over the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Surge's throughput divided by the baseline's (higher is better for Surge).
    pub throughput: f64,
    /// The baseline's p99 latency divided by Surge's (higher is better for Surge).
    pub latency_p99: f64,
}

impl Comparison {
    pub fn new(surge: RunReport, baseline: Option<RunReport>) -> Self {
        let ratio = baseline.as_ref().map(|base| Ratio {
            throughput: surge.throughput_per_s / base.throughput_per_s.max(f64::MIN_POSITIVE),
            latency_p99: base.latency_ms.p99 / surge.latency_ms.p99.max(f64::MIN_POSITIVE),
        });
        Self {
            surge,
            baseline,
            ratio,
        }
    }

    fn runs(&self) -> Vec<&RunReport> {
        std::iter::once(&self.surge)
            .chain(self.baseline.as_ref())
            .collect()
    }

    pub fn invariants_hold(&self) -> bool {
        self.runs().iter().all(|run| run.invariants.hold())
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The memory section of the report page: the resident-memory timeline, open
/// entities beside it, and what the report derives from them.
fn memory_html(runs: &[&RunReport]) -> anyhow::Result<String> {
    let Some((target, memory)) = runs
        .iter()
        .find_map(|r| r.memory.as_ref().map(|m| (&r.target, m)))
    else {
        return Ok(String::new());
    };
    // Seconds from the first sample, so setup shows left of the measured phase.
    let first = memory.samples.first().map_or(0.0, |s| s.second);
    let rss: Series = (
        format!("{target} resident MB"),
        memory
            .samples
            .iter()
            .map(|s| (s.second - first, s.rss_bytes as f64 / (1 << 20) as f64))
            .collect(),
    );
    let open: Series = (
        format!("{target} open entities (thousands)"),
        memory
            .samples
            .iter()
            .map(|s| (s.second - first, s.open_entities as f64 / 1_000.0))
            .collect(),
    );
    let per_entity = memory
        .bytes_per_open_entity
        .map_or("-".into(), |b| format!("{b:.0}"));
    let cpu = memory
        .server_cpu_us_per_operation
        .map_or("-".into(), |us| format!("{us:.2}"));
    Ok(format!(
        "<h2>Server memory</h2><p>Resident size before setup {before} MB, after setup {start} MB,          at the end {end} MB, highest {max} MB; over the last two thirds of the run it grew          {growth:+.1}% above its size at the first third. Memory per account (what setup added):          {per_account:.0} bytes; per open entity (resident size above the fixture over the mean          of {open_mean:.0} open entities, an upper bound): {per_entity} bytes. Server CPU per          operation: {cpu} µs. The measured phase starts {offset:.0} s into the chart.</p>{chart}",
        before = mb(memory.rss_before_setup_bytes),
        start = mb(memory.rss_at_start_bytes),
        end = mb(memory.rss_at_end_bytes),
        max = mb(memory.rss_max_bytes),
        growth = memory.growth_last_two_thirds_percent,
        per_account = memory.bytes_per_account,
        open_mean = memory.open_entities_mean,
        offset = -first,
        chart = line_chart(
            "server resident memory and open entities",
            "second",
            "MB / thousands",
            &[rss, open]
        )?,
    ))
}

fn codes(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the summary table: one column per target, plus the ratio.
#[expect(
    clippy::too_many_lines,
    reason = "prints the report's sections in the order a reader sees them"
)]
pub fn print_summary(comparison: &Comparison) {
    let runs = comparison.runs();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, value: &dyn Fn(&RunReport) -> String| {
        rows.push((name.to_owned(), runs.iter().map(|r| value(r)).collect()));
    };
    row("target", &|r| r.target.clone());
    row("duration s", &|r| format!("{:.1}", r.duration_s));
    row("concurrency", &|r| match r.rate_per_s {
        Some(rate) => format!("open {rate}/s, <={}", r.concurrency),
        None => format!("closed loop {}", r.concurrency),
    });
    row("requests", &|r| r.requests.to_string());
    row("operations", &|r| r.operations.to_string());
    row("ok", &|r| r.ok.to_string());
    row("rejected", &|r| r.rejected.to_string());
    row("errors", &|r| r.errors.to_string());
    row("throughput ops/s", &|r| {
        format!("{:.0}", r.throughput_per_s)
    });
    row("latency p50 ms", &|r| format!("{:.2}", r.latency_ms.p50));
    row("latency p90 ms", &|r| format!("{:.2}", r.latency_ms.p90));
    row("latency p99 ms", &|r| format!("{:.2}", r.latency_ms.p99));
    row("latency p99.9 ms", &|r| format!("{:.2}", r.latency_ms.p999));
    row("latency max ms", &|r| format!("{:.2}", r.latency_ms.max));
    row("shed (503 overloaded)", &|r| r.shed.to_string());
    row("goodput ops/s", &|r| format!("{:.0}", r.goodput_per_s));
    row("served p50 / p99 ms", &|r| {
        format!(
            "{:.2} / {:.2}",
            r.served_latency_ms.p50, r.served_latency_ms.p99
        )
    });
    row("orders confirmed", &|r| {
        r.orders_confirmed.map_or("-".into(), |n| n.to_string())
    });
    row("units sold", &|r| {
        r.units_sold.map_or("-".into(), |n| n.to_string())
    });
    row("oversold units", &|r| {
        r.invariants.oversold_units.to_string()
    });
    row("money conserved", &|r| {
        r.invariants.money_conserved.to_string()
    });
    row("non-terminal orders", &|r| {
        r.invariants.non_terminal_orders.to_string()
    });
    row("feed gaps", &|r| {
        format!(
            "{} of {} subscribers",
            r.invariants.feed_gaps, r.invariants.feed_subscribers
        )
    });
    row("server RSS start/end MB", &|r| {
        r.memory.as_ref().map_or("-".into(), |m| {
            format!("{} / {}", mb(m.rss_at_start_bytes), mb(m.rss_at_end_bytes))
        })
    });
    row("server RSS growth", &|r| {
        r.memory.as_ref().map_or("-".into(), |m| {
            format!("{:+.1}% last 2/3", m.growth_last_two_thirds_percent)
        })
    });
    row("server CPU µs/op", &|r| {
        r.memory
            .as_ref()
            .and_then(|m| m.server_cpu_us_per_operation)
            .map_or("-".into(), |us| format!("{us:.2}"))
    });
    row("invariants", &|r| {
        if r.invariants.hold() {
            "hold"
        } else {
            "VIOLATED"
        }
        .into()
    });
    println!("\nscenario {}", comparison.surge.scenario);
    for (name, values) in &rows {
        let cells: Vec<String> = values.iter().map(|v| format!("{v:>28}")).collect();
        println!("  {name:<20}{}", cells.join(""));
    }
    if let Some(ratio) = &comparison.ratio {
        if runs.iter().any(|r| r.errors > 0) {
            println!("  warning: a run had errors, so the ratio below compares unlike work");
        }
        println!(
            "  {:<20}{:>28}",
            "surge / baseline",
            format!(
                "{:.1}x throughput, {:.1}x lower p99",
                ratio.throughput, ratio.latency_p99
            )
        );
    }
    for run in runs {
        if run.behind_schedule {
            println!(
                "  warning: {}'s load generator fell behind its schedule (the phase ran {:.1} s of {} s), so the offered rate was not reached",
                run.target, run.duration_s, run.duration_s_planned
            );
        }
        if !run.rejected_by_code.is_empty() {
            println!(
                "  {} rejected: {}",
                run.target,
                codes(&run.rejected_by_code)
            );
        }
        if !run.errors_by_code.is_empty() {
            println!("  {} errors: {}", run.target, codes(&run.errors_by_code));
        }
        for note in &run.invariants.notes {
            println!("  {} note: {note}", run.target);
        }
    }
}

/// Writes `report.json` and `report.html` into `dir` (created if needed).
pub fn write(dir: &Path, comparison: &Comparison) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(comparison)?,
    )?;
    std::fs::write(dir.join("report.html"), html(comparison)?)?;
    Ok(())
}

const CHART_WIDTH_PX: u32 = 900;
const CHART_HEIGHT_PX: u32 = 320;
const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Picks one percentile out of a second's latencies.
type LatencyPick = fn(&LatencyMs) -> f64;
/// Renders one cell of the HTML table for a run.
type CellText = fn(&RunReport) -> String;

/// A named series of (x, y) points.
type Series = (String, Vec<(f64, f64)>);

fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX))
            .into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let points = series.iter().flat_map(|(_, points)| points.iter());
        let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points.map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(chart_error)?;
        for (index, (name, points)) in series.iter().enumerate() {
            let color = SERIES_COLORS[index % SERIES_COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn chart_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw a chart: {error:?}")
}

#[expect(
    clippy::too_many_lines,
    reason = "writes the report page's sections in the order a reader sees them"
)]
fn html(comparison: &Comparison) -> anyhow::Result<String> {
    let runs = comparison.runs();
    let throughput: Vec<Series> = runs
        .iter()
        .map(|r| {
            let points = r
                .timeline
                .iter()
                .map(|s| (s.second as f64, s.throughput_per_s as f64))
                .collect();
            (r.target.clone(), points)
        })
        .collect();
    let mut percentiles: Vec<Series> = Vec::new();
    for run in &runs {
        let pick: [(&str, LatencyPick); 3] = [
            ("p50", |l| l.p50),
            ("p99", |l| l.p99),
            ("p99.9", |l| l.p999),
        ];
        for (name, value) in pick {
            let points = run
                .timeline
                .iter()
                .map(|s| (s.second as f64, value(&s.latency_ms)))
                .collect();
            percentiles.push((format!("{} {name}", run.target), points));
        }
    }
    // The distribution's x axis is the index of the percentile, so the tail
    // (99, 99.9, 99.99) gets as much room as the body.
    let distribution: Vec<Series> = runs
        .iter()
        .map(|r| {
            let points = r
                .latency_distribution
                .iter()
                .enumerate()
                .map(|(i, (_, ms))| (i as f64, *ms))
                .collect();
            (r.target.clone(), points)
        })
        .collect();
    let axis = DISTRIBUTION_PERCENTILES
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i}: p{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut table = String::from("<table><tr><th>metric</th>");
    for run in &runs {
        table += &format!("<th>{}</th>", escape(&run.target));
    }
    table += "</tr>";
    let rows: [(&str, CellText); 12] = [
        ("requests", |r| r.requests.to_string()),
        ("operations", |r| r.operations.to_string()),
        ("ok", |r| r.ok.to_string()),
        ("rejected", |r| {
            format!("{} {}", r.rejected, codes(&r.rejected_by_code))
        }),
        ("errors", |r| {
            format!("{} {}", r.errors, codes(&r.errors_by_code))
        }),
        ("throughput ops/s", |r| format!("{:.0}", r.throughput_per_s)),
        ("latency p50 / p99 / p99.9 / max ms", |r| {
            let l = &r.latency_ms;
            format!("{:.2} / {:.2} / {:.2} / {:.2}", l.p50, l.p99, l.p999, l.max)
        }),
        ("orders confirmed / units sold", |r| {
            let show = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
            format!("{} / {}", show(r.orders_confirmed), show(r.units_sold))
        }),
        ("oversold units", |r| {
            r.invariants.oversold_units.to_string()
        }),
        ("money conserved", |r| {
            r.invariants.money_conserved.to_string()
        }),
        ("non-terminal orders / feed gaps", |r| {
            format!(
                "{} / {} of {}",
                r.invariants.non_terminal_orders,
                r.invariants.feed_gaps,
                r.invariants.feed_subscribers
            )
        }),
        ("target", |r| r.description.clone()),
    ];
    for (name, value) in rows {
        table += &format!("<tr><td>{name}</td>");
        for run in &runs {
            table += &format!("<td>{}</td>", escape(&value(run)));
        }
        table += "</tr>";
    }
    table += "</table>";
    let ratio = comparison.ratio.as_ref().map_or(String::new(), |r| {
        format!(
            "<p><b>Surge / baseline:</b> {:.1}× throughput, {:.1}× lower p99 latency.</p>",
            r.throughput, r.latency_p99
        )
    });
    Ok(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>surge bench: {scenario}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>\
         <h1>surge bench: {scenario}</h1>{table}{ratio}\
         <h2>Throughput</h2>{throughput}<h2>Latency percentiles over time</h2>{percentiles}\
         <h2>Latency distribution</h2>{distribution}<p>x axis: {axis}</p>{memory}</body></html>",
        scenario = escape(&comparison.surge.scenario),
        memory = memory_html(&runs)?,
        throughput = line_chart("operations per second", "second", "ops/s", &throughput)?,
        percentiles = line_chart("latency per second", "second", "ms", &percentiles)?,
        distribution = line_chart(
            "latency by percentile",
            "percentile (index)",
            "ms",
            &distribution
        )?,
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
