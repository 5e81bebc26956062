//! The command line: `run`, `ca`, `policy check|explain`, `token`, `audit`, `sessions`, `replay`,
//! `export`, `store`, `approvals`.

mod approvals;
pub mod log_writer;
mod replay;

use crate::config::{Overrides, ProxyConfig};
use crate::policy::{LoadError, Policy};
use crate::proxy::StartError;
use crate::record::checkpoint::{self, CheckpointError, PublicKey};
use crate::tls::ca::{CaError, NameScope, RootCa};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::{info, warn};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A governing HTTPS proxy for AI coding agents' LLM traffic"
)]
pub struct Cli {
    /// Configuration file (default: ./tollgate.yaml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines are written to standard error: `text` for people, `json` (one object per
    /// line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "TOLLGATE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run(RunArgs),
    /// Manage the certificate authority that signs intercepted hosts' certificates.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage proxy tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Decide requests waiting for approval, through a running Tollgate's admin API
    /// (credentials: TOLLGATE_ADMIN_TOKEN).
    Approvals {
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
        /// The admin API (default: http://127.0.0.1:9090).
        #[arg(long, value_name = "URL", global = true, env = "TOLLGATE_ADMIN_URL")]
        admin: Option<String>,
    },
    /// Print the environment that points every client family at Tollgate and makes it trust
    /// the CA (`eval "$(tollgate env)"`); writes the CA and a bundle of the system's roots plus
    /// the CA, for the tools that replace their roots with the file they are given.
    Env {
        /// The shell to print for (default: from $SHELL).
        #[arg(long, value_enum)]
        shell: Option<crate::deploy::client_env::Shell>,
        /// The proxy URL clients use (default: the configured listen address).
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Tollgate's CA certificate, PEM or DER (default: the one in the CA directory).
        #[arg(long, value_name = "PATH")]
        ca: Option<PathBuf>,
        /// Where to write tollgate-ca.pem and ca-bundle.pem (default: ~/.config/tollgate).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// A host or domain that must not go through the proxy (repeatable).
        #[arg(long = "no-proxy", value_name = "HOST")]
        no_proxy: Vec<String>,
    },
    /// Check that this machine's clients go through Tollgate and trust it: the proxy answers,
    /// an intercepted host gets Tollgate's certificate and a tunneled one its own, and curl,
    /// Python and Node trust the CA as the environment configures them. Prints what to fix;
    /// exits 1 when a check fails.
    Doctor(DoctorArgs),
    /// Export recorded exchanges.
    Export {
        /// Write a HAR 1.2 file (opens in browser devtools and other proxies' tools).
        #[arg(long, value_name = "FILE")]
        har: PathBuf,
        /// Only this session.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Maintain the audit store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Browse recorded sessions (conversations).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Print exactly what one exchange sent upstream and what came back.
    Replay {
        /// The exchange id (from `sessions show`).
        id: i64,
        /// Print only the request body as sent upstream, byte for byte.
        #[arg(long, conflicts_with = "response")]
        request: bool,
        /// Print only the response body as the upstream sent it, byte for byte.
        #[arg(long, conflicts_with = "original")]
        response: bool,
        /// Print the unmasked request body the client sent (needs the originals key).
        #[arg(long, conflicts_with = "request")]
        original: bool,
        /// Send the recorded request again through a running Tollgate (the policy in force now)
        /// and show how the answer differs from the recorded one.
        #[arg(long, conflicts_with_all = ["request", "response", "original"])]
        send: bool,
        /// The Tollgate to send through (default: the configured listen address).
        #[arg(long, value_name = "URL", requires = "send")]
        proxy: Option<String>,
        /// A header to add when sending, e.g. the provider's credentials, which are never
        /// recorded (repeatable): `--header 'authorization: Bearer sk-…'`.
        #[arg(long, value_name = "NAME: VALUE", requires = "send")]
        header: Vec<String>,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

/// What `tollgate doctor` checks.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The proxy to check (default: HTTPS_PROXY, else the configured listen address).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Tollgate's CA certificate, PEM or DER (default: the CA directory's, else the one
    /// `tollgate env` wrote).
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// A host the proxy intercepts.
    #[arg(long, value_name = "HOST", default_value = "api.anthropic.com")]
    pub intercepted: String,
    /// A host the proxy tunnels untouched.
    #[arg(long, value_name = "HOST", default_value = "github.com")]
    pub tunneled: String,
    /// The deadline of each step, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub timeout: u64,
    /// Do not run curl, Python and Node themselves.
    #[arg(long)]
    pub no_clients: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new token: prints it once, and the line to add to policies/identity.yaml.
    Create {
        /// The token's name (shown in logs and records).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Apply the policy's retention now (recording.yaml): clear old bodies, delete old records.
    Purge {
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Policy directory (default: ./policies when present, else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
    /// List the replicas writing to a shared (PostgreSQL) store, or close the exchanges a
    /// replica that will not come back left in flight, as `interrupted` records.
    Recover {
        /// The replica whose in-flight exchanges to close (see the list without it).
        #[arg(long, value_name = "ID")]
        replica: Option<String>,
        /// Close them even though the replica sent a heartbeat in the last 30 s.
        #[arg(long)]
        force: bool,
        /// The store: a SQLite file or `postgres://user@host/db` (password from
        /// TOLLGATE_DB_PASSWORD or store.password_file).
        #[arg(long, value_name = "PATH|URL")]
        db: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List {
        /// Only sessions active since this RFC 3339 time (e.g. 2026-11-24T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only this identity.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// The exchanges of one session.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain of the audit store and check its signed checkpoints, in the store and
    /// in the external checkpoint file; exit 1 naming the first thing that does not hold.
    Verify {
        /// Audit database path (default: `db` from the config, else tollgate.db).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// A public key the checkpoints may be signed with (repeatable, e.g. to accept the key
        /// used before a new one). Default: tollgate-audit.pub in the CA directory, if there.
        #[arg(long = "key", value_name = "PUB")]
        keys: Vec<PathBuf>,
        /// The external checkpoint file (default: `checkpoints.file` of recording.yaml).
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        /// The CA directory, for the default public key.
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Policy directory, for the default checkpoint file (default: ./policies when present,
        /// else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the CA (created on first run).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Policy directory (default: ./policies when present, else the embedded defaults).
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Audit database path.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Extra PEM roots trusted for upstream TLS, on top of the webpki roots (repeatable).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Send connections for HOST:PORT to HOST2:PORT2, keeping HOST for TLS (repeatable).
    #[arg(long, value_name = "HOST:PORT:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    /// Serve a non-loopback address without authentication (deliberately open).
    #[arg(long)]
    pub open: bool,
    /// Address of the admin API (health, metrics, policy, reload), or `off`
    /// [default: 127.0.0.1:9090].
    #[arg(long, value_name = "ADDR|off")]
    pub admin: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA if the directory holds none; print where its certificate is and which
    /// names it may sign for. By default its name constraints permit the provider catalog's
    /// domains only (and no IP address).
    Init {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Policy directory whose providers.yaml names the hosts to permit (default: ./policies
        /// when present, else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
        /// Also permit DOMAIN and the names under it (repeatable), e.g. for a provider to be
        /// added to the catalog later.
        #[arg(long = "permit", value_name = "DOMAIN")]
        permit: Vec<String>,
        /// Create the CA without name constraints: its leaves are valid for any name.
        #[arg(long, conflicts_with = "permit")]
        unconstrained: bool,
    },
    /// Print the CA certificate (PEM, or DER with --der) to standard output.
    Export {
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Write DER instead of PEM.
        #[arg(long, conflicts_with = "mobileconfig")]
        der: bool,
        /// Write an unsigned macOS/iOS configuration profile (.mobileconfig) that trusts the CA,
        /// for Jamf, Kandji, Intune or a manual install.
        #[arg(long)]
        mobileconfig: bool,
        /// With --mobileconfig: also set the device's global HTTP proxy, to http://HOST:PORT or
        /// to the URL of a PAC file (…/proxy.pac).
        #[arg(long, value_name = "URL", requires = "mobileconfig")]
        proxy: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate the policy files; exit non-zero naming the file and field at fault.
    Check {
        /// Policy directory (default: ./policies when present, else the embedded defaults).
        dir: Option<PathBuf>,
    },
    /// Scan files as masking would scan a request's text, and list what it would mask (rule,
    /// file, line); values are never printed unless `--show` asks for the lines that hold them.
    /// Exits 0 when nothing was found, 1 otherwise.
    Scan {
        /// Files to scan (text; others are skipped).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each finding's line (it holds the value: for your own files only).
        #[arg(long)]
        show: bool,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Policy directory (default: ./policies when present, else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
    /// Print what the proxy would do with one request, and why; sends nothing. Exits 0 when
    /// the request would be allowed (or tunneled), 1 when it would be refused.
    Explain {
        /// The host the request goes to.
        #[arg(long)]
        host: String,
        /// The request path (with Vertex `/locations/…/` or Bedrock `/model/…/`, where they matter).
        #[arg(long, default_value = "/")]
        path: String,
        /// The user: groups come from the identity.yaml token naming this user.
        #[arg(long)]
        user: Option<String>,
        /// A group the user is in (repeat for more), e.g. from their OIDC token.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// The request body, as the client would send it (JSON).
        #[arg(long, value_name = "FILE")]
        body: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Policy directory (default: ./policies when present, else the embedded defaults).
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
}

/// A command that failed; [`CommandError::exit_code`] maps it for the shell.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error(transparent)]
    Admin(#[from] approvals::AdminCallError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    #[error("cannot wait for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::record::StoreError),
    #[error(
        "the original cannot be opened: set {} (or originals_key_file) to the key that sealed it",
        crate::config::ORIGINALS_KEY_ENV
    )]
    OriginalsKey,
    #[error("{0}")]
    Usage(String),
    #[error("`{0}` is not a header: write it as `name: value`")]
    BadHeader(String),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(
        "there is no audit store at {}: name it with --db (or `db:` in the config file), or run the proxy once to create it",
        .0.display()
    )]
    NoStore(PathBuf),
    #[error(
        "replica {replica} sent a heartbeat {secs} s ago: it looks alive, and closing its exchanges would record them twice; stop it first, or pass --force"
    )]
    ReplicaAlive { replica: String, secs: i64 },
    #[error("no {what} `{id}` in the audit store")]
    NotFound { what: &'static str, id: String },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the request would be refused")]
    WouldRefuse,
    #[error("{0} check(s) failed")]
    Unhealthy(usize),
    #[error(
        "{0} audit records were lost (the store refused them until the shutdown deadline, or the queue was past its bounds); the log names them"
    )]
    RecordsLost(u64),
    #[error("{path}: the audit chain is broken at row {row}: {reason}")]
    ChainBroken {
        path: String,
        row: i64,
        reason: String,
    },
    #[error("audit signing key: {0}")]
    AuditKey(#[from] crate::record::checkpoint::KeyError),
    #[error(transparent)]
    Checkpoints(#[from] crate::record::checkpoint::CheckpointError),
    #[error("{path}: {fault}")]
    CheckpointBroken {
        path: String,
        fault: crate::record::checkpoint::CheckpointFault,
    },
}

impl CommandError {
    /// 64 (EX_USAGE) for bad configuration, policy or CA files; 1 for everything else.
    /// Whether the error was already reported on standard output (nothing to add).
    pub fn is_reported(&self) -> bool {
        matches!(self, CommandError::WouldRefuse | CommandError::Unhealthy(_))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Config(_)
            | CommandError::Ca(_)
            | CommandError::ReadFile { .. }
            | CommandError::Usage(_)
            | CommandError::AuditKey(_)
            | CommandError::Checkpoints(CheckpointError::NoKey { .. }) => 64,
            CommandError::Start(e) if e.is_config() => 64,
            _ => 1,
        }
    }
}

impl Cli {
    pub async fn execute(self) -> Result<(), CommandError> {
        let overrides = |run: RunArgs| Overrides {
            config: self.config.clone(),
            listen: run.listen,
            ca_dir: run.ca_dir,
            policies: run.policies,
            db: run.db,
            upstream_ca: run.upstream_ca,
            connect_to: run.connect_to,
            open: run.open,
            admin: run.admin,
        };
        match self.command {
            Command::Run(args) => {
                let (config, file) = ProxyConfig::resolve(overrides(args))?;
                if let Some(file) = file {
                    info!("config: {}", file.display());
                }
                run(config).await
            }
            Command::Ca(CaCommand::Init {
                ca_dir,
                policies,
                permit,
                unconstrained,
            }) => {
                let (config, _) = ProxyConfig::resolve(overrides(RunArgs {
                    ca_dir,
                    policies,
                    ..Default::default()
                }))?;
                ca_init(&config, &permit, unconstrained)
            }
            Command::Ca(CaCommand::Export {
                ca_dir,
                der,
                mobileconfig,
                proxy,
            }) => {
                let (config, _) = ProxyConfig::resolve(overrides(RunArgs {
                    ca_dir,
                    ..Default::default()
                }))?;
                let ca = RootCa::load(&config.ca_dir)?;
                let mut out = std::io::stdout().lock();
                let profile;
                let bytes: &[u8] = if mobileconfig {
                    use crate::deploy::mobileconfig::{ProfileProxy, profile as make};
                    let proxy = proxy
                        .as_deref()
                        .map(ProfileProxy::parse)
                        .transpose()
                        .map_err(|e| CommandError::Usage(e.to_string()))?;
                    profile = make(ca.cert_der(), "Tollgate Root CA", proxy.as_ref());
                    &profile
                } else if der {
                    ca.cert_der()
                } else {
                    ca.cert_pem().as_bytes()
                };
                out.write_all(bytes)
                    .and_then(|_| out.flush())
                    .map_err(CommandError::Output)
            }
            Command::Env {
                shell,
                proxy,
                ca,
                dir,
                no_proxy,
            } => {
                use crate::deploy::client_env;
                let (config, _) = ProxyConfig::resolve(overrides(RunArgs::default()))?;
                let ca_path = ca.unwrap_or_else(|| config.ca_dir.join(crate::tls::ca::CERT_FILE));
                let der = read_certificate(&ca_path)?;
                let dir = dir.or_else(client_env::default_dir).ok_or_else(|| {
                    CommandError::Usage("no home directory: pass --dir".to_owned())
                })?;
                let written = client_env::write_files(&dir, &der)
                    .map_err(|e| CommandError::Usage(e.to_string()))?;
                for e in &written.root_errors {
                    warn!("system roots: {e}");
                }
                if written.system_roots == 0 {
                    warn!(
                        "no system roots found: {} holds only Tollgate's CA, so tools given it trust nothing else",
                        written.bundle.display()
                    );
                }
                let proxy = proxy.unwrap_or_else(|| local_proxy_url(config.listen));
                let vars = client_env::variables(&proxy, &written.ca, &written.bundle, &no_proxy);
                let text =
                    client_env::render(shell.unwrap_or_else(client_env::Shell::detect), &vars);
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(CommandError::Output)
            }
            Command::Doctor(args) => {
                let config = ProxyConfig::resolve(overrides(RunArgs::default()))
                    .ok()
                    .map(|(c, _)| c);
                doctor(config.as_ref(), args).await
            }
            Command::Sessions(SessionsCommand::List {
                since,
                user,
                json,
                db,
            }) => {
                let store = open_store(overrides(RunArgs {
                    db,
                    ..Default::default()
                }))?;
                let sessions = store.sessions(since.as_deref(), user.as_deref())?;
                let mut out = std::io::stdout().lock();
                let written = if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&sessions).expect("serializes")
                    )
                } else {
                    writeln!(
                        out,
                        "{:<16}  {:<20}  {:<20}  {:<16}  {:>9}  {:>7}",
                        "SESSION", "LAST", "FIRST", "USER", "EXCHANGES", "REFUSED"
                    )
                    .and_then(|_| {
                        sessions.iter().try_for_each(|s| {
                            writeln!(
                                out,
                                "{:<16}  {:<20}  {:<20}  {:<16}  {:>9}  {:>7}",
                                s.id, s.last_at, s.first_at, s.scope, s.exchanges, s.refused
                            )
                        })
                    })
                };
                written.map_err(CommandError::Output)
            }
            Command::Sessions(SessionsCommand::Show { id, json, db }) => {
                let store = open_store(overrides(RunArgs {
                    db,
                    ..Default::default()
                }))?;
                let records = store.session(&id)?;
                if records.is_empty() {
                    return Err(CommandError::NotFound {
                        what: "session",
                        id,
                    });
                }
                let mut out = std::io::stdout().lock();
                let written = if json {
                    let list: Vec<serde_json::Value> =
                        records.iter().map(|(n, r)| record_json(*n, r)).collect();
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&list).expect("serializes")
                    )
                } else {
                    records.iter().try_for_each(|(n, r)| {
                        writeln!(
                            out,
                            "{n:>6}  {}  {:<6} {}{}  {}  {}  {}ms  {}  {}",
                            r.started_at,
                            r.method.as_deref().unwrap_or(""),
                            r.host,
                            r.path.as_deref().unwrap_or(""),
                            r.status.map(|s| s.to_string()).unwrap_or_default(),
                            r.outcome,
                            r.duration_ms,
                            r.model.as_deref().unwrap_or(""),
                            r.region.as_deref().unwrap_or(""),
                        )
                    })
                };
                written.map_err(CommandError::Output)
            }
            Command::Replay {
                id,
                request,
                response,
                original,
                send,
                proxy,
                header,
                db,
            } => {
                let run = overrides(RunArgs {
                    db,
                    ..Default::default()
                });
                let (config, _) = ProxyConfig::resolve(run.clone())?;
                let store = open_store(run)?;
                let record = store.get(id)?.ok_or(CommandError::NotFound {
                    what: "exchange",
                    id: id.to_string(),
                })?;
                if send {
                    return resend(&config, &record, proxy, &header).await;
                }
                let mut out = std::io::stdout().lock();
                let written = if original {
                    if record.original_body.is_empty() {
                        return Err(CommandError::NotFound {
                            what: "stored original for exchange",
                            id: id.to_string(),
                        });
                    }
                    let key = config.originals_key.ok_or(CommandError::OriginalsKey)?;
                    let context =
                        crate::record::originals::context(&record.started_at, &record.host);
                    let plain = key
                        .open(&record.original_body, &context)
                        .ok_or(CommandError::OriginalsKey)?;
                    out.write_all(&plain)
                } else if request {
                    out.write_all(&record.request_body)
                } else if response {
                    out.write_all(&record.response_body)
                } else {
                    writeln!(
                        out,
                        "=== request as sent upstream: {} https://{}{}",
                        record.method.as_deref().unwrap_or(""),
                        record.host,
                        record.path.as_deref().unwrap_or("")
                    )
                    .and_then(|_| out.write_all(&record.request_body))
                    .and_then(|_| {
                        writeln!(
                            out,
                            "\n=== response as received: {} ({})",
                            record.status.map(|s| s.to_string()).unwrap_or_default(),
                            record.outcome
                        )
                    })
                    .and_then(|_| out.write_all(&record.response_body))
                    .and_then(|_| writeln!(out))
                };
                written
                    .and_then(|_| out.flush())
                    .map_err(CommandError::Output)
            }
            Command::Approvals { command, admin } => approvals::run(command, admin).await,
            Command::Token(TokenCommand::Create { name }) => {
                let (token, hash) = crate::identity::new_token();
                println!("token (shown once; give it to the client as the proxy password):");
                println!("  {token}");
                println!("add to policies/identity.yaml under `tokens:`:");
                println!("  - {{ name: {name}, sha256: {hash} }}");
                println!("client: HTTPS_PROXY=http://{name}:{token}@<proxy-host>:8080");
                Ok(())
            }
            Command::Export { har, session, db } => {
                let store = open_store(overrides(RunArgs {
                    db,
                    ..Default::default()
                }))?;
                let records = match &session {
                    Some(id) => store.session(id)?,
                    None => store.all()?,
                };
                let doc = crate::record::har(&records);
                let text = serde_json::to_string_pretty(&doc).expect("serializes");
                std::fs::write(&har, text).map_err(CommandError::Output)?;
                println!(
                    "wrote {} exchanges to {}",
                    doc["log"]["entries"].as_array().map_or(0, Vec::len),
                    har.display()
                );
                Ok(())
            }
            Command::Store(StoreCommand::Purge { db, policies }) => {
                let run = RunArgs {
                    db,
                    policies,
                    ..Default::default()
                };
                let (config, _) = ProxyConfig::resolve(overrides(RunArgs {
                    policies: run.policies.clone(),
                    ..Default::default()
                }))?;
                let policy = Policy::load(config.policies.as_deref())?;
                let mut store = open_store(overrides(run))?;
                let report = crate::record::purge(&mut store, policy.recording())?;
                println!(
                    "cleared the bodies of {} records, deleted {} records",
                    report.bodies, report.records
                );
                Ok(())
            }
            Command::Store(StoreCommand::Recover { replica, force, db }) => {
                let mut store = open_store(overrides(RunArgs {
                    db,
                    ..Default::default()
                }))?;
                let replicas = store.replicas()?;
                let Some(replica) = replica else {
                    println!("replica  last heartbeat  in flight");
                    for r in &replicas {
                        let seen = r
                            .seen_secs_ago
                            .map_or_else(|| "-".to_owned(), |s| format!("{s} s ago"));
                        println!("{}  {seen}  {}", r.name, r.in_flight);
                    }
                    return Ok(());
                };
                if let Some(secs) = replicas
                    .iter()
                    .find(|r| r.name == replica)
                    .and_then(|r| r.seen_secs_ago)
                    .filter(|secs| *secs < 30)
                    && !force
                {
                    return Err(CommandError::ReplicaAlive { replica, secs });
                }
                let closed = store.recover_replica(&replica)?;
                println!(
                    "closed {closed} exchanges replica {replica} left in flight (recorded as interrupted)"
                );
                Ok(())
            }
            Command::Audit(AuditCommand::Verify {
                db,
                keys,
                checkpoints,
                ca_dir,
                policies,
            }) => audit_verify(
                overrides(RunArgs {
                    db,
                    ca_dir,
                    policies,
                    ..Default::default()
                }),
                &keys,
                checkpoints,
            ),
            Command::Policy(PolicyCommand::Check { dir }) => {
                let policy = load_policy(overrides(RunArgs {
                    policies: dir,
                    ..Default::default()
                }))?;
                println!("policy OK: {}", policy.summary());
                Ok(())
            }
            Command::Policy(PolicyCommand::Scan {
                files,
                show,
                json,
                policies,
            }) => {
                let policy = load_policy(overrides(RunArgs {
                    policies,
                    ..Default::default()
                }))?;
                if scan_files(policy.masking(), &files, show, json)? {
                    Err(CommandError::WouldRefuse)
                } else {
                    Ok(())
                }
            }
            Command::Policy(PolicyCommand::Explain {
                host,
                path,
                user,
                groups,
                body,
                json,
                policies,
            }) => {
                let policy = load_policy(overrides(RunArgs {
                    policies,
                    ..Default::default()
                }))?;
                let body = body
                    .map(|path| {
                        std::fs::read(&path)
                            .map_err(|source| CommandError::ReadFile { path, source })
                    })
                    .transpose()?;
                let question = crate::explain::Question {
                    host,
                    path,
                    user,
                    groups,
                    body,
                };
                let answer = crate::explain::explain(&policy, &question);
                let mut out = std::io::stdout().lock();
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&answer).expect("serializes")
                    )
                } else {
                    write!(out, "{answer}")
                }
                .map_err(CommandError::Output)?;
                if answer.is_allowed() {
                    Ok(())
                } else {
                    Err(CommandError::WouldRefuse)
                }
            }
        }
    }
}

/// `ca init`: a CA whose name constraints permit the catalog's domains and `permit` (or nothing
/// constrained); an existing CA is left as it is. Prints where it is and what it may sign for.
fn ca_init(
    config: &ProxyConfig,
    permit: &[String],
    unconstrained: bool,
) -> Result<(), CommandError> {
    let permit = permit
        .iter()
        .map(|domain| {
            crate::policy::hosts::HostPattern::parse(domain).map_err(|e| LoadError::Invalid {
                file: "command line".into(),
                field: "--permit".into(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scope = || -> Result<NameScope, CommandError> {
        if unconstrained {
            return Ok(NameScope::Unconstrained);
        }
        // Read only to make a CA: an existing one is left alone whatever the catalog says.
        let policy = Policy::load(config.policies.as_deref())?;
        Ok(NameScope::for_catalog(policy.catalog(), &permit)?)
    };
    let (ca, created) = RootCa::load_or_create(&config.ca_dir, scope)?;
    let cert = config.ca_dir.join(crate::tls::ca::CERT_FILE);
    let verb = if created {
        "created"
    } else {
        "already present"
    };
    println!("CA {verb}: {}", cert.display());
    println!("it may sign for {}", ca.scope());
    Ok(())
}

/// `audit verify`: the chain, then the checkpoints in the store and in the external file, with
/// the public keys given (or the one in the CA directory).
fn audit_verify(
    overrides: Overrides,
    keys: &[PathBuf],
    file: Option<PathBuf>,
) -> Result<(), CommandError> {
    let (config, _) = ProxyConfig::resolve(overrides.clone())?;
    let store = open_store(overrides)?;
    let path = store.location();
    if let Some(brk) = store.verify()? {
        return Err(CommandError::ChainBroken {
            path,
            row: brk.row,
            reason: brk.reason,
        });
    }
    let keys = if keys.is_empty() {
        let default = config.ca_dir.join(checkpoint::PUBLIC_KEY_FILE);
        if default.exists() {
            vec![PublicKey::load(&default)?]
        } else {
            Vec::new()
        }
    } else {
        keys.iter()
            .map(|k| PublicKey::load(k))
            .collect::<Result<_, _>>()?
    };
    let file = match file {
        Some(file) => Some(file),
        None => {
            let policy = Policy::load(config.policies.as_deref())?;
            checkpoint::file_for(&policy.recording().checkpoints, &config.db)
        }
    };
    let verified = match checkpoint::verify(&store, &keys, file.as_deref()) {
        Ok(verified) => verified,
        Err(CheckpointError::Fault(fault)) => {
            return Err(CommandError::CheckpointBroken { path, fault });
        }
        Err(CheckpointError::Read { path, source }) => {
            return Err(CommandError::ReadFile { path, source });
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "{}",
        verified_summary(store.count()?, &path, &verified, file.as_deref())
    );
    Ok(())
}

/// What `audit verify` found to hold, in plain words.
fn verified_summary(
    records: i64,
    db: &str,
    verified: &checkpoint::Verified,
    file: Option<&std::path::Path>,
) -> String {
    let mut said = format!("audit chain intact: {records} records in {db}");
    let total = verified.in_store + verified.in_file.unwrap_or(0);
    if total == 0 {
        said.push_str(", no signed checkpoint yet");
    } else {
        let signers: Vec<&str> = verified.signers.iter().map(String::as_str).collect();
        said.push_str(&format!(
            ", {total} checkpoints signed by {} ({} in the store",
            signers.join(" and "),
            verified.in_store
        ));
        if let (Some(n), Some(file)) = (verified.in_file, file) {
            said.push_str(&format!(", {n} in {}", file.display()));
        }
        said.push(')');
    }
    match (file, verified.newest_external) {
        (Some(_), Some(row)) => {
            said.push_str(&format!(", newest external checkpoint at row {row} covered"));
        }
        (Some(file), None) => {
            said.push_str(&format!(", no checkpoint in {} yet", file.display()));
        }
        (None, _) => said.push_str(
            "\nno external checkpoint file (set checkpoints.file in recording.yaml, or pass --checkpoints): rows cut from the end of the store would not show",
        ),
    }
    if let (false, Some(file)) = (verified.cut_short.is_empty(), file) {
        let lines: Vec<String> = verified.cut_short.iter().map(usize::to_string).collect();
        said.push_str(&format!(
            "\n{}: line {} cut short (a crash while appending), passed over",
            file.display(),
            lines.join(", ")
        ));
    }
    if verified.first_id > 1 {
        // Retention deletes the oldest rows; so could someone who moved the chain's base by
        // hand. Each checkpoint says where the chain started when it was signed.
        said.push_str(&format!(
            "\nthe chain starts at row {} (rows before it were purged)",
            verified.first_id
        ));
    }
    if verified.unsigned > 0 && total > 0 {
        said.push_str(&format!(
            "\n{} rows after the newest checkpoint are not signed yet",
            verified.unsigned
        ));
    }
    said
}

/// The policy in the directory `overrides` names (or where the configuration points, or the
/// embedded defaults).
fn load_policy(overrides: Overrides) -> Result<Policy, CommandError> {
    let (config, _) = ProxyConfig::resolve(overrides)?;
    Ok(Policy::load(config.policies.as_deref())?)
}

/// `policy scan`: each file's text through the masker; returns whether anything was found.
fn scan_files(
    masking: &crate::mask::MaskPolicy,
    files: &[PathBuf],
    show: bool,
    json: bool,
) -> Result<bool, CommandError> {
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for path in files {
        // Each file on its own, as each would be in its own conversation.
        let vault = crate::mask::vault::Vault::new(std::time::Duration::from_secs(60), 64 << 20);
        let Ok(text) = std::fs::read(path).map(String::from_utf8) else {
            continue;
        };
        let Ok(text) = text else {
            continue;
        };
        let masker = crate::mask::Masker {
            policy: masking,
            vault: &vault,
            scope: "scan",
        };
        let mut findings = Vec::new();
        let outcome = masker.mask_text(&text, &|| "body".into(), &mut findings);
        if let Err(e) = outcome {
            writeln!(out, "{}: {e}", path.display()).map_err(CommandError::Output)?;
            any = true;
            continue;
        }
        for f in findings {
            any = true;
            let offset = f.offset.min(text.len());
            let line_no = text.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            let line = text[..offset].rfind('\n').map_or(0, |n| n + 1);
            let line_end = text[offset..].find('\n').map_or(text.len(), |n| offset + n);
            let line_text: String = text[line..line_end].chars().take(240).collect();
            if json {
                let mut v = serde_json::json!({
                    "file": path.display().to_string(),
                    "line": line_no,
                    "rule": &*f.rule,
                    "category": &*f.category,
                });
                if show {
                    v["text"] = line_text.into();
                }
                writeln!(out, "{v}")
            } else if show {
                writeln!(
                    out,
                    "{}:{line_no}: {} {}",
                    path.display(),
                    f.rule,
                    line_text.trim()
                )
            } else {
                writeln!(
                    out,
                    "{}:{line_no}: {} ({})",
                    path.display(),
                    f.rule,
                    f.category
                )
            }
            .map_err(CommandError::Output)?;
        }
    }
    Ok(any)
}

/// `replay --send`: through the running proxy, then the difference.
async fn resend(
    config: &ProxyConfig,
    record: &crate::record::Record,
    proxy: Option<String>,
    headers: &[String],
) -> Result<(), CommandError> {
    let proxy = proxy.unwrap_or_else(|| format!("http://{}", config.listen));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|h| match h.split_once(':') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
            None => Err(CommandError::BadHeader(h.clone())),
        })
        .collect::<Result<_, _>>()?;
    let ca = RootCa::load(&config.ca_dir)?;
    let resent = replay::resend(record, &proxy, ca.cert_pem(), &headers).await?;
    println!(
        "recorded: {} ({}); now: {}",
        record.status.map(|s| s.to_string()).unwrap_or_default(),
        record.outcome,
        resent.status
    );
    match replay::diff(record, &resent.body) {
        None => println!("the answers are the same"),
        Some(diff) => print!("{diff}"),
    }
    Ok(())
}

/// A record as `--json` prints it: its fields, its row id, and the fields the store keeps as
/// JSON text (`findings`, `usage`) nested as the objects they are.
fn record_json(id: i64, record: &crate::record::Record) -> serde_json::Value {
    let mut v = serde_json::to_value(record).expect("records serialize");
    v["id"] = id.into();
    for field in ["findings", "usage"] {
        if let Some(text) = v[field].as_str()
            && let Ok(nested) = serde_json::from_str::<serde_json::Value>(text)
        {
            v[field] = nested;
        }
    }
    v
}

/// Opens an existing audit store (never creates one).
fn open_store(overrides: Overrides) -> Result<crate::record::Store, CommandError> {
    let (config, _) = ProxyConfig::resolve(overrides)?;
    let location = config.store();
    if !location.exists() {
        return Err(CommandError::NoStore(config.db));
    }
    Ok(crate::record::Store::connect(&location)?)
}

/// Runs the proxy until SIGINT or SIGTERM, then drains.
/// One certificate's DER from a PEM or DER file.
fn read_certificate(path: &std::path::Path) -> Result<Vec<u8>, CommandError> {
    let bytes = std::fs::read(path).map_err(|source| CommandError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    crate::deploy::client_env::certificate_der(&bytes, path)
        .map_err(|e| CommandError::Usage(e.to_string()))
}

/// The URL a client on this machine reaches the proxy listening on `listen` by.
fn local_proxy_url(mut listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{listen}")
}

/// `tollgate doctor`: the checks of [`crate::deploy::doctor`], with the environment as it is.
async fn doctor(config: Option<&ProxyConfig>, args: DoctorArgs) -> Result<(), CommandError> {
    use crate::deploy::{client_env, doctor};
    let env: doctor::Env = std::env::vars().collect();
    let from_env = ["HTTPS_PROXY", "https_proxy"]
        .into_iter()
        .find_map(|name| env.get(name).filter(|v| !v.is_empty()).map(|v| (name, v)));
    let proxy = match (args.proxy, from_env, config) {
        (Some(url), _, _) => doctor::ProxySource {
            url,
            from: "--proxy".to_owned(),
        },
        (None, Some((name, url)), _) => doctor::ProxySource {
            url: url.clone(),
            from: name.to_owned(),
        },
        (None, None, config) => doctor::ProxySource {
            url: local_proxy_url(
                config.map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)), |c| c.listen),
            ),
            from: "the configured listen address".to_owned(),
        },
    };
    // The CA: as named, else the CA directory's, else the copy `tollgate env` wrote.
    let ca = match args.ca {
        Some(path) => Some((read_certificate(&path)?, path)),
        None => config
            .map(|c| c.ca_dir.join(crate::tls::ca::CERT_FILE))
            .into_iter()
            .chain(client_env::default_dir().map(|d| d.join("tollgate-ca.pem")))
            .find_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                let der = client_env::certificate_der(&bytes, &path).ok()?;
                Some((der, path))
            }),
    };
    let opts = doctor::Options {
        proxy,
        ca,
        intercepted: args.intercepted,
        tunneled: args.tunneled,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        run_clients: !args.no_clients,
    };
    let findings = doctor::run(&opts, &env).await;
    let text = if args.json {
        serde_json::to_string_pretty(&findings).expect("findings serialize") + "\n"
    } else {
        doctor::render("Tollgate doctor", &findings)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(CommandError::Output)?;
    match doctor::failures(&findings) {
        0 => Ok(()),
        n => Err(CommandError::Unhealthy(n)),
    }
}

async fn run(config: ProxyConfig) -> Result<(), CommandError> {
    let proxy = crate::proxy::start(&config).await?;
    wait_for_signal().await.map_err(CommandError::Signals)?;
    info!("stopping: no new connections; in-flight streams may finish");
    let report = proxy.shutdown().await;
    if report.drained {
        info!("stopped cleanly");
    } else {
        warn!(
            abandoned = report.abandoned,
            "drain deadline passed; cutting the streams still running"
        );
    }
    if report.records_lost > 0 {
        return Err(CommandError::RecordsLost(report.records_lost));
    }
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
