//! The journal format, pinned: one event of every `Event` variant encoded as a
//! record and a small snapshot are compared byte for byte with the files in
//! `tests/golden/`, and those files are decoded back and compared with the values
//! built here, so that a change to how journals are written or read is caught
//! before it ships (see "Journal compatibility" in `surge_actors::journal`).
//!
//! `SURGE_BLESS=1 cargo test -p surge-actors --test journal_format` rewrites the
//! files of the current format; do that only for a deliberate format change, after
//! bumping `JOURNAL_FORMAT_VERSION`.

use rust_decimal::Decimal;
use serde::de::{Error as _, Visitor};
use serde::Deserialize as _;
use std::path::PathBuf;
use std::sync::Arc;
use surge_actors::archive::{ArchiveKey, Archived};
use surge_actors::domain::{
    AccountId, Currency, OpId, OrderId, PaymentId, Quantity, ReservationId, Sku, TimestampMs,
};
use surge_actors::event::Event;
use surge_actors::journal::{
    checksum, JournalRecord, Recovered, Snapshot, JOURNAL_FORMAT_OLDEST, JOURNAL_FORMAT_VERSION,
};
use surge_actors::model::{
    Account, Ending, FirstOutcome, Item, OpKey, OpOutcome, OpRecord, Payment, PaymentStatus,
    PaymentTerms, Reservation, ReservationKey, ReservationStatus, SagaId, Stage, StepEffect,
    StepKey, StepOrigin, StepOutcome, StepRecord, StepTag, TimerKey,
};
use surge_actors::order::{
    LineProgress, LineState, Order, OrderEnding, OrderLine, OrderStage, OrderStatus, OrderTerms,
};
use surge_actors::recovery::recover_state;
use surge_actors::state::State;
use surge_actors::{JournalError, Rejection, ShardId};

/// The record the events are encoded as.
const SHARD: ShardId = ShardId(3);
const EPOCH: u64 = 7;
const FIRST_SEQ: u64 = 1_000;
/// The snapshot's state: its seed, and the sequence number it was taken at.
const HASH_SEED: u64 = 0x5eed;
const SNAPSHOT_SEQ: u64 = 42;
/// A fixed instant, and deadlines after it.
const AT: TimestampMs = 1_764_000_000_000;
const LATER: TimestampMs = AT + 30_000;

const HOW_TO_CHANGE: &str = "\
If this change is intended: bump JOURNAL_FORMAT_VERSION in actors/src/journal.rs, \
add the new format to the list in its `# Journal compatibility` section (and say \
whether older formats still read), then bless the golden files with \
`SURGE_BLESS=1 cargo test -p surge-actors --test journal_format`. \
If it is not intended, the change breaks every journal already written: undo it.";

/// The name of an event's variant. No wildcard arm: a new variant does not
/// compile until it is named here, and `every_variant` then wants a sample of it.
fn variant_name(event: &Event) -> &'static str {
    match event {
        Event::AccountCreated { .. } => "AccountCreated",
        Event::BalanceChanged { .. } => "BalanceChanged",
        Event::OpRecorded { .. } => "OpRecorded",
        Event::PaymentCreated { .. } => "PaymentCreated",
        Event::PaymentStepCompleted { .. } => "PaymentStepCompleted",
        Event::PaymentCaptureRequested { .. } => "PaymentCaptureRequested",
        Event::PaymentReleaseRequested { .. } => "PaymentReleaseRequested",
        Event::StepApplied { .. } => "StepApplied",
        Event::ItemCreated { .. } => "ItemCreated",
        Event::Restocked { .. } => "Restocked",
        Event::Reserved { .. } => "Reserved",
        Event::ReservationClosed { .. } => "ReservationClosed",
        Event::OrderCreated { .. } => "OrderCreated",
        Event::OrderStepCompleted { .. } => "OrderStepCompleted",
        Event::OrderEndRequested { .. } => "OrderEndRequested",
        Event::LineStepApplied { .. } => "LineStepApplied",
        Event::RecordsPruned { .. } => "RecordsPruned",
        Event::PaymentStepAppliedLocally { .. } => "PaymentStepAppliedLocally",
        Event::PaymentRunLocally { .. } => "PaymentRunLocally",
        Event::OrderRefusedLocally { .. } => "OrderRefusedLocally",
        Event::OrderRunLocally { .. } => "OrderRunLocally",
        Event::OrderRejectedLocally { .. } => "OrderRejectedLocally",
        Event::EntitiesArchived { .. } => "EntitiesArchived",
        Event::EntityRecalled { .. } => "EntityRecalled",
        Event::StepFloorRaised { .. } => "StepFloorRaised",
    }
}

/// `Event`'s variants in declaration order, as serde sees them (what its derived
/// `Deserialize` hands to `deserialize_enum`).
fn declared_variants() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Introspect<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only an enum is introspected"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(Self::Error::custom("introspected"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            struct identifier ignored_any
        }
    }

    let mut variants: &'static [&'static str] = &[];
    let _ = Event::deserialize(Introspect(&mut variants));
    assert!(!variants.is_empty(), "Event deserializes as an enum");
    variants
}

/// Where the sample steps come from.
fn origin() -> StepOrigin {
    StepOrigin {
        from: ShardId(1),
        stamp: 977,
    }
}

fn account(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

fn payment(id: &str) -> PaymentId {
    PaymentId::parse(id).unwrap()
}

fn order(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}

fn sku(id: &str) -> Sku {
    Sku::parse(id).unwrap()
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn money(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

fn op_key() -> OpKey {
    OpKey::new("deposit", "payer", &OpId::parse("dep-1").unwrap())
}

fn payment_terms() -> PaymentTerms {
    PaymentTerms {
        from: account("payer"),
        to: account("payee"),
        amount: money("25.00"),
        currency: usd(),
        capture: false,
        hold_timeout_ms: 60_000,
    }
}

fn order_terms() -> OrderTerms {
    OrderTerms {
        account: account("payer"),
        merchant: account("merchant"),
        lines: vec![
            OrderLine {
                sku: sku("sku-1"),
                quantity: Quantity::parse(2, 1_000).unwrap(),
            },
            OrderLine {
                sku: sku("sku-2"),
                quantity: Quantity::parse(1, 1_000).unwrap(),
            },
        ],
    }
}

fn payment_step(tag: StepTag) -> StepKey {
    StepKey {
        saga: SagaId::Payment(payment("pay-1")),
        tag,
    }
}

fn order_step(tag: StepTag) -> StepKey {
    StepKey {
        saga: SagaId::Order(order("ord-1")),
        tag,
    }
}

/// One event of every variant, in declaration order, with fixed values.
#[expect(
    clippy::too_many_lines,
    reason = "one sample of every event variant, in declaration order"
)]
fn every_variant() -> Vec<Event> {
    let sku_1_price = Some((money("9.99"), usd()));
    vec![
        Event::AccountCreated {
            id: account("payer"),
            currency: usd(),
            overdraft_limit: money("50.00"),
            at: AT,
        },
        Event::BalanceChanged {
            account: account("payer"),
            delta: money("-12.34"),
            at: AT,
        },
        Event::OpRecorded {
            key: op_key(),
            record: OpRecord {
                fingerprint: 0xfeed_beef_0bad_cafe,
                outcome: OpOutcome::BalanceChanged {
                    id: OpId::parse("dep-1").unwrap(),
                    account: account("payer"),
                    amount: money("100.00"),
                    balance: money("87.66"),
                },
                at: AT,
            },
            expires_at: LATER,
        },
        Event::PaymentCreated {
            id: payment("pay-1"),
            terms: payment_terms(),
            rejected: None,
            at: AT,
        },
        Event::PaymentStepCompleted {
            id: payment("pay-1"),
            tag: StepTag::Hold,
            outcome: StepOutcome::Done,
            at: AT,
        },
        Event::PaymentCaptureRequested {
            id: payment("pay-1"),
            amount: money("20.00"),
            at: AT,
        },
        Event::PaymentReleaseRequested {
            id: payment("pay-1"),
            ending: Ending::Rejected(Rejection::AmountExceedsAuthorization),
            at: AT,
        },
        Event::StepApplied {
            key: payment_step(StepTag::Hold),
            account: account("payer"),
            outcome: StepOutcome::Done,
            effect: StepEffect {
                balance_delta: Decimal::ZERO,
                held_delta: money("25.00"),
            },
            amount: money("25.00"),
            expires_at: LATER,
            at: AT,
            origin: Some(origin()),
        },
        Event::ItemCreated {
            sku: sku("sku-1"),
            price: money("9.99"),
            currency: usd(),
            stock: 100,
            at: AT,
        },
        Event::Restocked {
            sku: sku("sku-1"),
            quantity: 5,
            at: AT,
        },
        Event::Reserved {
            sku: sku("sku-1"),
            id: ReservationId::parse("res-1").unwrap(),
            quantity: 2,
            ttl_ms: 30_000,
            expires_at: LATER,
            at: AT,
        },
        Event::ReservationClosed {
            sku: sku("sku-1"),
            id: ReservationId::parse("res-1").unwrap(),
            status: ReservationStatus::Committed,
            at: AT,
        },
        Event::OrderCreated {
            id: order("ord-1"),
            terms: order_terms(),
            deadline: LATER,
            at: AT,
        },
        Event::OrderStepCompleted {
            id: order("ord-1"),
            tag: StepTag::ReserveLine(1),
            outcome: StepOutcome::Rejected(Rejection::OutOfStock),
            price: sku_1_price,
            at: AT,
        },
        Event::OrderEndRequested {
            id: order("ord-1"),
            ending: OrderEnding::Cancelled,
            at: AT,
        },
        Event::LineStepApplied {
            key: order_step(StepTag::ReserveLine(0)),
            outcome: StepOutcome::Done,
            expires_at: LATER,
            at: AT,
            origin: Some(origin()),
        },
        Event::RecordsPruned {
            ops: vec![(LATER, op_key())],
            steps: vec![(LATER, payment_step(StepTag::Hold))],
        },
        Event::PaymentStepAppliedLocally {
            id: payment("pay-2"),
            tag: StepTag::Debit,
            account: account("payer"),
            outcome: StepOutcome::Done,
            effect: StepEffect {
                balance_delta: money("-5.00"),
                held_delta: Decimal::ZERO,
            },
            at: AT,
        },
        Event::PaymentRunLocally {
            id: payment("pay-3"),
            terms: PaymentTerms {
                capture: true,
                ..payment_terms()
            },
            outcomes: vec![StepOutcome::Done, StepOutcome::Done],
            at: AT,
        },
        Event::OrderRefusedLocally {
            id: order("ord-2"),
            terms: order_terms(),
            deadline: LATER,
            refusals: vec![
                (Rejection::OutOfStock, sku_1_price),
                (Rejection::ItemNotFound, None),
            ],
            at: AT,
        },
        Event::OrderRunLocally {
            id: order("ord-3"),
            terms: order_terms(),
            deadline: LATER,
            unit_prices: vec![money("9.99"), money("4.50")],
            currency: usd(),
            at: AT,
        },
        Event::OrderRejectedLocally {
            id: order("ord-4"),
            terms: order_terms(),
            deadline: LATER,
            answers: vec![
                (StepOutcome::Done, sku_1_price),
                (
                    StepOutcome::Rejected(Rejection::OutOfStock),
                    Some((money("4.50"), usd())),
                ),
            ],
            at: AT,
        },
        Event::EntitiesArchived { through_seq: 40 },
        Event::EntityRecalled {
            entity: Archived::Reservation(Reservation {
                sku: sku("sku-1"),
                id: ReservationId::parse("res-9").expect("valid id"),
                quantity: 2,
                ttl_ms: 60_000,
                status: ReservationStatus::Committed,
                expires_at: LATER,
                created_at: AT,
            }),
            at: AT,
        },
        Event::StepFloorRaised {
            from: origin().from,
            floor: origin().stamp + 1,
        },
    ]
}

/// A small state with one entity in each map: a hash map is encoded in its
/// iteration order, which follows the hasher (its seed, foldhash's version and
/// the platform) and the map's history, so with two entries the bytes could
/// differ between machines for the same state. With one, the bytes are fixed
/// whatever the hasher. The timers are a sorted set, so they hold several.
#[expect(
    clippy::too_many_lines,
    reason = "a sample entry in every table of the state"
)]
fn small_state() -> State {
    let mut state = State::new(HASH_SEED);
    state.accounts.insert(
        account("payer"),
        Account {
            id: account("payer"),
            currency: usd(),
            balance: money("87.66"),
            held: money("25.00"),
            overdraft_limit: money("50.00"),
            version: 3,
            created_at: AT,
        },
    );
    state.payments.insert(
        payment("pay-1"),
        Arc::new(Payment {
            id: payment("pay-1"),
            terms: payment_terms(),
            status: PaymentStatus::Authorized,
            code: None,
            stage: Stage::Capture {
                amount: money("20.00"),
            },
            captured_amount: Decimal::ZERO,
            hold_expires_at: Some(LATER),
            first: Some(FirstOutcome {
                status: PaymentStatus::Authorized,
                code: None,
                at: AT,
            }),
            created_at: AT,
            updated_at: AT + 1,
            stage_seq: SNAPSHOT_SEQ - 2,
        }),
    );
    state.items.insert(
        sku("sku-1"),
        Item {
            sku: sku("sku-1"),
            price: money("9.99"),
            currency: usd(),
            initial_stock: 100,
            on_hand: 105,
            reserved: 2,
            version: 4,
            created_at: AT,
        },
    );
    let reservation = ReservationKey {
        sku: sku("sku-1"),
        id: ReservationId::for_order_line(&order("ord-1"), 0),
    };
    state.reservations.insert(
        reservation.clone(),
        Reservation {
            sku: sku("sku-1"),
            id: reservation.id.clone(),
            quantity: 2,
            ttl_ms: 30_000,
            status: ReservationStatus::Held,
            expires_at: LATER,
            created_at: AT,
        },
    );
    state.orders.insert(
        order("ord-1"),
        Arc::new(Order {
            id: order("ord-1"),
            terms: order_terms(),
            status: OrderStatus::Pending,
            reason: None,
            stage: OrderStage::ReleasingLines(OrderEnding::Rejected(Rejection::OutOfStock)),
            lines: vec![
                LineProgress {
                    state: LineState::Reserved,
                    unit_price: Some(money("9.99")),
                    currency: Some(usd()),
                },
                LineProgress {
                    state: LineState::Refused(Rejection::OutOfStock),
                    unit_price: Some(money("4.50")),
                    currency: Some(usd()),
                },
            ],
            total: None,
            currency: None,
            history: vec![(OrderStatus::Pending, AT)],
            ending_requested: Some(OrderEnding::Expired),
            deadline: LATER,
            created_at: AT,
            updated_at: AT + 2,
            stage_seq: SNAPSHOT_SEQ - 3,
        }),
    );
    state.ops.insert(
        op_key(),
        OpRecord {
            fingerprint: 0xfeed_beef_0bad_cafe,
            outcome: OpOutcome::Restocked {
                on_hand: 105,
                reserved: 2,
                version: 4,
            },
            at: AT,
        },
    );
    state.steps.insert(
        payment_step(StepTag::Hold),
        StepRecord {
            account: Some(account("payer")),
            outcome: StepOutcome::Done,
            amount: money("25.00"),
            at: AT,
            origin: Some(origin()),
        },
    );
    state.step_floors.insert(origin().from, origin().stamp);
    state.step_stamps.insert((
        origin().from,
        origin().stamp + 1,
        Some(order_step(StepTag::ReserveLine(0))),
    ));
    for timer in [
        TimerKey::PaymentHold(payment("pay-1")),
        TimerKey::Reservation(reservation),
        TimerKey::Op(op_key()),
        TimerKey::Step(payment_step(StepTag::Hold)),
        TimerKey::OrderDeadline(order("ord-1")),
    ] {
        state.timers.insert((LATER, timer));
    }
    state.last_seq = SNAPSHOT_SEQ;
    let queued = ArchiveKey::Order(order("ord-9"));
    state
        .finished
        .insert(queued.clone(), (SNAPSHOT_SEQ - 1, AT));
    state
        .finished_queue
        .push_back((SNAPSHOT_SEQ - 1, AT, queued));
    state
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn blessing() -> bool {
    std::env::var("SURGE_BLESS").is_ok_and(|value| value == "1")
}

/// Compares `encoded` with the committed file, or rewrites the file when blessing.
fn check_golden(name: &str, encoded: &[u8]) {
    let path = golden_path(name);
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, encoded).unwrap();
        eprintln!("blessed {} ({} bytes)", path.display(), encoded.len());
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "the journal format changed: no golden file {} ({error}) for format {}.\n{HOW_TO_CHANGE}",
            path.display(),
            JOURNAL_FORMAT_VERSION
        )
    });
    if committed != encoded {
        let first_difference = committed
            .iter()
            .zip(encoded)
            .position(|(a, b)| a != b)
            .unwrap_or(committed.len().min(encoded.len()));
        panic!(
            "the journal format changed: {name} no longer matches {} \
             (committed {} bytes, encoded now {} bytes, first difference at byte {first_difference}).\n\
             {HOW_TO_CHANGE}",
            path.display(),
            committed.len(),
            encoded.len(),
        );
    }
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden_path(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn journal_file(format: u16) -> String {
    format!("journal_v{format}.bin")
}

fn snapshot_file(format: u16) -> String {
    format!("snapshot_v{format}.bin")
}

#[test]
fn the_samples_cover_every_event_variant_in_declaration_order() {
    let samples: Vec<&str> = every_variant().iter().map(variant_name).collect();
    assert_eq!(
        samples,
        declared_variants(),
        "every_variant() must hold one event of each Event variant, in declaration order"
    );
}

#[test]
fn every_event_variant_encodes_to_the_committed_bytes_and_decodes_from_them() {
    let events = every_variant();
    let record = JournalRecord::encode(SHARD, EPOCH, FIRST_SEQ, &events);
    assert_eq!(record.format, JOURNAL_FORMAT_VERSION);
    assert_eq!(record.last_seq, FIRST_SEQ + events.len() as u64 - 1);
    check_golden(&journal_file(JOURNAL_FORMAT_VERSION), &record.payload);

    // Reading is pinned too: the committed bytes decode to the very same events.
    let payload = read_golden(&journal_file(JOURNAL_FORMAT_VERSION));
    let committed = JournalRecord {
        checksum: checksum(&payload),
        payload,
        ..record
    };
    assert_eq!(
        committed.decode().expect("the committed record decodes"),
        events,
        "the committed journal bytes no longer decode to the same events.\n{HOW_TO_CHANGE}"
    );
}

#[test]
fn a_small_snapshot_encodes_to_the_committed_bytes_and_decodes_from_them() {
    let state = small_state();
    for (table, entries) in [
        ("accounts", state.accounts.len()),
        ("payments", state.payments.len()),
        ("items", state.items.len()),
        ("reservations", state.reservations.len()),
        ("orders", state.orders.len()),
        ("ops", state.ops.len()),
        ("steps", state.steps.len()),
        ("finished", state.finished.len()),
        ("step_floors", state.step_floors.len()),
    ] {
        assert_eq!(
            entries, 1,
            "{table}: one entry per hash map keeps the bytes fixed"
        );
    }
    let snapshot = Snapshot::encode(SHARD, &state);
    assert_eq!(snapshot.format, JOURNAL_FORMAT_VERSION);
    assert_eq!(snapshot.seq, SNAPSHOT_SEQ);
    check_golden(&snapshot_file(JOURNAL_FORMAT_VERSION), &snapshot.payload);

    let payload = read_golden(&snapshot_file(JOURNAL_FORMAT_VERSION));
    let committed = Snapshot {
        checksum: checksum(&payload),
        payload,
        ..snapshot
    };
    assert_eq!(
        committed.decode().expect("the committed snapshot decodes"),
        state,
        "the committed snapshot bytes no longer decode to the same state.\n{HOW_TO_CHANGE}"
    );
}

/// The golden files of every format this binary reads, older ones included,
/// decode, and their events' variants are the first of today's enum in the same
/// order: variants are only ever appended.
#[test]
fn every_format_read_still_decodes_and_its_variants_come_first() {
    let declared = declared_variants();
    for format in JOURNAL_FORMAT_OLDEST..=JOURNAL_FORMAT_VERSION {
        let payload = read_golden(&journal_file(format));
        let events: Vec<Event> = rmp_serde::from_slice(&payload)
            .unwrap_or_else(|error| panic!("format {format}'s golden record: {error}"));
        let names: Vec<&str> = events.iter().map(variant_name).collect();
        assert_eq!(names, declared[..names.len()], "format {format}");
        let record = JournalRecord {
            shard: SHARD,
            epoch: EPOCH,
            first_seq: FIRST_SEQ,
            last_seq: FIRST_SEQ + events.len() as u64 - 1,
            format,
            checksum: checksum(&payload),
            payload,
            changes: None,
        };
        assert_eq!(record.decode().as_ref(), Ok(&events), "format {format}");

        let payload = read_golden(&snapshot_file(format));
        let snapshot = Snapshot {
            shard: SHARD,
            seq: SNAPSHOT_SEQ,
            format,
            checksum: checksum(&payload),
            payload,
            base_seq: None,
        };
        let state = snapshot.decode();
        assert!(
            state.is_ok(),
            "format {format}'s golden snapshot: {state:?}"
        );
    }
}

/// The checksum is part of the format: every stored record is checked with it.
#[test]
fn the_checksum_is_xxh3_64_of_the_payload() {
    assert_eq!(checksum(b"surge journal"), 0x5e42_a903_18bb_536b);
}

#[test]
fn a_record_or_snapshot_of_a_format_this_binary_does_not_read_is_refused_clearly() {
    let newer = JOURNAL_FORMAT_VERSION + 1;
    let mut record = JournalRecord::encode(SHARD, EPOCH, FIRST_SEQ, &every_variant()[..1]);
    record.format = newer;
    let error = record.decode().unwrap_err();
    assert_eq!(
        error,
        JournalError::UnsupportedFormat {
            what: "record",
            shard: SHARD,
            seq: FIRST_SEQ,
            found: newer,
            known: JOURNAL_FORMAT_VERSION,
        }
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "shard {SHARD} record at sequence {FIRST_SEQ} was written by a newer Surge (format {newer}; this binary reads format"
        )),
        "{message}"
    );

    // A format below the oldest read is refused too, with no claim about who wrote it.
    record.format = JOURNAL_FORMAT_OLDEST - 1;
    let message = record.decode().unwrap_err().to_string();
    assert!(
        message.contains("which this binary does not read"),
        "{message}"
    );

    let mut snapshot = Snapshot::encode(SHARD, &small_state());
    snapshot.format = newer;
    assert!(matches!(
        snapshot.decode(),
        Err(JournalError::UnsupportedFormat { what: "snapshot", seq: SNAPSHOT_SEQ, found, .. })
            if found == newer
    ));

    // Recovery stops at either, as it does at a corrupt journal.
    let recovered = Recovered {
        snapshot: Some(snapshot),
        base: None,
        records: Vec::new(),
    };
    assert!(matches!(
        recover_state(SHARD, &recovered, HASH_SEED),
        Err(JournalError::UnsupportedFormat {
            what: "snapshot",
            ..
        })
    ));
    record.format = newer;
    let recovered = Recovered {
        snapshot: None,
        base: None,
        records: vec![JournalRecord {
            first_seq: 1,
            last_seq: 1,
            ..record
        }],
    };
    assert!(matches!(
        recover_state(SHARD, &recovered, HASH_SEED),
        Err(JournalError::UnsupportedFormat { what: "record", found, .. }) if found == newer
    ));
}
