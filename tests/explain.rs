//! `tollgate policy explain` and the proxy agree: one table of requests, each run through the
//! real proxy and through `explain` under the same policy files, with the same answer expected
//! from both.

mod common;

use common::*;
use tollgate::explain::{Question, explain};

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";
const AWS: &str = "AKIAZ7Q2MD3XK4LP5N6R";

struct Case {
    name: &'static str,
    host: &'static str,
    path: &'static str,
    body: String,
    /// The status and refusal reason the client gets from the proxy (`None`: it went through).
    proxy: (u16, Option<&'static str>),
    /// What explain says.
    verdict: &'static str,
}

fn chat(model: &str, content: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]})
        .to_string()
}

#[tokio::test]
async fn explain_and_the_proxy_agree_on_a_table_of_requests() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .policy(
            "hosts:\n  deny: [api.mistral.ai]\naccess:\n  default:\n    providers: [openai, anthropic, vertex]\n    models: { deny: ['*preview*'] }\n    regions: { vertex: [eu] }\n",
        )
        .masking("rules:\n  aws-access-key-id: { action: block }\n")
        .file(
            "approvals.yaml",
            "rules:\n  - name: tokens\n    when: { findings: [github-pat] }\n    mode: retry\n",
        )
        .start()
        .await;
    let policy = tollgate::policy::Policy::load(Some(&proxy.policies_dir())).unwrap();
    let cases = [
        Case {
            name: "a plain chat",
            host: "api.openai.com",
            path: "/v1/chat/completions",
            body: chat("gpt-4o", "hi"),
            proxy: (200, None),
            verdict: "allowed",
        },
        Case {
            name: "a model the profile denies",
            host: "api.openai.com",
            path: "/v1/chat/completions",
            body: chat("gpt-4o-preview", "hi"),
            proxy: (403, Some("model-not-allowed")),
            verdict: "refused",
        },
        Case {
            name: "a denied host, though its provider is not allowed either",
            host: "api.mistral.ai",
            path: "/v1/chat/completions",
            body: chat("mistral-large", "hi"),
            proxy: (403, Some("host-denied")),
            verdict: "refused",
        },
        Case {
            name: "a provider the profile does not allow",
            host: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/anthropic.claude-3/converse",
            body: "{}".into(),
            proxy: (403, Some("provider-not-allowed")),
            verdict: "refused",
        },
        Case {
            name: "a region the profile does not allow",
            host: "us-central1-aiplatform.googleapis.com",
            path: "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
            body: "{}".into(),
            proxy: (403, Some("region-not-allowed")),
            verdict: "refused",
        },
        Case {
            name: "a blocked secret",
            host: "api.anthropic.com",
            path: "/v1/messages",
            body: chat("claude-x", &format!("key {AWS}")),
            proxy: (403, Some("secret-blocked")),
            verdict: "refused",
        },
        Case {
            name: "a secret an approval rule asks about",
            host: "api.openai.com",
            path: "/v1/chat/completions",
            body: chat("gpt-4o", &format!("push {GITHUB}")),
            proxy: (403, Some("approval-pending")),
            verdict: "needs-approval",
        },
    ];
    for case in &cases {
        let said = explain(
            &policy,
            &Question {
                host: case.host.into(),
                path: case.path.into(),
                body: Some(case.body.clone().into_bytes()),
                ..Question::default()
            },
        );
        assert_eq!(
            said.verdict, case.verdict,
            "{}: explain said {said}",
            case.name
        );
        if case.verdict == "refused" {
            assert_eq!(
                (said.status, said.reason),
                case.proxy,
                "{}: explain said {said}",
                case.name
            );
        }

        // The proxy, for real.
        let (status, reason) = match connect(proxy.addr(), &format!("{}:443", case.host), &[]).await
        {
            Tunnel::Refused {
                status, headers, ..
            } => (
                status.as_u16(),
                headers
                    .get("x-tollgate-reason")
                    .map(|v| v.to_str().unwrap().to_owned()),
            ),
            Tunnel::Open(_) => {
                let res = client(&proxy)
                    .post(format!("https://{}{}", case.host, case.path))
                    .header("content-type", "application/json")
                    .body(case.body.clone())
                    .send()
                    .await
                    .unwrap();
                let reason = reason_of(&res);
                (res.status().as_u16(), reason)
            }
        };
        assert_eq!(
            (status, reason.as_deref()),
            case.proxy,
            "{}: the proxy answered differently (explain said {said})",
            case.name
        );
        if case.verdict == "needs-approval" {
            let approval = said.approval.as_ref().unwrap();
            assert_eq!((approval.rule.as_str(), approval.mode), ("tokens", "retry"));
        }
    }
}
