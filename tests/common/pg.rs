//! A private PostgreSQL server for the tests that need one: Debian's `postgresql` binaries, a
//! cluster made for this test process in a temporary directory, listening on loopback only, and
//! a fresh database per test. The server stops when the test process ends (a small watchdog
//! beside it sees the process gone).
//!
//! Where the binaries are missing the tests that need them say so and pass, unless
//! `TOLLGATE_REQUIRE_CLIENTS` is set (as in CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
}

/// The server, started on first use; `None` (after saying why) where it cannot be started.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(why) => {
            if std::env::var_os("TOLLGATE_REQUIRE_CLIENTS").is_some() {
                panic!("PostgreSQL is required (TOLLGATE_REQUIRE_CLIENTS) but: {why}");
            }
            eprintln!("skipped: PostgreSQL cannot be started here: {why}");
            None
        }
    }
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("TOLLGATE_TEST_PG_BIN") {
        return Ok(dir.into());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql (apt-get install postgresql)".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".into())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when this process is root (PostgreSQL refuses root).
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<PgServer, String> {
    let bin = bin_dir()?;
    let dir = std::env::temp_dir().join(format!("tollgate-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot hand the cluster's directory to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let out = command(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "tollgate", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // TLS with the fixture upstream certificate (it names localhost and 127.0.0.1), and one
    // user that must give a password; everyone else is trusted on loopback.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (from, to) in [
        ("upstream.crt", "server.crt"),
        ("upstream.key", "server.key"),
    ] {
        std::fs::copy(fixtures.join(from), dir.join(to)).map_err(|e| e.to_string())?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| e.to_string())?;
    }
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         host all pwuser 127.0.0.1/32 scram-sha-256\n\
         host all pwuser ::1/128 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n\
         host all all ::1/128 trust\n",
    )
    .map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot hand the cluster's files to the postgres user".into());
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The server runs beside a watchdog that stops it once this test process is gone.
    let script = format!(
        "'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
         -c ssl=on -c ssl_cert_file='{dir}/server.crt' -c ssl_key_file='{dir}/server.key' \
         >'{dir}/log' 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf '{dir}'",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    command(Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = || {
        Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    while !ready() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start within 30 s: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(PgServer { port })
}

impl PgServer {
    /// The URL of database `name` (no password: the test cluster trusts loopback).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://tollgate@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; its URL.
    pub async fn fresh_database(&self) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("the test cluster answers");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a test database is created");
        drop(client);
        let _ = task.await;
        self.url(&name)
    }
}

impl PgServer {
    /// A new database owned by `pwuser`, who must log in with `password`; its URL (without
    /// the password).
    pub async fn database_with_password(&self, password: &str) -> String {
        let url = self.fresh_database().await;
        let name = url.rsplit('/').next().unwrap().to_owned();
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pwuser') THEN
                     CREATE ROLE pwuser LOGIN;
                   END IF;
                 END $$;
                 ALTER ROLE pwuser PASSWORD '{password}';
                 ALTER DATABASE {name} OWNER TO pwuser;"
            ))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        format!("postgres://pwuser@127.0.0.1:{}/{name}", self.port)
    }
}

/// Settings for a store on `url` as replica `replica`, trusting the webpki roots.
pub fn settings(
    url: &str,
    replica: &str,
) -> std::sync::Arc<tollgate::record::postgres::PgSettings> {
    std::sync::Arc::new(
        tollgate::record::postgres::PgSettings::parse(
            url,
            None,
            tollgate::tls::upstream::client_config(&[]).unwrap(),
            8,
            Duration::from_secs(10),
            replica.to_owned(),
        )
        .unwrap(),
    )
}

/// Whether the suites should run on PostgreSQL (`TOLLGATE_TEST_STORE=postgres`).
pub fn suites_on_postgres() -> bool {
    std::env::var("TOLLGATE_TEST_STORE").is_ok_and(|v| v == "postgres")
}
