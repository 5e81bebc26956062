//! How many records per second the audit writer sustains: 10,000 exchanges with 4 KB request
//! and 8 KB response bodies, queued as the proxy queues them and written in batches.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use tollgate::policy::{CheckpointPolicy, RecordingPolicy, StoreFailure};
use tollgate::record::checkpoint::{AuditKey, Checkpointer};
use tollgate::record::{Record, RecordKind, Recorder};

const N: usize = 10_000;

fn record(n: usize) -> Record {
    let mut r = Record::new(
        RecordKind::Exchange,
        "127.0.0.1:5000",
        "127.0.0.1",
        "intercepted",
        "api.openai.com",
    );
    r.method = Some("POST".into());
    r.path = Some("/v1/chat/completions".into());
    r.status = Some(200);
    r.outcome = "complete".into();
    r.duration_ms = n as u64;
    r.request_body = vec![b'x'; 4096];
    r.response_body = vec![b'y'; 8192];
    r
}

/// Times writing N records through a fresh store, each handed to the recorder by `send`.
fn write_all(
    b: &mut criterion::Bencher<'_>,
    retention: &RecordingPolicy,
    send: impl Fn(&Recorder, Record),
) {
    b.iter_batched(
        || {
            let dir = tempfile::tempdir().unwrap();
            let records: Vec<Record> = (0..N).map(record).collect();
            (dir, records)
        },
        |(dir, records)| {
            let db = dir.path().join("bench.db");
            let checkpoints =
                Checkpointer::new(AuditKey::generate(), &retention.checkpoints, &db).unwrap();
            let (recorder, writer) = Recorder::start(
                &tollgate::record::StoreLocation::Sqlite(db.clone()),
                retention.clone(),
                tollgate::record::QueueLimits::default(),
                checkpoints,
            )
            .unwrap();
            for r in records {
                send(&recorder, r);
            }
            writer.finish(std::time::Instant::now());
            assert_eq!(recorder.dropped(), 0);
            dir
        },
        BatchSize::PerIteration,
    )
}

fn recording(c: &mut Criterion) {
    let retention = RecordingPolicy {
        bodies: Duration::from_secs(86_400),
        records: Duration::from_secs(86_400),
        on_store_failure: StoreFailure::Refuse,
        store_originals: false,
        enabled: true,
        checkpoints: CheckpointPolicy::default(),
    };
    let mut group = c.benchmark_group("recording");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    // Finished records only.
    group.bench_function("10k exchanges, 12 KB bodies each", |b| {
        write_all(b, &retention, |recorder, r| recorder.record(r))
    });
    // What the proxy does: each exchange is written aside when it starts (with its request) and
    // replaced by its record when it ends.
    group.bench_function("10k exchanges opened then closed, 12 KB bodies each", |b| {
        write_all(b, &retention, |recorder, r| {
            let mut started = r.clone();
            started.response_body.clear();
            let key = recorder.open(started);
            recorder.close(key, r);
        })
    });
    group.finish();
}

criterion_group!(benches, recording);
criterion_main!(benches);
