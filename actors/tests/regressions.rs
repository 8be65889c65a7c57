//! Regression tests for engine bugs found by the property tests and the simulator,
//! and for behaviours a hot-path optimization must keep. Each test names the
//! behaviour, in one shard with instant delivery.

use rust_decimal::Decimal;
use surge_actors::command::{Command, Reply};
use surge_actors::domain::{AccountId, Amount, Currency, OpId, OrderId, PaymentId, Quantity, Sku};
use surge_actors::event::Event;
use surge_actors::model::{PaymentStatus, Stage, StepOutcome, StepTag};
use surge_actors::notice::Notice;
use surge_actors::order::LineStepKind;
use surge_actors::rejection::Rejection;
use surge_actors::router::{Router, ShardId};
use surge_actors::shard::{LineStepRequest, ShardCore, ShardLimits, ShardMessage, Token};
use surge_actors::state::local_run_steps;
use surge_actors::state::State;

const RETENTION_MS: u64 = 10_000;

/// One shard, every batch committed at once; replies are collected by token.
struct OneShard {
    core: ShardCore,
    now_ms: u64,
    next_token: Token,
    replies: Vec<(Token, Reply)>,
    /// Everything journaled, in order.
    journal: Vec<Event>,
    /// Everything the feeds heard, in order.
    notices: Vec<Notice>,
}

impl OneShard {
    fn new() -> Self {
        let limits = ShardLimits {
            retention_ms: RETENTION_MS,
            ..ShardLimits::default()
        };
        let mut core = ShardCore::new(ShardId(0), Router::new(1), limits, State::new(0));
        core.advance_clock(1_000);
        Self {
            core,
            now_ms: 1_000,
            next_token: 0,
            replies: Vec::new(),
            journal: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn send(&mut self, command: Command) -> Token {
        self.next_token += 1;
        self.core.command(self.next_token, command);
        self.flush();
        self.next_token
    }

    fn flush(&mut self) {
        let batch = self.core.take_batch();
        assert!(batch.messages.is_empty(), "one shard sends no messages");
        self.replies.extend(batch.replies);
        self.journal.extend(batch.events);
        self.notices.extend(batch.notices);
        self.core.commit();
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.core.advance_clock(self.now_ms);
        self.core.tick();
        self.flush();
    }

    fn reply(&self, token: Token) -> &Reply {
        let mut found = self.replies.iter().filter(|(t, _)| *t == token);
        let (_, reply) = found.next().expect("the request was answered");
        reply
    }

    fn held(&self, account: &str) -> Decimal {
        let id = AccountId::parse(account).expect("valid id");
        self.core.state.accounts.get(&id).expect("account").held
    }

    fn balance(&self, account: &str) -> Decimal {
        let id = AccountId::parse(account).expect("valid id");
        self.core.state.accounts.get(&id).expect("account").balance
    }

    /// The versions an account's feed was told, in order: a feed's `seq`, which
    /// must grow by one without gaps.
    fn account_versions(&self, account: &str) -> Vec<u64> {
        self.notices
            .iter()
            .filter_map(|notice| match notice {
                Notice::Account { account: view, .. } if view.id.as_str() == account => {
                    Some(view.version)
                }
                _ => None,
            })
            .collect()
    }

    /// The state a restart would rebuild from the journal.
    fn replayed(&self) -> State {
        let mut state = State::new(0);
        for event in &self.journal {
            state.apply(event);
        }
        state
    }
}

/// Two funded accounts ("payer" with 100, "payee" with 0) on the one shard.
fn setup_accounts(shard: &mut OneShard) {
    let usd = Currency::parse("USD").expect("known currency");
    for id in ["payer", "payee"] {
        shard.send(Command::CreateAccount {
            id: AccountId::parse(id).expect("valid id"),
            currency: usd,
            overdraft_limit: Decimal::ZERO,
        });
    }
    shard.send(Command::Deposit {
        account: AccountId::parse("payer").expect("valid id"),
        id: OpId::parse("dep").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(100), Decimal::from(1_000_000)).expect("amount"),
        currency: None,
        replayable: true,
    });
}

fn pay<'a>(shard: &'a mut OneShard, id: &str, amount: i64) -> &'a Reply {
    let token = shard.send(Command::CreatePayment {
        id: PaymentId::parse(id).expect("valid id"),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(amount), Decimal::from(1_000_000))
            .expect("amount"),
        currency: Currency::parse("USD").expect("known currency"),
        capture: true,
        hold_timeout_ms: 60_000,
    });
    shard.reply(token)
}

/// The journaled events of one payment, as (kind, step, outcome); a local run is
/// one entry per step, and `events` counts the journal entries.
fn payment_events(journal: &[Event]) -> Vec<(&'static str, Option<StepTag>, Option<StepOutcome>)> {
    journal
        .iter()
        .flat_map(|event| match event {
            Event::PaymentRunLocally {
                terms, outcomes, ..
            } => local_run_steps(terms, outcomes)
                .map(|(tag, _, outcome, _)| ("run locally", Some(tag), Some(outcome)))
                .collect(),
            other => payment_event(other).into_iter().collect::<Vec<_>>(),
        })
        .collect()
}

/// Journal entries that belong to payments.
fn payment_entries(journal: &[Event]) -> usize {
    journal
        .iter()
        .filter(|event| event.saga().is_some())
        .count()
}

fn payment_event(event: &Event) -> Option<(&'static str, Option<StepTag>, Option<StepOutcome>)> {
    {
        match event {
            Event::PaymentCreated { .. } => Some(("created", None, None)),
            Event::PaymentStepAppliedLocally { tag, outcome, .. } => {
                Some(("local step", Some(*tag), Some(*outcome)))
            }
            Event::PaymentStepCompleted { tag, outcome, .. } => {
                Some(("step completed", Some(*tag), Some(*outcome)))
            }
            Event::StepApplied { key, outcome, .. } => {
                Some(("step applied", Some(key.tag), Some(*outcome)))
            }
            _ => None,
        }
    }
}

fn setup_authorized_payment(shard: &mut OneShard, hold_timeout_ms: u64) -> PaymentId {
    setup_accounts(shard);
    let usd = Currency::parse("USD").expect("known currency");
    let max = Decimal::from(1_000_000);
    let payment = PaymentId::parse("pay").expect("valid id");
    let token = shard.send(Command::CreatePayment {
        id: payment.clone(),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(30), max).expect("amount"),
        currency: usd,
        capture: false,
        hold_timeout_ms,
    });
    match shard.reply(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Authorized),
        other => panic!("expected an authorization, got {other:?}"),
    }
    assert_eq!(shard.held("payer"), Decimal::from(30));
    payment
}

#[test]
fn a_void_after_the_retention_period_still_releases_the_hold() {
    // Holds live for the hold timeout (7 days by default), idempotency and step
    // records for the retention (24 hours): the hold's step record used to be
    // pruned first, and the release then found nothing to release.
    let mut shard = OneShard::new();
    let payment = setup_authorized_payment(&mut shard, 10 * RETENTION_MS);
    shard.advance(2 * RETENTION_MS);
    let token = shard.send(Command::VoidPayment {
        id: payment.clone(),
        op: None,
    });
    match shard.reply(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Voided),
        other => panic!("expected a void, got {other:?}"),
    }
    assert_eq!(shard.held("payer"), Decimal::ZERO);
    // The hold's record ages out once the hold is closed.
    shard.advance(2 * RETENTION_MS);
    assert!(shard.core.state.steps.is_empty());
}

#[test]
fn a_capture_after_the_retention_period_captures_the_hold() {
    let mut shard = OneShard::new();
    let payment = setup_authorized_payment(&mut shard, 10 * RETENTION_MS);
    shard.advance(2 * RETENTION_MS);
    let token = shard.send(Command::CapturePayment {
        id: payment,
        amount: None,
        op: None,
    });
    match shard.reply(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Captured),
        other => panic!("expected a capture, got {other:?}"),
    }
    assert_eq!(shard.held("payer"), Decimal::ZERO);
}

#[test]
fn a_hold_expiring_in_the_same_tick_as_its_record_is_still_released() {
    // The tick that expires a hold used to prune the hold's step record in the same
    // batch, before the release step ran.
    let mut shard = OneShard::new();
    let payment = setup_authorized_payment(&mut shard, 1);
    shard.advance(2 * RETENTION_MS);
    let state = &shard.core.state;
    let payment = state.payments.get(&payment).expect("payment");
    assert_eq!(payment.stage, Stage::Done);
    assert_eq!(payment.status, PaymentStatus::Expired);
    assert_eq!(shard.held("payer"), Decimal::ZERO);
}

/// A state restored from a snapshot must hash with the configured seed, not the
/// default one: otherwise a restart would undo the protection `hash_seed` gives
/// against client ids crafted to collide.
#[test]
fn a_state_recovered_from_a_snapshot_keeps_the_configured_hash_seed() {
    use std::hash::BuildHasher;
    use surge_actors::journal::{Recovered, Snapshot};
    use surge_actors::recovery::recover_state;
    use surge_actors::table::StateHasher;
    let seed = 0x5eed;
    let mut state = State::new(seed);
    state.apply(&surge_actors::event::Event::AccountCreated {
        id: AccountId::parse("a1").unwrap(),
        currency: Currency::parse("USD").unwrap(),
        overdraft_limit: Decimal::ZERO,
        at: 1,
    });
    let shard = ShardId(0);
    let recovered = Recovered {
        snapshot: Some(Snapshot::encode(shard, &state)),
        records: Vec::new(),
    };
    let (restored, _) = recover_state(shard, &recovered, seed).unwrap();
    assert_eq!(restored, state);
    let expected = StateHasher::with_seed(seed).hash_one("probe");
    assert_eq!(restored.accounts.hasher().hash_one("probe"), expected);
    assert_ne!(StateHasher::default().hash_one("probe"), expected);
}

#[test]
fn a_payment_between_accounts_of_its_own_shard_is_one_event_and_no_step_records() {
    let mut shard = OneShard::new();
    setup_accounts(&mut shard);
    match pay(&mut shard, "pay-local", 30) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Settled),
        other => panic!("expected a settled payment, got {other:?}"),
    }
    assert_eq!(
        payment_events(&shard.journal),
        vec![
            ("run locally", Some(StepTag::Debit), Some(StepOutcome::Done)),
            (
                "run locally",
                Some(StepTag::Credit),
                Some(StepOutcome::Done)
            ),
        ]
    );
    assert_eq!(payment_entries(&shard.journal), 1);
    assert!(shard.core.state.steps.is_empty());
    assert_gap_free(&shard.account_versions("payer"));
    assert_gap_free(&shard.account_versions("payee"));
    assert_eq!(shard.balance("payer"), Decimal::from(70));
    assert_eq!(shard.balance("payee"), Decimal::from(30));
    // A restart rebuilds exactly this state from the journal.
    assert_eq!(shard.replayed(), shard.core.state);
}

#[test]
fn a_same_shard_payment_without_the_funds_is_refused_and_moves_nothing() {
    let mut shard = OneShard::new();
    setup_accounts(&mut shard);
    match pay(&mut shard, "pay-too-much", 130) {
        Reply::Payment { payment, .. } => {
            assert_eq!(payment.status, PaymentStatus::Rejected);
            assert_eq!(
                payment.code.map(|code| code.code()),
                Some("insufficient_funds")
            );
        }
        other => panic!("expected a rejected payment, got {other:?}"),
    }
    assert_eq!(
        payment_events(&shard.journal),
        vec![(
            "run locally",
            Some(StepTag::Debit),
            Some(StepOutcome::Rejected(Rejection::InsufficientFunds))
        )]
    );
    assert_eq!(payment_entries(&shard.journal), 1);
    assert_eq!(shard.balance("payer"), Decimal::from(100));
    assert_eq!(shard.balance("payee"), Decimal::ZERO);
    assert_eq!(shard.replayed(), shard.core.state);
}

#[test]
fn a_same_shard_payment_whose_credit_is_refused_is_refunded_and_its_payer_feed_sees_both_changes() {
    let mut shard = OneShard::new();
    setup_accounts(&mut shard);
    shard.send(Command::CreateAccount {
        id: AccountId::parse("euro-payee").expect("valid id"),
        currency: Currency::parse("EUR").expect("known currency"),
        overdraft_limit: Decimal::ZERO,
    });
    let token = shard.send(Command::CreatePayment {
        id: PaymentId::parse("pay-euro").expect("valid id"),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("euro-payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(30), Decimal::from(1_000_000)).expect("amount"),
        currency: Currency::parse("USD").expect("known currency"),
        capture: true,
        hold_timeout_ms: 60_000,
    });
    match shard.reply(token) {
        Reply::Payment { payment, .. } => {
            assert_eq!(payment.status, PaymentStatus::Rejected);
            assert_eq!(payment.code, Some(Rejection::CurrencyMismatch));
        }
        other => panic!("expected a rejected payment, got {other:?}"),
    }
    assert_eq!(
        payment_events(&shard.journal),
        vec![
            ("created", None, None),
            ("local step", Some(StepTag::Debit), Some(StepOutcome::Done)),
            (
                "local step",
                Some(StepTag::Credit),
                Some(StepOutcome::Rejected(Rejection::CurrencyMismatch))
            ),
            ("local step", Some(StepTag::Refund), Some(StepOutcome::Done)),
        ]
    );
    // The payer's balance changed twice (debit, refund): its feed hears both.
    let payer_versions = shard.account_versions("payer");
    assert_gap_free(&payer_versions);
    assert_eq!(
        payer_versions.len(),
        3,
        "the deposit, the debit, the refund"
    );
    // The debit went back: nothing moved, and a restart rebuilds the same state.
    assert_eq!(shard.balance("payer"), Decimal::from(100));
    assert_eq!(shard.replayed(), shard.core.state);
}

/// Versions that follow each other by one (a feed's `seq` without gaps).
fn assert_gap_free(versions: &[u64]) {
    assert!(!versions.is_empty(), "the feed heard of the account");
    for pair in versions.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "feed versions {versions:?} have a gap"
        );
    }
}

#[test]
fn a_line_reserve_resent_after_its_record_aged_out_does_not_reserve_twice() {
    // Found by the simulator (seeds 202 and 404 at 5,000 steps): a coordinator
    // kept resending one line's reserve while its answers were lost; once the
    // item shard's step record aged out, the resend reserved the line again and
    // the item counted its units twice.
    let mut shard = OneShard::new();
    let sku = Sku::parse("gadget").expect("valid sku");
    shard.send(Command::CreateItem {
        sku: sku.clone(),
        price: Amount::from_decimal(Decimal::from(5), Decimal::from(1_000_000)).expect("price"),
        currency: Currency::parse("USD").expect("known currency"),
        stock: 10,
    });
    let reserve = || {
        ShardMessage::LineStep(LineStepRequest {
            order: OrderId::parse("ord-elsewhere").expect("valid id"),
            line: 0,
            sku: sku.clone(),
            kind: LineStepKind::Reserve {
                quantity: Quantity::parse(2, 100).expect("quantity"),
            },
            reply_to: ShardId(0),
        })
    };
    let reserved = |shard: &OneShard| shard.core.state.items.get(&sku).expect("item").reserved;
    shard.core.message(reserve());
    shard.flush();
    assert_eq!(reserved(&shard), 2);
    // Past the retention period: the step record is pruned, the reservation stays.
    for _ in 0..4 {
        shard.advance(RETENTION_MS);
    }
    assert!(
        shard.core.state.steps.is_empty(),
        "the step record aged out"
    );
    shard.core.message(reserve());
    shard.flush();
    assert_eq!(reserved(&shard), 2, "the line is reserved once");
    assert_eq!(shard.core.state.reservations.len(), 1);
    assert_eq!(shard.replayed(), shard.core.state);
}
