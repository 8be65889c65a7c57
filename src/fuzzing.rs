//! What the fuzz targets run (`fuzz/`, built with cargo-afl) and what their
//! corpus and every input that ever crashed one run again in the ordinary
//! test suite (`tests/fuzz_regressions.rs`): everything that decodes bytes
//! from outside the process. Request bodies of every endpoint in JSON and
//! MessagePack, the feed's client messages, and what storage gives back:
//! journal records, snapshots and their chunks, archived entities.
//!
//! Each target takes any bytes. It may find them wrong, and must then say so
//! with an error; it must never panic, hang or take a wrong value for a right
//! one. It returns whether the input decoded (the corpus should mostly).
//! Where a property can be checked it is: what decodes encodes back to
//! the same value, a record is refused once its checksum is off, chunks
//! assemble only when every one came in order.

use crate::api::admin::FaultRequest;
use crate::api::body::{decode, Encoding};
use crate::api::dto::{
    BalanceChangeRequest, CaptureRequest, CreateAccountRequest, CreateItemRequest,
    CreateOrderRequest, CreatePaymentRequest, PaymentsBatchRequest, ReserveRequest, RestockRequest,
};
use crate::api::limits::ApiLimits;
use crate::feed::topic::Topic;
use crate::feed::ws::ClientMessage;
use surge_actors::archive::Archived;
use surge_actors::domain::{AccountId, Amount, Quantity, Sku};
use surge_actors::journal::{checksum, JournalRecord, Recovered, Snapshot, JOURNAL_FORMAT_VERSION};
use surge_actors::recovery::recover_state;
use surge_actors::state::State;
use surge_actors::ShardId;

/// A target: any bytes in, whether they decoded out.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name: the names of `fuzz/src/bin/` and of the corpus and
/// regression directories.
pub const TARGETS: [(&str, Target); 5] = [
    ("request_body", request_body),
    ("feed_message", feed_message),
    ("journal_record", journal_record),
    ("snapshot", snapshot),
    ("archived", archived),
];

/// The request bodies, kinds in the order of the first byte's low bits.
const BODIES: u8 = 10;

/// A request body: the first byte picks the endpoint (low bits) and the
/// encoding (high bit: MessagePack), the rest is the body. Decoded as the
/// server decodes it, then parsed into an engine command with the default
/// limits.
pub fn request_body(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let encoding = if selector & 0x80 == 0 {
        Encoding::Json
    } else {
        Encoding::MessagePack
    };
    let limits = ApiLimits::default();
    let account = AccountId::parse("fuzz").expect("a valid id");
    let sku = Sku::parse("fuzz").expect("a valid sku");
    match (selector & 0x7f) % BODIES {
        0 => parsed(decode::<CreateAccountRequest>(body, encoding), |b| {
            b.parse(&limits).map(drop)
        }),
        1 => parsed(decode::<BalanceChangeRequest>(body, encoding), |b| {
            b.parse(account.clone(), None, selector & 0x40 != 0, &limits)
                .map(drop)
        }),
        2 => {
            let payment = decode::<CreatePaymentRequest>(body, encoding);
            if let Ok(payment) = &payment {
                round_trip(payment, encoding, |p| p.parse(None, &limits).is_ok());
            }
            parsed(payment, |p| p.parse(None, &limits).map(drop))
        }
        3 => parsed(decode::<CaptureRequest>(body, encoding), |b| {
            match &b.amount {
                Some(raw) => Amount::parse(raw, limits.amount_max)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }),
        4 => parsed(decode::<PaymentsBatchRequest>(body, encoding), |batch| {
            for payment in &batch.payments {
                // Each item alone: a refusal is that item's, never the batch's.
                let _ = payment.parse(None, &limits);
            }
            Ok::<(), String>(())
        }),
        5 => parsed(decode::<CreateItemRequest>(body, encoding), |b| {
            b.parse(&limits).map(drop)
        }),
        6 => parsed(decode::<RestockRequest>(body, encoding), |b| {
            Quantity::parse(b.quantity, limits.quantity_max)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        7 => parsed(decode::<ReserveRequest>(body, encoding), |b| {
            b.parse(sku.clone(), None, &limits).map(drop)
        }),
        8 => {
            let order = decode::<CreateOrderRequest>(body, encoding);
            if let Ok(order) = &order {
                round_trip(order, encoding, |o| o.parse(None, &limits).is_ok());
            }
            parsed(order, |o| o.parse(None, &limits).map(drop))
        }
        _ => parsed(decode::<FaultRequest>(body, encoding), |_| {
            Ok::<(), String>(())
        }),
    }
}

/// A decoded body and what parsing it gave: a refusal, at either stage, says
/// what is wrong. Whether the body decoded.
fn parsed<T, E: std::fmt::Debug>(
    decoded: Result<T, crate::api::problem::Problem>,
    parse: impl FnOnce(&T) -> Result<(), E>,
) -> bool {
    match decoded {
        Ok(body) => {
            if let Err(error) = parse(&body) {
                assert!(!format!("{error:?}").is_empty());
            }
            true
        }
        Err(problem) => {
            assert_eq!(problem.status, 400, "{problem:?}");
            assert!(!problem.detail.is_empty(), "a refusal without a reason");
            false
        }
    }
}

/// A body that decodes, encoded again and decoded again, parses the same way.
fn round_trip<T>(value: &T, encoding: Encoding, parses: impl Fn(&T) -> bool)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = match encoding {
        Encoding::Json => serde_json::to_vec(value).expect("a decoded body encodes"),
        Encoding::MessagePack => rmp_serde::to_vec_named(value).expect("a decoded body encodes"),
    };
    let again: T = decode(&bytes, encoding).expect("what was decoded decodes again");
    assert_eq!(
        parses(value),
        parses(&again),
        "a round trip changed the outcome"
    );
}

/// A feed client's text frame, read as the feed reads it, its topic parsed.
pub fn feed_message(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
        return false;
    };
    if let Some(raw) = message.topic.as_deref() {
        match Topic::parse(raw) {
            Ok(topic) => assert!(!topic.to_string().is_empty()),
            Err(detail) => assert!(!detail.is_empty(), "a refused topic without a reason"),
        }
    }
    true
}

/// A journal record as storage gives it back: two bytes (little-endian) say
/// how many events the row claims, the rest is the payload, stored with its
/// own checksum (so that decoding is reached) and then with a wrong one.
/// Recovery then reads it as a shard's only record.
pub fn journal_record(data: &[u8]) -> bool {
    let [low, high, payload @ ..] = data else {
        return false;
    };
    let count = u64::from(u16::from_le_bytes([*low, *high])).max(1);
    let record = JournalRecord {
        shard: ShardId(0),
        epoch: 1,
        first_seq: 1,
        last_seq: count,
        format: JOURNAL_FORMAT_VERSION,
        checksum: checksum(payload),
        payload: payload.to_vec(),
        changes: None,
    };
    let decoded = record.decode();
    match &decoded {
        Ok(events) => {
            assert_eq!(
                events.len() as u64,
                count,
                "a record decodes to what it claims"
            );
            let again = JournalRecord::encode(ShardId(0), 1, 1, events);
            assert_eq!(&again.decode().expect("re-encoded events decode"), events);
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    let recovered = Recovered {
        snapshot: None,
        base: None,
        records: vec![record.clone()],
    };
    let recovery = recover_state(ShardId(0), &recovered, 0);
    assert_eq!(
        recovery.is_ok(),
        decoded.is_ok(),
        "recovery reads what decodes"
    );
    let mut damaged = record;
    damaged.checksum ^= 1;
    assert!(
        damaged.decode().is_err(),
        "a checksum that does not match is refused"
    );
    decoded.is_ok()
}

/// A snapshot as storage gives it back: the first byte says how many chunks
/// its row announced (0: the payload is in the row itself, the rest of the
/// input); for each chunk, a byte gives its index and two (little-endian) its
/// length. The chunks assemble only if they are exactly 0, 1, 2... up to the
/// count announced; the payload is then decoded as the snapshot of a shard's
/// state, and recovery starts from it.
pub fn snapshot(data: &[u8]) -> bool {
    let Some((&announced, rest)) = data.split_first() else {
        return false;
    };
    let expected = i32::from(announced % 8);
    let payload = if expected == 0 {
        Some(rest.to_vec())
    } else {
        chunked(expected, rest)
    };
    let Some(payload) = payload else {
        return false;
    };
    // The row's seq and base as written beside the payload: those inside it.
    let inside = rmp_serde::from_slice::<State>(&payload).ok();
    let snapshot = Snapshot {
        shard: ShardId(0),
        seq: inside.as_ref().map_or(0, |state| state.last_seq),
        format: JOURNAL_FORMAT_VERSION,
        checksum: checksum(&payload),
        payload,
        base_seq: inside
            .as_ref()
            .and_then(|state| state.archived_keys.delta_base()),
    };
    let decoded = snapshot.decode();
    if let Err(error) = &decoded {
        assert!(!error.to_string().is_empty());
    }
    let recovered = Recovered {
        snapshot: Some(snapshot),
        base: None,
        records: Vec::new(),
    };
    if let Err(error) = recover_state(ShardId(0), &recovered, 0) {
        assert!(!error.to_string().is_empty());
    }
    decoded.is_ok()
}

/// The payload of `expected` chunks framed in `framed`, if they came exactly
/// in order, checked against `ChunkAssembler`.
fn chunked(expected: i32, framed: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(i32, &[u8])> = Vec::new();
    let mut rest = framed;
    while let [index, low, high, tail @ ..] = rest {
        let length = usize::from(u16::from_le_bytes([*low, *high])).min(tail.len());
        chunks.push((i32::from(*index), &tail[..length]));
        rest = &tail[length..];
    }
    let mut assembler = crate::storage::ChunkAssembler::new(expected, framed.len() as i64);
    let in_order = chunks
        .iter()
        .all(|(index, chunk)| assembler.push(*index, chunk));
    let whole = chunks.len() == expected as usize
        && chunks
            .iter()
            .enumerate()
            .all(|(n, (index, _))| *index == n as i32);
    let payload = assembler.finish().filter(|_| in_order);
    assert_eq!(
        payload.is_some(),
        whole,
        "chunks assemble exactly when all came in order"
    );
    if let Some(payload) = &payload {
        let joined: Vec<u8> = chunks
            .iter()
            .flat_map(|(_, chunk)| chunk.iter().copied())
            .collect();
        assert_eq!(*payload, joined, "chunks assemble in order, whole");
    }
    payload
}

/// An archived entity's row body.
pub fn archived(data: &[u8]) -> bool {
    match Archived::decode(data) {
        Ok(entity) => {
            let again = Archived::decode(&entity.encode()).expect("an archived entity decodes");
            assert_eq!(again, entity, "decoding is the inverse of encoding");
            assert_eq!(again.key(), entity.key());
            true
        }
        Err(error) => {
            assert!(!error.is_empty());
            false
        }
    }
}
