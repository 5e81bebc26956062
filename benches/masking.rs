//! Masking and restoring throughput on a realistic agent request: ~1 MB of JSON carrying a
//! system prompt, tool schemas and several source files read by tools, with a few secrets,
//! every built-in rule and 100 custom identifiers; and an SSE answer of the same size.

use base64::Engine as _;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tollgate::mask::restore::{Restorer, SseRestorer, StreamRestore};
use tollgate::mask::vault::Vault;
use tollgate::mask::{MaskPolicy, Masker};
use tollgate::policy::Source;

const SOURCES: &[&str] = &[
    include_str!("../src/proxy/handler.rs"),
    include_str!("../src/proxy/mod.rs"),
    include_str!("../src/mask/detect.rs"),
    include_str!("../src/mask/restore.rs"),
    include_str!("../src/mask/json.rs"),
    include_str!("../src/tls/ca.rs"),
    include_str!("../src/policy/mod.rs"),
    include_str!("../README.md"),
    include_str!("../Cargo.lock"),
];

fn policy() -> MaskPolicy {
    let literals: Vec<String> = (0..80).map(|i| format!("Codename{i:02}")).collect();
    let yaml = format!(
        "identifiers:\n  - name: code-names\n    category: project\n    literals: [{}]\n  - name: hosts\n    domains: [{}]\n",
        literals.join(", "),
        (0..20)
            .map(|i| format!("'*.corp{i}.example'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    MaskPolicy::parse(&Source::inline("masking.yaml", &yaml)).unwrap()
}

fn agent_request() -> String {
    let mut messages = vec![
        serde_json::json!({"role": "user", "content": "Review these files; the deploy token is ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ."}),
    ];
    let mut size = 0;
    let mut i = 0;
    while size < 1 << 20 {
        let file = SOURCES[i % SOURCES.len()];
        size += file.len();
        messages.push(serde_json::json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("toolu_{i}"), "name": "Read", "input": {"file_path": format!("/repo/file{i}.rs")}}]}));
        // Files as agents carry them: plain tool results, JSON inside a tool result (a shell
        // tool's output object), structured tool inputs, and base64 documents.
        let content = match i % 4 {
            0 => serde_json::json!(file),
            1 => serde_json::json!(
                serde_json::json!({"output": file, "metadata": {"exit_code": 0}}).to_string()
            ),
            2 => serde_json::json!([{"type": "text", "text": file}]),
            _ => {
                serde_json::json!([{"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": base64::engine::general_purpose::STANDARD.encode(file)}}])
            }
        };
        messages.push(serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": content}]}));
        if i % 4 == 2 {
            messages.push(serde_json::json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("w{i}"), "name": "Write", "input": {"file_path": "/repo/out.rs", "content": file}}]}));
            size += file.len();
        }
        i += 1;
    }
    serde_json::json!({
        "model": "claude-sonnet",
        "system": "You are Claude Code. <env>Working directory: /repo</env> Codename07 ships on build.corp3.example.",
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "messages": messages,
    })
    .to_string()
}

/// A turn's worth of small strings: the tool schemas, system prompt and short messages every
/// request of a conversation carries, and a tool result of 1 KB.
fn small_turn() -> String {
    let tools: Vec<_> = ["Read", "Edit", "Bash", "Grep", "Glob", "Write"]
        .iter()
        .map(|name| {
            serde_json::json!({"name": name, "description": format!("{name}s in the local workspace. Use this tool when the task needs it."),
                "input_schema": {"type": "object", "properties": {"file_path": {"type": "string", "description": "The absolute path"}, "pattern": {"type": "string"}, "limit": {"type": "number"}}, "required": ["file_path"]}})
        })
        .collect();
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "stream": true,
        "system": [{"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks. Use the tools available to you."}],
        "tools": tools,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Why does loading the settings fail when the file has a blank line?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "src/settings.rs"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": &SOURCES[0][..1024]}]}
        ]
    })
    .to_string()
}

/// A conversation's next turn around the place its new tool result goes: the small turn's
/// history, with an 8 KB tool result before it.
fn next_turn() -> (String, String) {
    let mut turn: serde_json::Value = serde_json::from_str(&small_turn()).unwrap();
    let messages = turn["messages"].as_array_mut().unwrap();
    messages[2]["content"][0]["content"] = serde_json::json!(&SOURCES[2][..8192]);
    messages.push(serde_json::json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"file_path": "src/loader.rs"}}]}));
    messages.push(serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_02", "content": "@NEW@"}]}));
    let text = turn.to_string();
    let (head, tail) = text.split_once("@NEW@").unwrap();
    (head.to_owned(), tail.to_owned())
}

fn sse_answer(vault: &Vault) -> String {
    let placeholder = vault.placeholder(
        "bench",
        "github-pat",
        "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ",
        true,
    );
    let text = SOURCES.concat();
    let mut out = String::new();
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for (n, chunk) in words.chunks(4).enumerate() {
        let mut piece: String = chunk.concat();
        if n % 50 == 0 {
            piece.push_str(&placeholder);
        }
        let event = serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
        out.push_str(&format!("event: content_block_delta\ndata: {event}\n\n"));
        if out.len() > 1 << 20 {
            break;
        }
    }
    out
}

/// Masking `body` again and again, in the `mask` group.
fn bench_mask(c: &mut Criterion, name: &str, masker: &Masker<'_>, body: &Bytes) {
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            masker
                .mask_body(Some("application/json"), None, black_box(body.clone()))
                .unwrap()
        })
    });
    group.finish();
}

fn masking(c: &mut Criterion) {
    let policy = policy();
    let vault = Vault::new(Duration::from_secs(3600), 64 << 20);
    let body = Bytes::from(agent_request());
    let masker = Masker {
        policy: &policy,
        vault: &vault,
        scope: "bench",
    };
    let out = masker
        .mask_body(Some("application/json"), None, body.clone())
        .unwrap();
    assert!(out.findings.len() >= 3, "{:?}", out.findings);

    bench_mask(c, "agent request ~1 MB", &masker, &body);

    // A turn's new part as agents send it: tool schemas, a system prompt and short messages,
    // many small strings; nothing is recalled, so this is the cost of masking them.
    let vault = Vault::new(Duration::from_secs(3600), 64 << 20).without_recall();
    let masker = Masker {
        policy: &policy,
        vault: &vault,
        scope: "bench",
    };
    bench_mask(
        c,
        "agent turn ~3 KB, small strings",
        &masker,
        &Bytes::from(small_turn()),
    );

    // The next turn of a conversation: the same history (recalled) and a new tool result.
    let vault = Vault::new(Duration::from_secs(3600), 64 << 20);
    let masker = Masker {
        policy: &policy,
        vault: &vault,
        scope: "bench",
    };
    let (head, tail) = next_turn();
    let mut n = 0u64;
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Bytes((head.len() + tail.len() + 1024) as u64));
    group.bench_function("next turn, 8 KB history recalled, 1 KB new", |b| {
        b.iter(|| {
            n += 1;
            let body = format!(
                "{head}{n:>12} {}{tail}",
                &SOURCES[1][..1024].replace(['"', '\\', '\n'], " ")
            );
            masker
                .mask_body(Some("application/json"), None, black_box(Bytes::from(body)))
                .unwrap()
        })
    });
    group.finish();

    let vault = Arc::new(vault);
    let stream = sse_answer(&vault);
    let mut group = c.benchmark_group("restore");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("anthropic SSE ~1 MB, 16 KB chunks", |b| {
        b.iter(|| {
            let mut restorer = SseRestorer::new(Restorer::new(vault.clone(), "bench"));
            let mut n = 0;
            for chunk in stream.as_bytes().chunks(16 * 1024) {
                n += restorer.feed(chunk).len();
            }
            n + restorer.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
