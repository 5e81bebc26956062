//! A resent element's masking, used again, is what masking it again would give: the same body,
//! the same findings, attachments and first message, turn after turn, for every rule and every
//! shape an element takes; and it is not used where the result could differ.

use super::tests::{SAMPLES, sample};
use super::vault::{PlaceholderKey, Vault};
use super::*;
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;

fn policy(yaml: &str) -> MaskPolicy {
    MaskPolicy::parse(&Source::inline("masking.yaml", yaml)).unwrap()
}

/// Two vaults under one key: the first uses resent elements' masking again, the second masks
/// every request afresh.
fn vaults(ttl: Duration) -> (Vault, Vault) {
    let key = PlaceholderKey::new([7; 32]);
    (
        Vault::with_key(ttl, 64 << 20, Some(&key)),
        Vault::with_key(ttl, 64 << 20, Some(&key)).without_recall(),
    )
}

/// What masking a body gave, in an order that does not depend on the walk's.
#[derive(Debug, PartialEq)]
struct Outcome {
    body: Option<Bytes>,
    findings: Vec<String>,
    attachments: Vec<String>,
    first_message: Option<String>,
    model: Option<String>,
    fields: Vec<(String, String)>,
}

fn mask(p: &MaskPolicy, v: &Vault, scope: &str, body: &Value) -> Result<Outcome, String> {
    let m = Masker {
        policy: p,
        vault: v,
        scope,
    };
    let masked = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(body.to_string()),
        )
        .map_err(|e| e.to_string())?;
    let mut findings: Vec<String> = masked
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f.rule, f.category, f.path, f.offset, f.needs_approval
            )
        })
        .collect();
    findings.sort();
    let mut attachments: Vec<String> = masked
        .attachments
        .iter()
        .map(|a| format!("{} {} {}", a.path, a.media_type, a.bytes))
        .collect();
    attachments.sort();
    Ok(Outcome {
        body: masked.body,
        findings,
        attachments,
        first_message: masked.facts.first_message,
        model: masked.facts.model,
        fields: masked.facts.fields,
    })
}

/// Ordinary code, to make an element as large as real ones.
fn filler(n: usize, seed: usize) -> String {
    let mut s = String::new();
    let mut i = seed;
    while s.len() < n {
        s.push_str(&format!(
            "fn step_{i}(input: &str) -> usize {{ input.len() * {i} }} // keeps the loop honest\n"
        ));
        i += 1;
    }
    s
}

/// Message `i` of a conversation, carrying `secret` in one of the shapes agents send.
fn element(i: usize, secret: &str) -> Value {
    let pad = filler(700, i * 31);
    let text = format!("{pad}\n{secret}\n");
    match i % 10 {
        0 => json!({"role": "user", "content": [{"type": "text", "text": text}]}),
        1 => json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Bash",
             "input": {"command": format!("echo '{secret}' > .env"), "note": pad}}]}),
        2 => json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": text}]}),
        3 => {
            json!({"role": "assistant", "tool_calls": [{"id": format!("call_{i}"), "type": "function",
            "function": {"name": "write", "arguments": json!({"path": "cfg.yaml", "body": text}).to_string()}}]})
        }
        4 => json!({"role": "user", "content": [{"type": "document", "source": {"type": "base64",
            "media_type": "text/plain",
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes())}}]}),
        5 => json!({"role": "user", "content": [{"type": "text", "text": pad},
            {"type": "tool_result", "tool_use_id": "t", "content": json!({"env": [
                {"name": "DB_PASSWORD", "value": format!("Zq8!{i}xR2#vLm9p")},
                {"name": "NOTE", "value": secret}]}).to_string()}]}),
        6 => json!({"role": "user", "content": [{"type": "text", "text": pad}],
            "metadata": {"password": format!("Hx7$k{i}pQ2wE9"), "pin": 48213377 + i as u64}}),
        7 => json!({"role": "user", "content": [{"type": "image", "source": {"type": "base64",
            "media_type": "image/png",
            "data": base64::engine::general_purpose::STANDARD.encode(
                (0..900u32).map(|b| (b.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>())}},
            {"type": "text", "text": text}]}),
        8 => {
            json!({"role": "user", "content": format!("{pad} postgres://admin:{secret}@db.internal:5432/app")})
        }
        // Text that starts like JSON and is not: read as text after the nested walk fails.
        _ => {
            json!({"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"},
            {"type": "text", "text": format!("{{draft}} {text}")}]})
        }
    }
}

fn body(messages: &[Value]) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": filler(600, 9000)}],
        "tools": [{"name": "Bash", "description": filler(600, 7000), "input_schema": {"type": "object"}}],
        "messages": messages,
    })
}

/// For every rule's sample, a conversation of `turns` messages made by `element`: each turn,
/// the recalling vault masks the body exactly as the vault that masks afresh does.
fn every_turn_masks_as_if_walked_again(
    p: &MaskPolicy,
    recalling: &Vault,
    afresh: &Vault,
    element: fn(usize, &str) -> Value,
    turns: usize,
) {
    for (c, (_, template)) in SAMPLES.iter().enumerate() {
        let secret = sample(template);
        let mut messages = Vec::new();
        for turn in 0..turns {
            messages.push(element(c + turn, &secret));
            let b = body(&messages);
            let got = mask(p, recalling, "alice", &b);
            let want = mask(p, afresh, "alice", &b);
            assert_eq!(got, want, "rule sample {template}, turn {turn}");
        }
    }
}

/// Turn after turn of every rule's sample in every shape: the remembered masking gives what
/// masking afresh gives, and it is used.
#[test]
fn every_turn_of_a_conversation_masks_as_if_all_of_it_were_walked_again() {
    for yaml in ["{}", "rules:\n  jwt: { action: approve }\n"] {
        let (recalling, afresh) = vaults(Duration::from_secs(600));
        every_turn_masks_as_if_walked_again(&policy(yaml), &recalling, &afresh, element, 11);
        let recalled = recalling.recall().unwrap().recalled_bytes();
        assert!(recalled > 1 << 20, "only {recalled} bytes were recalled");
    }
}

/// Name/value pairs are joined by the object they sit in, not by how its path is spelled: a
/// top-level key spelled like an element's path (`messages[0]`) is another object, so the
/// element's masking does not depend on it.
#[test]
fn a_key_spelled_like_an_elements_path_is_not_part_of_it() {
    let p = policy("{}");
    let (recalling, afresh) = vaults(Duration::from_secs(600));
    let b = json!({
        "messages": [{"role": "user", "name": "DB_PASSWORD", "content": filler(700, 3)}],
        "messages[0]": {"value": "Tr0ub4dor&3xyz"},
    });
    let c = json!({
        "messages": [{"role": "user", "content": filler(700, 4), "meta": {"value": "Hq2!vTr0ub4dor&9"}}],
        "messages[0].meta": {"name": "DB_PASSWORD"},
    });
    for body in [b, c] {
        for turn in 0..3 {
            let got = mask(&p, &recalling, "alice", &body).unwrap();
            assert_eq!(
                got,
                mask(&p, &afresh, "alice", &body).unwrap(),
                "turn {turn}"
            );
        }
    }
}

/// A value masked in a later turn is masked in the history resent after it, where it first
/// appeared without anything to give it away.
#[test]
fn a_value_masked_later_is_masked_in_the_history_resent_after() {
    let p = policy("{}");
    let (recalling, afresh) = vaults(Duration::from_secs(600));
    let bare = "Qm4vT8zK2pW7xR5n";
    let early =
        json!({"role": "user", "content": format!("{}\nthe value is {bare} here", filler(800, 1))});
    let later =
        json!({"role": "user", "content": format!("{}\npassword = \"{bare}\"", filler(800, 2))});
    let mut messages = vec![early];
    for turn in 0..4 {
        let b = body(&messages);
        let got = mask(&p, &recalling, "bob", &b).unwrap();
        assert_eq!(got, mask(&p, &afresh, "bob", &b).unwrap(), "turn {turn}");
        let sent = got
            .body
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .unwrap_or_else(|| b.to_string());
        // Turn 1 masks it where it is named; from turn 2 on, wherever it is.
        if turn >= 2 {
            assert!(!sent.contains(bare), "turn {turn} sent the value: {sent}");
        }
        if turn == 0 {
            messages.push(later.clone());
        } else {
            messages.push(json!({"role": "assistant", "content": filler(600, 50 + turn)}));
        }
    }
}

/// What one scope or one policy remembered is not used by another: placeholders differ per
/// scope, and a policy may mask other things.
#[test]
fn remembered_masking_is_used_only_in_its_scope_and_under_its_policy() {
    let (recalling, afresh) = vaults(Duration::from_secs(600));
    let plain = policy("{}");
    let strict = policy(
        "identifiers:\n  - name: code-names\n    category: project\n    literals: [keeps the loop honest]\n",
    );
    let secret = sample("ghp_{a:36}");
    let b = body(&[element(0, &secret), element(2, &secret)]);
    for (p, scope) in [(&plain, "alice"), (&plain, "carol"), (&strict, "alice")] {
        let got = mask(p, &recalling, scope, &b).unwrap();
        assert_eq!(got, mask(p, &afresh, scope, &b).unwrap(), "{scope}");
    }
    let strict_findings = mask(&strict, &recalling, "alice", &b).unwrap().findings;
    assert!(strict_findings.iter().any(|f| f.contains("code-names")));
}

/// A body that starts with a remembered element and goes on with something that is not JSON
/// is refused as before: a known element is only ever a whole object, and what follows it is
/// still read strictly.
#[test]
fn what_follows_a_remembered_element_is_still_read_strictly() {
    let p = policy("{}");
    let (recalling, _) = vaults(Duration::from_secs(600));
    let b = body(&[element(0, "nothing"), element(2, "nothing")]);
    mask(&p, &recalling, "alice", &b).unwrap();
    let text = b.to_string();
    let broken = text.replacen("}],\"model\"", "} x],\"model\"", 1);
    assert_ne!(broken, text);
    let m = Masker {
        policy: &p,
        vault: &recalling,
        scope: "alice",
    };
    let refused = m.mask_body(Some("application/json"), None, Bytes::from(broken));
    assert!(
        matches!(refused, Err(MaskError::NotStrictJson(_))),
        "{refused:?}"
    );
}

/// Placeholders of a remembered element stay restorable for as long as it keeps being resent,
/// though the vault forgets what is not used for its time to live.
#[test]
fn placeholders_of_a_resent_element_stay_restorable() {
    let p = policy("{}");
    let (recalling, _) = vaults(Duration::from_millis(1500));
    let secret = sample("ghp_{a:36}");
    let b = body(&[element(0, &secret)]);
    let first = mask(&p, &recalling, "alice", &b).unwrap();
    let sent = String::from_utf8(first.body.unwrap().to_vec()).unwrap();
    let at = sent.find("TOLLGATE_").unwrap();
    let placeholder: String = sent[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        mask(&p, &recalling, "alice", &b).unwrap();
    }
    let restored = recalling.restore("alice", &placeholder);
    assert_eq!(restored.map(|s| s.expose().to_owned()), Some(secret));
}

/// `limits.masked_history_bytes: 0` masks every request whole.
#[test]
fn a_budget_of_nothing_turns_recall_off() {
    let v = Vault::new(Duration::from_secs(60), 1 << 20);
    assert!(v.recall().is_some());
    assert!(v.with_recall_budget(0).recall().is_none());
    let config: crate::config::Limits = serde_yaml::from_str("masked_history_bytes: 0").unwrap();
    assert_eq!(config.masked_history_bytes, 0);
}

/// Message `i` of a conversation as most of an agent's turns are: a short tool call, its short
/// result, a line of text, some carrying `secret`.
fn small_element(i: usize, secret: &str) -> Value {
    match i % 5 {
        0 => json!({"role": "assistant", "content": [{"type": "tool_use",
            "id": format!("toolu_01{i:020}"), "name": "Read",
            "input": {"file_path": format!("/repo/src/module_{i}.rs")}}]}),
        1 => json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": format!("toolu_01{i:020}"), "content": format!("TOKEN={secret}\n")}]}),
        2 => json!({"role": "assistant", "content": [{"type": "text",
            "text": format!("The settings loader in module {i} reads the file line by line.")}]}),
        3 => json!({"role": "assistant", "content": [{"type": "tool_use",
            "id": format!("toolu_01{i:020}"), "name": "Bash",
            "input": {"command": format!("grep -n {secret} config/*.yaml")}}]}),
        _ => json!({"role": "user", "content": format!("ok, go on with step {i}")}),
    }
}

/// A conversation of short messages (tool calls and their results of a line or two) masks as
/// if walked whole on every turn.
#[test]
fn short_messages_mask_as_if_walked_again() {
    let (recalling, afresh) = vaults(Duration::from_secs(600));
    every_turn_masks_as_if_walked_again(&policy("{}"), &recalling, &afresh, small_element, 8);
}

/// Each turn, every element of the history of at least 128 bytes comes back known, the one
/// just before the new message included (where the bytes that follow an element differ).
#[test]
fn short_messages_are_not_walked_again() {
    let p = policy("{}");
    let (recalling, _) = vaults(Duration::from_secs(600));
    let recall = recalling.recall().unwrap();
    let len = |v: &Value| v.to_string().len();
    let mut messages = vec![];
    // Bytes of the messages of at least 128 bytes the turn before sent.
    let mut resent = 0;
    for i in 0..20 {
        let b = body(&messages);
        let blocks = len(&b["system"][0]) + len(&b["tools"][0]);
        let before = recall.recalled_bytes();
        mask(&p, &recalling, "alice", &b).unwrap();
        let recalled = recall.recalled_bytes() - before;
        if i > 0 {
            assert_eq!(recalled as usize, blocks + resent, "turn {i}");
        }
        resent = messages.iter().map(len).filter(|&n| n >= 128).sum();
        messages.push(small_element(i, "nothing-to-see"));
    }
    assert!(resent > 1000, "{resent}");
}
