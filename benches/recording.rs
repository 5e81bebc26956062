//! How many records per second the audit writer sustains: 10,000 exchanges with 4 KB request
//! and 8 KB response bodies, queued as the proxy queues them and written in batches. With
//! `TOLLGATE_BENCH_POSTGRES=postgres://…` the same runs against that PostgreSQL database too
//! (`scripts/bench` prints the URL of the cluster it starts; any empty database will do).

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
    r.request_body = vec![b'x'; 4096].into();
    r.response_body = vec![b'y'; 8192];
    r
}

/// Times writing N records through a fresh store, each handed to the recorder by `send`.
fn write_all(
    b: &mut criterion::Bencher<'_>,
    retention: &RecordingPolicy,
    postgres: Option<&std::sync::Arc<tollgate::record::postgres::PgSettings>>,
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
            let location = match postgres {
                Some(settings) => tollgate::record::StoreLocation::Postgres(settings.clone()),
                None => tollgate::record::StoreLocation::Sqlite(db.clone()),
            };
            let (recorder, writer) = Recorder::start(
                &location,
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
    let postgres = std::env::var("TOLLGATE_BENCH_POSTGRES").ok().map(|url| {
        std::sync::Arc::new(
            tollgate::record::postgres::PgSettings::parse(
                &url,
                std::env::var(tollgate::record::postgres::PASSWORD_ENV).ok(),
                tollgate::tls::upstream::client_config(&[]).unwrap(),
                8,
                Duration::from_secs(30),
                "bench".into(),
            )
            .unwrap(),
        )
    });
    let mut group = c.benchmark_group("recording");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    for (engine, pg) in [("sqlite", None), ("postgres", postgres.as_ref())] {
        if engine == "postgres" && pg.is_none() {
            continue;
        }
        // Finished records only.
        group.bench_function(format!("{engine}: 10k exchanges, 12 KB bodies each"), |b| {
            write_all(b, &retention, pg, |recorder, r| recorder.record(r))
        });
        // What the proxy does: each exchange is written aside when it starts (with its request)
        // and replaced by its record when it ends.
        group.bench_function(
            format!("{engine}: 10k exchanges opened then closed, 12 KB bodies each"),
            |b| {
                write_all(b, &retention, pg, |recorder, r| {
                    let mut started = r.clone();
                    started.response_body.clear();
                    let key = recorder.open(started);
                    recorder.close(key, r);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, recording);
criterion_main!(benches);
