//! The proxy's metrics, in Prometheus' text format (`GET /metrics` on the admin listener).
//!
//! Every label set is bounded: providers and rules come from the policy, statuses from HTTP,
//! outcomes, modes and refusal reasons from fixed lists. No user, path or host is a label.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    provider: String,
    /// The HTTP status sent to the client, `none` when the client left before one.
    status: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    kind: String,
}

/// What is read from the running proxy at each scrape rather than counted as it happens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Exchanges and tunnels under way.
    pub in_flight: u64,
    /// Records waiting for the audit writer.
    pub audit_queue: u64,
    /// Batches the audit store refused (each is retried).
    pub store_errors: u64,
    /// Records lost past the queue's bounds.
    pub records_dropped: u64,
    /// Whether the store takes writes now.
    pub store_writable: bool,
    /// Requests waiting for an approver.
    pub approvals_pending: u64,
    /// Bytes of resent request elements whose masking was used again rather than redone.
    pub mask_recalled_bytes: u64,
}

type LiveFn = Box<dyn Fn() -> Live + Send + Sync>;

/// The metrics: cheap to update from any task (atomics behind `Arc`s).
pub struct Metrics {
    registry: Registry,
    exchanges: Family<ExchangeLabels, Counter>,
    connects: Family<ModeLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    findings: Family<RuleLabel, Counter>,
    tokens: Family<TokenLabels, Counter>,
    duration: Family<ProviderLabel, Histogram>,
    ttfb: Family<ProviderLabel, Histogram>,
    reload_attempt: Gauge<f64, std::sync::atomic::AtomicU64>,
    reload_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    reload_failures: Counter,
    approvals: Family<DecisionLabel, Counter>,
    approval_wait: Histogram,
    streams: Gauge,
    live: Arc<OnceLock<LiveFn>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Reads [`Live`] at each scrape.
struct LiveCollector(Arc<OnceLock<LiveFn>>);

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCollector")
    }
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(live) = self.0.get() else {
            return Ok(());
        };
        let live = live();
        let gauges = [
            (
                "tollgate_in_flight",
                "Exchanges and tunnels under way",
                live.in_flight as i64,
            ),
            (
                "tollgate_audit_queue_records",
                "Audit records waiting for the writer",
                live.audit_queue as i64,
            ),
            (
                "tollgate_audit_store_writable",
                "1 while the audit store takes writes",
                i64::from(live.store_writable),
            ),
            (
                "tollgate_approvals_pending",
                "Requests waiting for an approver",
                live.approvals_pending as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            (
                "tollgate_audit_store_errors",
                "Batches the audit store refused (each is retried)",
                live.store_errors,
            ),
            (
                "tollgate_audit_records_dropped",
                "Audit records lost past the queue's bounds",
                live.records_dropped,
            ),
            (
                "tollgate_mask_recalled_bytes",
                "Bytes of resent conversation history whose masking was used again, not redone",
                live.mask_recalled_bytes,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

fn seconds_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "tollgate_exchanges",
            "Exchanges that ended, by provider, status sent and outcome",
            exchanges.clone(),
        );
        let connects = Family::<ModeLabel, Counter>::default();
        registry.register(
            "tollgate_connects",
            "CONNECT requests by what was done with them (intercepted, tunneled, refused)",
            connects.clone(),
        );
        let refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tollgate_refusals",
            "Requests and CONNECTs refused, by reason",
            refusals.clone(),
        );
        let findings = Family::<RuleLabel, Counter>::default();
        registry.register(
            "tollgate_findings",
            "Values masked (or refused) by rule",
            findings.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tollgate_upstream_tokens",
            "Tokens the providers reported, by provider and kind",
            tokens.clone(),
        );
        let duration = Family::<ProviderLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "tollgate_exchange_duration_seconds",
            "Time from the request's arrival to the end of its answer",
            duration.clone(),
        );
        let ttfb = Family::<ProviderLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "tollgate_time_to_first_byte_seconds",
            "Time from the request's arrival to the first byte of the upstream's answer",
            ttfb.clone(),
        );
        let reload_attempt = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "tollgate_policy_reload_attempt_timestamp_seconds",
            "When a policy load or reload was last attempted (Unix time)",
            reload_attempt.clone(),
        );
        let reload_success = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "tollgate_policy_reload_success_timestamp_seconds",
            "When a policy load or reload last succeeded (Unix time)",
            reload_success.clone(),
        );
        let reload_failures = Counter::default();
        registry.register(
            "tollgate_policy_reload_failures",
            "Policy reloads refused because the new set did not validate",
            reload_failures.clone(),
        );
        let approvals = Family::<DecisionLabel, Counter>::default();
        registry.register(
            "tollgate_approvals",
            "Requests an approval rule asked about, by what became of them (approved, denied, timeout, pending, granted, abandoned)",
            approvals.clone(),
        );
        // 100 ms to about 27 minutes.
        let approval_wait = Histogram::new(exponential_buckets(0.1, 2.0, 15));
        registry.register(
            "tollgate_approval_wait_seconds",
            "How long held requests waited for a decision",
            approval_wait.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "tollgate_active_streams",
            "Answers being passed to clients now (response head sent, body not ended)",
            streams.clone(),
        );
        let live: Arc<OnceLock<LiveFn>> = Arc::default();
        registry.register_collector(Box::new(LiveCollector(live.clone())));
        Self {
            registry,
            exchanges,
            connects,
            refusals,
            findings,
            tokens,
            duration,
            ttfb,
            reload_attempt,
            reload_success,
            reload_failures,
            approvals,
            approval_wait,
            streams,
            live,
        }
    }

    /// Where the scrape-time figures come from (set once, by the proxy when it starts).
    pub fn observe(&self, live: impl Fn() -> Live + Send + Sync + 'static) {
        let _ = self.live.set(Box::new(live));
    }

    /// An exchange ended.
    pub fn exchange(&self, ended: &ExchangeEnd<'_>) {
        let provider = ended.provider.unwrap_or("none").to_owned();
        self.exchanges
            .get_or_create(&ExchangeLabels {
                provider: provider.clone(),
                status: ended
                    .status
                    .map_or_else(|| "none".to_owned(), |s| s.to_string()),
                outcome: ended.outcome.to_owned(),
            })
            .inc();
        let label = ProviderLabel { provider };
        self.duration
            .get_or_create(&label)
            .observe(ended.duration.as_secs_f64());
        if let Some(ttfb) = ended.ttfb {
            self.ttfb.get_or_create(&label).observe(ttfb.as_secs_f64());
        }
        for rule in ended.findings {
            self.findings
                .get_or_create(&RuleLabel {
                    rule: (*rule).to_owned(),
                })
                .inc();
        }
        for &(kind, n) in ended.tokens {
            self.tokens
                .get_or_create(&TokenLabels {
                    provider: label.provider.clone(),
                    kind: kind.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// An answer began streaming to its client.
    pub fn stream_opened(&self) {
        self.streams.inc();
    }

    /// An answer that was streaming ended, however it ended.
    pub fn stream_closed(&self) {
        self.streams.dec();
    }

    /// A CONNECT was decided: `intercepted`, `tunneled` or `refused`.
    pub fn connect(&self, mode: &'static str) {
        self.connects
            .get_or_create(&ModeLabel { mode: mode.into() })
            .inc();
    }

    /// A request or CONNECT was refused, for `reason` (a refusal slug).
    pub fn refusal(&self, reason: &str) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// An approval rule asked about a request; `waited` is how long a held one waited.
    pub fn approval(&self, decision: &str, waited: Option<Duration>) {
        self.approvals
            .get_or_create(&DecisionLabel {
                decision: decision.into(),
            })
            .inc();
        if let Some(waited) = waited {
            self.approval_wait.observe(waited.as_secs_f64());
        }
    }

    /// A policy load was attempted at `at`; `ok` if it took effect.
    pub fn reload(&self, at: SystemTime, ok: bool) {
        self.reload_attempt.set(unix_seconds(at));
        if ok {
            self.reload_success.set(unix_seconds(at));
        } else {
            self.reload_failures.inc();
        }
    }

    /// Everything, in the OpenMetrics text format Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What [`Metrics::exchange`] counts of an exchange that ended.
pub struct ExchangeEnd<'a> {
    pub provider: Option<&'a str>,
    pub status: Option<u16>,
    pub outcome: &'a str,
    pub duration: Duration,
    pub ttfb: Option<Duration>,
    /// The rule of each finding.
    pub findings: &'a [&'a str],
    /// (kind, count) the provider reported: `input`, `output`, `cache_read`, `cache_write`.
    pub tokens: &'a [(&'a str, u64)],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_is_told_with_bounded_labels() {
        let m = Metrics::new();
        m.connect("intercepted");
        m.refusal("region-not-allowed");
        m.exchange(&ExchangeEnd {
            provider: Some("anthropic"),
            status: Some(200),
            outcome: "complete",
            duration: Duration::from_millis(40),
            ttfb: Some(Duration::from_millis(10)),
            findings: &["github-pat", "github-pat"],
            tokens: &[("input", 12), ("output", 30)],
        });
        m.observe(|| Live {
            in_flight: 3,
            store_writable: true,
            mask_recalled_bytes: 4096,
            ..Live::default()
        });
        let text = m.encode();
        for line in [
            r#"tollgate_connects_total{mode="intercepted"} 1"#,
            r#"tollgate_refusals_total{reason="region-not-allowed"} 1"#,
            r#"tollgate_exchanges_total{provider="anthropic",status="200",outcome="complete"} 1"#,
            r#"tollgate_findings_total{rule="github-pat"} 2"#,
            r#"tollgate_upstream_tokens_total{provider="anthropic",kind="output"} 30"#,
            r#"tollgate_exchange_duration_seconds_count{provider="anthropic"} 1"#,
            "tollgate_in_flight 3",
            "tollgate_audit_store_writable 1",
            "tollgate_mask_recalled_bytes_total 4096",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
