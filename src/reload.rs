//! The policy in force, and reloading it while the proxy runs: on `SIGHUP`, when a file in the
//! policy directory changes (watched), or on `POST /api/reload`.
//!
//! A reload loads and validates the whole set as `tollgate policy check` does, then swaps it in
//! at once. A set that does not validate leaves the running one in force; the error (file and
//! field) is logged, kept for `/api/policy` and counted in the metrics. Requests already under
//! way finish under the snapshot they started with.
//!
//! What a reload does not change: the CA, the listeners, the audit store and its retention
//! (`recording.yaml` is read at start), the vault's lifetime. Those take a restart.

use crate::metrics::Metrics;
use crate::policy::{LoadError, Policy};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// What set off a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Start,
    Signal,
    FileChange,
    Api,
}

/// How the last load went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// When it was attempted (RFC 3339, UTC).
    pub at: String,
    pub trigger: Trigger,
    /// Whether the new set took effect (or was the same as the one in force).
    pub ok: bool,
    /// Why it did not: the file and the field.
    pub error: Option<String>,
    /// The fingerprint of the policy in force after it.
    pub fingerprint: String,
    /// Whether the set differed from the one in force.
    pub changed: bool,
    /// What changed but takes a restart to apply (`recording.yaml`, `masking.yaml: vault_ttl`).
    pub restart_required: Vec<String>,
}

/// What a reload must not change, fixed at start (a set that breaks it is refused whole): e.g.
/// authentication turned off while the proxy serves beyond loopback.
pub type Guard = Box<dyn Fn(&Policy) -> Result<(), LoadError> + Send + Sync>;

/// The policy in force and where it comes from. Shared by the proxy (which reads it per
/// request) and the admin API (which reloads and shows it).
pub struct PolicyState {
    current: Arc<ArcSwap<Policy>>,
    dir: Option<PathBuf>,
    last: Mutex<ReloadReport>,
    metrics: Arc<Metrics>,
    /// One load at a time: two triggers at once must not swap in the older set last.
    serial: Mutex<()>,
    guard: Guard,
    /// Woken when a new set is swapped in.
    reloaded: Arc<tokio::sync::Notify>,
}

impl PolicyState {
    /// Wraps a policy loaded from `dir` (embedded defaults when `None`) at start.
    pub fn new(policy: Policy, dir: Option<PathBuf>, metrics: Arc<Metrics>, guard: Guard) -> Self {
        let now = SystemTime::now();
        metrics.reload(now, true);
        let last = ReloadReport {
            at: crate::record::now(),
            trigger: Trigger::Start,
            ok: true,
            error: None,
            fingerprint: policy.fingerprint(),
            changed: true,
            restart_required: Vec::new(),
        };
        Self {
            current: Arc::new(ArcSwap::from_pointee(policy)),
            dir,
            last: Mutex::new(last),
            metrics,
            serial: Mutex::new(()),
            guard,
            reloaded: Arc::default(),
        }
    }

    /// The cell the proxy reads the policy from.
    pub fn cell(&self) -> &Arc<ArcSwap<Policy>> {
        &self.current
    }

    /// Woken each time a reload swaps a new set in.
    pub fn reloaded(&self) -> Arc<tokio::sync::Notify> {
        self.reloaded.clone()
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The directory the policy is read from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// How the last load went.
    pub fn last(&self) -> ReloadReport {
        self.last
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Loads and validates the whole set again; swaps it in if it is valid. Blocking (reads
    /// files, compiles rules): call it off the async runtime's workers.
    pub fn reload(&self, trigger: Trigger) -> Result<ReloadReport, LoadError> {
        let _one = self.serial.lock().unwrap_or_else(|e| e.into_inner());
        let at = SystemTime::now();
        let running = self.current.load_full();
        let mut restart_required = Vec::new();
        let loaded = Policy::load(self.dir.as_deref()).and_then(|mut policy| {
            (self.guard)(&policy)?;
            if policy.recording() != running.recording() {
                restart_required.push(crate::policy::RECORDING_FILE.to_owned());
            }
            if policy.masking().vault_ttl != running.masking().vault_ttl {
                restart_required.push(format!("{}: vault_ttl", crate::policy::MASKING_FILE));
            }
            policy.keep_recording_of(&running);
            Ok(policy)
        });
        let report = match &loaded {
            Ok(policy) => {
                let fingerprint = policy.fingerprint();
                let changed = fingerprint != running.fingerprint();
                ReloadReport {
                    at: crate::record::now(),
                    trigger,
                    ok: true,
                    error: None,
                    fingerprint,
                    changed,
                    restart_required,
                }
            }
            Err(e) => ReloadReport {
                at: crate::record::now(),
                trigger,
                ok: false,
                error: Some(e.to_string()),
                fingerprint: running.fingerprint(),
                changed: false,
                restart_required: Vec::new(),
            },
        };
        self.metrics.reload(at, report.ok);
        match loaded {
            Ok(policy) => {
                if !report.restart_required.is_empty() {
                    warn!(
                        "policy reload: {} changed but take effect only at the next start",
                        report.restart_required.join(", ")
                    );
                }
                // The report is in place before the policy it describes: whoever sees the new
                // policy (`GET /api/policy` reads the two apart) sees the reload that put it there.
                self.set_last(report.clone());
                if report.changed {
                    info!(trigger = ?trigger, fingerprint = %report.fingerprint, "policy reloaded: {}", policy.summary());
                    self.current.store(Arc::new(policy));
                    self.reloaded.notify_waiters();
                } else {
                    info!(trigger = ?trigger, "policy reload: the files are unchanged");
                }
                Ok(report)
            }
            Err(e) => {
                warn!(trigger = ?trigger, "policy reload refused, the running policy stays in force: {e}");
                self.set_last(report);
                Err(e)
            }
        }
    }

    fn set_last(&self, report: ReloadReport) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = report;
    }

    /// Reloads on `SIGHUP` until the returned task is aborted (Unix only).
    pub fn reload_on_sighup(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(hup) => hup,
                Err(e) => {
                    warn!("cannot listen for SIGHUP, reload by signal is off: {e}");
                    return None;
                }
            };
            let state = Arc::downgrade(self);
            Some(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let Some(state) = state.upgrade() else { break };
                    let _ =
                        tokio::task::spawn_blocking(move || state.reload(Trigger::Signal)).await;
                }
            }))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// Watches the policy directory and reloads when something in it changes, once the
    /// changes have settled for `settle` (editors and ConfigMap updates write several times).
    /// The watch ends when the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, settle: Duration) -> Result<Option<Watch>, notify::Error> {
        use notify::Watcher as _;
        let Some(dir) = self.dir.clone() else {
            return Ok(None);
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        let state = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Settle: wait until no change has come for `settle`.
                loop {
                    match tokio::time::timeout(settle, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Some(state) = state.upgrade() else { break };
                let _ =
                    tokio::task::spawn_blocking(move || state.reload(Trigger::FileChange)).await;
            }
        });
        info!("watching {} for policy changes", dir.display());
        Ok(Some(Watch {
            _watcher: watcher,
            task,
        }))
    }
}

/// A running watch of the policy directory; dropping it ends the watch.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
