//! Regression tests for engine bugs found by the property tests and the simulator,
//! and for behaviours a hot-path optimization must keep. Each test names the
//! behaviour, in one shard with instant delivery.

use rust_decimal::Decimal;
use surge_actors::command::{Command, Reply};
use surge_actors::domain::{AccountId, Amount, Currency, OpId, OrderId, PaymentId, Quantity, Sku};
use surge_actors::event::Event;
use surge_actors::model::{PaymentStatus, Stage, StepOutcome, StepTag};
use surge_actors::order::LineStepKind;
use surge_actors::rejection::Rejection;
use surge_actors::router::ShardId;
use surge_actors::shard::{LineStepRequest, ShardLimits, ShardMessage};
use surge_actors::state::local_run_steps;
use surge_actors::state::State;

mod common;

use common::{Cluster, Config};

const RETENTION_MS: u64 = 10_000;

/// One shard, every batch committed at once, starting at 1,000 ms.
fn one_shard() -> Cluster {
    Cluster::with(Config {
        limits: ShardLimits {
            retention_ms: RETENTION_MS,
            ..ShardLimits::default()
        },
        ..Config::new(1)
    })
}

/// One shard that hands finished entities and records to the archive, one
/// second after they finish.
fn one_archiving_shard() -> Cluster {
    Cluster::with(Config {
        archiving: true,
        limits: ShardLimits {
            retention_ms: RETENTION_MS,
            finished_in_memory_ms: 1_000,
            ..ShardLimits::default()
        },
        ..Config::new(1)
    })
}

fn held(shard: &Cluster, account: &str) -> Decimal {
    shard.account(account).1
}

fn balance(shard: &Cluster, account: &str) -> Decimal {
    shard.account(account).0
}

/// Two funded accounts ("payer" with 100, "payee" with 0) on the one shard.
fn setup_accounts(shard: &mut Cluster) {
    let usd = Currency::parse("USD").expect("known currency");
    for id in ["payer", "payee"] {
        shard.command(Command::CreateAccount {
            id: AccountId::parse(id).expect("valid id"),
            currency: usd,
            overdraft_limit: Decimal::ZERO,
        });
    }
    shard.command(Command::Deposit {
        account: AccountId::parse("payer").expect("valid id"),
        id: OpId::parse("dep").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(100), Decimal::from(1_000_000)).expect("amount"),
        currency: None,
        replayable: true,
    });
}

fn pay<'a>(shard: &'a mut Cluster, id: &str, amount: i64) -> &'a Reply {
    let token = shard.command(Command::CreatePayment {
        id: PaymentId::parse(id).expect("valid id"),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(amount), Decimal::from(1_000_000))
            .expect("amount"),
        currency: Currency::parse("USD").expect("known currency"),
        capture: true,
        hold_timeout_ms: 60_000,
    });
    shard.answer(token)
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

fn setup_authorized_payment(shard: &mut Cluster, hold_timeout_ms: u64) -> PaymentId {
    setup_accounts(shard);
    let usd = Currency::parse("USD").expect("known currency");
    let max = Decimal::from(1_000_000);
    let payment = PaymentId::parse("pay").expect("valid id");
    let token = shard.command(Command::CreatePayment {
        id: payment.clone(),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(30), max).expect("amount"),
        currency: usd,
        capture: false,
        hold_timeout_ms,
    });
    match shard.answer(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Authorized),
        other => panic!("expected an authorization, got {other:?}"),
    }
    assert_eq!(held(shard, "payer"), Decimal::from(30));
    payment
}

#[test]
fn a_void_after_the_retention_period_still_releases_the_hold() {
    // Holds live for the hold timeout (7 days by default), idempotency and step
    // records for the retention (24 hours): the hold's step record used to be
    // pruned first, and the release then found nothing to release. Now records
    // leave memory for the archive, an active hold's only once it is closed.
    let mut shard = one_archiving_shard();
    let payment = setup_authorized_payment(&mut shard, 10 * RETENTION_MS);
    shard.tick(2 * RETENTION_MS);
    let token = shard.command(Command::VoidPayment {
        id: payment.clone(),
        op: None,
    });
    match shard.answer(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Voided),
        other => panic!("expected a void, got {other:?}"),
    }
    assert_eq!(held(&shard, "payer"), Decimal::ZERO);
    // The hold's record leaves memory once the hold is closed and the
    // coordinator's floor has passed its release.
    shard.tick(2_000);
    shard.tick(1);
    assert!(shard.cores[0].state.steps.is_empty());
    // A release resent after that, however late, is below the floor: dropped,
    // nothing is released twice, and nothing needs looking up.
    let stamp = shard.journals[0]
        .iter()
        .find_map(|event| match event {
            Event::StepApplied { key, origin, .. } if key.tag == StepTag::Release => {
                origin.map(|o| o.stamp)
            }
            _ => None,
        })
        .expect("the release was applied, stamped");
    shard.message(
        0,
        ShardMessage::Step(surge_actors::shard::StepRequest {
            saga: surge_actors::model::SagaId::Payment(payment),
            account: AccountId::parse("payer").expect("valid id"),
            currency: Currency::parse("USD").expect("known currency"),
            kind: surge_actors::model::StepKind::Release,
            reply_to: ShardId(0),
            stamp,
        }),
    );
    assert_eq!(held(&shard, "payer"), Decimal::ZERO);
    assert_eq!(shard.account("payer").0, Decimal::from(100));
    let recalled = shard.journals[0]
        .iter()
        .filter(|event| matches!(event, Event::EntityRecalled { .. }))
        .count();
    assert_eq!(recalled, 0, "a late duplicate needs no lookup");
    shard.assert_replay_matches();
}

#[test]
fn a_capture_after_the_retention_period_captures_the_hold() {
    let mut shard = one_shard();
    let payment = setup_authorized_payment(&mut shard, 10 * RETENTION_MS);
    shard.tick(2 * RETENTION_MS);
    let token = shard.command(Command::CapturePayment {
        id: payment,
        amount: None,
        op: None,
    });
    match shard.answer(token) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Captured),
        other => panic!("expected a capture, got {other:?}"),
    }
    assert_eq!(held(&shard, "payer"), Decimal::ZERO);
}

#[test]
fn a_hold_expiring_in_the_same_tick_as_its_record_is_still_released() {
    // The tick that expires a hold used to prune the hold's step record in the same
    // batch, before the release step ran.
    let mut shard = one_shard();
    let payment = setup_authorized_payment(&mut shard, 1);
    shard.tick(2 * RETENTION_MS);
    let state = &shard.cores[0].state;
    let payment = state.payments.get(&payment).expect("payment");
    assert_eq!(payment.stage, Stage::Done);
    assert_eq!(payment.status, PaymentStatus::Expired);
    assert_eq!(held(&shard, "payer"), Decimal::ZERO);
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
        base: None,
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
    let mut shard = one_shard();
    setup_accounts(&mut shard);
    match pay(&mut shard, "pay-local", 30) {
        Reply::Payment { payment, .. } => assert_eq!(payment.status, PaymentStatus::Settled),
        other => panic!("expected a settled payment, got {other:?}"),
    }
    assert_eq!(
        payment_events(&shard.journals[0]),
        vec![
            ("run locally", Some(StepTag::Debit), Some(StepOutcome::Done)),
            (
                "run locally",
                Some(StepTag::Credit),
                Some(StepOutcome::Done)
            ),
        ]
    );
    assert_eq!(payment_entries(&shard.journals[0]), 1);
    assert!(shard.cores[0].state.steps.is_empty());
    assert_gap_free(&shard.account_versions("payer"));
    assert_gap_free(&shard.account_versions("payee"));
    assert_eq!(balance(&shard, "payer"), Decimal::from(70));
    assert_eq!(balance(&shard, "payee"), Decimal::from(30));
    // A restart rebuilds exactly this state from the journal.
    assert_eq!(shard.replayed(0), shard.cores[0].state);
}

#[test]
fn a_same_shard_payment_without_the_funds_is_refused_and_moves_nothing() {
    let mut shard = one_shard();
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
        payment_events(&shard.journals[0]),
        vec![(
            "run locally",
            Some(StepTag::Debit),
            Some(StepOutcome::Rejected(Rejection::InsufficientFunds))
        )]
    );
    assert_eq!(payment_entries(&shard.journals[0]), 1);
    assert_eq!(balance(&shard, "payer"), Decimal::from(100));
    assert_eq!(balance(&shard, "payee"), Decimal::ZERO);
    assert_eq!(shard.replayed(0), shard.cores[0].state);
}

#[test]
fn a_same_shard_payment_whose_credit_is_refused_is_refunded_and_its_payer_feed_sees_both_changes() {
    let mut shard = one_shard();
    setup_accounts(&mut shard);
    shard.command(Command::CreateAccount {
        id: AccountId::parse("euro-payee").expect("valid id"),
        currency: Currency::parse("EUR").expect("known currency"),
        overdraft_limit: Decimal::ZERO,
    });
    let token = shard.command(Command::CreatePayment {
        id: PaymentId::parse("pay-euro").expect("valid id"),
        from: AccountId::parse("payer").expect("valid id"),
        to: AccountId::parse("euro-payee").expect("valid id"),
        amount: Amount::from_decimal(Decimal::from(30), Decimal::from(1_000_000)).expect("amount"),
        currency: Currency::parse("USD").expect("known currency"),
        capture: true,
        hold_timeout_ms: 60_000,
    });
    match shard.answer(token) {
        Reply::Payment { payment, .. } => {
            assert_eq!(payment.status, PaymentStatus::Rejected);
            assert_eq!(payment.code, Some(Rejection::CurrencyMismatch));
        }
        other => panic!("expected a rejected payment, got {other:?}"),
    }
    assert_eq!(
        payment_events(&shard.journals[0]),
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
    assert_eq!(balance(&shard, "payer"), Decimal::from(100));
    assert_eq!(shard.replayed(0), shard.cores[0].state);
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
    // the item counted its units twice. Records now leave memory for the
    // archive; a resend after that must find it there.
    let mut shard = one_archiving_shard();
    let sku = Sku::parse("gadget").expect("valid sku");
    shard.command(Command::CreateItem {
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
            // A step of a saga from before stamps: its record goes to the
            // archive, as such records did, and a resend finds it there.
            stamp: surge_actors::model::UNSTAMPED,
        })
    };
    let reserved = |shard: &Cluster| shard.cores[0].state.items.get(&sku).expect("item").reserved;
    shard.message(0, reserve());
    assert_eq!(reserved(&shard), 2);
    // Past the finished window: the step record left memory, the held
    // reservation stays.
    shard.tick(2_000);
    shard.tick(1);
    assert!(
        shard.cores[0].state.steps.is_empty(),
        "the step record left memory"
    );
    shard.message(0, reserve());
    assert_eq!(reserved(&shard), 2, "the line is reserved once");
    assert_eq!(shard.cores[0].state.reservations.len(), 1);
    assert_eq!(shard.replayed(0), shard.cores[0].state);
}
