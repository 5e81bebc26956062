//! The proxy: hudsucker underneath, Tollgate's handler deciding every CONNECT and running every
//! request's pipeline, its own dialer under every upstream connection, and a shutdown that drains.

pub(crate) mod body;
pub mod dial;
pub(crate) mod drain;
mod fetch;
mod handler;
pub(crate) mod headers;
mod masking;
pub(crate) mod pipeline;
pub(crate) mod refusal;
mod tunnel;
pub mod webhook;

use crate::config::{ProxyConfig, Timeouts};
use crate::policy::{LoadError, Policy};
use crate::providers::HostMode;
use crate::record::checkpoint;
use crate::reload::PolicyState;
use crate::tls::ca::{CaError, LeafIssuer, NameScope, RootCa};
use crate::tls::upstream::{self, UpstreamTlsError};
use arc_swap::ArcSwap;
use dial::Dialer;
use drain::Inflight;
use handler::Handler;
use hudsucker::Proxy;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// State every connection shares. Policy sits behind `ArcSwap` so a reload swaps it whole.
pub struct Shared {
    policy: Arc<ArcSwap<Policy>>,
    recorder: crate::record::Recorder,
    /// Seals unmasked originals when policy keeps them.
    originals_key: Option<Arc<crate::record::originals::OriginalsKey>>,
    /// Placeholders and their values; in memory only, outlives policy reloads.
    vault: Arc<crate::mask::vault::Vault>,
    dialer: Dialer,
    /// Fetches the identity provider's keys.
    fetcher: Arc<fetch::HttpsFetcher>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Requests waiting for approvers, grants, decided retries.
    approvals: Arc<crate::approval::Approvals>,
    /// Announces approvals to rules' webhooks.
    webhooks: webhook::Webhooks,
    /// The admin API's base URL, for links to approvals (set once it listens).
    admin_url: std::sync::OnceLock<String>,
    timeouts: Timeouts,
    inflight: Inflight,
    ids: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Policy(#[from] LoadError),
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    #[error(transparent)]
    UpstreamTls(#[from] UpstreamTlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the proxy: {0}")]
    Proxy(#[from] hudsucker::Error),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("audit store: {0}")]
    Store(#[from] crate::record::StoreError),
    #[error("audit signing key: {0}")]
    AuditKey(#[from] checkpoint::KeyError),
    #[error("audit checkpoints: {0}")]
    Checkpoints(#[from] checkpoint::CheckpointError),
    #[error(
        "{0} is not a loopback address and no token is configured (identity.yaml), so anyone who reaches it could use it; add tokens with `tollgate token create`, or pass --open to serve it open deliberately"
    )]
    OpenProxy(SocketAddr),
    #[error(
        "recording.yaml: store_originals is on, but no key seals them: set {} or originals_key_file in the config",
        crate::config::ORIGINALS_KEY_ENV
    )]
    OriginalsKeyMissing,
}

impl StartError {
    /// Whether the operator's configuration or files are at fault (exit code 64).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::Policy(_)
                | StartError::UpstreamTls(_)
                | StartError::Ca(_)
                | StartError::AuditKey(_)
                | StartError::Checkpoints(_)
                | StartError::OriginalsKeyMissing
                | StartError::OpenProxy(_)
                | StartError::Admin(crate::admin::AdminError::Open(_))
        )
    }
}

/// A started proxy. Dropping it stops the listener at once; [`RunningProxy::shutdown`] drains.
pub struct RunningProxy {
    addr: SocketAddr,
    ca_cert_pem: String,
    inflight: Inflight,
    drain: Duration,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hudsucker::Error>>>,
    writer: Option<crate::record::Writer>,
    policy: Arc<PolicyState>,
    admin: Option<crate::admin::RunningAdmin>,
    /// Reloads on SIGHUP and on changes in the policy directory, while the proxy runs.
    _reloads: (Option<JoinHandle<()>>, Option<crate::reload::Watch>),
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything in flight finished before the drain deadline.
    pub drained: bool,
    /// Exchanges and tunnels still running when the proxy gave up waiting.
    pub abandoned: usize,
    /// Audit records lost: dropped past the queue's bounds, or still unwritten when the store
    /// kept refusing them past the drain deadline (each is named in the log).
    pub records_lost: u64,
}

/// Loads policy and CA, binds the listener and starts serving. Logs `listening on ADDR`.
pub async fn start(config: &ProxyConfig) -> Result<RunningProxy, StartError> {
    crate::tls::install_default_provider();
    raise_open_files_limit();
    let policy = Policy::load(config.policies.as_deref())?;
    info!("policy: {}", policy.summary());
    let auth = policy.auth();
    if !config.listen.ip().is_loopback() && !auth.is_enabled() && !config.open {
        return Err(StartError::OpenProxy(config.listen));
    }
    if auth.is_enabled() {
        info!(
            "proxy authentication on: {} tokens{}",
            auth.tokens().len(),
            if auth.oidc().is_some() { ", OIDC" } else { "" }
        );
    }
    if policy.recording().store_originals && config.originals_key.is_none() {
        return Err(StartError::OriginalsKeyMissing);
    }

    // A CA made here is limited to the catalog's domains, as `tollgate ca init` makes it.
    let (ca, created) = RootCa::load_or_create(&config.ca_dir, || {
        NameScope::for_catalog(policy.catalog(), &[])
    })
    .map_err(StartError::Ca)?;
    let cert_path = config.ca_dir.join(crate::tls::ca::CERT_FILE);
    if created {
        info!(
            "created a new CA for {}; clients must trust {} (see `tollgate ca export`)",
            ca.scope(),
            cert_path.display()
        );
    }
    for (provider, pattern) in policy.catalog().host_patterns() {
        if provider.mode == HostMode::Intercept && !ca.scope().covers(pattern) {
            warn!(
                "provider {}: {pattern} is intercepted but outside the CA's name constraints, so its handshakes will fail; make a new CA (`tollgate ca init`) and distribute it again",
                provider.id
            );
        }
    }
    let ca_cert_pem = ca.cert_pem().to_owned();
    let leaves = LeafIssuer::new(ca, config.leaf_cache_size, crate::tls::provider())?;

    let vault = Arc::new(
        crate::mask::vault::Vault::with_key(
            policy.masking().vault_ttl,
            config.limits.vault_bytes as u64,
            config.placeholder_key.as_ref(),
        )
        .with_recall_budget(config.limits.masked_history_bytes as u64),
    );
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let guard = reload_guard(policy.auth().is_enabled());
    let state = Arc::new(PolicyState::new(
        policy,
        config.policies.clone(),
        metrics.clone(),
        guard,
    ));
    let policy: Arc<ArcSwap<Policy>> = state.cell().clone();
    let dialer = Dialer::new(
        config.connect_to.clone(),
        policy.clone(),
        config.timeouts.connect,
    );
    let upstream_tls = upstream::client_config(&config.upstream_ca)?;
    let fetcher = Arc::new(fetch::HttpsFetcher::new(
        Dialer::for_operator(config.connect_to.clone(), config.timeouts.connect),
        upstream_tls.clone(),
    ));
    let webhooks = webhook::Webhooks::new(
        Dialer::for_operator(config.connect_to.clone(), config.timeouts.connect),
        upstream_tls.clone(),
    );
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(upstream_tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(dialer.clone());

    let listener = listen(config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    let retention = policy.load().recording().clone();
    let (recorder, writer) = if retention.enabled {
        let checkpoints = checkpointer(config, &retention.checkpoints)?;
        let (recorder, writer) = crate::record::Recorder::start(
            &config.store(),
            retention,
            crate::record::QueueLimits {
                records: config.limits.audit_queue_records,
                bytes: config.limits.audit_queue_bytes,
            },
            checkpoints,
        )?;
        info!("recording to {}", config.store());
        (recorder, Some(writer))
    } else {
        warn!("recording is off (recording.yaml: enabled: false): exchanges leave no audit record");
        (crate::record::Recorder::disabled(), None)
    };
    // With a PostgreSQL store the approval queue and grants are shared with the other replicas.
    let approvals = match &config.postgres {
        Some(settings) => {
            let db = crate::record::postgres::PgHandle::connect(settings.clone())?;
            crate::record::postgres::on_db(crate::record::postgres::migrate(db.clone())).await?;
            info!(replica = %settings.replica, "approvals are shared with the other replicas through {}", settings.shown);
            crate::approval::Approvals::shared(db)
        }
        None => Arc::new(crate::approval::Approvals::default()),
    };
    let inflight = Inflight::default();
    let shared = Arc::new(Shared {
        recorder,
        originals_key: config.originals_key.clone(),
        policy,
        vault,
        dialer,
        fetcher: fetcher.clone(),
        metrics: metrics.clone(),
        approvals,
        webhooks,
        admin_url: std::sync::OnceLock::new(),
        timeouts: config.timeouts,
        inflight: inflight.clone(),
        ids: AtomicU64::new(1),
    });
    let readiness = {
        let recorder = shared.recorder.clone();
        let inflight = inflight.clone();
        Arc::new(move || crate::admin::Readiness {
            draining: inflight.is_draining(),
            store_writable: !recorder.is_enabled() || recorder.is_healthy(),
            recording: recorder.is_enabled(),
        })
    };
    {
        let recorder = shared.recorder.clone();
        let inflight = inflight.clone();
        let approvals = shared.approvals.clone();
        let vault = shared.vault.clone();
        metrics.observe(move || {
            let stats = recorder.stats();
            crate::metrics::Live {
                in_flight: inflight.count() as u64,
                audit_queue: stats.queued as u64,
                store_errors: stats.store_errors,
                records_dropped: stats.dropped,
                store_writable: stats.writable,
                approvals_pending: approvals.pending_count() as u64,
                mask_recalled_bytes: vault.recall().map_or(0, |r| r.recalled_bytes()),
            }
        });
    }
    let admin = match config.admin {
        Some(admin_addr) => Some(
            crate::admin::serve(
                admin_addr,
                crate::admin::AdminState {
                    policy: state.clone(),
                    metrics: metrics.clone(),
                    readiness,
                    fetcher,
                    approvals: shared.approvals.clone(),
                    db: shared.recorder.is_enabled().then(|| config.store()),
                    console: Default::default(),
                    proxy_addr: addr,
                },
            )
            .await?,
        ),
        None => None,
    };
    if let Some(admin) = &admin {
        let _ = shared.admin_url.set(format!("http://{}", admin.addr()));
    }
    let reloads = (
        state.reload_on_sighup(),
        match state.watch(Duration::from_millis(300)) {
            Ok(watch) => watch,
            Err(e) => {
                warn!("cannot watch the policy directory, reload on change is off: {e}");
                None
            }
        },
    );
    {
        // Keep the identity provider's keys fresh in the background (fetched at once, so the
        // first user does not wait), and again at once after a reload, whose OIDC settings come
        // with no keys yet; a reload may also add OIDC where there was none. Holds the shared
        // state weakly: it ends with the proxy.
        let weak = Arc::downgrade(&shared);
        let reloaded = state.reloaded();
        tokio::spawn(async move {
            while let Some(shared) = weak.upgrade() {
                // Registered before the refresh, so a reload meanwhile is not missed.
                let next = reloaded.notified();
                tokio::pin!(next);
                next.as_mut().enable();
                let wait = match shared.policy.load().auth().oidc().cloned() {
                    Some(oidc) => {
                        oidc.refresh_if_stale(&*shared.fetcher).await;
                        oidc.check_every()
                    }
                    None => Duration::from_secs(60),
                };
                drop(shared);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = next => {}
                }
            }
        });
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(leaves)
        .with_http_connector(connector)
        .with_client(client_builder())
        .with_server(server_builder(&config.timeouts, &config.limits))
        .with_http_handler(Handler::new(shared))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .build()?
        .with_connection_limits(hudsucker::ConnectionLimits {
            handshake: config.timeouts.handshake,
            max_connections: config.limits.max_connections,
            max_connections_per_client: config.limits.max_connections_per_client,
            response_header: config.timeouts.response_header,
        });
    let task = tokio::spawn(proxy.start());
    info!("listening on {addr}");
    Ok(RunningProxy {
        addr,
        ca_cert_pem,
        inflight,
        drain: config.timeouts.drain,
        stop: Some(stop),
        task: Some(task),
        writer,
        policy: state,
        admin,
        _reloads: reloads,
    })
}

/// What no reload may change: authentication, once on, stays on (turning it off would open the
/// proxy, its tunnels and the admin API to anyone who reaches them). Recording rules are kept
/// from the start by the reload itself.
fn reload_guard(auth_at_start: bool) -> crate::reload::Guard {
    Box::new(move |policy: &Policy| {
        if auth_at_start && !policy.auth().is_enabled() {
            return Err(LoadError::Invalid {
                file: crate::policy::IDENTITY_FILE.into(),
                field: "tokens, oidc".into(),
                message: "this set turns authentication off (no token and no OIDC provider; a missing, empty or half-written identity.yaml reads so); that is refused while running: restart to do it deliberately".into(),
            });
        }
        Ok(())
    })
}

/// The audit writer's checkpoints, signed with the key in the CA directory (made there on first
/// start).
fn checkpointer(
    config: &ProxyConfig,
    policy: &crate::policy::CheckpointPolicy,
) -> Result<checkpoint::Checkpointer, StartError> {
    let (key, created) = checkpoint::AuditKey::load_or_create(&config.ca_dir)?;
    let public = config.ca_dir.join(checkpoint::PUBLIC_KEY_FILE);
    if created {
        info!(
            "created the audit signing key {} (key id {}); give {} to whoever audits",
            config.ca_dir.join(checkpoint::KEY_FILE).display(),
            key.public().id(),
            public.display()
        );
    }
    let checkpoints = checkpoint::Checkpointer::new(key, policy, &config.db)?;
    match checkpoint::file_for(policy, &config.db) {
        Some(file) => info!("audit checkpoints also go to {}", file.display()),
        None => info!(
            "audit checkpoints go to the store only; set checkpoints.file in recording.yaml to a file this host cannot rewrite, so that a store cut short shows"
        ),
    }
    Ok(checkpoints)
}

/// Every connection and tunnel holds file descriptors: the soft limit (often 1024) is raised to
/// the hard limit the system allows, so the proxy runs out later and rarely.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("open files limit: {limit}"),
        Err(e) => tracing::warn!("could not raise the open files limit: {e}"),
    }
}

/// Binds the listener with `TCP_NODELAY`, which Linux passes on to every accepted connection
/// (hudsucker accepts them itself): small TLS and SSE writes must not wait on Nagle's algorithm.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The upstream client: one pool shared by every tunnel, so a new CONNECT reuses warm upstream
/// connections (Claude Code opens a CONNECT per request).
fn client_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        // h2 counts, over a connection's whole life, the streams it resets itself, and past
        // 1024 closes the connection (GOAWAY `too_many_internal_resets`). Every client that
        // abandons an answer resets its upstream stream, and one upstream connection carries
        // every user's streams: the 1025th abort would cut all of them (seen in the soak). The
        // limit guards servers against abusive clients; the upstream here is a provider's API.
        .http2_max_local_error_reset_streams(None);
    builder
}

/// The server side, for the proxy's own listener and for each intercepted tunnel.
/// The one server configuration, for client connections and for the requests inside their
/// tunnels alike: the CONNECT head and the requests it carries have the same bounds.
fn server_builder(
    timeouts: &Timeouts,
    limits: &crate::config::Limits,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

impl RunningProxy {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root certificate clients must trust (PEM).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The admin API's address, when it listens.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::RunningAdmin::addr)
    }

    /// The policy in force and its reloads.
    pub fn policy(&self) -> &Arc<PolicyState> {
        &self.policy
    }

    /// Exchanges and tunnels running now.
    pub fn in_flight(&self) -> usize {
        self.inflight.count()
    }

    /// Stops accepting connections, refuses new requests on open ones (503, retryable), lets
    /// running exchanges and tunnels finish up to the drain deadline, then returns.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.inflight.start_draining();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        info!(
            in_flight = self.inflight.count(),
            deadline_s = self.drain.as_secs(),
            "draining"
        );
        let deadline = std::time::Instant::now() + self.drain;
        let drained = tokio::time::timeout(self.drain, self.inflight.wait_idle())
            .await
            .is_ok();
        if let Some(task) = self.task.take() {
            // Outer connections close quickly once told to; do not wait on a stuck one.
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                info!("some client connections did not close in time");
            }
        }
        let abandoned = self.inflight.count();
        let mut records_lost = 0;
        if let Some(writer) = self.writer.take() {
            // Every record queued so far reaches the disk before the proxy exits, unless the
            // store still refuses writes at the drain deadline (a few seconds' grace if the
            // drain used it all): a failing store cannot hold the shutdown forever.
            let give_up_at = deadline.max(std::time::Instant::now() + Duration::from_secs(2));
            if let Ok(report) = tokio::task::spawn_blocking(move || writer.finish(give_up_at)).await
            {
                records_lost = report.unwritten as u64 + report.dropped;
            }
        }
        ShutdownReport {
            drained,
            abandoned,
            records_lost,
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
        raise_open_files_limit();
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, hard);
    }

    #[tokio::test]
    async fn accepted_connections_inherit_nodelay() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
