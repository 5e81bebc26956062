//! Region allowlists: each source of a request's region (host, path, model id, body field,
//! configuration) allowed and denied; model lists; group profiles; what the refusal says and what
//! the record keeps.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

/// Sends `body` as JSON to `url` through the proxy; returns status, reason header and body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> (StatusCode, String, serde_json::Value) {
    let res = client.post(url).json(&body).send().await.unwrap();
    let status = res.status();
    let reason = res
        .headers()
        .get("x-tollgate-reason")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, reason, body)
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn proxy_with(upstream: &Upstream, policy: &str) -> TestProxy {
    ProxySetup::new(upstream).policy(policy).start().await
}

#[tokio::test]
async fn the_host_names_the_region() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "access:\n  default:\n    regions: { openai: [eu] }\n",
    )
    .await;
    let client = client(&proxy);

    let (status, _, _) = post(
        &client,
        "https://eu.api.openai.com/v1/chat/completions",
        chat("gpt-4o"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    for host in ["us.api.openai.com", "api.openai.com"] {
        let (status, reason, body) = post(
            &client,
            &format!("https://{host}/v1/chat/completions"),
            chat("gpt-4o"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        assert_eq!(reason, "region-not-allowed");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("only to eu"), "{message}");
        assert!(message.contains(host), "{message}");
        assert_eq!(body["error"]["code"], "region_not_allowed", "{body}");
    }
    assert_eq!(upstream.received().len(), 1, "refused requests never leave");
}

#[tokio::test]
async fn the_vertex_path_names_the_region_and_must_agree_with_the_host() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "access:\n  default:\n    regions: { vertex: [eu] }\n",
    )
    .await;
    let client = client(&proxy);
    let path = |loc: &str| {
        format!(
            "/v1/projects/p/locations/{loc}/publishers/google/models/gemini-2.0-flash:generateContent"
        )
    };
    let body = || json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});

    let (status, _, _) = post(
        &client,
        &format!(
            "https://europe-west4-aiplatform.googleapis.com{}",
            path("europe-west4")
        ),
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, reason, _) = post(
        &client,
        &format!(
            "https://us-central1-aiplatform.googleapis.com{}",
            path("us-central1")
        ),
        body(),
    )
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "region-not-allowed")
    );

    let (status, reason, body) = post(
        &client,
        &format!(
            "https://europe-west4-aiplatform.googleapis.com{}",
            path("us-central1")
        ),
        body(),
    )
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::BAD_REQUEST, "region-mismatch")
    );
    // Google's error shape.
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn bedrock_cross_region_profiles_count_as_their_geography() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "access:\n  default:\n    regions: { bedrock: [eu] }\n",
    )
    .await;
    let client = client(&proxy);
    let url = |model: &str| {
        format!("https://bedrock-runtime.eu-central-1.amazonaws.com/model/{model}/converse")
    };
    let body = || json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});

    for model in [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "eu.anthropic.claude-sonnet-4-20250514-v1:0",
        "arn%3Aaws%3Abedrock%3Aeu-central-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-sonnet-4-20250514-v1%3A0",
    ] {
        let (status, _, _) = post(&client, &url(model), body()).await;
        assert_eq!(status, StatusCode::OK, "{model}");
    }
    for model in [
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "global.anthropic.claude-sonnet-4-20250514-v1:0",
    ] {
        let (status, reason, body) = post(&client, &url(model), body()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{model}");
        assert_eq!(reason, "region-not-allowed");
        // AWS's error shape names the cause in `message`.
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("model id"), "{message}");
    }
    // A host outside the EU is refused whatever the model.
    let (status, _, _) = post(
        &client,
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/eu.anthropic.x/converse",
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test]
async fn anthropics_inference_geo_body_field_names_the_region() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "access:\n  default:\n    regions: { anthropic: [us] }\n",
    )
    .await;
    let client = client(&proxy);
    let url = "https://api.anthropic.com/v1/messages";
    let mut body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});

    let (status, reason, err) = post(&client, url, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(reason, "region-not-allowed");
    assert_eq!(err["type"], "error", "Anthropic's error shape: {err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("global"),
        "{err}"
    );

    body["inference_geo"] = json!("us");
    let (status, _, _) = post(&client, url, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn configuration_places_azure_resources_and_their_deployments() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "locations:\n  contoso-eu.openai.azure.com: { region: swedencentral, deployments: { gpt-4o-global: global } }\naccess:\n  default:\n    regions: { azure-openai: [eu] }\n",
    )
    .await;
    let client = client(&proxy);
    let url = |host: &str, deployment: &str| {
        format!(
            "https://{host}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"
        )
    };

    let (status, _, _) = post(
        &client,
        &url("contoso-eu.openai.azure.com", "gpt-4o"),
        chat("gpt-4o"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = post(
        &client,
        &url("contoso-eu.openai.azure.com", "gpt-4o-global"),
        chat("gpt-4o"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("global"), "{message}");

    // Nothing says where contoso-us is: unknown, so refused.
    let (status, _, body) = post(
        &client,
        &url("contoso-us.openai.azure.com", "gpt-4o"),
        chat("gpt-4o"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown region"), "{message}");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn models_can_be_allowed_and_denied() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "access:\n  default:\n    models: { allow: ['gpt-4o*', 'claude-*'], deny: ['*-preview'] }\n",
    )
    .await;
    let client = client(&proxy);
    let url = "https://api.openai.com/v1/chat/completions";

    assert_eq!(
        post(&client, url, chat("gpt-4o-mini")).await.0,
        StatusCode::OK
    );
    let (status, reason, body) = post(&client, url, chat("gpt-4o-preview")).await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "model-not-allowed")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o-preview")
    );
    let (status, reason, _) = post(&client, url, chat("o3")).await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "model-not-allowed")
    );
    // Requests without a body (listing models) ask for no inference and are not model-checked.
    let res = client
        .get("https://api.openai.com/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A body that names no model, or one that is not a string, cannot be checked: refused.
    for body in [
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": ["gpt-4o"], "messages": []}),
    ] {
        let (status, reason, _) = post(&client, url, body).await;
        assert_eq!(
            (status, reason.as_str()),
            (StatusCode::FORBIDDEN, "model-not-allowed")
        );
    }
    // Two `model` keys: the proxy and the upstream could read different ones.
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(r#"{"model": "gpt-4o", "messages": [], "model": "o3"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["x-tollgate-reason"], "undecodable-body");
    assert_eq!(
        upstream.received().len(),
        2,
        "only the two allowed requests"
    );
}

#[tokio::test]
async fn azure_deployments_take_their_model_from_the_configuration() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        "locations:\n  contoso-eu.openai.azure.com:\n    region: swedencentral\n    deployments:\n      chat: { model: gpt-4o }\n      mini-global: { region: global, model: gpt-4o-mini }\naccess:\n  default:\n    models: { allow: ['gpt-4o'] }\n",
    )
    .await;
    let client = client(&proxy);
    let url = |deployment: &str| {
        format!(
            "https://contoso-eu.openai.azure.com/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"
        )
    };
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = post(&client, &url("chat"), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    for deployment in ["mini-global", "unlisted"] {
        let (status, reason, _) = post(&client, &url(deployment), body.clone()).await;
        assert_eq!(
            (status, reason.as_str()),
            (StatusCode::FORBIDDEN, "model-not-allowed"),
            "{deployment}"
        );
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn group_profiles_set_providers_regions_and_masking() {
    let upstream = Upstream::start().await;
    let (eu_token, eu_hash) = tollgate::identity::new_token();
    let (ct_token, ct_hash) = tollgate::identity::new_token();
    let (dev_token, dev_hash) = tollgate::identity::new_token();
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: t1, sha256: {eu_hash}, user: eve, groups: [staff, eu-staff] }}\n  - {{ name: t2, sha256: {ct_hash}, user: carl, groups: [contractors] }}\n  - {{ name: t3, sha256: {dev_hash}, user: dan, groups: [staff] }}\n"
        ))
        .policy(
            "access:\n  default:\n    models: { deny: ['o1*'] }\n  groups:\n    - name: eu-only\n      groups: [eu-staff]\n      regions: { '*': [eu] }\n    - groups: [contractors]\n      providers: [anthropic]\n      masking: { rules: { github-pat: block } }\n",
        )
        .start()
        .await;
    let eve = client_as(&proxy, "eve", &eu_token);
    let carl = client_as(&proxy, "carl", &ct_token);
    let dan = client_as(&proxy, "dan", &dev_token);
    let us = "https://us.api.openai.com/v1/chat/completions";

    assert_eq!(post(&dan, us, chat("gpt-4o")).await.0, StatusCode::OK);
    let (status, _, body) = post(&eve, us, chat("gpt-4o")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("group `eu-only`"), "{message}");
    // Group entries inherit what they do not set: the default's model deny list.
    let (status, reason, _) = post(
        &eve,
        "https://eu.api.openai.com/v1/chat/completions",
        chat("o1-mini"),
    )
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "model-not-allowed")
    );

    // The contractor may not reach OpenAI at all: refused at CONNECT.
    let (status, headers, body) = connect(
        proxy.addr(),
        "api.openai.com:443",
        &[("proxy-authorization", &basic("carl", &ct_token))],
    )
    .await
    .refused();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-reason"], "provider-not-allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic")
    );

    // Masking differs by group: a GitHub token is masked for staff, blocked for contractors.
    let pat = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let msg = json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
        "messages": [{"role": "user", "content": format!("token {pat}")}]});
    let anthropic = "https://api.anthropic.com/v1/messages";
    let (status, reason, _) = post(&carl, anthropic, msg.clone()).await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "secret-blocked")
    );
    assert_eq!(post(&dan, anthropic, msg).await.0, StatusCode::OK);
    let last = upstream.received().pop().unwrap();
    assert!(!String::from_utf8_lossy(&last.body).contains(pat));

    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    let refused = records
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.outcome == "region-not-allowed")
        .expect("the refusal is recorded");
    assert_eq!(refused.region.as_deref(), Some("us"));
    assert_eq!(refused.jurisdiction.as_deref(), Some("us"));
    assert_eq!(refused.scope, "eve");
    assert_eq!(refused.groups.as_deref(), Some("staff,eu-staff"));
    assert_eq!(refused.token.as_deref(), Some("t1"));
    assert_eq!(refused.profile.as_deref(), Some("eu-only"));
    assert_eq!(
        refused.rule.as_deref(),
        Some("policy.yaml: access.groups[0].regions.*")
    );
    let connect_refused = records
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.outcome == "provider-not-allowed")
        .expect("the CONNECT refusal is recorded");
    assert_eq!(connect_refused.scope, "carl");
    assert!(store.verify().unwrap().is_none());
}

#[tokio::test]
async fn allowed_exchanges_record_their_region() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let (status, _, _) = post(
        &client,
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-20250514-v1:0/converse",
        json!({"messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (store, _dir) = proxy.stop_and_open_store().await;
    let (_, record) = store.all().unwrap().pop().unwrap();
    assert_eq!(record.region.as_deref(), Some("eu-central-1,us"));
    assert_eq!(record.jurisdiction.as_deref(), Some("eu,us"));
    assert_eq!(
        record.model.as_deref(),
        Some("us.anthropic.claude-sonnet-4-20250514-v1:0")
    );
    assert_eq!(record.profile.as_deref(), Some("default"));
}
