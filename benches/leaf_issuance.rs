//! What a new tunnel costs in certificates: signing a leaf for a host never seen (cold), and
//! fetching the cached server configuration for a known host (what every later CONNECT pays).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use tollgate::tls::ca::{LeafIssuer, NameScope, RootCa};

fn leaf_issuance(c: &mut Criterion) {
    tollgate::tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    // The CA `tollgate ca init` makes: limited to the catalog's domains, checked on every leaf.
    let policy = tollgate::policy::Policy::load(None).unwrap();
    let scope = NameScope::for_catalog(policy.catalog(), &[]).unwrap();
    let ca = RootCa::create(dir.path(), &scope).unwrap();
    let issuer = LeafIssuer::new(ca, 1_000_000, tollgate::tls::provider()).unwrap();

    let mut group = c.benchmark_group("leaf");
    group.bench_function("sign only", |b| {
        b.iter(|| issuer.issue(black_box("api.openai.com")).unwrap())
    });
    let n = AtomicU64::new(0);
    group.bench_function("cold server config (new host)", |b| {
        b.iter(|| {
            let host = format!("h{}.api.openai.com", n.fetch_add(1, Ordering::Relaxed));
            issuer.server_config(black_box(&host))
        })
    });
    issuer.server_config("api.anthropic.com");
    group.bench_function("cached server config", |b| {
        b.iter(|| issuer.server_config(black_box("api.anthropic.com")))
    });
    group.finish();
}

criterion_group!(benches, leaf_issuance);
criterion_main!(benches);
