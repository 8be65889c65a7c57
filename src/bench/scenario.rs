//! The scenarios: what each one sets up, the request mix it sends, and how it
//! reads the state back afterwards to check the invariants of docs/ARCHITECTURE.md.
//!
//! Every id a run creates starts with a fresh run prefix, so runs against a
//! long-lived server never see each other's accounts, items or orders, and the
//! invariants are checked over exactly what this run created.

mod soak;

use super::args::{BenchArgs, ScenarioArg};
use super::client::{
    is_terminal, Api, CreateOrder, OrderEnd, OrderJson, OrderLine, Outcome, PaymentBody, Tokens,
};
use super::load::{self, Shape};
use super::memory::{MemoryReport, Sampler};
use super::report::{Invariants, RunReport};
use super::target::TargetKind;
use super::zipf::Zipf;
use futures::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// What each account (or buyer) is funded with, in cents.
const DEPOSIT_CENTS: i64 = 10_000_000;
/// Largest single payment, in cents (smallest is 1 cent).
const PAYMENT_CENTS_MAX: u64 = 10_00;
/// Units of each long-tail SKU.
const TAIL_STOCK: u64 = 1_000;
/// Units of each long-tail SKU in the soak, which sells for as long as it runs.
const SOAK_TAIL_STOCK: u64 = 10_000_000;
/// Price of the hot SKU, in cents.
const HOT_PRICE_CENTS: u64 = 25_00;
/// Zipf exponent of the long tail (and of read popularity).
const TAIL_ZIPF_EXPONENT: f64 = 1.1;
/// Share of flash-sale orders that go for the hot SKU, in percent.
const FLASH_SALE_HOT_PERCENT: u32 = 60;
/// Share of orders with a second (long-tail) line, in percent.
const SECOND_LINE_PERCENT: u32 = 20;
/// How long `POST /v1/orders` may wait for a terminal state before answering 202.
const ORDER_WAIT_MS: u64 = 5_000;
/// Mixed scenario, per 100 requests: orders, then payments, the rest reads.
const MIXED_ORDERS_PER_100: u32 = 30;
const MIXED_PAYMENTS_PER_100: u32 = 25;
/// Share of the hot SKU in mixed orders (a normal day, not the sale), percent.
const MIXED_HOT_PERCENT: u32 = 10;
/// One mixed order in this many is watched live on the feed.
const MIXED_WATCH_ONE_IN: u64 = 10;
/// Most feed subscribers open at once (each is a WebSocket).
const FEED_SUBSCRIBERS_MAX: usize = 256;
/// How long a feed subscriber waits for its subscription to be confirmed.
const FEED_SUBSCRIBE_TIMEOUT_MS: u64 = 5_000;
/// How long the target may take to answer `/health` after it starts.
const HEALTHY_TIMEOUT_S: u64 = 30;
/// Concurrency of setup and verification requests.
const SETUP_CONCURRENCY_MAX: usize = 128;

/// Accounts, items and money a run created.
struct Fixture {
    run: String,
    accounts: Vec<String>,
    merchant: Option<String>,
    /// (sku, initial stock)
    items: Vec<(String, u64)>,
    deposited_cents: i64,
}

/// State the request closures share.
struct Ctx {
    api: Api,
    fixture: Fixture,
    args: BenchArgs,
    tail: Zipf,
    /// Every order id sent, with whether an answer named it (unknown outcomes
    /// are checked too: they may or may not exist).
    orders_sent: Mutex<Vec<String>>,
    watchers: Mutex<Vec<JoinHandle<FeedCheck>>>,
    /// Whether a mixed order was watched yet: the first always is, so that a
    /// short run on a loaded machine still checks the feed.
    watched_any: std::sync::atomic::AtomicBool,
    watch_slots: Arc<tokio::sync::Semaphore>,
    feed: bool,
    known: Mutex<Known>,
}

/// What answers already told about stock, so that verification reads back only
/// what they left open (the soak: millions of orders, too many to read back).
#[derive(Default)]
struct Known {
    /// Units sold by confirmed orders and committed reservations, by SKU.
    sold: HashMap<String, u64>,
    /// Orders answered `confirmed`.
    confirmed: u64,
    /// Commits without an answer: (sku, reservation id), read back.
    uncertain_commits: Vec<(String, String)>,
    /// Soak jobs whose single payment got no answer: it may never have reached
    /// the server, so later reads and retries leave it alone.
    unanswered_payments: std::collections::HashSet<u64>,
}

#[expect(
    clippy::too_many_lines,
    reason = "sets up, loads and reports one scenario in order"
)]
pub async fn run(
    args: BenchArgs,
    kind: TargetKind,
    url: String,
    tokens: Tokens,
    description: String,
) -> anyhow::Result<RunReport> {
    let setup_concurrency = args.concurrency.clamp(16, SETUP_CONCURRENCY_MAX);
    let api = Api::new(&url, tokens, args.concurrency.max(setup_concurrency))?;
    api.wait_healthy(Duration::from_secs(HEALTHY_TIMEOUT_S))
        .await?;
    let run = format!("b{:08x}", fastrand::u32(..));
    let label = format!("{} {}", args.scenario.name(), kind.name());
    // The baseline has no /metrics.
    let sampler = match kind {
        TargetKind::Surge => Some(Sampler::start(&url)?),
        TargetKind::Postgres => None,
    };
    if let Some(sampler) = &sampler {
        sampler.mark().await;
    }
    eprintln!("{label}: setting up (run {run}) against {description}");
    let fixture = setup(&api, &args, &run, setup_concurrency).await?;
    let accounts = fixture.accounts.len();
    let ctx = Arc::new(Ctx {
        tail: Zipf::new(args.tail_skus.max(1), TAIL_ZIPF_EXPONENT),
        api,
        fixture,
        args: args.clone(),
        orders_sent: Mutex::new(Vec::new()),
        watchers: Mutex::new(Vec::new()),
        watched_any: std::sync::atomic::AtomicBool::new(false),
        watch_slots: Arc::new(tokio::sync::Semaphore::new(FEED_SUBSCRIBERS_MAX)),
        // The baseline has no live feed; its mixed run has no subscribers.
        feed: kind == TargetKind::Surge,
        known: Mutex::new(Known::default()),
    });
    let shape = Shape {
        duration: Duration::from_secs(args.duration_s),
        concurrency: args.concurrency,
        rate_per_s: args.rate,
    };
    let measured_from = match &sampler {
        Some(sampler) => sampler.mark().await,
        None => 0.0,
    };
    let recording = match args.scenario {
        ScenarioArg::Payments => {
            let ctx = ctx.clone();
            load::drive(shape, &label, move |k| {
                let ctx = ctx.clone();
                async move { vec![ctx.api.payment(&ctx.payment(k)).await] }
            })
            .await
        }
        ScenarioArg::PaymentsBatch => {
            let ctx = ctx.clone();
            load::drive(shape, &label, move |k| {
                let ctx = ctx.clone();
                async move {
                    let size = ctx.args.batch_size as u64;
                    let payments = (k * size..(k + 1) * size).map(|n| ctx.payment(n)).collect();
                    ctx.api.payments_batch(payments, ctx.args.msgpack).await
                }
            })
            .await
        }
        ScenarioArg::FlashSale => {
            let ctx = ctx.clone();
            load::drive(shape, &label, move |k| {
                let ctx = ctx.clone();
                async move { vec![ctx.order(k, FLASH_SALE_HOT_PERCENT, false).await] }
            })
            .await
        }
        ScenarioArg::Mixed => {
            let ctx = ctx.clone();
            load::drive(shape, &label, move |k| {
                let ctx = ctx.clone();
                async move { vec![ctx.mixed(k).await] }
            })
            .await
        }
        ScenarioArg::Soak => {
            let ctx = ctx.clone();
            load::drive(shape, &label, move |k| {
                let ctx = ctx.clone();
                async move { ctx.soak(k).await }
            })
            .await
        }
    };
    if let Some(sampler) = &sampler {
        sampler.mark().await;
    }
    eprintln!("{label}: verifying invariants");
    let verified = verify(&ctx, setup_concurrency).await?;
    let memory = sampler.and_then(|sampler| {
        MemoryReport::new(
            sampler.finish(measured_from),
            recording.elapsed.as_secs_f64(),
            recording.total.operations,
            accounts,
        )
    });
    let mut report = RunReport::new(
        &args,
        kind,
        description,
        &recording,
        verified.invariants,
        verified.orders,
    );
    report.memory = memory;
    Ok(report)
}

async fn setup(
    api: &Api,
    args: &BenchArgs,
    run: &str,
    concurrency: usize,
) -> anyhow::Result<Fixture> {
    let accounts: Vec<String> = (0..args.accounts).map(|i| format!("{run}-a{i}")).collect();
    let deposit = cents(DEPOSIT_CENTS);
    load::for_each(accounts.len(), concurrency, |i| {
        let account = &accounts[i];
        let deposit = &deposit;
        async move {
            api.create_account(account).await?;
            api.deposit(account, &format!("{account}-d"), deposit).await
        }
    })
    .await?;
    let sells = matches!(
        args.scenario,
        ScenarioArg::FlashSale | ScenarioArg::Mixed | ScenarioArg::Soak
    );
    let tail_stock = match args.scenario {
        ScenarioArg::Soak => SOAK_TAIL_STOCK,
        ScenarioArg::FlashSale
        | ScenarioArg::Mixed
        | ScenarioArg::Payments
        | ScenarioArg::PaymentsBatch => TAIL_STOCK,
    };
    let (merchant, items) = if sells {
        let merchant = format!("{run}-merchant");
        api.create_account(&merchant).await?;
        let mut items = vec![(format!("{run}-hot"), args.hot_stock)];
        items.extend((0..args.tail_skus).map(|i| (format!("{run}-s{i}"), tail_stock)));
        load::for_each(items.len(), concurrency, |i| {
            let (sku, stock) = &items[i];
            let price = if i == 0 {
                HOT_PRICE_CENTS
            } else {
                // Long-tail prices from 1.00 to 50.99, fixed by the SKU's rank.
                100 + (i as u64 * 7_919) % 5_000
            };
            async move { api.create_item(sku, &cents(price as i64), *stock).await }
        })
        .await?;
        (Some(merchant), items)
    } else {
        (None, Vec::new())
    };
    Ok(Fixture {
        run: run.to_owned(),
        deposited_cents: DEPOSIT_CENTS * accounts.len() as i64,
        accounts,
        merchant,
        items,
    })
}

fn cents(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

impl Ctx {
    /// A payer and payee: uniform, or both among the hottest 1% of accounts for
    /// `--hot-accounts-percent` of payments.
    fn pick_pair(&self) -> (&str, &str) {
        let accounts = &self.fixture.accounts;
        let hot = fastrand::u8(0..100) < self.args.hot_accounts_percent;
        let pool = if hot {
            (accounts.len() / 100).max(2)
        } else {
            accounts.len()
        };
        let from = fastrand::usize(0..pool);
        // Any other account of the pool: never the payer itself.
        let to = (from + fastrand::usize(1..pool)) % pool;
        (&accounts[from], &accounts[to])
    }

    fn payment(&self, n: u64) -> PaymentBody<'_> {
        let (from, to) = self.pick_pair();
        PaymentBody {
            id: format!("{}-p{n}", self.fixture.run),
            from,
            to,
            amount: cents(fastrand::u64(1..=PAYMENT_CENTS_MAX) as i64),
            currency: "USD",
        }
    }

    fn tail_sku(&self) -> Option<&str> {
        let items = &self.fixture.items;
        (items.len() > 1).then(|| {
            let rank = self.tail.sample(fastrand::f64());
            items[1 + rank.min(items.len() - 2)].0.as_str()
        })
    }

    fn order_body(&self, k: u64, hot_percent: u32) -> CreateOrder<'_> {
        let hot = self.fixture.items[0].0.as_str();
        let first = if fastrand::u32(0..100) < hot_percent {
            hot
        } else {
            self.tail_sku().unwrap_or(hot)
        };
        let mut lines = vec![OrderLine {
            sku: first,
            quantity: if first == hot {
                1
            } else {
                fastrand::u64(1..=2)
            },
        }];
        if fastrand::u32(0..100) < SECOND_LINE_PERCENT {
            if let Some(second) = self.tail_sku().filter(|s| *s != first) {
                lines.push(OrderLine {
                    sku: second,
                    quantity: 1,
                });
            }
        }
        let accounts = &self.fixture.accounts;
        CreateOrder {
            id: format!("{}-o{k}", self.fixture.run),
            account: &accounts[fastrand::usize(0..accounts.len())],
            // Setup always makes a merchant for the scenarios that order.
            merchant: self.fixture.merchant.as_deref().unwrap_or_default(),
            lines,
            wait_ms: ORDER_WAIT_MS,
        }
    }

    async fn order(self: &Arc<Self>, k: u64, hot_percent: u32, watch: bool) -> Outcome {
        let body = self.order_body(k, hot_percent);
        if watch && self.feed {
            // Subscribe before the order exists, so every status change is seen.
            if let Ok(slot) = self.watch_slots.clone().try_acquire_owned() {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let settle = Duration::from_secs(self.args.duration_s + self.args.settle_timeout_s);
                let watcher = tokio::spawn(watch_order(
                    self.api.feed_url(),
                    body.id.clone(),
                    ready_tx,
                    settle,
                    slot,
                ));
                self.watchers
                    .lock()
                    .expect("watchers lock not poisoned")
                    .push(watcher);
                let _ = tokio::time::timeout(
                    Duration::from_millis(FEED_SUBSCRIBE_TIMEOUT_MS),
                    ready_rx,
                )
                .await;
            }
        }
        if self.args.scenario != ScenarioArg::Soak {
            self.orders_sent
                .lock()
                .expect("orders lock not poisoned")
                .push(body.id.clone());
            return self.api.create_order(&body).await.0;
        }
        let (outcome, end) = self.api.create_order(&body).await;
        match end {
            OrderEnd::Confirmed => {
                let mut known = self.known.lock().expect("known lock not poisoned");
                known.confirmed += 1;
                for line in &body.lines {
                    *known.sold.entry(line.sku.to_owned()).or_default() += line.quantity;
                }
            }
            OrderEnd::Refused => {}
            OrderEnd::Open => self
                .orders_sent
                .lock()
                .expect("orders lock not poisoned")
                .push(body.id.clone()),
        }
        outcome
    }

    async fn mixed(self: &Arc<Self>, k: u64) -> Outcome {
        let roll = fastrand::u32(0..100);
        if roll < MIXED_ORDERS_PER_100 {
            let first = !self
                .watched_any
                .swap(true, std::sync::atomic::Ordering::Relaxed);
            let watch = first || k.is_multiple_of(MIXED_WATCH_ONE_IN);
            self.order(k, MIXED_HOT_PERCENT, watch).await
        } else if roll < MIXED_ORDERS_PER_100 + MIXED_PAYMENTS_PER_100 {
            self.api.payment(&self.payment(k)).await
        } else {
            let path = match fastrand::u8(0..3) {
                0 => format!("/v1/items/{}", self.tail_sku().unwrap_or("none")),
                1 => {
                    let accounts = &self.fixture.accounts;
                    format!(
                        "/v1/accounts/{}",
                        accounts[fastrand::usize(0..accounts.len())]
                    )
                }
                _ => {
                    let recent = {
                        let sent = self.orders_sent.lock().expect("orders lock not poisoned");
                        sent.last().cloned()
                    };
                    match recent {
                        Some(order) => format!("/v1/orders/{order}"),
                        None => format!("/v1/items/{}", self.fixture.items[0].0),
                    }
                }
            };
            self.api.read(&path).await
        }
    }
}

/// What one feed subscriber saw.
#[derive(Debug, Default)]
struct FeedCheck {
    order_id: String,
    statuses: Vec<String>,
    /// Why its sequence was wrong, if it was.
    fault: Option<String>,
}

/// Subscribes to one order's topic, signals once subscribed, then collects its
/// status events until a terminal one, checking `seq` and `previous` as it goes.
async fn watch_order(
    url: String,
    order_id: String,
    ready: tokio::sync::oneshot::Sender<()>,
    timeout: Duration,
    _slot: tokio::sync::OwnedSemaphorePermit,
) -> FeedCheck {
    let mut check = FeedCheck {
        order_id: order_id.clone(),
        ..FeedCheck::default()
    };
    let topic = format!("order:{order_id}");
    let watched = tokio::time::timeout(timeout, async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| format!("cannot connect to the feed: {e}"))?;
        let subscribe = serde_json::json!({"op": "subscribe", "topic": topic}).to_string();
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(subscribe.into()))
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let mut ready = Some(ready);
        let mut last: Option<(u64, String)> = None;
        while let Some(message) = socket.next().await {
            let message = message.map_err(|e| format!("feed closed: {e}"))?;
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(text.as_str())
                .map_err(|e| format!("undecodable feed message: {e}"))?;
            match event["type"].as_str() {
                Some("subscribed") => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    // A snapshot (the order already existed) sets the starting status.
                    if let Some(status) = event["snapshot"]["status"].as_str() {
                        last = Some((0, status.to_owned()));
                    }
                }
                Some("order.status") if event["topic"] == topic.as_str() => {
                    let seq = event["seq"].as_u64().ok_or("event without seq")?;
                    let status = event["status"].as_str().ok_or("event without status")?;
                    let previous = event["previous"].as_str();
                    if let Some((last_seq, last_status)) = &last {
                        if *last_seq > 0 && seq != last_seq + 1 {
                            return Err(format!("seq {seq} after {last_seq}"));
                        }
                        if previous.is_some_and(|p| p != last_status) {
                            return Err(format!(
                                "status {status} says previous {previous:?}, last seen {last_status}"
                            ));
                        }
                    }
                    last = Some((seq, status.to_owned()));
                    check.statuses.push(status.to_owned());
                    if is_terminal(status) {
                        return Ok(());
                    }
                }
                Some("lagged") => return Err("subscriber lagged".into()),
                Some("error") => return Err(format!("feed error {}", event["code"])),
                _ => {}
            }
        }
        Err("feed closed before a terminal status".to_owned())
    })
    .await;
    check.fault = match watched {
        Ok(Ok(())) => None,
        Ok(Err(fault)) => Some(fault),
        Err(_) => Some("no terminal status before the deadline".into()),
    };
    check
}

/// Every SKU's stock adds up: nothing oversold, and once every order is terminal
/// and every reservation has ended (re-read until they have, for at most
/// `settle`), what left the shelf is exactly what was sold.
async fn check_stock(
    ctx: &Ctx,
    sold: &BTreeMap<String, u64>,
    settle: Duration,
    concurrency: usize,
    invariants: &mut Invariants,
) -> anyhow::Result<()> {
    let (api, fixture) = (&ctx.api, &ctx.fixture);
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let items = load::for_each(fixture.items.len(), concurrency, |i| {
            let sku = &fixture.items[i].0;
            async move { api.item(sku).await }
        })
        .await?;
        let mut oversold = 0;
        let mut notes = Vec::new();
        for ((sku, stock), item) in fixture.items.iter().zip(&items) {
            let units = sold.get(sku.as_str()).copied().unwrap_or(0);
            oversold += units.saturating_sub(*stock);
            let consistent = item.available + item.reserved == item.on_hand
                && (invariants.non_terminal_orders > 0
                    || (item.reserved == 0 && item.on_hand + units == *stock));
            if !consistent {
                notes.push(format!(
                    "{sku}: stock {stock}, sold {units}, on_hand {}, reserved {}, available {}",
                    item.on_hand, item.reserved, item.available
                ));
            }
        }
        if notes.is_empty() || tokio::time::Instant::now() >= deadline {
            invariants.oversold_units = oversold;
            invariants.stock_inconsistencies = notes.len() as u64;
            invariants.notes.extend(notes.into_iter().take(20));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Verified {
    invariants: Invariants,
    /// (orders confirmed, units sold) for the scenarios that order.
    orders: Option<(u64, u64)>,
}

#[expect(
    clippy::too_many_lines,
    reason = "reads the state back and checks each invariant in turn"
)]
async fn verify(ctx: &Arc<Ctx>, concurrency: usize) -> anyhow::Result<Verified> {
    let settle = Duration::from_secs(ctx.args.settle_timeout_s);
    let mut invariants = Invariants::default();
    let api = &ctx.api;
    let fixture = &ctx.fixture;

    // Every order terminal (polled for a bounded time), and what was sold.
    let sent: Vec<String> = ctx
        .orders_sent
        .lock()
        .expect("orders lock not poisoned")
        .clone();
    let mut orders = None;
    let mut final_status: HashMap<String, String> = HashMap::new();
    if !fixture.items.is_empty() {
        let deadline = tokio::time::Instant::now() + settle;
        let read: Vec<Option<OrderJson>> = load::for_each(sent.len(), concurrency, |i| {
            let id = &sent[i];
            async move {
                loop {
                    let order = api.order(id).await?;
                    let done = order.as_ref().is_none_or(|o| is_terminal(&o.status));
                    if done || tokio::time::Instant::now() >= deadline {
                        return Ok(order);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
        .await?;
        let (mut sold, mut confirmed, uncertain) = {
            let known = ctx.known.lock().expect("known lock not poisoned");
            let sold: BTreeMap<String, u64> =
                known.sold.iter().map(|(k, v)| (k.clone(), *v)).collect();
            (sold, known.confirmed, known.uncertain_commits.clone())
        };
        for order in read.iter().flatten() {
            final_status.insert(order.id.clone(), order.status.clone());
            if !is_terminal(&order.status) {
                invariants.non_terminal_orders += 1;
            }
            if order.status == "confirmed" {
                confirmed += 1;
                for line in &order.lines {
                    *sold.entry(line.sku.clone()).or_default() += line.quantity;
                }
            }
        }
        let committed = load::for_each(uncertain.len(), concurrency, |i| {
            let (sku, id) = &uncertain[i];
            async move { api.reservation(sku, id).await }
        })
        .await?;
        for ((sku, _), status) in uncertain.iter().zip(committed) {
            if status.as_deref() == Some("committed") {
                *sold.entry(sku.clone()).or_default() += 1;
            }
        }
        check_stock(ctx, &sold, settle, concurrency, &mut invariants).await?;
        orders = Some((confirmed, sold.values().sum()));
    }

    // Feed subscribers saw their orders' statuses in order, ending where the
    // order ended.
    let watchers: Vec<_> = std::mem::take(&mut *ctx.watchers.lock().expect("watchers lock"));
    invariants.feed_subscribers = watchers.len() as u64;
    for watcher in watchers {
        let check = watcher.await?;
        let final_seen = check.statuses.last();
        let fault = check.fault.or_else(|| {
            let stored = final_status.get(&check.order_id);
            (stored.is_some() && stored != final_seen)
                .then(|| format!("feed ended at {final_seen:?}, the order is {stored:?}"))
        });
        if let Some(fault) = fault {
            invariants.feed_gaps += 1;
            if invariants.notes.len() < 20 {
                invariants
                    .notes
                    .push(format!("feed {}: {fault}", check.order_id));
            }
        }
    }
    if !ctx.feed && matches!(ctx.args.scenario, ScenarioArg::Mixed) {
        invariants
            .notes
            .push("the baseline has no live feed: no subscribers".into());
    }

    // Money conserved: every balance this run created adds up to what it
    // deposited, once in-flight saga steps settle (re-read until they do).
    let mut everyone = fixture.accounts.clone();
    everyone.extend(fixture.merchant.clone());
    let deposited = Decimal::new(fixture.deposited_cents, 2);
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let balances = load::for_each(everyone.len(), concurrency, |i| {
            let account = &everyone[i];
            async move { api.balance(account).await }
        })
        .await?;
        let mut total = Decimal::ZERO;
        for balance in &balances {
            total += balance.parse::<Decimal>()?;
        }
        invariants.money_conserved = total == deposited;
        invariants.balances_total = total.to_string();
        invariants.deposited_total = deposited.to_string();
        if invariants.money_conserved || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Verified { invariants, orders })
}
