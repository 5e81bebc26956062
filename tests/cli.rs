//! The `tollgate` binary: commands, exit codes, start-up with no files, logs, and SIGTERM.

mod common;

use common::running::Running;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tollgate(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(cwd)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn policy_check_accepts_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &["policy", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("policy OK") && stdout.contains("(embedded)"),
        "{stdout}"
    );
}

#[test]
fn bad_policy_file_is_rejected_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("policy.yaml"),
        "hosts:\n  deny: [ok.example, 'https://bad.example/']\n",
    )
    .unwrap();

    let out = tollgate(dir.path(), &["policy", "check", "policies"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("policy.yaml") && err.contains("hosts.deny[1]"),
        "{err}"
    );

    // `run` picks up ./policies by default and refuses to start on the same error.
    let out = tollgate(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("hosts.deny[1]"), "{}", stderr(&out));

    std::fs::write(
        policies.join("providers.yaml"),
        "providers:\n  - id: x\n    hostz: []\n",
    )
    .unwrap();
    let out = tollgate(dir.path(), &["policy", "check", "policies"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("providers.yaml") && err.contains("hostz"),
        "{err}"
    );
}

#[test]
fn bad_config_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tollgate.yaml"), "listen: nowhere\n").unwrap();
    let out = tollgate(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("tollgate.yaml") && err.contains("listen"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        tollgate(dir.path(), &["run", "--nope"]).status.code(),
        Some(64)
    );
    assert_eq!(
        tollgate(dir.path(), &["run", "--connect-to", "a:b"])
            .status
            .code(),
        Some(64)
    );
}

#[test]
fn ca_init_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &["ca", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CA created"));
    let out = tollgate(dir.path(), &["ca", "init"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already present"));

    let pem = tollgate(dir.path(), &["ca", "export"]);
    assert!(pem.status.success());
    let on_disk = std::fs::read(dir.path().join("ca/tollgate-ca.crt")).unwrap();
    assert_eq!(pem.stdout, on_disk);

    let der = tollgate(dir.path(), &["ca", "export", "--der"]);
    assert!(der.status.success());
    assert_eq!(der.stdout[0], 0x30, "DER starts with a SEQUENCE");
    x509_parser::parse_x509_certificate(&der.stdout).unwrap();

    let empty = tempfile::tempdir().unwrap();
    let out = tollgate(empty.path(), &["ca", "export"]);
    assert_eq!(out.status.code(), Some(64), "no CA to export");
}

/// The DNS domains a root's name constraints permit, `None` when it has none.
fn permitted_domains(cert_pem: &[u8]) -> Option<Vec<String>> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let constraints = cert.name_constraints().unwrap()?;
    assert!(constraints.critical);
    Some(
        constraints
            .value
            .permitted_subtrees
            .iter()
            .flatten()
            .map(|subtree| match subtree.base {
                x509_parser::extensions::GeneralName::DNSName(name) => name.to_owned(),
                ref other => panic!("permits a non-DNS name: {other:?}"),
            })
            .collect(),
    )
}

#[test]
fn ca_init_limits_the_ca_to_the_catalog_and_permitted_domains() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &["ca", "init", "--permit", "LLM.corp.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("api.openai.com") && stdout.contains("llm.corp.example"),
        "{stdout}"
    );
    let domains = permitted_domains(&std::fs::read(dir.path().join("ca/tollgate-ca.crt")).unwrap())
        .expect("name constraints by default");
    for domain in ["api.openai.com", "api.anthropic.com", "llm.corp.example"] {
        assert!(
            domains.iter().any(|d| d == domain),
            "{domain} in {domains:?}"
        );
    }

    let open = tempfile::tempdir().unwrap();
    let out = tollgate(open.path(), &["ca", "init", "--unconstrained"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("any name"));
    let pem = std::fs::read(open.path().join("ca/tollgate-ca.crt")).unwrap();
    assert_eq!(permitted_domains(&pem), None);
}

#[test]
fn ca_init_refuses_a_catalog_host_no_name_constraint_can_hold() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("providers.yaml"),
        "providers:\n  - id: local\n    hosts: [10.0.0.5]\n",
    )
    .unwrap();
    let out = tollgate(dir.path(), &["ca", "init"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("10.0.0.5") && err.contains("--unconstrained"),
        "{err}"
    );
    assert!(!dir.path().join("ca/tollgate-ca.key").exists());
    // `run` makes its CA the same way, and refuses the same way.
    let out = tollgate_exits(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("10.0.0.5"), "{}", stderr(&out));

    let out = tollgate(
        dir.path(),
        &["ca", "init", "--permit", "https://x.example/"],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("--permit"), "{}", stderr(&out));
}

/// Runs `tollgate` that is expected to exit by itself; kills it and fails after 30 seconds.
fn tollgate_exits(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(cwd)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("tollgate {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn ca_files_get_their_modes_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    for umask in ["000", "077", "027"] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("sh")
            .current_dir(dir.path())
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" ca init"))
            .arg(env!("CARGO_BIN_EXE_tollgate"))
            .output()
            .unwrap();
        assert!(out.status.success(), "umask {umask}: {}", stderr(&out));
        let mode = |path: &str| {
            std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("ca"), 0o700, "umask {umask}");
        assert_eq!(mode("ca/tollgate-ca.key"), 0o600, "umask {umask}");
        assert_eq!(mode("ca/tollgate-ca.crt"), 0o644, "umask {umask}");
    }
}

#[cfg(unix)]
#[test]
fn run_refuses_a_ca_others_can_read_or_replace_with_exit_64() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(tollgate(dir.path(), &["ca", "init"]).status.success());
    let key = dir.path().join("ca/tollgate-ca.key");
    chmod(&key, 0o644);
    let out = tollgate_exits(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ca/tollgate-ca.key has mode 644"), "{err}");

    chmod(&key, 0o600);
    let ca = dir.path().join("ca");
    // The audit signing key beside it gets the same care.
    tollgate::record::checkpoint::AuditKey::load_or_create(&ca).unwrap();
    chmod(&ca.join("tollgate-audit.key"), 0o640);
    let out = tollgate_exits(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ca/tollgate-audit.key has mode 640"), "{err}");
    chmod(&ca.join("tollgate-audit.key"), 0o600);

    chmod(&ca, 0o777);
    let out = tollgate_exits(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ca has mode 777"), "{err}");
}

impl Running {
    /// `tollgate run` on a free port with `api.openai.com` sent to `upstream`, and a client that
    /// goes through it trusting its CA.
    fn start_against(dir: &Path, upstream: &Upstream) -> (Self, String, reqwest::Client) {
        Self::start_against_with(dir, upstream, &[])
    }

    /// As [`Running::start_against`], with these environment variables set.
    fn start_against_with(
        dir: &Path,
        upstream: &Upstream,
        env: &[(&str, &str)],
    ) -> (Self, String, reqwest::Client) {
        let connect_to = format!("api.openai.com:443:127.0.0.1:{}", upstream.tls_addr.port());
        let upstream_ca = format!("{FIXTURES}/upstream-ca.crt");
        let (running, addr) = Running::start_with(
            dir,
            &[
                "--listen",
                "127.0.0.1:0",
                "--connect-to",
                &connect_to,
                "--upstream-ca",
                &upstream_ca,
            ],
            env,
        );
        let ca = std::fs::read_to_string(dir.join("ca/tollgate-ca.crt")).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .proxy(reqwest::Proxy::all(format!("http://{addr}")).unwrap())
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        (running, addr, client)
    }
}

/// A chat completion through `client` with a secret in its credentials, its body and, after
/// `query`, perhaps its URL; the fake upstream answers 200.
async fn send_with_secrets(client: &reqwest::Client, query: &str) {
    let res = client
        .post(format!("https://api.openai.com/v1/chat/completions{query}"))
        .header("authorization", "Bearer sk-header-secret")
        .body(r#"{"messages":[{"role":"user","content":"body-secret ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
}

/// `TOLLGATE_LOG_FORMAT=json` (or `--log-format json`): every line `tollgate run` writes, from
/// start to shutdown and the request lines between, is one JSON object with the same fields
/// the text lines carry, and no secret.
#[tokio::test]
async fn run_logs_one_json_object_per_line_when_asked() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, _, client) =
        Running::start_against_with(dir.path(), &upstream, &[("TOLLGATE_LOG_FORMAT", "json")]);
    send_with_secrets(&client, "").await;
    running.wait_for("\"status\":200");
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "no `{field}` in {line}");
        }
    }
    let message = |needle: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {log}"))
    };
    assert!(message("listening on 127.0.0.1:")["level"] == "INFO");
    message("stopped cleanly");
    let request = lines
        .iter()
        .find(|l| l["status"] == 200)
        .unwrap_or_else(|| panic!("no request line in {log}"));
    assert_eq!(request["host"], "api.openai.com");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/v1/chat/completions");
    for secret in [
        "sk-header-secret",
        "body-secret",
        "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ",
    ] {
        assert!(!log.contains(secret), "{secret} logged");
    }
}

#[tokio::test]
async fn run_with_no_files_serves_logs_without_secrets_and_stops_on_sigterm() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, addr, client) = Running::start_against(dir.path(), &upstream);
    assert!(
        running.log().contains("(embedded) providers.yaml"),
        "{}",
        running.log()
    );
    send_with_secrets(&client, "?key=query-secret").await;

    // A refused request logs too, still without its query string.
    let refused = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{addr}")).unwrap())
        .build()
        .unwrap()
        .get("http://api.openai.com/v1/models?key=query-secret")
        .header("authorization", "Bearer sk-header-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    running.wait_for("outcome=\"plaintext-to-provider\"");

    let line = running.wait_for("status=200");
    for field in [
        "method=POST",
        "host=api.openai.com",
        "path=/v1/chat/completions",
        "status=200",
        "mode=\"intercepted\"",
        "outcome=\"complete\"",
        "masked=github-pat:1",
        "ms=",
    ] {
        assert!(line.contains(field), "`{field}` missing from: {line}");
    }

    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("stopped cleanly"), "{log}");

    // Every exchange, the refused one included, is in the audit store, and the chain holds.
    let out = tollgate(dir.path(), &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("audit chain intact: 2 records"), "{said}");
    let db = std::fs::read(dir.path().join("tollgate.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tollgate.db-wal")).unwrap_or_default();
    for secret in [
        "query-secret",
        "sk-header-secret",
        "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ",
    ] {
        let bytes = secret.as_bytes();
        for file in [&db, &wal] {
            assert!(
                !file.windows(bytes.len()).any(|w| w == bytes),
                "`{secret}` is in the store"
            );
        }
    }
    for secret in [
        "query-secret",
        "sk-header-secret",
        "body-secret",
        "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ",
    ] {
        assert!(
            !log.contains(secret),
            "`{secret}` leaked into the log:\n{log}"
        );
    }
}

/// The proxy's CPU time so far (utime and stime of proc(5)'s `stat`), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A proxy with nothing to do does nothing: its audit writer sleeps until there is something to
/// write or a timer is due (it once woke without end on the SQLite store, keeping a core busy).
#[tokio::test]
async fn an_idle_run_uses_no_cpu() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, _, client) = Running::start_against(dir.path(), &upstream);
    send_with_secrets(&client, "").await;
    running.wait_for("status=200");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = running.child.id();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(pid) - before;
    // A busy loop takes most of the 200 ticks of these 2 s even on a loaded machine.
    assert!(used < 40, "{used} ticks of CPU in 2 s of idling");
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

#[tokio::test]
async fn a_run_signs_its_chain_at_shutdown_and_audit_verify_checks_the_signatures() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/recording.yaml"),
        "retention: { bodies: 30d, records: 400d }\ncheckpoints: { file: checkpoints.jsonl }\n",
    )
    .unwrap();
    let (running, _, client) = Running::start_against(dir.path(), &upstream);
    for _ in 0..3 {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(r#"{"model":"m","messages":[]}"#)
            .send()
            .await
            .unwrap();
        res.text().await.unwrap();
    }
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("created the audit signing key"), "{log}");
    assert!(
        log.contains("audit checkpoints also go to checkpoints.jsonl"),
        "{log}"
    );

    let out = tollgate(dir.path(), &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "audit chain intact: 3 records in tollgate.db, 2 checkpoints signed by {} (1 in the store, 1 in checkpoints.jsonl), newest external checkpoint at row 3 covered",
            key_id(dir.path())
        )),
        "{said}"
    );
}

#[test]
fn audit_verify_names_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let mut store = tollgate::record::Store::open(&db).unwrap();
    let mut record = tollgate::record::Record::new(
        tollgate::record::RecordKind::Exchange,
        "127.0.0.1:1",
        "127.0.0.1",
        "intercepted",
        "api.openai.com",
    );
    record.status = Some(200);
    record.outcome = "complete".into();
    record.request_body = b"{}"[..].into();
    store.append(&vec![record; 5]).unwrap();
    drop(store);
    let db_arg = db.to_str().unwrap();
    assert!(
        tollgate(dir.path(), &["audit", "verify", "--db", db_arg])
            .status
            .success()
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE records SET host = 'api.anthropic.com' WHERE id = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let out = tollgate(dir.path(), &["audit", "verify", "--db", db_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("broken at row 3"), "{}", stderr(&out));
}

/// A store of `n` records in `dir/audit.db`, signed every `every` records (and at the end) with
/// the key in `dir/ca`, its checkpoints also in `dir/checkpoints.jsonl`: what the writer leaves.
fn signed_store(dir: &Path, n: u64, every: u64) -> std::path::PathBuf {
    use tollgate::record::checkpoint::{AuditKey, Checkpointer};
    let db = dir.join("audit.db");
    let store = tollgate::record::Store::open(&db).unwrap();
    let (key, _) = AuditKey::load_or_create(&dir.join("ca")).unwrap();
    let policy = tollgate::policy::CheckpointPolicy {
        every_records: every,
        every: Duration::from_secs(3600),
        file: Some("checkpoints.jsonl".into()),
    };
    let mut checkpoints = Checkpointer::new(key, &policy, &db).unwrap();
    let mut store = store;
    for i in 0..n {
        let mut record = tollgate::record::Record::new(
            tollgate::record::RecordKind::Exchange,
            "127.0.0.1:1",
            "127.0.0.1",
            "intercepted",
            "api.openai.com",
        );
        record.status = Some(200);
        record.outcome = "complete".into();
        record.request_body = format!("{{\"n\":{i}}}").into();
        store.append(&[record]).unwrap();
        checkpoints.tick(&store);
    }
    checkpoints.finish(&store);
    db
}

/// What someone who can write the database can do: change row `id`'s host, then recompute
/// every hash from it on, and the head, with Tollgate's own hash function.
fn rewrite_and_rehash(db: &Path, id: i64, host: &str) {
    use tollgate::record::{HashVersion, row_hash};
    let records = tollgate::record::Store::open(db).unwrap().all().unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut prev: Vec<u8> = conn
        .query_row("SELECT hash FROM records WHERE id = ?1", [id - 1], |r| {
            r.get(0)
        })
        .unwrap_or(vec![0; 32]);
    for (row, mut record) in records.into_iter().filter(|(row, _)| *row >= id) {
        if row == id {
            record.host = host.into();
        }
        let hash = row_hash(HashVersion::CURRENT, row, &prev, &record);
        conn.execute(
            "UPDATE records SET host = ?1, prev_hash = ?2, hash = ?3 WHERE id = ?4",
            rusqlite::params![record.host, prev, hash, row],
        )
        .unwrap();
        prev = hash.to_vec();
    }
    conn.execute("UPDATE chain_head SET hash = ?1", [prev])
        .unwrap();
}

fn verify_with_checkpoints(dir: &Path) -> Output {
    tollgate(
        dir,
        &[
            "audit",
            "verify",
            "--db",
            "audit.db",
            "--checkpoints",
            "checkpoints.jsonl",
        ],
    )
}

fn key_id(dir: &Path) -> String {
    tollgate::record::checkpoint::PublicKey::load(&dir.join("ca/tollgate-audit.pub"))
        .unwrap()
        .id()
}

#[test]
fn audit_verify_says_what_a_clean_signed_store_proves() {
    let dir = tempfile::tempdir().unwrap();
    signed_store(dir.path(), 7, 3);
    let out = verify_with_checkpoints(dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = format!(
        "audit chain intact: 7 records in audit.db, 6 checkpoints signed by {} (3 in the store, 3 in checkpoints.jsonl), newest external checkpoint at row 7 covered\n",
        key_id(dir.path())
    );
    assert_eq!(said, expected);

    // Without the file, it says what that leaves unproven.
    let out = tollgate(dir.path(), &["audit", "verify", "--db", "audit.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("3 checkpoints signed by"), "{said}");
    assert!(
        said.contains("rows cut from the end of the store would not show"),
        "{said}"
    );
}

#[test]
fn audit_verify_refuses_a_row_rewritten_with_every_hash_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let db = signed_store(dir.path(), 7, 3);
    rewrite_and_rehash(&db, 5, "elsewhere.example");
    assert_eq!(
        tollgate::record::Store::open(&db)
            .unwrap()
            .verify()
            .unwrap(),
        None,
        "the chain alone holds"
    );
    let out = verify_with_checkpoints(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("rewritten: row 6 does not hold the hash checkpoint 2 in the store signed")
            && err.contains("rows 4 to 6 were changed"),
        "{err}"
    );

    // With the store's checkpoints deleted too, the external file still shows it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM checkpoints", [])
        .unwrap();
    let out = verify_with_checkpoints(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("row 6 does not hold the hash the checkpoint on line 2 of checkpoints.jsonl"),
        "{err}"
    );
}

#[test]
fn audit_verify_refuses_a_store_cut_short_with_its_head_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let db = signed_store(dir.path(), 8, 3);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DELETE FROM records WHERE id > 5;
         UPDATE chain_head SET last_id = 5, hash = (SELECT hash FROM records WHERE id = 5);
         DELETE FROM checkpoints WHERE last_id > 5;",
    )
    .unwrap();
    drop(conn);
    // The store alone cannot tell...
    let out = tollgate(dir.path(), &["audit", "verify", "--db", "audit.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // ...the external file can.
    let out = verify_with_checkpoints(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("audit.db: truncated: rows after 5 are missing (the checkpoint on line 3 of checkpoints.jsonl"),
        "{err}"
    );
}

#[test]
fn audit_verify_refuses_checkpoints_signed_by_another_key() {
    let dir = tempfile::tempdir().unwrap();
    signed_store(dir.path(), 4, 2);
    // The auditor's copy of the key is not the one that signed.
    let other = tempfile::tempdir().unwrap();
    tollgate::record::checkpoint::AuditKey::load_or_create(other.path()).unwrap();
    let other_pub = other.path().join("tollgate-audit.pub");
    let out = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            "--db",
            "audit.db",
            "--key",
            other_pub.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("is signed by key {}, not by", key_id(dir.path())))
            && err.contains("refused"),
        "{err}"
    );

    // A checkpoint file made up and signed with another key.
    let db = dir.path().join("other.db");
    std::fs::copy(dir.path().join("audit.db"), &db).unwrap();
    let (key, _) = tollgate::record::checkpoint::AuditKey::load_or_create(other.path()).unwrap();
    let store = tollgate::record::Store::open(&db).unwrap();
    let head = store.head().unwrap().unwrap();
    let forged =
        tollgate::record::checkpoint::Checkpoint::sign(&key, &head, tollgate::record::now());
    std::fs::write(
        dir.path().join("forged.jsonl"),
        format!("{}\n", serde_json::to_string(&forged).unwrap()),
    )
    .unwrap();
    let out = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            "--db",
            "audit.db",
            "--checkpoints",
            "forged.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the checkpoint on line 1 of forged.jsonl is signed by key"),
        "{}",
        stderr(&out)
    );

    // No key at all: a usage error that says what to pass.
    std::fs::remove_file(dir.path().join("ca/tollgate-audit.pub")).unwrap();
    let out = tollgate(dir.path(), &["audit", "verify", "--db", "audit.db"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --key"), "{}", stderr(&out));
}

#[test]
fn rows_written_before_hash_versions_and_checkpoints_still_verify() {
    use tollgate::record::{HashVersion, row_hash};
    let dir = tempfile::tempdir().unwrap();
    let db = signed_store(dir.path(), 4, 100);
    // Turn it into what an earlier Tollgate left: rows hashed over their JSON (version 1), no
    // hash versions, no checkpoints, schema 3.
    let records = tollgate::record::Store::open(&db).unwrap().all().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut prev = vec![0u8; 32];
    for (row, record) in records {
        let hash = row_hash(HashVersion::V1, row, &prev, &record);
        conn.execute(
            "UPDATE records SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            rusqlite::params![prev, hash, row],
        )
        .unwrap();
        prev = hash.to_vec();
    }
    conn.execute_batch(&format!(
        "UPDATE chain_head SET hash = x'{}';
         DROP INDEX records_scope_id; DROP INDEX records_outcome_id; DROP INDEX records_decision_id;
         ALTER TABLE records DROP COLUMN request_base; ALTER TABLE records DROP COLUMN request_prefix;
         ALTER TABLE records DROP COLUMN request_suffix;
         ALTER TABLE records DROP COLUMN bodies_codec; ALTER TABLE pending DROP COLUMN bodies_codec;
         ALTER TABLE records DROP COLUMN approval; ALTER TABLE records DROP COLUMN hash_version;
         DROP TABLE checkpoints; PRAGMA user_version = 3;",
        prev.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
    .unwrap();
    drop(conn);
    std::fs::remove_file(dir.path().join("checkpoints.jsonl")).unwrap();
    let out = tollgate(dir.path(), &["audit", "verify", "--db", "audit.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with("audit chain intact: 4 records in audit.db, no signed checkpoint yet"),
        "{said}"
    );
    // An altered old row is still found, by its row.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE records SET host = 'x' WHERE id = 2", [])
        .unwrap();
    let out = tollgate(dir.path(), &["audit", "verify", "--db", "audit.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("broken at row 2"), "{}", stderr(&out));
}

#[test]
fn store_purge_applies_retention_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let mut store = tollgate::record::Store::open(&db).unwrap();
    let at = |when: &str| {
        let mut r = tollgate::record::Record::new(
            tollgate::record::RecordKind::Exchange,
            "127.0.0.1:1",
            "127.0.0.1",
            "intercepted",
            "api.openai.com",
        );
        r.started_at = when.into();
        r.request_body = b"{\"old\":true}"[..].into();
        r
    };
    let recent = tollgate::record::now();
    store
        .append(&[
            at("2020-01-01T00:00:00Z"),
            at("2020-01-02T00:00:00Z"),
            at(&recent),
        ])
        .unwrap();
    drop(store);
    let db_arg = db.to_str().unwrap();
    let out = tollgate(dir.path(), &["store", "purge", "--db", db_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 2 records"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tollgate(dir.path(), &["audit", "verify", "--db", db_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 records"),
        "the recent one and the purge's own"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the chain starts at row 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_proxy_killed_mid_stream_leaves_a_store_that_opens_and_verifies() {
    use futures_util::StreamExt;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, _, client) = Running::start_against(dir.path(), &upstream);
    for _ in 0..5 {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(r#"{"model":"m","messages":[]}"#)
            .send()
            .await
            .unwrap();
        res.text().await.unwrap();
    }
    let res = client
        .post("https://api.openai.com/test/gated-sse")
        .body(r#"{"model":"m","stream":true}"#)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    // Once the finished exchanges and the one in flight are on disk, kill without warning,
    // mid-stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    let db = dir.path().join("tollgate.db");
    let on_disk = || {
        tollgate::record::Store::open(&db)
            .and_then(|s| Ok((s.count()?, s.pending_count()?)))
            .unwrap_or((0, 0))
    };
    while on_disk() != (5, 1) {
        assert!(
            Instant::now() < deadline,
            "the finished exchanges were never written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut child = running.kill();
    child.wait().unwrap();

    let out = tollgate(dir.path(), &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("audit chain intact: 5 records"), "{said}");

    // The next start records the exchange the kill cut short, with what was sent.
    let (running, _, _) = Running::start_against(dir.path(), &upstream);
    drop(running);
    let store = tollgate::record::Store::open(&db).unwrap();
    assert_eq!(store.pending_count().unwrap(), 0);
    let (_, cut) = store.all().unwrap().pop().unwrap();
    assert_eq!(cut.outcome, "interrupted");
    assert_eq!(cut.path.as_deref(), Some("/test/gated-sse"));
    assert_eq!(cut.request_body, &br#"{"model":"m","stream":true}"#[..]);
    assert!(store.verify().unwrap().is_none());
}

#[test]
fn run_refuses_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &["run", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot listen on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn policy_explain_prints_the_decision_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let (_, hash) = tollgate::identity::new_token();
    std::fs::write(
        policies.join("identity.yaml"),
        format!("tokens:\n  - {{ name: laptop, sha256: {hash}, user: eve, groups: [eu-staff] }}\n"),
    )
    .unwrap();
    std::fs::write(
        policies.join("policy.yaml"),
        "access:\n  groups:\n    - { name: eu-only, groups: [eu-staff], regions: { '*': [eu] }, masking: { rules: { github-pat: block } } }\n",
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let mut all = vec!["policy", "explain"];
        all.extend_from_slice(args);
        let out = tollgate(dir.path(), &all);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // The user's groups come from their token; the host names the region.
    let (code, text) = explain(&["--host", "us.api.openai.com", "--user", "eve"]);
    assert_eq!(code, Some(1), "{text}");
    for expected in [
        "eve, groups eu-staff (identity.yaml token `laptop`)",
        "eu-only (policy.yaml: access.groups[0])",
        "us (jurisdiction us ⊂ americas; from the host us.api.openai.com)",
        "REFUSED 403 region-not-allowed",
        "policy.yaml: access.groups[0].regions.*",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    // Someone else gets the default profile, which does not restrict regions.
    let (code, text) = explain(&["--host", "us.api.openai.com", "--user", "dan"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ALLOWED"), "{text}");

    // The body: Anthropic's inference_geo, and masking under the group's rules.
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"model":"claude-sonnet-4-5","inference_geo":"us","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    let body = body.to_str().unwrap();
    let (_, text) = explain(&[
        "--host",
        "api.anthropic.com",
        "--path",
        "/v1/messages",
        "--body",
        body,
        "--group",
        "eu-staff",
    ]);
    assert!(
        text.contains("us (jurisdiction us ⊂ americas; from the body inference_geo)"),
        "{text}"
    );
    std::fs::write(
        dir.path().join("pat.json"),
        r#"{"model":"m","messages":[{"role":"user","content":"ghp_0123456789abcdefghijABCDEFGHIJ012345"}]}"#,
    )
    .unwrap();
    let pat = dir.path().join("pat.json");
    let (_, text) = explain(&[
        "--host",
        "eu.api.openai.com",
        "--body",
        pat.to_str().unwrap(),
        "--user",
        "eve",
    ]);
    assert!(text.contains("REFUSED 403 secret-blocked"), "{text}");
    let (_, text) = explain(&[
        "--host",
        "eu.api.openai.com",
        "--body",
        pat.to_str().unwrap(),
    ]);
    assert!(
        text.contains("masked     github-pat:1") && text.contains("ALLOWED"),
        "{text}"
    );

    // Machine-readable, and a tunneled host.
    let (code, json) = explain(&["--host", "github.com", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["verdict"], "tunneled");
    assert_eq!(v["handling"], "tunnel");

    let out = tollgate(
        dir.path(),
        &["policy", "explain", "--host", "x", "--body", "/nonexistent"],
    );
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn a_command_error_is_said_once_and_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path(), &["sessions", "list", "--db", "missing.db"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("missing.db").count(), 1, "{err}");
    assert!(
        err.contains("there is no audit store at missing.db"),
        "{err}"
    );
    assert!(!err.contains("in the audit store"), "{err}");
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_a_bad_set_keeps_the_running_one() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let connect_to = format!("api.openai.com:443:127.0.0.1:{}", upstream.tls_addr.port());
    let (running, addr) = Running::start(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--connect-to", &connect_to],
    );
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let hup = |running: &Running| {
        let status = Command::new("kill")
            .args(["-HUP", &running.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let reloads = |running: &Running, what: &str| running.log().matches(what).count();

    std::fs::write(
        policies.join("policy.yaml"),
        "hosts:\n  deny: [api.openai.com]\n",
    )
    .unwrap();
    // The directory watch may reload first; SIGHUP reloads (or finds the files unchanged).
    hup(&running);
    running.wait_for("trigger=Signal");
    let (status, headers, _) = connect(addr, "api.openai.com:443", &[]).await.refused();
    assert_eq!(status, 403);
    assert_eq!(headers["x-tollgate-rule"], "hosts.deny: api.openai.com");

    let refused_before = reloads(&running, "policy reload refused");
    std::fs::write(policies.join("policy.yaml"), "hosts:\n  deny: 7\n").unwrap();
    hup(&running);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reloads(&running, "policy reload refused") == refused_before {
        assert!(Instant::now() < deadline, "{}", running.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = running.wait_for("policy reload refused");
    assert!(
        line.contains("policy.yaml") && line.contains("hosts.deny"),
        "{line}"
    );
    let (status, _, _) = connect(addr, "api.openai.com:443", &[]).await.refused();
    assert_eq!(status, 403, "the last valid set stays in force");
    let (status, log) = running.terminate();
    assert!(status.success(), "{log}");
}
