//! OIDC proxy authentication: JWTs from a fake identity provider (its JWKS served over HTTPS by the
//! fake upstream, or read from a file), signed with RS256, ES256 and EdDSA; expired, not yet valid,
//! wrong-audience, wrong-issuer, wrong-signature and rotated-key cases; groups from the token
//! reaching group policies and records.

mod common;

use base64::Engine;
use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ISSUER: &str = "https://idp.example";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the fake identity provider and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: serde_json::Value,
}

impl Signer {
    fn rsa(file: &str, kid: &str) -> Self {
        let pem = std::fs::read(format!("{FIXTURES}/{file}")).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
        let pair = ring::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(&pem).unwrap(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64(&public.n), "e": b64(&public.e)}),
        }
    }

    fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({"kty": "EC", "kid": kid, "crv": "P-256",
                "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
        }
    }

    fn ed(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty": "OKP", "kid": kid, "crv": "Ed25519",
                "x": b64(pair.public_key_raw())}),
        }
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn jwks(signers: &[&Signer]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> serde_json::Value {
    json!({"iss": ISSUER, "aud": "tollgate", "sub": "u-123", "email": "alice@example.com",
        "groups": ["staff", "eu-staff"], "iat": now(), "exp": now() + 600})
}

fn identity_yaml(jwks: &str) -> String {
    format!(
        "oidc:\n  issuer: {ISSUER}\n  audience: [tollgate, other]\n  jwks: {jwks}\n  user_claim: email\n  min_refresh: 0s\n"
    )
}

async fn connect_with(proxy: &TestProxy, credentials: &str) -> Tunnel {
    connect(
        proxy.addr(),
        "api.openai.com:443",
        &[("proxy-authorization", credentials)],
    )
    .await
}

fn refused_because(tunnel: Tunnel, why: &str) {
    let (status, headers, body) = tunnel.refused();
    assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED, "{why}");
    let challenges: Vec<_> = headers
        .get_all("proxy-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "{message}");
}

#[tokio::test]
async fn jwts_signed_with_each_algorithm_are_accepted_and_name_the_user_and_groups() {
    let upstream = Upstream::start().await;
    let (rsa, ec, ed) = (
        Signer::rsa("jwt-rsa.key", "rsa-1"),
        Signer::ec("ec-1"),
        Signer::ed("ed-1"),
    );
    upstream.set_jwks(&jwks(&[&rsa, &ec, &ed]));
    let proxy = ProxySetup::new(&upstream)
        .identity(&identity_yaml("https://idp.example/test/jwks"))
        .policy("access:\n  groups:\n    - { name: eu-only, groups: [eu-staff], regions: { '*': [eu] } }\n")
        .start()
        .await;

    for signer in [&rsa, &ec, &ed] {
        let jwt = signer.sign(&claims());
        assert!(
            matches!(
                connect_with(&proxy, &format!("Bearer {jwt}")).await,
                Tunnel::Open(_)
            ),
            "{:?}",
            signer.alg
        );
    }

    // A client that can send only Basic puts the JWT in the password.
    let jwt = rsa.sign(&claims());
    let client = client_as(&proxy, "oidc", &jwt);
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let res = client
        .post("https://eu.api.openai.com/v1/chat/completions")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The token's groups pick the group policy: EU only.
    let res = client
        .post("https://us.api.openai.com/v1/chat/completions")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["x-tollgate-reason"], "region-not-allowed");

    let received = upstream.received();
    assert!(
        received
            .iter()
            .all(|r| !r.headers.contains_key("proxy-authorization")),
        "credentials never reach the upstream"
    );
    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    let exchange = records
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.host == "eu.api.openai.com")
        .unwrap();
    assert_eq!(exchange.scope, "alice@example.com");
    assert_eq!(exchange.groups.as_deref(), Some("staff,eu-staff"));
    assert_eq!(exchange.token.as_deref(), Some("oidc"));
    assert_eq!(exchange.profile.as_deref(), Some("eu-only"));
    // Nothing of the token is kept.
    let all = serde_json::to_string(&records.iter().map(|(_, r)| r).collect::<Vec<_>>()).unwrap();
    assert!(!all.contains(&jwt[..40]));
}

#[tokio::test]
async fn bad_jwts_are_refused_with_the_reason() {
    let upstream = Upstream::start().await;
    let rsa = Signer::rsa("jwt-rsa.key", "rsa-1");
    upstream.set_jwks(&jwks(&[&rsa]));
    let proxy = ProxySetup::new(&upstream)
        .identity(&identity_yaml("https://idp.example/test/jwks"))
        .start()
        .await;
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        change(&mut c);
        format!("Bearer {}", rsa.sign(&c))
    };

    refused_because(
        connect(proxy.addr(), "api.openai.com:443", &[]).await,
        "credentials",
    );
    let expired = with(&|c| c["exp"] = json!(now() - 3600));
    refused_because(connect_with(&proxy, &expired).await, "expired");
    let early = with(&|c| c["nbf"] = json!(now() + 3600));
    refused_because(connect_with(&proxy, &early).await, "not valid yet");
    let audience = with(&|c| c["aud"] = json!("someone-else"));
    refused_because(connect_with(&proxy, &audience).await, "audience");
    let no_audience = with(&|c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    refused_because(connect_with(&proxy, &no_audience).await, "aud");
    let issuer = with(&|c| c["iss"] = json!("https://evil.example"));
    refused_because(connect_with(&proxy, &issuer).await, "issuer");
    let no_user = with(&|c| {
        c.as_object_mut().unwrap().remove("email");
    });
    refused_because(connect_with(&proxy, &no_user).await, "email");

    // Signed by another key under the published key's id.
    let impostor = Signer::rsa("jwt-rsa-2.key", "rsa-1");
    let forged = format!("Bearer {}", impostor.sign(&claims()));
    refused_because(connect_with(&proxy, &forged).await, "signature");
    // A shared-secret token: never accepted.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let hs = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"k")).unwrap();
    refused_because(connect_with(&proxy, &format!("Bearer {hs}")).await, "HS256");
    refused_because(connect_with(&proxy, "Bearer not.a.jwt").await, "JWT");

    // Clock skew within the leeway is fine.
    let skewed = with(&|c| c["exp"] = json!(now() - 10));
    assert!(matches!(
        connect_with(&proxy, &skewed).await,
        Tunnel::Open(_)
    ));
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn rotated_keys_are_fetched_again_and_dropped_keys_stop_working() {
    let upstream = Upstream::start().await;
    let old = Signer::rsa("jwt-rsa.key", "2026-01");
    let new = Signer::ec("2026-02");
    upstream.set_jwks(&jwks(&[&old]));
    let proxy = ProxySetup::new(&upstream)
        .identity(&identity_yaml("https://idp.example/test/jwks"))
        .start()
        .await;

    let old_jwt = format!("Bearer {}", old.sign(&claims()));
    assert!(matches!(
        connect_with(&proxy, &old_jwt).await,
        Tunnel::Open(_)
    ));
    let fetches = upstream.jwks_fetches();
    assert!(fetches >= 1);
    // Held keys serve later tokens without a fetch.
    assert!(matches!(
        connect_with(&proxy, &old_jwt).await,
        Tunnel::Open(_)
    ));
    assert_eq!(upstream.jwks_fetches(), fetches);

    // The provider rotates: a token under the new key makes the proxy look again.
    upstream.set_jwks(&jwks(&[&new]));
    let new_jwt = format!("Bearer {}", new.sign(&claims()));
    assert!(matches!(
        connect_with(&proxy, &new_jwt).await,
        Tunnel::Open(_)
    ));
    assert!(upstream.jwks_fetches() > fetches);
    refused_because(connect_with(&proxy, &old_jwt).await, "key");
}

#[tokio::test]
async fn keys_can_come_from_a_file_next_to_identity_yaml() {
    let upstream = Upstream::start().await;
    let ed = Signer::ed("file-1");
    let proxy = ProxySetup::new(&upstream)
        .file("jwks.json", &jwks(&[&ed]))
        .identity(&identity_yaml("jwks.json"))
        .start()
        .await;
    let jwt = format!("Bearer {}", ed.sign(&claims()));
    assert!(matches!(connect_with(&proxy, &jwt).await, Tunnel::Open(_)));
    assert_eq!(upstream.jwks_fetches(), 0);
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_retryable_503_not_a_407() {
    let upstream = Upstream::start().await;
    let rsa = Signer::rsa("jwt-rsa.key", "rsa-1");
    let proxy = ProxySetup::new(&upstream)
        .connect_to("idp-down.example:443:127.0.0.1:1")
        .identity(&identity_yaml("https://idp-down.example/jwks"))
        .start()
        .await;
    let jwt = format!("Bearer {}", rsa.sign(&claims()));
    let (status, headers, body) = connect_with(&proxy, &jwt).await.refused();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-tollgate-reason"], "identity-unavailable");
    assert_eq!(headers["x-should-retry"], "true");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("identity provider")
    );
}

#[test]
fn bad_oidc_configuration_names_the_field() {
    let parse = |yaml: &str| {
        tollgate::identity::Authenticator::parse(&tollgate::policy::Source::inline(
            "identity.yaml",
            yaml,
        ))
        .unwrap_err()
        .to_string()
    };
    let err = parse("oidc:\n  issuer: x\n  audience: a\n  jwks: http://idp/keys\n");
    assert!(err.contains("oidc.jwks") && err.contains("https"), "{err}");
    let err = parse("oidc:\n  issuer: x\n  audience: []\n  jwks: https://idp/keys\n");
    assert!(err.contains("oidc.audience"), "{err}");
    let err = parse("oidc:\n  issuer: x\n  audience: a\n  jwks: /nonexistent/jwks.json\n");
    assert!(err.contains("oidc.jwks"), "{err}");
    let err = parse("oidc:\n  issuer: x\n  audience: a\n  jwks: https://idp/k\n  leway: 5s\n");
    assert!(err.contains("leway"), "{err}");
}

#[tokio::test]
async fn a_tunnel_does_not_outlive_the_jwt_that_opened_it() {
    use http_body_util::{BodyExt, Full};
    let upstream = Upstream::start().await;
    let rsa = Signer::rsa("jwt-rsa.key", "rsa-1");
    upstream.set_jwks(&jwks(&[&rsa]));
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "oidc:\n  issuer: {ISSUER}\n  audience: tollgate\n  jwks: https://idp.example/test/jwks\n  leeway: 0s\n"
        ))
        .start()
        .await;
    let mut short = claims();
    short["exp"] = json!(now() + 2);
    let jwt = format!("Bearer {}", rsa.sign(&short));
    let io = connect_with(&proxy, &jwt).await.open();
    let tls = tls_over(io, "api.openai.com", &proxy.ca_pem(), &[b"http/1.1"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = || {
        http::Request::get("https://api.openai.com/v1/models")
            .header("host", "api.openai.com")
            .body(Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let res = sender.send_request(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();

    // Wait past `exp` (whole seconds), then use the same tunnel again.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let res = sender.send_request(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(res.headers()["x-tollgate-reason"], "credentials-expired");
    assert_eq!(res.headers()["connection"], "close");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn a_reload_that_brings_oidc_fetches_its_keys_before_the_first_jwt() {
    let signer = Signer::rsa("jwt-rsa.key", "rsa-1");
    let upstream = Upstream::start().await;
    upstream.set_jwks(&jwks(&[&signer]));
    let (token, hash) = tollgate::identity::new_token();
    let tokens = format!(
        "tokens:\n  - {{ name: ops, sha256: {hash}, groups: [ops] }}\nadmin:\n  roles:\n    admin: [ops]\n"
    );
    let proxy = ProxySetup::new(&upstream).identity(&tokens).start().await;
    assert_eq!(upstream.jwks_fetches(), 0);
    std::fs::write(
        proxy.policies_dir().join("identity.yaml"),
        format!("{tokens}{}", identity_yaml("https://idp.example/test/jwks")),
    )
    .unwrap();
    let res = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/api/reload", proxy.admin_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(20),
        "the new identity provider's keys were never fetched",
        async || (upstream.jwks_fetches() > 0).then_some(()),
    )
    .await;
    let jwt = signer.sign(&claims());
    assert!(matches!(
        connect_with(&proxy, &format!("Bearer {jwt}")).await,
        Tunnel::Open(_)
    ));
}

#[tokio::test]
async fn a_replaced_jwks_file_is_a_change_that_a_reload_applies() {
    let upstream = Upstream::start().await;
    let old = Signer::ed("file-1");
    let new = Signer::ed("file-2");
    // An admin's JWT reloads it (OIDC is the only credential here; roles come from groups).
    let proxy = ProxySetup::new(&upstream)
        .file("jwks.json", &jwks(&[&old]))
        .identity(&format!(
            "{}admin:\n  roles:\n    admin: [staff]\n",
            identity_yaml("jwks.json")
        ))
        .start()
        .await;
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let fingerprint = async |jwt: String| -> serde_json::Value {
        admin
            .get(format!("{}/api/policy", proxy.admin_url()))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["fingerprint"]
            .clone()
    };
    let before = fingerprint(old.sign(&claims())).await;
    std::fs::write(proxy.policies_dir().join("jwks.json"), jwks(&[&new])).unwrap();
    let res = admin
        .post(format!("{}/api/reload", proxy.admin_url()))
        .bearer_auth(old.sign(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // (The directory watch may have reloaded first; either way the set in force changed.)
    assert_ne!(fingerprint(new.sign(&claims())).await, before);
    let by_new = format!("Bearer {}", new.sign(&claims()));
    assert!(matches!(
        connect_with(&proxy, &by_new).await,
        Tunnel::Open(_)
    ));
    let by_old = format!("Bearer {}", old.sign(&claims()));
    assert!(!matches!(
        connect_with(&proxy, &by_old).await,
        Tunnel::Open(_)
    ));
}

/// The console's cookie `name` as `name=value`, from a response.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

#[tokio::test]
async fn the_console_signs_in_through_the_identity_provider_with_pkce() {
    use base64::Engine;
    let upstream = Upstream::start().await;
    let rsa = Signer::rsa("jwt-rsa.key", "rsa-1");
    upstream.set_jwks(&jwks(&[&rsa]));
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "{}  console:\n    authorization_endpoint: https://idp.example/authorize\n    token_endpoint: https://idp.example/test/token\n    client_id: tollgate-console\n    redirect_uri: http://127.0.0.1:9090/console/oidc/callback\nadmin:\n  roles:\n    approver: [staff]\n",
            identity_yaml("https://idp.example/test/jwks")
        ))
        .start()
        .await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let admin = proxy.admin_url();
    let page = http
        .get(format!("{admin}/console/login"))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Sign in with https://idp.example"), "{page}");

    // The browser is sent to the provider with a PKCE challenge, a state and a nonce.
    let start = async || {
        let res = http
            .get(format!("{admin}/console/oidc/start"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("https://idp.example/authorize?"),
            "{location}"
        );
        let query: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "tollgate-console");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["scope"], "openid profile email");
        (
            query,
            set_cookie(&res, "__Host-tollgate_console_oidc").unwrap(),
        )
    };
    let (query, binding) = start().await;
    let signed_in = |nonce: &str| {
        let mut c = claims();
        c["nonce"] = json!(nonce);
        json!({"id_token": rsa.sign(&c), "token_type": "Bearer"}).to_string()
    };
    upstream.set_token_answer(&signed_in(&query["nonce"]));
    let callback = |state: &str, cookie: &str| {
        http.get(format!(
            "{admin}/console/oidc/callback?code=the-code&state={state}"
        ))
        .header("cookie", cookie)
        .send()
    };

    // Back without the cookie that bound the sign-in to this browser: refused.
    let res = callback(&query["state"], "__Host-tollgate_console_oidc=other")
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(upstream.token_forms().is_empty());

    let res = callback(&query["state"], &binding).await.unwrap();
    // A page, not a redirect, goes on to the console: back from the provider the navigation
    // is cross-site, and a SameSite=Strict cookie set on a redirect would not follow it.
    assert_eq!(res.status(), 200);
    let session = set_cookie(&res, "__Host-tollgate_console").unwrap();
    assert!(res.text().await.unwrap().contains("url=/console/"));
    // The code went to the token endpoint with the verifier of the challenge.
    let forms = upstream.token_forms();
    assert_eq!(forms.len(), 1);
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(&forms[0]).unwrap();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["client_id"], "tollgate-console");
    assert_eq!(
        form["redirect_uri"],
        "http://127.0.0.1:9090/console/oidc/callback"
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        form["code_verifier"].as_bytes(),
    ));
    assert_eq!(challenge, query["code_challenge"]);
    // Signed in as the token's user, with the role its groups give.
    let page = http
        .get(format!("{admin}/console/approvals"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("alice@example.com"));

    // An error sent back with someone else's state shows none of its words.
    let res = http
        .get(format!(
            "{admin}/console/oidc/callback?state=forged&error=access_denied&error_description=call+this+number"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("call this number") && !text.contains("access_denied"),
        "{text}"
    );
    // A state is good once.
    let res = callback(&query["state"], &binding).await.unwrap();
    assert_eq!(res.status(), 401);
    // An ID token minted for another sign-in (its nonce differs) is refused.
    let (query, binding) = start().await;
    upstream.set_token_answer(&signed_in("someone-else's"));
    let res = callback(&query["state"], &binding).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(set_cookie(&res, "__Host-tollgate_console").is_none());
    assert!(res.text().await.unwrap().contains("nonce"));
}
