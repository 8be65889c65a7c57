//! Micro-benchmark of `POST /v1/payments/batch` body parsing: the same 8190
//! payments as JSON and as MessagePack, decoded by the server's own decoder.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use surge::api::body::{decode, Encoding};
use surge::api::dto::{CreatePaymentRequest, PaymentsBatchRequest};
// The largest batch docs/API.md allows.
use surge::api::limits::PAYMENTS_PER_BATCH_MAX as PAYMENTS_PER_BATCH;

fn batch() -> PaymentsBatchRequest {
    PaymentsBatchRequest {
        payments: (0..PAYMENTS_PER_BATCH)
            .map(|i| CreatePaymentRequest {
                id: Some(format!("b0000000-p{i}")),
                from: format!("b0000000-a{}", i % 10_000),
                to: format!("b0000000-a{}", (i * 7 + 1) % 10_000),
                amount: format!("{}.{:02}", i % 10, i % 100),
                currency: "USD".into(),
                capture: None,
                hold_timeout_ms: None,
            })
            .collect(),
    }
}

fn parsing(c: &mut Criterion) {
    let batch = batch();
    let json = serde_json::to_vec(&batch).expect("batch encodes to JSON");
    let msgpack = rmp_serde::to_vec_named(&batch).expect("batch encodes to MessagePack");
    let mut group = c.benchmark_group("payments_batch_parse");
    group.throughput(Throughput::Elements(PAYMENTS_PER_BATCH as u64));
    group.bench_function("json", |b| {
        b.iter(|| {
            let parsed: PaymentsBatchRequest =
                decode(black_box(&json), Encoding::Json).expect("valid JSON batch");
            black_box(parsed)
        })
    });
    group.bench_function("msgpack", |b| {
        b.iter(|| {
            let parsed: PaymentsBatchRequest =
                decode(black_box(&msgpack), Encoding::MessagePack).expect("valid msgpack batch");
            black_box(parsed)
        })
    });
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
