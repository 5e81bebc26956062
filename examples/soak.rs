//! A bounded soak of the real proxy binary: rounds of exchanges at high concurrency, mixed
//! streamed and not, with a secret in many of them and clients that abort at random (before the
//! response head and mid-stream). It then stops the proxy with SIGTERM and checks that the audit
//! store holds exactly one final record per exchange, that `tollgate audit verify` is clean, that
//! every answer came back restored, and that the proxy's memory stayed flat across rounds.
//!
//! Run it through `scripts/soak` (which builds the release binary first). Exit 0 when every check
//! holds, 1 otherwise; the figures are printed either way.

#[path = "../tests/common/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use upstream::{Answer, Received, Upstream};

const USAGE: &str = "usage: soak [--exchanges N] [--concurrency C] [--rounds R] [--secrets N] [--vault-bytes B] [--seed S] [--bin PATH] [--keep DIR]";

struct Options {
    exchanges: u64,
    concurrency: usize,
    rounds: u64,
    seed: u64,
    bin: PathBuf,
    keep: Option<PathBuf>,
    /// Distinct secrets the exchanges draw from (0: a fresh one for every exchange).
    secrets: u64,
    /// `limits.vault_bytes` for the proxy, when given.
    vault_bytes: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        exchanges: 10_000,
        concurrency: 200,
        rounds: 2,
        seed: 1,
        bin: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/tollgate"
        )),
        keep: None,
        secrets: 1000,
        vault_bytes: None,
    };
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        o.bin = Path::new(&dir).join("release/tollgate");
    }
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--exchanges" => o.exchanges = number(value()?)?,
            "--concurrency" => o.concurrency = number(value()?)? as usize,
            "--rounds" => o.rounds = number(value()?)?,
            "--seed" => o.seed = number(value()?)?,
            "--bin" => o.bin = PathBuf::from(value()?),
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            "--secrets" => o.secrets = number(value()?)?,
            "--vault-bytes" => o.vault_bytes = Some(number(value()?)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.exchanges == 0 || o.concurrency == 0 || o.rounds == 0 {
        return Err("--exchanges, --concurrency and --rounds must be at least 1".into());
    }
    Ok(o)
}

/// A small deterministic generator (xorshift64*), so a run can be repeated with `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A fake AWS access key id: masked on the way out, restored on the way back.
    fn secret(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let tail: String = (0..16)
            .map(|_| ALPHABET[(self.next() % 32) as usize] as char)
            .collect();
        format!("AKIA{tail}")
    }
}

/// What one exchange does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    /// OpenAI chat completion, answered as JSON.
    Json,
    /// Anthropic messages, streamed as SSE, read to the end.
    Stream,
    /// Streamed, but the client drops the answer after its first bytes.
    AbortMidStream,
    /// The upstream never answers; the client gives up before the response head.
    AbortBeforeHead,
}

impl Kind {
    fn pick(rng: &mut Rng) -> Kind {
        match rng.next() % 100 {
            0..=1 => Kind::AbortBeforeHead,
            2..=6 => Kind::AbortMidStream,
            7..=53 => Kind::Json,
            _ => Kind::Stream,
        }
    }
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    restored: AtomicU64,
    aborted: AtomicU64,
    /// Answers that were wrong: a bad status, a placeholder left, the secret missing.
    wrong: AtomicU64,
}

/// The scripted model: echo the last user message back, as JSON or as a paced SSE stream.
fn model(r: &Received) -> Answer {
    let req: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let text = req["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if r.path == "/v1/chat/completions" {
        return Answer::json(&json!({
            "id": "chatcmpl-soak", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("You said: {text}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 20, "total_tokens": 40}
        }));
    }
    let mut events = vec![format!(
        "event: message_start\ndata: {}",
        json!({"type": "message_start", "message": {"id": "msg_soak", "role": "assistant", "content": [], "usage": {"input_tokens": 20, "output_tokens": 1}}})
    )];
    events.push(format!(
        "event: content_block_start\ndata: {}",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    ));
    let said = format!("You said: {text}");
    let chars: Vec<char> = said.chars().collect();
    // Pieces of 7 characters: placeholders are split across events.
    for piece in chars.chunks(7) {
        let piece: String = piece.iter().collect();
        events.push(format!(
            "event: content_block_delta\ndata: {}",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
        ));
    }
    events.push(format!(
        "event: content_block_stop\ndata: {}",
        json!({"type": "content_block_stop", "index": 0})
    ));
    events.push(format!(
        "event: message_delta\ndata: {}",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 20}})
    ));
    events.push(format!(
        "event: message_stop\ndata: {}",
        json!({"type": "message_stop"})
    ));
    Answer::sse(events).paced(Duration::from_millis(2))
}

/// The text an SSE answer carries: its `text_delta` pieces, joined.
fn sse_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

async fn one(client: &reqwest::Client, kind: Kind, marker: &str, secret: &str, tally: &Tally) {
    let prompt = format!("{marker}: deploy with AWS_ACCESS_KEY_ID={secret} please");
    let (url, body) = match kind {
        Kind::Json => (
            "https://api.openai.com/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}),
        ),
        Kind::Stream | Kind::AbortMidStream => (
            "https://api.anthropic.com/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": prompt}]}),
        ),
        Kind::AbortBeforeHead => (
            "https://api.openai.com/test/silent",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}),
        ),
    };
    let mut req = client.post(url).json(&body);
    if kind == Kind::AbortBeforeHead {
        req = req.timeout(Duration::from_millis(300));
    } else {
        req = req.header("x-test-model", "1");
    }
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let res = match req.send().await {
        Ok(res) => res,
        Err(_) if kind == Kind::AbortBeforeHead => {
            tally.aborted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(e) => {
            eprintln!("{marker}: request failed: {e:?}");
            tally.wrong.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if res.status() != 200 {
        eprintln!("{marker}: status {}", res.status());
        tally.wrong.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if kind == Kind::AbortMidStream {
        let mut res = res;
        let _ = res.chunk().await;
        drop(res);
        tally.aborted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let text = match res.text().await {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{marker}: answer cut: {e}");
            tally.wrong.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let said = if kind == Kind::Json {
        serde_json::from_str::<Value>(&text).unwrap_or_default()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        sse_text(&text)
    };
    if said == format!("You said: {prompt}") {
        tally.restored.fetch_add(1, Ordering::Relaxed);
    } else {
        eprintln!("{marker}: answer not restored: {said:?}");
        tally.wrong.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `soak-ROUND-N` marker a request body carries.
fn marker(body: &str) -> Option<String> {
    let at = body.find("soak-")?;
    Some(
        body[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect(),
    )
}

/// The proxy's resident set now and its peak so far (`VmRSS`, `VmHWM`), in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Starts `tollgate run` and returns it with the address it listens on.
fn start_proxy(o: &Options, dir: &Path, upstream: &Upstream) -> Result<(Child, String), String> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&shipped).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), policies.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    let recording = std::fs::read_to_string(policies.join("recording.yaml"))
        .map_err(|e| e.to_string())?
        .replace(
            "  # file: /var/log/tollgate/checkpoints.jsonl",
            "  file: checkpoints.jsonl",
        );
    std::fs::write(policies.join("recording.yaml"), recording).map_err(|e| e.to_string())?;
    let port = upstream.tls_addr.port();
    let mut cmd = Command::new(&o.bin);
    if let Some(bytes) = o.vault_bytes {
        let config = dir.join("tollgate.yaml");
        std::fs::write(&config, format!("limits:\n  vault_bytes: {bytes}\n"))
            .map_err(|e| e.to_string())?;
        cmd.arg("--config").arg(config);
    }
    cmd.arg("run")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--admin")
        .arg("off")
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--policies")
        .arg(&policies)
        .arg("--db")
        .arg(dir.join("tollgate.db"))
        .arg("--upstream-ca")
        .arg(format!("{}/upstream-ca.crt", upstream::FIXTURES));
    for host in ["api.openai.com", "api.anthropic.com"] {
        cmd.arg("--connect-to")
            .arg(format!("{host}:443:127.0.0.1:{port}"));
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it with `cargo build --release`)",
                o.bin.display()
            )
        })?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = dir.join("proxy.log");
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(log).ok();
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.trim().to_owned());
            }
            if let Some(f) = file.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let _ = child.kill();
            Err(format!(
                "the proxy did not start; see {}",
                dir.join("proxy.log").display()
            ))
        }
    }
}

struct Round {
    seconds: f64,
    tally: Tally,
    idle_kib: u64,
    peak_kib: u64,
    /// What each exchange of the round did, by its number.
    plan: Vec<Kind>,
}

async fn round(
    o: &Options,
    number: u64,
    client: &reqwest::Client,
    rng: &mut Rng,
    pool: &[String],
    pid: u32,
    kinds: &mut BTreeMap<Kind, u64>,
) -> Round {
    let tally = Arc::new(Tally::default());
    let permits = Arc::new(Semaphore::new(o.concurrency));
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(memory(pid).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut plan = Vec::new();
    for n in 0..o.exchanges {
        let kind = Kind::pick(rng);
        plan.push(kind);
        *kinds.entry(kind).or_default() += 1;
        let secret = if pool.is_empty() {
            rng.secret()
        } else {
            pool[(rng.next() % pool.len() as u64) as usize].clone()
        };
        let permit = permits.clone().acquire_owned().await.expect("open");
        let (client, tally) = (client.clone(), tally.clone());
        tasks.spawn(async move {
            one(
                &client,
                kind,
                &format!("soak-{number}-{n}"),
                &secret,
                &tally,
            )
            .await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    // Let aborted exchanges settle and idle connections close before reading the idle figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    Round {
        seconds,
        tally,
        idle_kib: memory(pid).0,
        peak_kib: peak.load(Ordering::Relaxed),
        plan,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match soak().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn soak() -> Result<bool, String> {
    let o = options()?;
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = o.keep.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let upstream = Upstream::start().await;
    upstream.set_model(model);
    let (mut child, addr) = start_proxy(&o, &dir, &upstream)?;
    let pid = child.id();
    let ca = std::fs::read(dir.join("ca/tollgate-ca.crt")).map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{addr}")).map_err(|e| e.to_string())?)
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
        // One exchange per connection at a time: `--concurrency` connections in parallel.
        .http1_only()
        // Below the proxy's first-request deadline (`timeouts.handshake`, 10 s), as a client's
        // idle timeout should be below a server's: a connection the client finished connecting
        // after it gave up is never reused just as the proxy closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let idle_start = memory(pid).0;
    println!(
        "soak: {} rounds of {} exchanges, {} concurrent, {}, seed {}; proxy pid {pid} at {addr}, idle RSS {}",
        o.rounds,
        o.exchanges,
        o.concurrency,
        match o.secrets {
            0 => "a fresh secret in each".to_owned(),
            n => format!("secrets drawn from {n}"),
        },
        o.seed,
        mib(idle_start)
    );
    let mut rng = Rng(o.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut kinds = BTreeMap::new();
    let pool: Vec<String> = (0..o.secrets).map(|_| rng.secret()).collect();
    let mut rounds = Vec::new();
    for number in 1..=o.rounds {
        let r = round(&o, number, &client, &mut rng, &pool, pid, &mut kinds).await;
        println!(
            "round {number}: {:.1} s ({:.0} exchanges/s); restored {}, aborted {}, wrong {}; RSS peak {}, idle after {}",
            r.seconds,
            o.exchanges as f64 / r.seconds,
            r.tally.restored.load(Ordering::Relaxed),
            r.tally.aborted.load(Ordering::Relaxed),
            r.tally.wrong.load(Ordering::Relaxed),
            mib(r.peak_kib),
            mib(r.idle_kib),
        );
        rounds.push(r);
    }
    drop(client);
    let (_, hwm) = memory(pid);

    // SIGTERM: the proxy drains, writes its last records and checkpoint, and exits 0.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map_err(|e| e.to_string())?;
    if !killed.success() {
        return Err("cannot signal the proxy".into());
    }
    let status = child.wait().map_err(|e| e.to_string())?;

    let mut ok = true;
    let mut check = |holds: bool, what: String| {
        println!("  [{}] {what}", if holds { "ok" } else { "FAIL" });
        ok &= holds;
    };
    println!("checks:");
    check(
        status.success(),
        format!("proxy exited with {status} after SIGTERM"),
    );

    let store =
        tollgate::record::Store::open(&dir.join("tollgate.db")).map_err(|e| e.to_string())?;
    let records = store.all().map_err(|e| e.to_string())?;
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut exchanges = 0u64;
    for (_, r) in &records {
        if r.kind != tollgate::record::RecordKind::Exchange {
            continue;
        }
        exchanges += 1;
        *outcomes.entry(r.outcome.clone()).or_default() += 1;
        if let Some(marker) = marker(&String::from_utf8_lossy(&r.request_body)) {
            *seen.entry(marker).or_default() += 1;
        }
    }
    let expected = o.exchanges * o.rounds;
    let duplicated = seen.values().filter(|&&n| n > 1).count();
    // A client that gives up before its request is all in may leave no exchange at all; one the
    // upstream received must have its record.
    let arrived: std::collections::HashSet<String> = upstream
        .received()
        .iter()
        .filter_map(|r| marker(&String::from_utf8_lossy(&r.body)))
        .collect();
    let mut lost = 0;
    let mut never_arrived = 0;
    for number in 1..=o.rounds {
        for n in 0..o.exchanges {
            let name = format!("soak-{number}-{n}");
            let kind = rounds[number as usize - 1].plan[n as usize];
            if seen.contains_key(&name) {
                continue;
            }
            if kind == Kind::AbortBeforeHead && !arrived.contains(&name) {
                never_arrived += 1;
                continue;
            }
            lost += 1;
            if lost <= 10 {
                println!("  no record of {name} ({kind:?})");
            }
        }
    }
    let pending = store.pending_count().map_err(|e| e.to_string())?;
    check(
        exchanges + never_arrived == expected,
        format!("{exchanges} exchange records for {expected} exchanges"),
    );
    check(
        lost == 0,
        format!(
            "{lost} exchanges without a record ({never_arrived} clients gave up before their request was all in)"
        ),
    );
    check(
        duplicated == 0,
        format!("{duplicated} exchanges recorded twice"),
    );
    check(pending == 0, format!("{pending} records left in flight"));
    let unfinished = outcomes.get("in-flight").copied().unwrap_or(0)
        + outcomes.get("interrupted").copied().unwrap_or(0);
    check(
        unfinished == 0,
        format!("{unfinished} records in-flight or interrupted"),
    );
    let total = |count: fn(&Tally) -> &AtomicU64| -> u64 {
        rounds
            .iter()
            .map(|r| count(&r.tally).load(Ordering::Relaxed))
            .sum()
    };
    let wrong = total(|t| &t.wrong);
    check(
        wrong == 0,
        format!("{wrong} answers wrong (status, cut, or not restored)"),
    );
    let sent = total(|t| &t.sent);
    check(sent == expected, format!("{sent} requests sent"));

    let verify = Command::new(&o.bin)
        .args(["audit", "verify", "--db"])
        .arg(dir.join("tollgate.db"))
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--policies")
        .arg(dir.join("policies"))
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&verify.stdout)
        .trim()
        .replace('\n', "; ");
    let err = String::from_utf8_lossy(&verify.stderr).trim().to_owned();
    check(
        verify.status.success(),
        format!(
            "audit verify: {said}{}",
            if err.is_empty() {
                String::new()
            } else {
                format!(" {err}")
            }
        ),
    );

    // Flat memory: the last round's peak within 10% of the peak of the round halfway through
    // (round 1 of 2), so warm-up (caches, the vault filling to its budget) is not counted as growth.
    if rounds.len() > 1 {
        let mid = rounds.len() / 2 - 1;
        let first = rounds[mid].peak_kib as f64;
        let last = rounds[rounds.len() - 1].peak_kib as f64;
        let growth = (last - first) / first * 100.0;
        check(
            growth <= 10.0,
            format!(
                "RSS flat: peak {} in round {}, {} in round {} ({growth:+.1}%)",
                mib(rounds[mid].peak_kib),
                mid + 1,
                mib(rounds[rounds.len() - 1].peak_kib),
                rounds.len()
            ),
        );
    }

    let db_bytes = std::fs::metadata(dir.join("tollgate.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("figures:");
    println!("  mix: {kinds:?}");
    println!("  outcomes recorded: {outcomes:?}");
    println!(
        "  RSS: idle {} at start, peak {} over the run",
        mib(idle_start),
        mib(hwm)
    );
    println!(
        "  store: {db_bytes} bytes, {} bytes per exchange",
        db_bytes / expected.max(1)
    );
    if o.keep.is_some() {
        println!("  kept in {}", dir.display());
    }
    println!("soak: {}", if ok { "passed" } else { "FAILED" });
    Ok(ok)
}
