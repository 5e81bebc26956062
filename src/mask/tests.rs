//! Every built-in rule against a sample of its format, the benign corpus against every rule,
//! and the masker end to end on bodies.

use super::detect::Detector;
use super::rules::RULES;
use super::*;

/// Expands `{a:N}` (letters and digits), `{h:N}` (lower hex), `{u:N}` (upper and digits),
/// `{d:N}` (digits), `{l:N}` (lower and digits), `{b:N}` (base64), `{w:N}` (url-safe) with
/// deterministic characters, so samples have the length and alphabet of real tokens.
pub fn sample(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    let mut seed: u32 = 0x9e37_79b9;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        // A brace that opens no `{class:n}` is the text's own (`${DB_PASSWORD:…}`).
        let spec = rest[open + 1..].split('}').next().unwrap_or("");
        let Some((class, n)) = spec
            .split_once(':')
            .and_then(|(c, n)| Some((c, n.parse::<usize>().ok()?)))
        else {
            out.push('{');
            rest = &rest[open + 1..];
            continue;
        };
        let close = open + 1 + spec.len();
        let alphabet: &[u8] = match class {
            "a" => b"aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ",
            "h" => b"0123456789abcdef",
            "u" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
            "d" => b"0123456789",
            "l" => b"abcdefghijklmnopqrstuvwxyz0123456789",
            "b" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            "w" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            other => panic!("unknown class {other}"),
        };
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            out.push(alphabet[(seed as usize) % alphabet.len()] as char);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A sample for every built-in rule, in the context it is usually found in.
pub const SAMPLES: &[(&str, &str)] = &[
    ("aws-access-key-id", "aws_access_key_id = AKIA{u:16}"),
    ("aws-secret-access-key", "aws_secret_access_key = {b:40}"),
    ("aws-session-token", "aws_session_token = {b:180}"),
    ("aws-session-token-bare", "token IQoJb3JpZ2luX2VjE{b:300}"),
    (
        "aws-cli-credentials-text",
        "CREDENTIALS\tASIA{u:16}\t2026-01-01T00:00:00Z\t{b:40}\tIQoJ",
    ),
    ("aws-mws-key", "amzn.mws.{h:8}-{h:4}-{h:4}-{h:4}-{h:12}"),
    ("gcp-api-key", "key=AIza{w:35}&q=1"),
    (
        "gcp-service-account-key-id",
        r#""private_key_id": "{h:40}""#,
    ),
    ("gcp-oauth-client-secret", "GOCSPX-{w:28}"),
    ("google-oauth-access-token", "Bearer ya29.{w:60}"),
    ("google-oauth-refresh-token", "refresh 1//0{w:60}"),
    (
        "azure-storage-account-key",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey={b:86}==;EndpointSuffix=core.windows.net",
    ),
    (
        "azure-shared-access-key",
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={b:43}=",
    ),
    (
        "azure-sas-signature",
        "https://x.blob.core.windows.net/c?sv=2022&sig={b:43}%3D",
    ),
    ("azure-ad-client-secret", "client_secret: abc8Q~{w:32} end"),
    ("azure-openai-key", "AZURE_OPENAI_API_KEY={h:32}"),
    ("alibaba-access-key-id", "LTAI{a:20}"),
    ("alibaba-secret-key", "alibaba_secret = {a:30}"),
    ("ibm-cloud-api-key", "IBM_CLOUD_API_KEY={w:44}"),
    ("digitalocean-pat", "dop_v1_{h:64}"),
    ("digitalocean-oauth-token", "doo_v1_{h:64}"),
    ("digitalocean-refresh-token", "dor_v1_{h:64}"),
    (
        "heroku-api-key",
        "HEROKU_API_KEY={h:8}-{h:4}-{h:4}-{h:4}-{h:12}",
    ),
    ("heroku-api-key-v2", "HRKU-{w:60}"),
    ("cloudflare-api-token", "CLOUDFLARE_API_TOKEN={w:40}"),
    ("cloudflare-origin-ca-key", "v1.0-{h:24}-{h:146}"),
    ("fly-io-token", "fo1_{w:43}"),
    ("vault-service-token", "VAULT_TOKEN=hvs.{w:95}"),
    ("vault-batch-token", "hvb.{w:95}"),
    ("terraform-cloud-token", "{a:14}.atlasv1.{w:65}"),
    ("pulumi-token", "pul-{h:40}"),
    ("doppler-token", "dp.pt.{a:43}"),
    ("scalingo-token", "tk-us-{w:48}"),
    ("netlify-token", "NETLIFY_AUTH_TOKEN={w:43}"),
    ("vercel-token", "VERCEL_TOKEN={a:24}"),
    ("linode-token", "LINODE_TOKEN={h:64}"),
    ("github-pat", "git clone https://ghp_{a:36}@github.com/o/r"),
    ("github-oauth-token", "gho_{a:36}"),
    ("github-user-to-server-token", "ghu_{a:36}"),
    ("github-server-to-server-token", "ghs_{a:36}"),
    ("github-refresh-token", "ghr_{a:76}"),
    ("github-fine-grained-pat", "github_pat_{a:22}_{a:59}"),
    ("github-legacy-token", "GITHUB_TOKEN={h:40}"),
    ("gitlab-pat", "glpat-{w:20}"),
    ("gitlab-pipeline-trigger-token", "glptt-{w:40}"),
    ("gitlab-runner-registration-token", "GR1348941{w:20}"),
    ("gitlab-runner-token", "glrt-{w:20}"),
    ("gitlab-deploy-token", "gldt-{w:20}"),
    ("gitlab-feed-token", "glft-{w:20}"),
    ("gitlab-oauth-secret", "gloas-{w:64}"),
    ("gitlab-scim-token", "glsoat-{w:20}"),
    ("gitlab-incoming-mail-token", "glimt-{w:25}"),
    ("gitlab-agent-token", "glagent-{w:50}"),
    ("gitlab-cicd-job-token", "glcbt-{w:24}"),
    ("bitbucket-app-password", "ATBB{a:32}"),
    ("atlassian-api-token", "ATATT3{w:186}"),
    ("gitea-token", "GITEA_TOKEN={h:40}"),
    ("slack-bot-token", "xoxb-{d:12}-{d:12}-{a:24}"),
    ("slack-user-token", "xoxp-{d:12}-{d:12}-{d:12}-{a:32}"),
    ("slack-config-token", "xoxe.xoxp-1-{u:160}"),
    ("slack-app-token", "xapp-1-A{u:10}-{d:13}-{h:64}"),
    ("slack-legacy-token", "xoxs-{d:10}-{d:10}-{l:20}"),
    (
        "slack-webhook-url",
        "https://hooks.slack.com/services/T{u:8}/B{u:8}/{a:24}",
    ),
    (
        "discord-webhook-url",
        "https://discord.com/api/webhooks/{d:18}/{w:68}",
    ),
    ("discord-bot-token", "DISCORD_TOKEN=M{w:23}.{w:6}.{w:27}"),
    ("telegram-bot-token", "bot{d:9}:AA{w:33} "),
    (
        "teams-webhook-url",
        "https://acme.webhook.office.com/webhookb2/{l:8}-{l:4}@{l:8}-{l:4}/IncomingWebhook/{l:32}/{l:8}-{l:4}-{l:4}-{l:4}-{l:12}",
    ),
    ("twitter-bearer-token", "AAAAAAAAAAAAAAAAAAAAA{a:40}"),
    ("mattermost-token", "MATTERMOST_TOKEN={l:26}"),
    ("stripe-secret-key", "sk_live_{a:24}"),
    ("stripe-webhook-secret", "whsec_{a:32}"),
    ("square-access-token", "EAAA{w:60}"),
    ("square-oauth-secret", "sq0csp-{w:43}"),
    (
        "braintree-access-token",
        "access_token$production${l:16}${h:32}",
    ),
    ("flutterwave-secret-key", "FLWSECK_TEST-{h:32}-X"),
    ("razorpay-key", "rzp_live_{a:14}"),
    ("coinbase-secret", "COINBASE_API_SECRET={b:44}"),
    (
        "anthropic-api-key",
        "ANTHROPIC_API_KEY=sk-ant-api03-{w:93}AA",
    ),
    (
        "openai-api-key",
        "OPENAI_API_KEY=sk-proj-{w:74}T3BlbkFJ{w:74}",
    ),
    ("openai-legacy-key", "sk-{a:48}"),
    ("openrouter-api-key", "sk-or-v1-{h:64}"),
    ("huggingface-token", "hf_{a:34}"),
    ("huggingface-org-token", "api_org_{a:34}"),
    ("groq-api-key", "gsk_{a:52}"),
    ("replicate-token", "r8_{a:37}"),
    ("perplexity-api-key", "pplx-{a:48}"),
    ("xai-api-key", "xai-{a:80}"),
    ("langsmith-api-key", "lsv2_pt_{h:32}_{h:10}"),
    ("fireworks-api-key", "fw_{a:24}"),
    ("pinecone-api-key", "pcsk_{a:10}_{a:60}"),
    ("elevenlabs-api-key", "sk_{h:48}"),
    ("cohere-api-key", "COHERE_API_KEY={a:40}"),
    ("mistral-api-key", "MISTRAL_API_KEY={a:32}"),
    ("deepseek-api-key", "DEEPSEEK_API_KEY=sk-{h:32}"),
    ("together-api-key", "TOGETHER_API_KEY={h:64}"),
    ("wandb-api-key", "WANDB_API_KEY={h:40}"),
    ("voyage-api-key", "VOYAGE_API_KEY=pa-{w:43}"),
    ("npm-token", "npm_{a:36}"),
    (
        "npmrc-auth-token",
        "//registry.npmjs.org/:_authToken={w:40}",
    ),
    ("pypi-token", "pypi-AgEIcHlwaS5vcmc{w:70}"),
    ("rubygems-api-key", "rubygems_{h:48}"),
    ("nuget-api-key", "oy2{l:43}"),
    ("docker-hub-pat", "dckr_pat_{w:27}"),
    ("crates-io-token", "cio{a:32}"),
    ("jfrog-api-key", "AKCp{a:69}"),
    ("jfrog-identity-token", "cmVmdGtuOjAx{a:60}"),
    ("clojars-token", "CLOJARS_{l:60}"),
    ("postman-api-key", "PMAK-{h:24}-{h:34}"),
    ("pubdev-token", "PUB_TOKEN={w:48}"),
    ("twilio-api-key", "TWILIO_API_KEY=SK{h:32}"),
    ("sendgrid-api-key", "SG.{w:22}.{w:43}"),
    ("mailgun-api-key", "key-{h:32}"),
    ("mailchimp-api-key", "{h:32}-us14"),
    ("shopify-access-token", "shpat_{h:32}"),
    ("databricks-token", "dapi{h:32}"),
    ("datadog-api-key", "DD_API_KEY={h:32}"),
    ("new-relic-key", "NRAK-{u:27}"),
    ("sentry-token", "sntryu_{h:64}"),
    ("linear-api-key", "lin_api_{a:40}"),
    ("tailscale-key", "tskey-auth-k{a:10}CNTRL-{a:32}"),
    ("supabase-secret-key", "sb_secret_{w:32}"),
    ("render-api-key", "rnd_{a:32}"),
    ("resend-api-key", "re_{a:8}_{a:24}"),
    ("neon-api-key", "napi_{l:64}"),
    ("buildkite-token", "bkua_{h:40}"),
    ("sourcegraph-token", "sgp_{h:16}_{h:40}"),
    ("netlify-pat", "nfp_{a:40}"),
    ("dropbox-token", "sl.{w:138}"),
    ("cloudflare-tunnel-token", "eyJhIjoi{b:120}"),
    ("notion-token", "ntn_{d:11}{a:35}"),
    ("okta-api-token", "OKTA_API_TOKEN=00{w:40}"),
    ("grafana-token", "glsa_{a:32}_{h:8}"),
    ("planetscale-token", "pscale_tkn_{w:43}"),
    ("supabase-token", "sbp_{h:40}"),
    ("figma-token", "figd_{w:40}"),
    ("dynatrace-token", "dt0c01.{u:24}.{u:64}"),
    ("mapbox-secret-token", "sk.eyJ{w:40}.{w:22}"),
    ("readme-api-key", "rdme_{l:70}"),
    ("prefect-api-key", "pnu_{a:36}"),
    ("easypost-api-key", "EZAK{a:54}"),
    ("typeform-token", "tfp_{w:59}"),
    ("onepassword-service-token", "ops_eyJ{b:300}"),
    ("circleci-token", "CCIPAT_{a:22}_{h:40}"),
    ("airtable-pat", "AIRTABLE_API_KEY=pat{a:14}.{h:64}"),
    ("asana-token", "ASANA_TOKEN=1/{d:16}:{a:32}"),
    ("hubspot-token", "pat-na1-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}"),
    ("zendesk-token", "ZENDESK_API_TOKEN={a:40}"),
    ("snyk-token", "SNYK_TOKEN={h:8}-{h:4}-{h:4}-{h:4}-{h:12}"),
    (
        "age-secret-key",
        "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE",
    ),
    (
        "private-key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{b:70}\n{b:70}\n{b:20}==\n-----END OPENSSH PRIVATE KEY-----",
    ),
    (
        "putty-private-key",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n{b:44}\nPrivate-MAC: {h:64}",
    ),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{w:43}",
    ),
    (
        "url-credentials",
        "DATABASE_URL=postgres://app:{a:20}@db.internal:5432/app",
    ),
    (
        "connection-string-password",
        "Server=db;Database=app;User Id=sa;Password=Tr0ub4dor&3x;",
    ),
    ("basic-auth-header", "Authorization: Basic {b:32}"),
    (
        "netscape-cookie",
        ".app.internal\tTRUE\t/\tTRUE\t1767225600\tsessionid\t{a:32}",
    ),
    ("cookie-header", "Cookie: _ga=GA1.2.3; sessionid={a:32}"),
    (
        "command-output",
        "$ op read op://prod/db/password\n{a:20}\n",
    ),
    (
        "curl-userpwd",
        "curl_setopt($ch, CURLOPT_USERPWD, \"deploy:{a:16}\");",
    ),
    (
        "keychain-set",
        "keychain.set(\"{a:16}\", forKey: \"password\")",
    ),
    (
        "url-token-user",
        "git clone https://{l:52}@dev.azure.com/org/p/_git/r",
    ),
    ("bearer-auth-header", "Authorization: Bearer {w:40}"),
    (
        "generic-secret-assignment",
        "db_password = \"h7Kq2pLx9vRm\"",
    ),
    (
        "aws-secret-access-key-pair",
        "Access key ID,Secret access key\nAKIA{u:16},{b:40}\n",
    ),
    ("npmrc-auth", "_auth = {b:24}"),
    (
        "cli-password",
        "curl -u deploy:{a:16} https://ci.internal/api",
    ),
    (
        "sql-password",
        "CREATE USER 'app'@'%' IDENTIFIED BY '{a:14}';",
    ),
    (
        "positional-password",
        "conn = DriverManager.getConnection(url, \"app\", \"{a:14}\");",
    ),
    (
        "auth-pair-password",
        "r = requests.get(url, auth=('deploy', '{a:14}'))",
    ),
    (
        "dsn-password",
        "dsn := \"app:{a:14}@tcp(db.internal:3306)/app?parseTime=true\"",
    ),
    (
        "encoded-basic-auth",
        "auth = base64.b64encode(b\"deploy:{a:14}\")",
    ),
    ("placeholder-default", "  password: ${DB_PASSWORD:{a:14}}"),
    ("prose-secret", "the staging db password is {a:14} for now"),
    ("sonar-token", "mvn sonar:sonar -Dsonar.login={a:40}"),
    (
        "jwk-private-key",
        r#"jwk = "kty":"EC","crv":"P-256","x":"{w:43}","y":"{w:43}","d":"{w:43}""#,
    ),
    ("pgpass-password", "db.internal:5432:app:app:{a:14}"),
    (
        "openvpn-static-key",
        "-----BEGIN OpenVPN Static key V1-----\n{h:32}\n{h:32}\n-----END OpenVPN Static key V1-----",
    ),
    (
        "powershell-plaintext-password",
        "$pw = ConvertTo-SecureString '{a:14}' -AsPlainText -Force",
    ),
];

#[test]
fn every_builtin_rule_has_a_sample_and_finds_it() {
    let detector = Detector::builtin();
    let sampled: Vec<&str> = SAMPLES.iter().map(|s| s.0).collect();
    for spec in RULES {
        // Structured-field rules have no text form; they are tested where JSON is walked.
        if spec.check == super::rules::Check::Field {
            continue;
        }
        assert!(sampled.contains(&spec.id), "no sample for rule {}", spec.id);
    }
    let mut missed = Vec::new();
    for (id, template) in SAMPLES {
        for text in [
            format!("some context {} more context", sample(template)),
            sample(template),
        ] {
            let hits = detector.scan(&text);
            if !hits.iter().any(|h| &*detector.rule(h.rule).id == *id) {
                let found: Vec<_> = hits.iter().map(|h| &*detector.rule(h.rule).id).collect();
                missed.push(format!("{id}: {text:?} (found {found:?})"));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "rules that missed their samples:\n{}",
        missed.join("\n")
    );
    assert!(RULES.len() >= 100, "{} rules", RULES.len());
}

#[test]
fn private_keys_are_found_inside_json_escaped_text() {
    let detector = Detector::builtin();
    let key =
        sample("-----BEGIN PRIVATE KEY-----\\n{b:64}\\n{b:64}\\n-----END PRIVATE KEY-----\\n");
    let text = format!(
        r#"{{"type": "service_account", "private_key": "{key}", "client_email": "x@y.iam.gserviceaccount.com"}}"#
    );
    let hits = detector.scan(&text);
    let hit = hits
        .iter()
        .find(|h| &*detector.rule(h.rule).id == "private-key")
        .expect("found");
    assert!(text[hit.start..hit.end].ends_with("-----END PRIVATE KEY-----"));
}

/// Ordinary code and agent traffic that must pass untouched.
pub const BENIGN: &[&str] = &[
    "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Dev <dev@example.com>",
    "git checkout 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "id: 123e4567-e89b-12d3-a456-426614174000",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    r#""integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+5yENi3bGhJJQFqAw8Y3mKdRgJNNgqCcvb2eYrw==""#,
    "const maxRetryAttemptsBeforeGivingUpOnTheUpstreamConnection = 5;",
    r#"api_key = os.environ["OPENAI_API_KEY"]"#,
    "const token = process.env.GITHUB_TOKEN;",
    "password = getpass.getpass()",
    "export OPENAI_API_KEY=YOUR_API_KEY",
    "api_key: <your-api-key>",
    "secret: ${DB_SECRET}",
    "token = config.auth.token",
    "version = \"1.2.3-beta.4\"",
    "color: #ff8800; background: rgba(0, 0, 0, 0.5);",
    "See https://docs.python.org/3/library/ssl.html#ssl.SSLContext for details.",
    "https://github.com/omjadas/hudsucker/blob/main/src/lib.rs",
    r#"{"max_tokens": 4096, "prompt_tokens": 1200, "token_type": "bearer"}"#,
    "fn tokenize(input: &str) -> Vec<Token> { secret_sauce(input) }",
    "<system-reminder>Use the TodoWrite tool to track progress.</system-reminder>",
    r#"{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string", "description": "The command to run"}, "timeout": {"type": "number"}}, "required": ["command"]}}"#,
    "The S3 bucket and the C4 diagram are in the docs; use an EC2 instance.",
    "passwordless login is enabled; see the secret-management guide.",
    "let keyboard_layout = monkey_patch(key_binding);",
    "postgres://localhost:5432/app",
    "AKIAIOSFODNN7EXAMPLE is the documented example key id",
    "Authorization: Bearer $TOKEN",
    "password: changeme",
    "thread 'main' panicked at src/main.rs:10:5",
    "[package]\nname = \"tollgate\"\nversion = \"0.1.0\"\nedition = \"2024\"",
];

#[test]
fn benign_corpus_passes_untouched() {
    let detector = Detector::builtin();
    for text in BENIGN {
        let hits = detector.scan(text);
        assert!(
            hits.is_empty(),
            "false positive in {text:?}: {:?}",
            hits.iter()
                .map(|h| (&*detector.rule(h.rule).id, &text[h.start..h.end]))
                .collect::<Vec<_>>()
        );
    }
}

fn policy(yaml: &str) -> MaskPolicy {
    MaskPolicy::parse(&Source::inline("masking.yaml", yaml)).unwrap()
}

/// The default policy, compiled once for the property tests.
fn default_policy() -> &'static MaskPolicy {
    static POLICY: std::sync::LazyLock<MaskPolicy> = std::sync::LazyLock::new(|| policy("{}"));
    &POLICY
}

fn vault() -> Vault {
    Vault::new(Duration::from_secs(600), 64 << 20)
}

#[test]
fn json_bodies_are_masked_inside_strings_with_stable_placeholders() {
    let p = policy("{}");
    let v = vault();
    let m = Masker {
        policy: &p,
        vault: &v,
        scope: "alice",
    };
    let token = sample("ghp_{a:36}");
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"use {token} please"}},{{"role":"assistant","content":"ok"}},{{"role":"user","content":"again: {token}\n"}}]}}"#
    );
    let out = m
        .mask_body(Some("application/json"), None, Bytes::from(body))
        .unwrap();
    let sent = String::from_utf8(out.body.unwrap().to_vec()).unwrap();
    assert!(!sent.contains(&token));
    let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
    let first = v["messages"][0]["content"].as_str().unwrap();
    let second = v["messages"][2]["content"].as_str().unwrap();
    let placeholder = first.split(' ').nth(1).unwrap();
    assert!(
        placeholder.starts_with("TOLLGATE_GITHUB_PAT_"),
        "{placeholder}"
    );
    assert!(second.contains(placeholder), "same value, same placeholder");
    assert_eq!(out.findings.len(), 2);
    assert_eq!(out.findings[0].path, "messages[0].content");
    assert_eq!(&*out.findings[0].rule, "github-pat");
}

#[test]
fn custom_identifiers_literals_domains_and_regexes() {
    let p = policy(
        "identifiers:\n  - name: code-names\n    category: project\n    literals: [Nightjar, Project Falcon]\n  - name: hosts\n    domains: ['*.corp.example']\n  - name: customers\n    regexes: ['\\bACME-[0-9]{4}\\b']\n    case_insensitive: false\n",
    );
    let v = vault();
    let m = Masker {
        policy: &p,
        vault: &v,
        scope: "s",
    };
    let mut findings = Vec::new();
    let text =
        "NIGHTJAR talks to build.eu.corp.example for ACME-1234; nightjars and acme-1234 stay.";
    let out = m
        .mask_text(text, &|| "t".into(), &mut findings)
        .unwrap()
        .unwrap();
    assert!(
        !out.contains("NIGHTJAR") && !out.contains("corp.example") && !out.contains("ACME-1234"),
        "{out}"
    );
    assert!(
        out.contains("nightjars") && out.contains("acme-1234"),
        "whole-word and case rules: {out}"
    );
    let categories: Vec<&str> = findings.iter().map(|f| &*f.category).collect();
    assert_eq!(categories, vec!["project", "hosts", "customers"]);
}

#[test]
fn block_refuses_naming_the_rule_never_the_value_and_approve_masks_and_flags() {
    let p = policy("rules:\n  stripe-secret-key: { action: block }\n  jwt: { action: approve }\n");
    let v = vault();
    let m = Masker {
        policy: &p,
        vault: &v,
        scope: "s",
    };
    let key = sample("sk_live_{a:24}");
    let err = m
        .mask_text(
            &format!("charge with {key}"),
            &|| "body".into(),
            &mut Vec::new(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("stripe-secret-key") && !msg.contains(&key),
        "{msg}"
    );
    let jwt = sample("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{w:43}");
    let mut findings = Vec::new();
    let out = m
        .mask_text(&jwt, &|| "body".into(), &mut findings)
        .unwrap()
        .expect("masked");
    assert!(!out.contains(&jwt), "{out}");
    assert_eq!(findings.len(), 1);
    assert!(
        findings[0].needs_approval,
        "the request must wait for a person"
    );
}

#[test]
fn compressed_and_text_bodies_are_decoded_and_masked() {
    use std::io::Write;
    let p = policy("{}");
    let v = vault();
    let m = Masker {
        policy: &p,
        vault: &v,
        scope: "s",
    };
    let key = sample("AKIA{u:16}");
    let body = format!(r#"{{"input":"deploy with {key}"}}"#);
    let zstd_body = zstd::encode_all(body.as_bytes(), 3).unwrap();
    let out = m
        .mask_body(
            Some("application/json"),
            Some("zstd"),
            Bytes::from(zstd_body),
        )
        .unwrap();
    let sent = out.body.unwrap();
    assert!(!String::from_utf8_lossy(&sent).contains(&key));
    assert!(json::is_valid(std::str::from_utf8(&sent).unwrap()));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"plain text with no secret").unwrap();
    let out = m
        .mask_body(
            Some("text/plain"),
            Some("gzip"),
            Bytes::from(gz.finish().unwrap()),
        )
        .unwrap();
    assert_eq!(
        out.body.as_deref(),
        Some(&b"plain text with no secret"[..]),
        "a clean compressed body goes as the content that was inspected"
    );

    let binary = Bytes::from_static(&[0xff, 0xfe, 0x00, 0x81]);
    assert!(matches!(
        m.mask_body(Some("application/octet-stream"), None, binary),
        Err(MaskError::Uninspectable { .. })
    ));
}

#[test]
fn policy_errors_name_the_field() {
    let err = MaskPolicy::parse(&Source::inline(
        "masking.yaml",
        "rules:\n  nosuch: { action: off }\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("rules.nosuch"), "{err}");
    let err = MaskPolicy::parse(&Source::inline(
        "masking.yaml",
        "identifiers:\n  - name: x\n    regexes: ['(unclosed']\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("identifiers[0].regexes"), "{err}");
    let err = MaskPolicy::parse(&Source::inline(
        "masking.yaml",
        "identifiers:\n  - name: x\n    domains: ['not a domain']\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("identifiers[0].domains[0]"), "{err}");
}

mod properties {
    use super::*;
    use crate::mask::restore::{Restorer, SseRestorer, StreamRestore};
    use proptest::prelude::*;
    use std::sync::Arc;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_masked_body_never_contains_the_secret(
            before in "[ -~]{0,40}",
            after in "[ -~]{0,40}",
            which in 0usize..SAMPLES.len(),
        ) {
            let v = vault();
            let m = Masker { policy: default_policy(), vault: &v, scope: "s" };
            let secret = sample(SAMPLES[which].1);
            let body = serde_json::json!({"messages": [{"role": "user", "content": format!("{before} {secret} {after}")}]}).to_string();
            let out = m.mask_body(Some("application/json"), None, Bytes::from(body)).unwrap();
            let sent = String::from_utf8(out.body.expect("masked").to_vec()).unwrap();
            let decoded: serde_json::Value = serde_json::from_str(&sent).unwrap();
            prop_assert!(!decoded.to_string().contains(&secret));
        }

        #[test]
        fn restoring_a_stream_is_the_same_however_it_is_split(
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let v = Arc::new(vault());
            let secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
            let ph = v.placeholder("s", "github-pat", secret, true);
            let word = "é🙂";
            let mut stream = String::new();
            for (i, piece) in ["Use ", &ph[..5], &ph[5..14], &ph[14..], " now ", word, " and ", &ph, "."].iter().enumerate() {
                let event = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}], "n": i});
                stream.push_str(&format!("data: {event}\n\n"));
            }
            stream.push_str("data: [DONE]\n\n");
            let bytes = stream.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort();
            let mut restorer = SseRestorer::new(Restorer::new(v.clone(), "s"));
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                out.extend(restorer.feed(&bytes[at..cut]));
                at = cut;
            }
            out.extend(restorer.finish());
            let text: String = String::from_utf8(out).unwrap()
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().unwrap_or("").to_owned())
                .collect();
            prop_assert_eq!(text, format!("Use {secret} now {word} and {secret}."));
        }
    }
}

// ── What agents really send ─────────────────────────────────────────────────────────────────

const GH: &str = "ghp_Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n";
const DB_PW: &str = "Vt9#qLm2!xR7pz";

fn masker<'a>(p: &'a MaskPolicy, v: &'a Vault) -> Masker<'a> {
    Masker {
        policy: p,
        vault: v,
        scope: "alice",
    }
}

/// Masks a JSON body; returns it (checked to be valid JSON) and the findings' rules.
fn mask_json(m: &Masker<'_>, body: &serde_json::Value) -> (String, Masked) {
    let masked = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(body.to_string()),
        )
        .unwrap();
    let out = masked
        .body
        .clone()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .unwrap_or_else(|| body.to_string());
    serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
    (out, masked)
}

fn assert_absent(out: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!out.contains(s), "`{s}` left in {out}");
        // Nor in any JSON-escaped spelling of it.
        let escaped = serde_json::to_string(s).unwrap();
        assert!(
            !out.contains(&escaped[1..escaped.len() - 1]),
            "`{s}` left in {out}"
        );
    }
}

/// Each case's secret is gone from the masked body; each kept text goes without a placeholder.
fn assert_masked_and_kept(m: &Masker<'_>, cases: &[(String, String)], kept: &[&str]) {
    for (text, secret) in cases {
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
        let (out, _) = mask_json(m, &body);
        assert_absent(&out, &[secret]);
    }
    for kept in kept {
        let body = serde_json::json!({"messages": [{"role": "user", "content": kept}]});
        let (out, _) = mask_json(m, &body);
        assert!(!out.contains("TOLLGATE_"), "{kept:?} -> {out}");
    }
}

#[test]
fn json_inside_tool_call_arguments_is_walked_with_its_escapes_decoded() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let file = format!("# config\nGITHUB_TOKEN={GH}\nDB_PASSWORD={DB_PW}\n{GH}\n");
    let args = serde_json::json!({"file_path": "/app/.env", "content": file}).to_string();
    let body = serde_json::json!({"model": "gpt-4o", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "write_file", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": serde_json::json!({"ok": true, "echo": file}).to_string()},
    ]});
    let (out, masked) = mask_json(&m, &body);
    assert_absent(&out, &[GH, DB_PW]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let inner: serde_json::Value = serde_json::from_str(
        v["messages"][0]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .expect("the arguments are still JSON");
    assert!(
        inner["content"]
            .as_str()
            .unwrap()
            .starts_with("# config\nGITHUB_TOKEN=TOLLGATE_")
    );
    assert!(
        masked
            .findings
            .iter()
            .any(|f| f.path.contains("arguments>content")),
        "{:?}",
        masked.findings
    );
    // The secret alone on a line after a `\n` escape, in text that is not JSON at all.
    let raw = format!(r#"{{"input": "printf 'a\n{GH}\n' > f"}}"#);
    let out = m
        .mask_body(Some("application/json"), None, Bytes::from(raw))
        .unwrap();
    assert_absent(&String::from_utf8_lossy(&out.body.unwrap()), &[GH]);
}

#[test]
fn values_under_credential_keys_are_masked_in_any_structure() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let body = serde_json::json!({"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "deploy", "input": {
            "db": {"host": "db.internal", "password": "correct horse battery"},
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIxK7MDENGxbPxRfiCYzQ8mP2vLk4",
            "client_secret": "s3cr3t-Valu3", "apiKey": "zzQ8mP2vLk4nR", "max_tokens": 100,
            "token_type": "bearer", "password_hint": "the usual"}}]}],
        "contents": [{"parts": [{"functionCall": {"name": "f", "args": {"Passwd": "hunterhunter"}}},
            {"functionResponse": {"name": "f", "response": {"auth": "dXNlcjpwYXNzd29yZDEyMw=="}}}]}]});
    let (out, _) = mask_json(&m, &body);
    assert_absent(
        &out,
        &[
            "correct horse battery",
            "wJalrXUtnFEMIxK7MDENGxbPxRfiCYzQ8mP2vLk4",
            "s3cr3t-Valu3",
            "zzQ8mP2vLk4nR",
            "hunterhunter",
            "dXNlcjpwYXNzd29yZDEyMw==",
        ],
    );
    for kept in ["db.internal", "bearer", "the usual", "\"max_tokens\":100"] {
        assert!(out.contains(kept), "{kept} should stay: {out}");
    }
}

#[test]
fn base64_text_is_decoded_masked_and_encoded_again_and_binary_is_recorded() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let env = format!("GITHUB_TOKEN={GH}\nDB_PASSWORD={DB_PW}\n");
    let png = base64::engine::general_purpose::STANDARD
        .encode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR0123456789abcdef\0\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19");
    let k8s = format!(
        "apiVersion: v1\nkind: Secret\ndata:\n  url: {}\n",
        b64(&format!("postgres://app:{DB_PW}@db/x"))
    );
    let body = serde_json::json!({"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": b64(&env)}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": k8s},
        {"type": "file", "file": {"filename": "a.env", "file_data": format!("data:text/plain;base64,{}", b64(&env))}},
    ]}], "config": {"auths": {"registry.corp": {"auth": b64("ci:hunter2hunter2")}}}});
    let (out, masked) = mask_json(&m, &body);
    assert_absent(
        &out,
        &[
            &b64(&env),
            &b64(&format!("postgres://app:{DB_PW}@db/x")),
            &b64("ci:hunter2hunter2"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let doc = base64::engine::general_purpose::STANDARD
        .decode(
            v["messages"][0]["content"][0]["source"]["data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let doc = String::from_utf8(doc).unwrap();
    assert!(
        doc.starts_with("GITHUB_TOKEN=TOLLGATE_GITHUB_PAT_"),
        "{doc}"
    );
    assert_absent(&doc, &[GH, DB_PW]);
    assert_eq!(masked.attachments.len(), 1, "{:?}", masked.attachments);
    assert_eq!(masked.attachments[0].media_type, "image/png");
    assert!(masked.attachments[0].path.ends_with("source.data"));

    let refusing = policy("attachments: refuse\n");
    let err = masker(&refusing, &vault())
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(body.to_string()),
        )
        .unwrap_err();
    assert!(matches!(err, MaskError::Attachment { .. }), "{err}");
}

#[test]
fn disguised_secrets_are_found_and_their_original_spelling_masked() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let zw = GH.replacen("ghp_", "ghp_\u{200B}", 1);
    let full: String = GH
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
        .collect();
    for text in [
        format!(
            "GET /db?dsn=postgres%3A%2F%2Fapp%3A{}%40db%2Fx HTTP/1.1",
            "Vt9qLm2xR7pz"
        ),
        format!("token {zw} pasted"),
        format!("token {full} pasted"),
        format!("echo \\u0067hp_{}", &GH[4..]),
    ] {
        let out = m.mask_text(&text, &|| "t".into(), &mut Vec::new()).unwrap();
        let out = out.unwrap_or_else(|| panic!("nothing found in {text}"));
        assert!(out.contains("TOLLGATE_"), "{out}");
        assert!(
            !out.contains("Vt9qLm2xR7pz")
                && !out.contains(&GH[4..])
                && !out.contains(&zw)
                && !out.contains(&full),
            "{out}"
        );
    }
}

#[test]
fn rule_gaps_each_family() {
    let (p, v) = (
        policy("identifiers:\n  - name: code\n    literals: [Nightjar]\n    match: substring\n"),
        vault(),
    );
    let m = masker(&p, &v);
    for (text, secret) in [
        ("redis://:s3cretPw9@cache:6379", "s3cretPw9"),
        ("postgres://u:p@ss9word@db.internal/app", "p@ss9word"),
        ("DB_PASSWORD=Pa(ss)w0rd!x", "Pa(ss)w0rd!x"),
        ("password = \"Pa(ss)w0rd!x\" # keep", "Pa(ss)w0rd!x"),
        (
            "Server=db;User Id=sa;Password={a;b}}c9x};Encrypt=true",
            "a;b}}c9x",
        ),
        ("SMTP_PASS=sunnyafternoon", "sunnyafternoon"),
        ("ENCRYPTION_KEY=kq8ZpT2mW9xV4n", "kq8ZpT2mW9xV4n"),
        ("SIGNING_KEY=abcdefghijklmnopqrstu", "abcdefghijklmnopqrstu"),
        (
            "password: correct-horse-battery-staple",
            "correct-horse-battery-staple",
        ),
        ("ADMIN_PASSWORD=$ecretP4ss!", "$ecretP4ss!"),
        (
            "User name,Access key ID,Secret access key\nci,AKIAZ7Q2MD3XK4LP5N6R,Xk9mQ2vL8pR4tW7zB3nC6yF1hJ5sD0gA2eK4uI8o\n",
            "Xk9mQ2vL8pR4tW7zB3nC6yF1hJ5sD0gA2eK4uI8o",
        ),
        (
            "class NightjarService: pass\nnightjar_client = 1",
            "Nightjar",
        ),
    ] {
        let out = m
            .mask_text(text, &|| "t".into(), &mut Vec::new())
            .unwrap()
            .unwrap_or_else(|| panic!("nothing found in {text:?}"));
        assert!(
            !out.to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()),
            "{text:?} → {out}"
        );
    }
}

#[test]
fn a_value_once_masked_is_masked_wherever_it_reappears() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    // Turn 1: the password is known only through its URL context.
    let first = m
        .mask_text(
            &format!("DATABASE_URL=postgres://app:{DB_PW}@db/app"),
            &|| "t".into(),
            &mut Vec::new(),
        )
        .unwrap()
        .unwrap();
    let placeholder = first
        .split("app:")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    // Turn 2: the model wrote it into a tool call out of context; the client sends that back.
    let args =
        serde_json::json!({"path": "notes.txt", "content": format!("the db password is {DB_PW}.")})
            .to_string();
    let body = serde_json::json!({"input": [{"type": "function_call", "call_id": "c", "name": "write", "arguments": args}]});
    let (out, masked) = mask_json(&m, &body);
    assert_absent(&out, &[DB_PW]);
    assert!(out.contains(&placeholder), "same placeholder: {out}");
    assert_eq!(&*masked.findings[0].rule, "url-credentials");
    // Another scope does not know it.
    let bob = Masker {
        policy: &p,
        vault: &v,
        scope: "bob",
    };
    // (Out of context: "the db password is …" would be masked by its words in any scope.)
    assert!(
        bob.mask_text(
            &format!("the notes say {DB_PW}."),
            &|| "t".into(),
            &mut Vec::new()
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn only_exact_placeholders_are_left_alone() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let real = v.placeholder("alice", "github-pat", GH, true);
    let text = format!(
        "a = {real}\npassword = \"TOLLGATE_x9Kq2mLp7Z\"\nAPI_TOKEN=TOLLGATE_{}",
        &GH[4..]
    );
    let out = m
        .mask_text(&text, &|| "t".into(), &mut Vec::new())
        .unwrap()
        .unwrap();
    assert!(out.contains(&real), "{out}");
    assert!(
        !out.contains("TOLLGATE_x9Kq2mLp7Z") && !out.contains(&GH[4..]),
        "{out}"
    );
}

#[test]
fn a_masked_body_sent_back_masks_to_the_same_bytes() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let body = serde_json::json!({"messages": [{"role": "user", "content": format!("use {GH} and postgres://a:{DB_PW}@h/d")}]}).to_string();
    let once = m
        .mask_body(Some("application/json"), None, Bytes::from(body))
        .unwrap()
        .body
        .unwrap();
    let twice = m
        .mask_body(Some("application/json"), None, once.clone())
        .unwrap();
    assert!(
        twice.body.is_none(),
        "a masked body has nothing left to mask"
    );
}

#[test]
fn secrets_that_only_their_name_or_neighbour_gives_away() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let body = serde_json::json!({
        "cfg": {"password": "Qwvzrt48.kmx", "newPassword": "Zz9!qq-Rr", "DB_PASSWORD_PROD": "pr0d-Secret!", "password2": "Another1!pw", "pin": 48213377},
        "auth": ["admin", "Pw9!xYz8"],
        "env": [{"name": "DB_PASSWORD", "value": "k8s-Val9!ue"}, {"name": "LOG_LEVEL", "value": "debug"}],
        "item": {"fields": [{"id": "password", "type": "CONCEALED", "value": "OnePw-77!x"}]},
        "headers": {"Authorization": "Bearer q8Zm4Lp2Xw9Nv7Rt5Ks3Jh1Gf6Dd0Aa2", "X-API-Key": "Kk29dLq8ZmXw"},
        "credentials": "include", "mode": "same-origin",
    });
    let (out, _) = mask_json(&m, &body);
    assert_absent(
        &out,
        &[
            "Qwvzrt48.kmx",
            "Zz9!qq-Rr",
            "pr0d-Secret!",
            "Another1!pw",
            "48213377",
            "Pw9!xYz8",
            "k8s-Val9!ue",
            "OnePw-77!x",
            "q8Zm4Lp2Xw9Nv7Rt5Ks3Jh1Gf6Dd0Aa2",
            "Kk29dLq8ZmXw",
        ],
    );
    for kept in ["\"debug\"", "\"include\"", "\"admin\"", "Bearer TOLLGATE_"] {
        assert!(out.contains(kept), "{kept}: {out}");
    }
}

#[test]
fn assignments_without_operators_and_command_lines() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for (text, secret) in [
        ("machine api.corp login ci password Ne7!rcPw", "Ne7!rcPw"),
        ("define('DB_PASSWORD', 'phpPw9!x');", "phpPw9!x"),
        ("<password>XmlPw9!x</password>", "XmlPw9!x"),
        ("mysqldump -uroot -pMyPw9!x db > out.sql", "MyPw9!x"),
        ("sshpass -p 'SshPw9!x' ssh host", "SshPw9!x"),
        ("sqlplus scott/TigerPw9@db", "TigerPw9"),
        (
            "curl -H \"X-API-Key: Kk29dLq8ZmXw\" https://x",
            "Kk29dLq8ZmXw",
        ),
        ("deploy --password Flag9!pw now", "Flag9!pw"),
        (
            "PGPASSWORD=w9wQ!x psql -h db -c 'select 1 from a where b and c and d'",
            "w9wQ!x",
        ),
        ("+DB_PASSWORD=glacier3glacier", "glacier3glacier"),
        (
            "kubectl create secret generic s --from-literal=password=batterymarble",
            "batterymarble",
        ),
        (
            "spring.datasource.password=violet_staple_juniper",
            "violet_staple_juniper",
        ),
        ("password: MarbleMeadowPillow", "MarbleMeadowPillow"),
        (
            "Server=db;Password=Harbor Harbor 47!;Encrypt=true",
            "Harbor Harbor 47!",
        ),
        (
            "AWS Secret Access Key [None]: Xk9mQ2vL8pR4tW7zB3nC6yF1hJ5sD0gA2eK4uI8o",
            "Xk9mQ2vL8pR4tW7zB3nC6yF1hJ5sD0gA2eK4uI8o",
        ),
        ("APP_SECRET=Secret-PepperCanyon47", "Secret-PepperCanyon47"),
        (
            "token ghp&#95;Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n",
            "Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n",
        ),
        (
            "postgres://app:Horse.Glacier.Correct@db/x",
            "Horse.Glacier.Correct",
        ),
        (
            "<add key=\"DbPassword\" value=\"Nwunav70:pux\" />",
            "Nwunav70:pux",
        ),
        (
            "machine h\n  login u\n  password Racugr82,ifn\n",
            "Racugr82,ifn",
        ),
        (
            "curl -H 'Authorization: Token 475c0b04065b5d1c2887b8718b32ba5914ae42fa' x",
            "475c0b04065b5d1c2887b8718b32ba5914ae42fa",
        ),
        ("SECRET_KEY_V2=Msjaoz74!tdw", "Msjaoz74!tdw"),
        ("data:\n  password: S2xka3NpMzk/bWFn\n", "S2xka3NpMzk/bWFn"),
    ] {
        let out = m
            .mask_text(text, &|| "t".into(), &mut Vec::new())
            .unwrap()
            .unwrap_or_else(|| panic!("nothing found in {text:?}"));
        assert!(!out.contains(secret), "{text:?} → {out}");
    }
    for benign in [
        "postgresql://postgres:postgres@localhost:5432/db",
        "amqp://guest:guest@rabbit:5672",
        "fetch(url, { credentials: 'include' })",
        "SESSION_KEY = \"user_session\"",
        "auth: oauth2",
    ] {
        assert!(
            m.mask_text(benign, &|| "t".into(), &mut Vec::new())
                .unwrap()
                .is_none(),
            "{benign}"
        );
    }
}

#[test]
fn wrapped_url_safe_and_utf16_base64_are_decoded() {
    use base64::Engine as _;
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let env = format!("GITHUB_TOKEN={GH}\nDB_PASSWORD={DB_PW}\nOTHER=1\nMORE=2\nEVEN_MORE=3\n");
    let wrapped: String = base64::engine::general_purpose::STANDARD
        .encode(&env)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("token={GH}??>>"));
    let utf16: Vec<u8> = format!("$env:T='{GH}'")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let ps = base64::engine::general_purpose::STANDARD.encode(utf16);
    for text in [
        format!("cat <<EOF | base64 -d\n{wrapped}\nEOF"),
        format!("x {url} y"),
        format!("pwsh -EncodedCommand {ps}"),
    ] {
        let out = m
            .mask_text(&text, &|| "t".into(), &mut Vec::new())
            .unwrap()
            .unwrap_or_else(|| panic!("nothing in {text}"));
        assert_ne!(out, text);
        if text.contains("EOF") {
            assert!(
                out.lines().nth(1).unwrap().len() == 76,
                "wrapping kept: {out}"
            );
        }
    }
}

/// Real false positives found on third-party code (`scripts/precision`), one snippet each:
/// none may be flagged again.
#[test]
fn labelled_false_positives_from_real_code_stay_clean() {
    let corpus = include_str!("../../tests/fixtures/false_positives.txt");
    let p = policy("{}");
    let mut flagged = Vec::new();
    let mut entries = 0;
    for entry in corpus.split("\n----\n") {
        let snippet: String = entry
            .lines()
            .filter(|l| !l.starts_with("# "))
            .collect::<Vec<_>>()
            .join("\n");
        if snippet.trim().is_empty() {
            continue;
        }
        entries += 1;
        // A fresh vault each time, as a new conversation would have.
        let v = vault();
        let m = masker(&p, &v);
        let mut findings = Vec::new();
        if m.mask_text(&snippet, &|| "t".into(), &mut findings)
            .unwrap()
            .is_some()
        {
            flagged.push(format!(
                "{:?}: {snippet}",
                findings.iter().map(|f| &*f.rule).collect::<Vec<_>>()
            ));
        }
    }
    assert!(entries >= 50, "{entries} entries");
    assert!(flagged.is_empty(), "flagged again:\n{}", flagged.join("\n"));
}

#[test]
fn bodies_that_claim_or_look_like_json_but_are_not_strict_json_are_refused() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let escaped: String = GH.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let deep = format!("{}\"{escaped}\"{}", "[".repeat(600), "]".repeat(600));
    let bad = [
        format!(r#"{{"temperature": NaN, "messages": "{escaped}"}}"#),
        format!(r#"{{"messages": "{escaped}",}}"#),
        format!("\u{feff}{{\"messages\": \"{escaped}\"}}"),
        format!(r#"{{"messages": "{escaped}"}} trailing"#),
        format!(r#"{{'messages': '{GH}'}}"#),
        format!(r#"{{"messages": "\x{escaped}"}}"#),
        // Numbers Rust parses but JSON does not write (found by fuzzing json_walker).
        format!(r#"{{"temperature": 01, "messages": "{escaped}"}}"#),
        format!(r#"{{"temperature": -.5, "messages": "{escaped}"}}"#),
        // A raw control character beside an escape (found by fuzzing json_walker).
        format!("{{\"messages\": \"\\n{}{escaped}\"}}", '\u{1}'),
        deep,
    ];
    for body in &bad {
        for content_type in [Some("application/json"), None, Some("text/plain")] {
            let looks = body.trim_start_matches('\u{feff}').starts_with(['{', '[']);
            let r = m.mask_body(content_type, None, Bytes::from(body.clone()));
            if content_type == Some("application/json") || looks {
                assert!(
                    matches!(r, Err(MaskError::NotStrictJson(_))),
                    "{content_type:?} {:.60}: {r:?}",
                    body
                );
            }
        }
    }
    // What is strict JSON still goes through, masked.
    let ok = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(format!(r#"{{"messages": "{escaped}"}}"#)),
        )
        .unwrap();
    assert!(!String::from_utf8_lossy(&ok.body.unwrap()).contains(GH));
}

#[test]
fn non_utf8_charsets_and_nul_bytes_are_refused() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let json = format!(r#"{{"messages": "{GH}"}}"#);
    let utf16: Vec<u8> = json.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    for (content_type, body) in [
        (
            "application/json; charset=utf-16",
            Bytes::from(utf16.clone()),
        ),
        (
            "application/json; charset=\"UTF-16LE\"",
            Bytes::from(json.clone()),
        ),
        ("text/plain; charset=latin1", Bytes::from(json.clone())),
    ] {
        let r = m.mask_body(Some(content_type), None, body);
        assert!(
            matches!(r, Err(MaskError::Charset { .. })),
            "{content_type}: {r:?}"
        );
    }
    // UTF-16 of ASCII without a charset is valid UTF-8 with NULs between the letters.
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let r = m.mask_body(content_type, None, Bytes::from(utf16.clone()));
        assert!(matches!(r, Err(MaskError::NulByte { .. })), "{r:?}");
    }
    let with_nul = format!("token {GH}\0 and more");
    assert!(matches!(
        m.mask_body(Some("text/plain"), None, Bytes::from(with_nul)),
        Err(MaskError::NulByte { at: 46 })
    ));
    // UTF-8 declared in any spelling is fine.
    for ct in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
    ] {
        assert!(
            m.mask_body(Some(ct), None, Bytes::from(json.clone()))
                .is_ok()
        );
    }
}

#[test]
fn compressed_bodies_leave_as_the_content_that_was_inspected() {
    use std::io::Write;
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let clean = r#"{"messages": "hello"}"#;
    // A gzip member whose header carries a secret in its file name and comment fields.
    let mut gz = flate2::GzBuilder::new()
        .filename(GH)
        .comment(GH)
        .extra(GH.as_bytes())
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(clean.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let out = m
        .mask_body(Some("application/json"), Some("gzip"), Bytes::from(gz))
        .unwrap();
    assert_eq!(out.body.as_deref(), Some(clean.as_bytes()));
    // A zstd skippable frame (magic 0x184D2A50) carrying a secret beside a clean frame.
    let mut z = Vec::new();
    z.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    z.extend_from_slice(&(GH.len() as u32).to_le_bytes());
    z.extend_from_slice(GH.as_bytes());
    z.extend_from_slice(&zstd::encode_all(clean.as_bytes(), 3).unwrap());
    let out = m
        .mask_body(Some("application/json"), Some("zstd"), Bytes::from(z))
        .unwrap();
    assert_eq!(out.body.as_deref(), Some(clean.as_bytes()));
    // Data after the last gzip member is not gzip: refused, not forwarded.
    let mut trailing = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    trailing.write_all(clean.as_bytes()).unwrap();
    let mut trailing = trailing.finish().unwrap();
    trailing.extend_from_slice(GH.as_bytes());
    let r = m.mask_body(
        Some("application/json"),
        Some("gzip"),
        Bytes::from(trailing),
    );
    match r {
        Err(MaskError::Decode(_)) => {}
        Ok(out) => assert_eq!(out.body.as_deref(), Some(clean.as_bytes())),
        Err(e) => panic!("{e}"),
    }
    // An uncompressed clean body still leaves byte for byte.
    let out = m
        .mask_body(Some("application/json"), None, Bytes::from(clean))
        .unwrap();
    assert!(out.body.is_none());
}

#[test]
fn model_and_region_fields_are_read_wherever_they_sit_and_never_twice() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for body in [
        r#"{"model": "claude-haiku", "messages": [], "model": "claude-opus"}"#,
        r#"{"inference_geo": "eu", "inference_geo": "us"}"#,
        r#"{"model": {"id": 1}, "model": "x"}"#,
    ] {
        let r = m.mask_body(Some("application/json"), None, Bytes::from(body));
        assert!(
            matches!(r, Err(MaskError::DuplicateKey(_))),
            "{body}: {r:?}"
        );
    }
    // Keys repeated in nested objects are not the top level's business.
    let nested = r#"{"messages": [{"role": "user"}, {"role": "assistant"}], "model": "m"}"#;
    assert!(m.mask_body(None, None, Bytes::from(nested)).is_ok());
    // Past 32 top-level keys, and longer than 200 bytes, fields still count.
    let mut obj = serde_json::Map::new();
    for i in 0..40 {
        obj.insert(format!("k{i}"), serde_json::json!("v"));
    }
    let long_model = format!("claude-{}", "x".repeat(300));
    obj.insert("inference_geo".into(), serde_json::json!("us"));
    obj.insert("model".into(), serde_json::json!(long_model));
    let body = serde_json::Value::Object(obj).to_string();
    let facts = m
        .mask_body(Some("application/json"), None, Bytes::from(body))
        .unwrap()
        .facts;
    assert_eq!(facts.model.as_deref(), Some(long_model.as_str()));
    assert!(
        facts
            .fields
            .iter()
            .any(|(k, v)| k == "inference_geo" && v == "us")
    );
}

#[test]
fn a_string_that_only_begins_like_json_reports_only_what_was_masked_in_it() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    // The walk of the nested "document" sees the password before it fails on the cut token.
    let body = serde_json::json!({"messages": [{"role": "user", "content":
        format!(r#"{{"password": "p\"w\\d{DB_PW}", "token": "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0q"#)}]});
    let (out, masked) = mask_json(&m, &body);
    assert!(
        masked.findings.iter().all(|f| !f.path.contains('>')),
        "{:?}",
        masked.findings
    );
    let sent_unchanged = out.as_str() == body.to_string().as_str();
    assert_eq!(masked.findings.is_empty(), sent_unchanged);
}

/// A value found again by its value (in a later turn, out of its context) is what its rule says
/// now: held for approval every time if the rule asks for approval, refused once the rule blocks.
#[test]
fn a_value_found_again_follows_its_rules_action() {
    let approve = policy("rules:\n  github-pat: { action: approve }\n");
    let block = policy("rules:\n  github-pat: { action: block }\n");
    let v = vault();
    let token = sample("ghp_{a:36}");
    let first = serde_json::json!({"messages": [{"role": "user", "content": format!("push with {token}")}]});
    // Bare, glued to nothing a detector would read as context.
    let again = serde_json::json!({"messages": [{"role": "user", "content": format!("echo {token}")},
        {"role": "user", "content": format!("x{token}")}]});
    for body in [&first, &again, &first] {
        let (_, masked) = mask_json(&masker(&approve, &v), body);
        assert!(!masked.findings.is_empty());
        assert!(
            masked.findings.iter().all(|f| f.needs_approval),
            "{:?}",
            masked.findings
        );
    }
    let refused = masker(&block, &v).mask_body(
        Some("application/json"),
        None,
        Bytes::from(again.to_string()),
    );
    assert!(
        matches!(refused, Err(MaskError::Blocked { .. })),
        "{refused:?}"
    );
}

/// A number in a name/value pair whose name is a credential is masked like a string would be,
/// and the body stays JSON; a short number or one under an ordinary name is left alone.
#[test]
fn a_numeric_value_named_as_a_credential_is_masked() {
    let p = policy("{}");
    let v = vault();
    let body = serde_json::json!({"env": [
        {"name": "DB_PASSWORD", "value": 48213377},
        {"name": "VAULT_PIN", "Value": 90417731},
        {"name": "DB_PORT", "value": 5432123},
        {"name": "API_TOKEN", "value": 42},
    ]});
    let (out, masked) = mask_json(&masker(&p, &v), &body);
    assert_absent(&out, &["48213377", "90417731"]);
    assert!(out.contains("5432123") && out.contains(":42"), "{out}");
    assert_eq!(masked.findings.len(), 2, "{:?}", masked.findings);
    let sent: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        sent["env"][0]["value"]
            .as_str()
            .unwrap()
            .starts_with("TOLLGATE_")
    );
}

/// A blocking rule's match refuses the request even where it contains a value already known
/// (masked before by another rule), which is masked first.
#[test]
fn a_blocking_match_around_a_known_value_still_refuses() {
    let mask_only = policy("{}");
    let blocking = policy(
        "identifiers:\n  - name: deploy-tokens\n    category: deploy\n    regexes: ['deploy_token=ghp_[A-Za-z0-9]{36}']\n    action: block\n",
    );
    let v = vault();
    let token = sample("ghp_{a:36}");
    let first = serde_json::json!({"messages": [{"role": "user", "content": format!("push with {token}")}]});
    mask_json(&masker(&mask_only, &v), &first);
    let again = serde_json::json!({"messages": [{"role": "user", "content": format!("export deploy_token={token}")}]});
    let refused = masker(&blocking, &v).mask_body(
        Some("application/json"),
        None,
        Bytes::from(again.to_string()),
    );
    assert!(
        matches!(&refused, Err(MaskError::Blocked { rule, .. }) if &**rule == "deploy-tokens"),
        "{refused:?}"
    );
}

// ── Tool output as agents show it to the model ──────────────────────────────────────────────

/// Fresh random characters from `alphabet`, different on every run.
fn fresh(alphabet: &[u8], n: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0);
    let mut seed = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
        | 1;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            alphabet[(seed % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// No run of six or more letters and digits of `value` is left in `out`: a value cut short
/// at a quote or an escape leaks its tail.
fn assert_no_piece(out: &str, value: &str) {
    for piece in value.split(|c: char| !c.is_ascii_alphanumeric()) {
        if piece.len() >= 6 {
            assert!(!out.contains(piece), "`{piece}` of `{value}` left in {out}");
        }
    }
}

/// The line-number gutters tools print before each line of a file: Claude Code's Read
/// (`     7→`, `7\t`), `cat -n` and `nl`, `grep -n` (with and without the file's name) and
/// `grep -r`.
const GUTTERS: &[&str] = &[
    "",
    "7\t",
    "     7\t",
    "     7→",
    "  12→",
    "7:",
    "config/.env:7:",
    ".env:",
    "7-",
];

#[test]
fn assignments_are_found_behind_line_number_gutters() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for gutter in GUTTERS {
        let letters = fresh(LETTERS, 24);
        let mixed = format!("{}9{}", fresh(ALNUM, 10), fresh(ALNUM, 9));
        let lower = fresh(b"abcdefghijklmnopqrstuvwxyz", 20);
        let yaml = fresh(ALNUM, 18);
        let quoted = fresh(ALNUM, 16);
        let exported = fresh(ALNUM, 16);
        let file = [
            format!("{gutter}SMTP_PASSWORD={letters}"),
            format!("{gutter}SESSION_SECRET={mixed}"),
            format!("{gutter}API_TOKEN={lower}"),
            format!("{gutter}  password: {yaml}"),
            format!("{gutter}DB_PASSWORD=\"{quoted}\""),
            format!("{gutter}export GITHUB_TOKEN={exported}"),
            format!("{gutter}LOG_LEVEL=info"),
        ]
        .join("\n");
        let body = serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": file}]}]});
        let (out, _) = mask_json(&m, &body);
        for value in [&letters, &mixed, &lower, &yaml, &quoted, &exported] {
            assert_no_piece(&out, value);
        }
        assert!(out.contains("LOG_LEVEL=info"), "{out}");
    }
}

#[test]
fn an_unquoted_value_is_masked_whole_whatever_quotes_and_escapes_it_holds() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for gutter in ["", "7\t", "     7→"] {
        for inside in [
            "\"", "\"\\n", "\\n", "\\r", "\"\\", "'", "\" ", "\\8", "\\\"",
        ] {
            let value = format!(
                "{}{inside}{}'{}",
                fresh(ALNUM, 10),
                fresh(ALNUM, 9),
                fresh(ALNUM, 6)
            );
            let file = format!("{gutter}SESSION_SECRET={value}\n{gutter}LOG_LEVEL=info\n");
            let body = serde_json::json!({"messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": file}]}]});
            let (out, _) = mask_json(&m, &body);
            assert_no_piece(&out, &value);
            assert!(out.contains("LOG_LEVEL=info"), "{out}");
        }
    }
}

#[test]
fn a_letters_only_value_masked_once_is_masked_where_it_reappears() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let mixed = fresh(LETTERS, 24);
    let lower = fresh(b"abcdefghijklmnopqrstuvwxyz", 20);
    let short = format!(
        "{}Q{}",
        fresh(LETTERS, 5),
        fresh(b"abcdefghijklmnopqrstuvwxyz", 7)
    );
    let file = format!("SMTP_PASSWORD={mixed}\nAPI_TOKEN={lower}\nSESSION_SECRET={short}\n");
    let first = serde_json::json!({"messages": [{"role": "user", "content": file}]});
    let (out, _) = mask_json(&m, &first);
    for value in [&mixed, &lower, &short] {
        assert!(!out.contains(value.as_str()), "{out}");
    }
    // The model wrote them into a command; the agent sends that call back.
    let command = format!("printf '%s\\n' {mixed} {lower} {short} > out/echo.txt");
    let later = serde_json::json!({"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": command}}]}]});
    let (out, _) = mask_json(&m, &later);
    for value in [&mixed, &lower, &short] {
        assert!(!out.contains(value.as_str()), "{out}");
    }
    // A word is not hunted for everywhere once it was a password.
    let (out, _) = mask_json(
        &m,
        &serde_json::json!({"messages": [{"role": "user", "content": "PASSWORD=lighthouse"}]}),
    );
    assert!(!out.contains("lighthouse"), "{out}");
    let (out, _) = mask_json(
        &m,
        &serde_json::json!({"messages": [{"role": "user", "content": "the lighthouse keeper"}]}),
    );
    assert!(out.contains("the lighthouse keeper"), "{out}");
}

#[test]
fn a_private_key_behind_line_number_gutters_is_masked_line_by_line() {
    let (p, v) = (policy("{}"), std::sync::Arc::new(vault()));
    let m = masker(&p, &v);
    let body_lines: Vec<String> = (0..6)
        .map(|_| {
            fresh(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                64,
            )
        })
        .collect();
    let mut key = vec!["-----BEGIN RSA PRIVATE KEY-----".to_owned()];
    key.extend(body_lines.iter().cloned());
    key.push("-----END RSA PRIVATE KEY-----".into());
    for gutter in ["\t", "→"] {
        let mut lines = vec![format!("     9{gutter}APP_NAME=demo")];
        for (i, line) in key.iter().enumerate() {
            let prefix = if i == 0 { "TLS_PRIVATE_KEY=\"" } else { "" };
            lines.push(format!("{:>6}{gutter}{prefix}{line}", 10 + i));
        }
        lines.push(format!("{:>6}{gutter}\"", 10 + key.len()));
        lines.push(format!("{:>6}{gutter}NEXT=1", 11 + key.len()));
        let file = lines.join("\n");
        let masked = m
            .mask_text(&file, &|| "t".into(), &mut Vec::new())
            .unwrap()
            .unwrap();
        for line in &body_lines {
            assert!(!masked.contains(line.as_str()), "{masked}");
        }
        // Every line keeps its number: what the model sees still reads as the file.
        let masked_lines: Vec<&str> = masked.split('\n').collect();
        assert_eq!(masked_lines.len(), lines.len(), "{masked}");
        for (i, line) in masked_lines.iter().enumerate() {
            assert!(
                line.starts_with(&format!("{:>6}{gutter}", 9 + i)),
                "{masked}"
            );
        }
        // The model writes the file without the gutters; the client gets the key back whole.
        let written: Vec<&str> = masked_lines[1..=key.len()]
            .iter()
            .map(|l| l.split_once(gutter).unwrap().1)
            .collect();
        let written = written.join("\n");
        let restorer = super::restore::Restorer::new(v.clone(), "alice");
        let restored = restorer.restore_text(&written).unwrap();
        assert_eq!(restored, format!("TLS_PRIVATE_KEY=\"{}", key.join("\n")));
    }
}

#[test]
fn a_password_that_happens_to_hold_a_placeholder_word_is_masked() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    // Letters and digits only, a placeholder word glued inside.
    for inside in ["your", "fake", "dummy", "example"] {
        let value = format!("{}9X{inside}{}", fresh(ALNUM, 4), fresh(ALNUM, 5));
        let body = serde_json::json!({"input": {"db": {"password": value}}});
        let (out, _) = mask_json(&m, &body);
        assert_absent(&out, &[&value]);
    }
    for inside in [
        "<", "your", "Fake", "dummy", "...", "XXXX", "environ", "insecure", "example",
    ] {
        let value = format!("{}9!{inside}{}", fresh(ALNUM, 4), fresh(ALNUM, 5));
        let at = format!("@{}9!{}", fresh(ALNUM, 5), fresh(ALNUM, 5));
        for value in [&value, &at] {
            let text = format!(
                "DB_PASSWORD={value}\npassword = \"{value}\"\n{}",
                serde_json::json!({ "password": value })
            );
            let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
            let (out, _) = mask_json(&m, &body);
            assert_absent(&out, &[value]);
            let body = serde_json::json!({"input": {"db": {"password": value}}});
            let (out, _) = mask_json(&m, &body);
            assert_absent(&out, &[value]);
        }
    }
    // What is plainly a stand-in stays.
    for stand_in in [
        "<your-password>",
        "your_password_here",
        "xxxxxxxx",
        "changeme",
    ] {
        let body = serde_json::json!({"messages": [{"role": "user", "content": format!("DB_PASSWORD={stand_in}")}]});
        let (out, _) = mask_json(&m, &body);
        assert!(out.contains(stand_in), "{out}");
    }
}

#[test]
fn a_value_learned_in_one_message_is_masked_elsewhere_in_the_same_request() {
    // A fresh vault: the proxy restarted, or the turn landed on another replica, and the
    // client resends a history into which the model's placeholders were restored.
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let secret = format!("{}7{}", fresh(ALNUM, 8), fresh(ALNUM, 8));
    let letters = fresh(LETTERS, 20);
    let file = format!("SESSION_SECRET={secret}\nSMTP_PASSWORD={letters}\n");
    let command = format!("./deploy.sh prod {secret} && echo {letters}");
    let body = serde_json::json!({"messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": file}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "b", "name": "Bash",
            "input": {"command": command}}]},
        // Before the file, too.
    ], "system": format!("last deploy used {secret}")});
    let (out, masked) = mask_json(&m, &body);
    assert_absent(&out, &[&secret, &letters]);
    assert!(masked.findings.len() >= 5, "{:?}", masked.findings);
    // Each value has one placeholder wherever it stands.
    let placeholders: std::collections::HashSet<&str> = out
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("TOLLGATE_"))
        .collect();
    assert_eq!(placeholders.len(), 2, "{out}");
}

#[test]
fn tokens_behind_terminal_colours_and_encoded_separators_are_found() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let tokens = [
        format!("ghp_{}", fresh(ALNUM, 36)),
        format!("AKIA{}", fresh(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        format!(
            "xoxb-{}-{}-{}",
            fresh(b"0123456789", 12),
            fresh(b"0123456789", 12),
            fresh(ALNUM, 24)
        ),
    ];
    for token in &tokens {
        let (head, tail) = token.split_at(4);
        let shapes = [
            format!("config.py:3:\x1b[1;31m{token}\x1b[0m"),
            // grep --color=always highlights what was searched for, not the whole token.
            format!("x.env:2:T=\x1b[01;31m\x1b[K{head}\x1b[m\x1b[K{tail}"),
            format!("q=a%0A{token}%0A"),
            format!("url=a%253D{token}"),
            format!("{{\"log\": \"line\\\\n{token}\\\\n\"}}"),
        ];
        for text in shapes {
            let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
            let (out, _) = mask_json(&m, &body);
            assert!(!out.contains(tail), "`{token}` left in {out}");
        }
    }
}

#[test]
fn text_attachments_that_are_not_clean_utf8_are_masked_byte_for_byte() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for odd in [&b"\x1b[0m"[..], b"caf\xe9", b"\x00", b"\xff\xfe"] {
        let token = format!("ghp_{}", fresh(ALNUM, 36));
        let mut file = b"# notes ".to_vec();
        file.extend_from_slice(odd);
        file.extend_from_slice(format!("\nGITHUB_TOKEN={token}\nLOG_LEVEL=info\n").as_bytes());
        let encoded = b64.encode(&file);
        let bodies = [
            serde_json::json!({"messages": [{"role": "user", "content": [{"type": "document",
                "source": {"type": "base64", "media_type": "text/plain", "data": encoded}}]}]}),
            serde_json::json!({"input": [{"role": "user", "content": [{"type": "input_file",
                "filename": "notes.txt", "file_data": format!("data:text/plain;base64,{encoded}")}]}]}),
        ];
        for body in bodies {
            let (out, _) = mask_json(&m, &body);
            assert!(!out.contains(&encoded), "left as it was: {out}");
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            let data = doc
                .pointer("/messages/0/content/0/source/data")
                .or_else(|| doc.pointer("/input/0/content/0/file_data"))
                .and_then(|d| d.as_str())
                .unwrap();
            let data = data.rsplit(',').next().unwrap();
            let masked = b64.decode(data).unwrap();
            let text = String::from_utf8_lossy(&masked);
            assert!(!text.contains(&token), "{text}");
            // Everything else is as it was, the odd bytes included.
            assert!(masked.starts_with(&file[..8 + odd.len()]), "{masked:?}");
            assert!(
                text.contains("GITHUB_TOKEN=TOLLGATE_") && text.ends_with("\nLOG_LEVEL=info\n")
            );
        }
    }
}

#[test]
fn credentials_in_the_shapes_of_manifests_typed_code_commands_and_sql() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let pw = || format!("{}{}", fresh(ALNUM, 8), fresh(b"0123456789", 2));
    let cases: Vec<(String, String)> = (0..15)
        .map(|k| {
            let s = pw();
            let text = match k {
                0 => format!("env:\n  - name: DB_PASSWORD\n    value: {s}\n  - name: LOG_LEVEL\n    value: info\n"),
                1 => format!("        - name: \"API_TOKEN\"\n          value: \"{s}\"\n"),
                2 => format!("const API_KEY: &str = \"{s}\";\n"),
                3 => format!("export const apiToken: Record<string, string> = '{s}';\npub static DB_PASSWORD: &'static str = \"{s}\";\n"),
                4 => format!("os.environ['DB_PASSWORD'] = '{s}'\n"),
                5 => format!("config[\"client_secret\"] = \"{s}\"\n"),
                6 => format!("redis-cli -h cache.internal -a {s} ping\n"),
                7 => format!("docker login -u ci -p {s} registry.internal\n"),
                8 => format!("mongosh \"mongodb://db.internal\" -u app -p '{s}'\n"),
                9 => format!("CREATE USER 'app'@'%' IDENTIFIED BY '{s}';\n"),
                10 => format!("ALTER ROLE app WITH LOGIN PASSWORD '{s}';\n"),
                11 => format!("dsn := \"app:{s}@tcp(db.internal:3306)/app\"\n"),
                12 => format!("r = requests.post(url, auth=(\"ci\", \"{s}\"))\n"),
                13 => format!("var c = new NetworkCredential(\"svc\", \"{s}\", \"CORP\");\n"),
                _ => format!("session.auth = HTTPBasicAuth('ci', '{s}')\n"),
            };
            (text, s)
        })
        .collect();
    // Their neighbours that are not secrets stay.
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef: {name: db, key: pw}\n",
            "  - name: DB_PASSWORD\n    value: $(DB_PASSWORD)\n",
            "const TOKEN_HEADER: &str = \"x-token\";\n",
            "if config[\"password\"] == \"\":\n",
            "mongosh --port 27017 -p\n",
            "r = requests.get(url, auth=(user, password))\n",
            "auth=('user', '{password}')\n",
        ],
    );
}

#[test]
fn json_web_keys_lose_their_private_members_and_keep_their_public_ones() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let w = || {
        fresh(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            43,
        )
    };
    let (x, d, k, n, prime) = (w(), w(), w(), w(), w());
    let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": w(), "d": d});
    let rsa = serde_json::json!({"keys": [{"kty": "RSA", "n": n, "e": "AQAB", "p": prime}]});
    let oct = serde_json::json!({"k": k, "kty": "oct"});
    let bodies = [
        serde_json::json!({"messages": [{"role": "user", "content": ec.to_string()}]}),
        serde_json::json!({"input": {"jwk": ec, "jwks": rsa, "key": oct}}),
        serde_json::json!({"messages": [{"role": "user", "content": format!("key = {ec}\nnext {rsa}")}]}),
    ];
    for body in bodies {
        let (out, _) = mask_json(&m, &body);
        assert_absent(&out, &[&d, &prime]);
        assert!(out.contains(&x), "{out}");
        if out.contains("\"oct\"") {
            assert_absent(&out, &[&k]);
        }
        if out.contains("AQAB") {
            assert!(out.contains(&n), "{out}");
        }
    }
}

#[test]
fn code_that_only_names_credentials_stays_as_it_is() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    for line in [
        "    Token:                     \"#cccccc\",",
        "        token = await token",
        "    explicit_token = token is not None",
        "    private_key: PKCS7PrivateKeyTypes,",
        "def f(backend: \"Backend\", private_key: \"_DSAPrivateKey\", data: bytes):",
        "    print(f\"password={password!r}\")",
        "        password=parts['password'],",
        "    \"ChangeToken\": \"abcd12f2-46da-4fdb-b8d5-fbd4c466928f\",",
        "    \"ARN\": \"arn:aws:secretsmanager:us-west-2:123456789012:secret:MyTestDatabaseSecret-a1b2c3\",",
        "    \"IAMUserChangePassword\": \"arn:aws:iam::aws:policy/IAMUserChangePassword\",",
        "_SAR_APP_KEY = \"serverlessrepo:applicationId\"",
        "            request_token=request.resource_owner_key):",
        "ACCESS_KEY = 'AWSAccessKeyId'",
    ] {
        let body = serde_json::json!({"messages": [{"role": "user", "content": line}]});
        let (out, _) = mask_json(&m, &body);
        assert!(!out.contains("TOLLGATE_"), "{line}: {out}");
    }
    // Their secret-holding neighbours are still masked.
    for (line, secret) in [
        ("password: Xk9pQ2mN7vB4", "Xk9pQ2mN7vB4"),
        ("conn = \"Server=db;Password=pass:word1;\"", "pass:word1"),
        ("TOKEN=\"#a1b2c3d4e5f6a7b8\"", "#a1b2c3d4e5f6a7b8"),
        (
            "aws configure set aws_secret_access_key Zq7vWWaG2VDkZjhB8AtBMSgK",
            "Zq7vWWaG2VDkZjhB8AtBMSgK",
        ),
    ] {
        let body = serde_json::json!({"messages": [{"role": "user", "content": line}]});
        let (out, _) = mask_json(&m, &body);
        assert_absent(&out, &[secret]);
    }
}

#[test]
fn credentials_in_command_forms_cli_tables_cookies_and_quoted_headers() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let pw = || format!("{}{}", fresh(ALNUM, 9), fresh(b"0123456789", 2));
    let cases: Vec<(String, String)> = (0..16)
        .map(|k| {
            let s = pw();
            let basic = |s: &str| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(format!("deploy:{s}"))
            };
            let text = match k {
                0 => format!("setx DB_PASSWORD \"{s}\"\n"),
                1 => format!("setx API_TOKEN {s} /M\n"),
                2 => format!("set -x DB_PASSWORD {s}\n"),
                3 => format!("set -gx OPENAI_TOKEN '{s}'\n"),
                4 => format!("gh secret set DEPLOY_TOKEN --body \"{s}\"\n"),
                5 => format!("gh secret set DB_PASSWORD -b {s} --repo org/app\n"),
                6 => format!("echo 'root:{s}' | chpasswd\n"),
                7 => format!("echo \"app:{s}\" | sudo chpasswd\n"),
                8 => format!(
                    "====== Data ======\nKey         Value\n---         -----\npassword    {s}\nusername    app\n"
                ),
                9 => format!("Key\tValue\napi_key\t{s}\n"),
                10 => format!("> GET /api HTTP/1.1\n> Cookie: _ga=GA1.2.1; session={s}\n"),
                11 => format!("< Set-Cookie: sessionid={s}; Path=/; HttpOnly\n"),
                12 => format!(
                    "DEBUG headers: {{'Authorization': 'Basic {}', 'Accept': '*/*'}}\n",
                    basic(&s)
                ),
                13 => format!("{{\"headers\": {{\"authorization\": \"Basic {}\"}}}}", basic(&s)),
                14 => format!("headers = {{\"Cookie\": \"sid={s}\"}}\n"),
                _ => format!("chpasswd <<< \"admin:{s}\"\n"),
            };
            let secret = if matches!(k, 12 | 13) { basic(&s) } else { s };
            (text, secret)
        })
        .collect();
    // Code and tables that only name credentials stay as they are.
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "type Config struct {\n\tPassword    string\n\tToken       *oauth2.Token\n}\n",
            "Key         Value\n---         -----\npassword    <sensitive>\ntoken       (redacted)\n",
            "set -x PATH $PATH /usr/local/bin\n",
            "gh secret set DB_PASSWORD < secret.txt\n",
            "gh secret set API_TOKEN --body \"$API_TOKEN\"\n",
            "setx DB_PASSWORD %DB_PASSWORD%\n",
            "Cookie: \n",
            "    password    string    The password to use\n",
            "| password | string | The user's password |\n",
        ],
    );
}

#[test]
fn named_values_of_every_shape_are_masked_by_their_name_or_their_form() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let lower = b"abcdefghijklmnopqrstuvwxyz";
    let words = || {
        (0..12)
            .map(|_| fresh(lower, 5))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pw = || format!("{}{}", fresh(ALNUM, 9), fresh(b"0123456789", 2));
    let cases: Vec<(String, String)> = (0..26)
        .map(|k| {
            let s = match k {
                0 | 1 => format!("/{}=", fresh(b64, 42)),
                2 => fresh(upper, 20),
                3 | 4 => format!("eyJ{}", fresh(ALNUM, 40)),
                5 => format!("eyJhIjoi{}", fresh(b64, 120)),
                6..=8 => words(),
                9 => {
                    // Random letters in both cases, as in `uTwztJCd:tHFRDtwGNFK`.
                    let mixed = |n| {
                        (0..n)
                            .map(|i| {
                                fresh(
                                    if b"lUUlUllU"[i % 8] == b'l' {
                                        lower
                                    } else {
                                        upper
                                    },
                                    1,
                                )
                            })
                            .collect::<String>()
                    };
                    format!("{}:{}", mixed(8), mixed(11))
                }
                19 | 20 => fresh(b"abcdefghijklmnopqrstuvwxyz234567", 52),
                21 => fresh(ALNUM, 40),
                _ => pw(),
            };
            let text = match k {
                0 => format!("SECRET_KEY={s}\n"),
                1 => format!("{{\"password\": \"{s}\"}}"),
                2 => format!("DB_PASSWORD={s}\n"),
                3 => format!("API_TOKEN={s}\n"),
                4 => format!("cloudflared tunnel run --token {s}\n"),
                5 => format!("the tunnel token is {s} for now\n"),
                6 => format!("MNEMONIC=\"{s}\"\n"),
                7 => format!("SEED_PHRASE='{s}'\n"),
                8 => format!("{{\"passphrase\": \"{s}\"}}"),
                9 => format!("DB_PASSWORD={s}\n"),
                10 => format!("const h = {{ Authorization: `Bearer {s}{s}` }};\n"),
                11 => format!("req.Header.Set(\"Authorization\", \"Bearer {s}{s}\")\n"),
                12 => format!("s.headers.update({{\"Authorization\": f\"Bearer {s}{s}\"}})\n"),
                13 => format!("headers[\"Authorization\"] = \"Bearer \" + \"{s}{s}\"\n"),
                14 => format!("dataSource.setPassword(\"{s}\");\n"),
                15 => format!("ENV DB_PASSWORD {s}\n"),
                16 => format!("stringData:\n  password: |\n    {s}\n  user: app\n"),
                17 => format!("secret: >-\n  {s}\n"),
                18 => {
                    format!("keytool -importkeystore -srckeystore a.p12 -storepass {s} -noprompt\n")
                }
                19 => format!("git clone https://{s}@dev.azure.com/org/proj/_git/repo\n"),
                20 => format!("origin\thttps://{s}@github.com/org/repo.git (fetch)\n"),
                21 => format!("STRIPE_KEY={s}\n"),
                22 => format!("7z a -p{s} backup.7z dump.sql\n"),
                23 => format!("zip -r -P {s} out.zip dir\n"),
                // (A password starting with two hex digits reads as percent-encoding to the
                // detectors: a known gap, in the README's limits.)
                24 => format!("smbclient //fs/share -U admin%x{s}\n"),
                _ => format!("let c = Client::builder().password(\"{s}\").build();\n"),
            };
            (text, s)
        })
        .collect();
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "DB_PASSWORD=/run/secrets/db_password\n",
            "API_TOKEN=AUTH_HEADER_NAME\n",
            "MODE=SELECTED\n",
            "token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9\n",
            "PRIMARY_KEY=id\nCACHE_KEY=user_profile_cache\nSORT_KEY=created_at\n",
            "const h = { Authorization: `Bearer ${token}` };\n",
            "req.Header.Set(\"Authorization\", \"Bearer \"+token)\n",
            "dataSource.setPassword(password);\nb.password(\"\");\n",
            "password: |\n  {{ .Values.db.password }}\n",
            "git clone https://github-actions-deploy-bot@github.com/org/repo\n",
            "keytool -list -keystore a.jks -storepass:env STORE_PASS\n",
            "help = \"the password to use for the admin user of this service\"\n",
            "serverlessrepo:applicationId\n",
        ],
    );
}

#[test]
fn credentials_in_other_tools_output_headers_and_tables() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let pw = || format!("{}{}", fresh(ALNUM, 9), fresh(b"0123456789", 2));
    let cases: Vec<(String, String)> = (0..26)
        .map(|k| {
            let s = pw();
            let text = match k {
                0 => format!("{{\"auths\": {{\"reg.internal\": {{\"identitytoken\": \"{s}\"}}}}}}"),
                1 => format!("network={{\n    ssid=\"corp\"\n    psk=\"{s}\"\n}}\n"),
                2 => format!("map[Accept:[*/*] Authorization:[Bearer {s}{s}]]\n"),
                3 => format!("headers = {{ \"Authorization\" => \"Bearer {s}{s}\" }}\n"),
                4 => format!("proxy_set_header Authorization \"Bearer {s}{s}\";\n"),
                5 => format!("new AuthenticationHeaderValue(\"Bearer\", \"{s}{s}\");\n"),
                6 => format!("client.get(url).bearer_auth(\"{s}{s}\").send()\n"),
                7 => format!("| DB_PASSWORD | {s} |\n"),
                8 => format!("│ API_TOKEN   │ `{s}` │\n| `DB_PASSWORD` | `{s}` |\n"),
                9 => format!("ldapsearch -x -D cn=admin -w {s} -b dc=corp\n"),
                10 => format!("sqlcmd -S db -U sa -P '{s}' -Q 'select 1'\n"),
                11 => format!("xfreerdp /v:host /u:admin /p:{s}\n"),
                12 => format!("lftp -u deploy,{s} sftp://host\n"),
                13 => format!("az login --service-principal -u app -p {s} --tenant t\n"),
                14 => format!("ssh-keygen -t ed25519 -N '{s}' -f key\n"),
                15 => format!("rabbitmqctl add_user app {s}\n"),
                16 => format!("htpasswd -nb admin {s}\n"),
                17 => format!("unrar x -p{s} a.rar\n"),
                18 => format!("openssl passwd -6 '{s}'\n"),
                19 => format!("twine upload -u __token__ -p {s} dist/*\n"),
                20 => format!("net use \\\\fs\\share /user:corp\\admin {s}\n"),
                21 => format!("echo '{s}' | docker login -u ci --password-stdin reg\n"),
                22 => format!("echo {s} | npx wrangler secret put API_TOKEN\n"),
                23 => format!(".app.internal\tTRUE\t/\tTRUE\t1767225600\tsessionid\t{s}x{s}\n"),
                24 => format!("CREDENTIALS\tASIAABCDEFGHIJKLMNOP\t2026-01-01T00:00:00Z\t{s}{s}{s}abcdefg\tIQoJ\n"),
                _ => format!("proxy_set_header Authorization \"Basic {s}{s}==\";\n"),
            };
            let secret = match k {
                2..=6 | 25 => format!("{s}{s}"),
                23 => format!("{s}x{s}"),
                24 => format!("{s}{s}{s}abcdefg"),
                _ => s,
            };
            (text, secret)
        })
        .collect();
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "set -gx DB_PASSWORD $argv[1]\nDB_PASSWORD=$argv[1]\n",
            "MNEMONIC=\"test test test test test test test test test test test junk\"\n",
            "| password | string | The user's password |\n| token | Your API token |\n",
            "echo $DB_PASSWORD | docker login -u ci --password-stdin reg\n",
            "ssh-keygen -t ed25519 -N '' -f key\n",
            "proxy_set_header Authorization $http_authorization;\n",
            // Real code and configuration that only name credentials.
            "PASS: addr2line -f option\nPASS: Run plt-main\n",
            "const password = 'Password used to generate key';\n",
            "challengePassword\t\t= A challenge password\n",
            "<passphrase>optional; leave empty if not used.</passphrase>\n",
            "passwd:         files systemd\ngroup:          files systemd\n",
            "When the -r switch (mnemonic: \"regular expression\") is used\n",
            "make Avahi hit an assert()); problem identified by \"jamesh\"\n",
            "cvs://:pserver:anoncvs@sources.redhat.com:/cvs/src\n",
            "key=\"-----BEGIN PRIVATE KEY-----\\nXXXX\\nXXXX\\n-----END PRIVATE KEY-----\"\n",
            "_SK_START = b\"-----BEGIN OPENSSH PRIVATE KEY-----\"\n",
            "log.info('token', 'getting list')\n",
            "const newpassword = await readUserInfo.password('New password: ')\n",
        ],
    );
}

#[test]
fn no_text_around_a_credential_name_reaches_a_panic() {
    let (p, v) = (policy("{}"), vault());
    let m = masker(&p, &v);
    let around = [
        "\u{a0}", "\u{3000}", "\u{2003}", "\u{2028}", "\u{85}", "é", "🙂", "\t", "|", "│", "`",
        "\"", "'", "\\", "",
    ];
    let shapes = [
        "pwd",
        "token",
        "password=abc123xyz",
        "secret: Xy9kLmPq2",
        "| DB_PASSWORD | Xy9kLmPq2 |",
        "setx API_TOKEN Xy9kLmPq2",
        "ENV DB_PASSWORD Xy9kLmPq2",
        "password: |\n  Xy9kLmPq2",
        "password    Xy9kLmPq2",
        ".setPassword(\"Xy9kLmPq2\")",
        "STRIPE_KEY=Xy9kLmPq2Xy9kLmPq2ab",
        "Cookie: sid=Xy9kLmPq2Xy9",
        "Authorization: Bearer Xy9kLmPq2Xy9kLmPq2ab",
    ];
    for a in around {
        for b in around {
            for shape in shapes {
                for text in [
                    format!("{a}{shape}{b}"),
                    format!("x{a}{shape}{b}\n{a}"),
                    format!("{a}{a}{shape}{b}{b}"),
                ] {
                    let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
                    let _ = mask_json(&m, &body);
                }
            }
        }
    }
}

// ── What a secret-revealing command printed ─────────────────────────────────────────────────

/// Commands whose output is a secret, as agents run them.
const REVEALING: &[&str] = &[
    "op read op://Prod/db/password",
    "op item get db --fields label=password --reveal",
    "terraform output -raw db_password",
    "kubectl get secret db -o jsonpath='{.data.password}' | base64 -d",
    "kubectl get secret db -o jsonpath=\"{.data.password}\"",
    "vault kv get -field=password secret/db",
    "vault read -field=token auth/token/lookup-self",
    "gh auth token",
    "gcloud auth print-access-token",
    "gcloud secrets versions access latest --secret=db-password",
    "aws ecr get-login-password --region eu-west-1",
    "aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text",
    "aws configure get aws_secret_access_key",
    "az keyvault secret show --vault-name kv --name db --query value -o tsv",
    "security find-generic-password -s deploy -w",
    "pass show prod/db",
    "printenv DATABASE_PASSWORD",
    "echo $STRIPE_SECRET",
    "echo \"${DEPLOY_TOKEN}\"",
    "cat ~/.vault-token",
    "cat /run/secrets/db_password",
    "heroku config:get DATABASE_URL_PASSWORD",
    "doppler secrets get API_KEY --plain",
    "jq -r .password config.json",
    "sops -d --extract '[\"db\"][\"password\"]' secrets.yaml",
    "openssl rand -hex 24",
    "python3 -c \"import os; print(os.environ['DB_PASSWORD'])\"",
    "node -e 'console.log(process.env.STRIPE_API_KEY)'",
    "deno eval 'console.log(Deno.env.get(\"API_KEY\"))'",
    "grep DB_PASSWORD .env | cut -d= -f2",
    "sed -n 's/^DB_PASSWORD=//p' .env",
    "awk -F= '/^API_TOKEN/{print $2}' .env",
    "pulumi config get dbPassword",
    "head -1 secrets/api_token.txt",
    "tail -n 1 ~/.config/deploy/token",
    "git config --get github.token",
    "npm config get //registry.npmjs.org/:_authToken",
    "security find-generic-password -s deploy -wa alice",
    "echo %API_TOKEN%",
    "Write-Output $env:DEPLOY_TOKEN",
    "Get-Secret -Name DbPassword -AsPlainText",
];

/// A value such a command prints, of each kind: generated and typed ones (`Tr0ub4dor-…`).
/// Fresh on every call: a value masked once is masked wherever it comes again, so each shape
/// gets its own.
fn printed_value(kind: usize) -> String {
    match kind % 4 {
        0 => fresh(ALNUM, 28),
        1 => format!("Tr0ub4dor-{}", fresh(LETTERS, 5)),
        2 => format!(
            "{}+{}/{}==",
            fresh(ALNUM, 12),
            fresh(ALNUM, 9),
            fresh(ALNUM, 7)
        ),
        _ => fresh(b"0123456789abcdef", 48),
    }
}

#[test]
fn a_value_a_secret_revealing_command_printed_is_masked_in_the_tools_answer() {
    let v = vault();
    let m = masker(default_policy(), &v);
    let masks = |kind: usize, body: &dyn Fn(&str) -> serde_json::Value| {
        let value = printed_value(kind);
        let (out, _) = mask_json(&m, &body(&value));
        assert_absent(&out, &[&value]);
    };
    for (n, command) in REVEALING.iter().enumerate() {
        for kind in 0..4 {
            let id = format!("toolu_{n}{}", fresh(ALNUM, 6));
            // Anthropic: a Bash tool_use, its tool_result as a string and as text blocks.
            let input = serde_json::json!({"command": command, "description": "read it"});
            let anthropic = |content: serde_json::Value| {
                serde_json::json!({"model": "claude-sonnet-4-5", "messages": [
                    {"role": "user", "content": "get the db password"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "Bash", "input": input}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": content}]},
                ]})
            };
            masks(kind, &|v| anthropic(serde_json::json!(format!("{v}\n"))));
            masks(kind, &|v| {
                anthropic(serde_json::json!([{"type": "text", "text": v}]))
            });
            // OpenAI chat: the call's arguments are a JSON string; the tool message answers it.
            let args = serde_json::json!({"command": command}).to_string();
            masks(kind, &|v| {
                serde_json::json!({"model": "gpt-4o", "messages": [
                    {"role": "assistant", "tool_calls": [{"id": id, "type": "function",
                        "function": {"name": "shell", "arguments": args}}]},
                    {"role": "tool", "tool_call_id": id, "content": v},
                ]})
            });
            // Codex (Responses): the command as an argv, the output with its header or as JSON.
            let argv = serde_json::json!({"command": ["bash", "-lc", command], "workdir": "/src"})
                .to_string();
            let codex = |output: String| {
                serde_json::json!({"model": "gpt-5", "input": [
                    {"type": "function_call", "call_id": id, "name": "shell", "arguments": argv},
                    {"type": "function_call_output", "call_id": id, "output": output},
                ]})
            };
            masks(kind, &|v| {
                codex(format!(
                    "Exit code: 0\nWall time: 0.3 seconds\nOutput:\n{v}\n"
                ))
            });
            masks(kind, &|v| {
                codex(
                    serde_json::json!({"output": format!("{v}\n"), "metadata": {"exit_code": 0, "duration_seconds": 0.3}})
                        .to_string(),
                )
            });
            // Gemini CLI: the shell tool's answer names its command; no id ties the two.
            let gemini = |output: String| {
                serde_json::json!({"contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": command}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": output}}}]},
                ]})
            };
            masks(kind, &|v| {
                gemini(format!(
                    "Command: {command}\nDirectory: (root)\nOutput: {v}\nError: (none)\nExit Code: 0\nSignal: (none)\nBackground PIDs: (none)\nProcess Group PGID: 4242"
                ))
            });
            masks(kind, &|v| {
                gemini(format!(
                    "Command: {command}\nDirectory: (root)\nStdout: {v}\n\nStderr: (empty)\nError: (none)\nExit Code: 0"
                ))
            });
            // The Gemini API: no ids; a call and its answer share the function's name, and the
            // answers come in the order of the calls.
            masks(kind, &|v| {
                serde_json::json!({"contents": [
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "shell", "args": {"command": "ls -la"}}},
                        {"functionCall": {"name": "shell", "args": {"command": command}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "shell", "response": {"output": "README.md\nsrc\n"}}},
                        {"functionResponse": {"name": "shell", "response": {"output": format!("{v}\n")}}}]},
                ]})
            });
            // A terminal transcript pasted into a message.
            for prompt in ["$ ", "% ", "PS C:\\src> ", ""] {
                masks(kind, &|v| {
                    let text = format!(
                        "Here is what I ran:\n```\n{prompt}{command}\n{v}\n```\nwhy does login fail?"
                    );
                    serde_json::json!({"messages": [{"role": "user", "content": text}]})
                });
            }
        }
    }
}

#[test]
fn a_script_over_several_lines_that_prints_a_credentials_variable_reveals_it() {
    for command in [
        "python3 - <<'EOF'\nimport os\nprint(os.environ['DB_PASSWORD'])\nEOF",
        "python -c 'import os\nprint(os.getenv(\"API_TOKEN\"))'",
        "node <<EOF\nconsole.log(process.env.STRIPE_SECRET_KEY)\nEOF",
    ] {
        let v = vault();
        let m = masker(default_policy(), &v);
        let value = with_digits(10, 8);
        let body = serde_json::json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": command}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": format!("{value}\n")}]},
        ]});
        let (out, _) = mask_json(&m, &body);
        assert_absent(&out, &[&value]);
    }
    // A script that prints something else stays as it is.
    let v = vault();
    let m = masker(default_policy(), &v);
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "python3 - <<'EOF'\nimport sys\nprint(sys.version)\nEOF"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "3.11.7\n"}]},
    ]});
    let (out, _) = mask_json(&m, &body);
    assert!(!out.contains("TOLLGATE_"), "{out}");
}

#[test]
fn what_other_commands_print_and_errors_stay() {
    let v = vault();
    let m = masker(default_policy(), &v);
    let sha = fresh(b"0123456789abcdef", 40);
    let cases: Vec<(&str, String)> = vec![
        ("git rev-parse HEAD", format!("{sha}\n")),
        ("ls src", "main.rs\nlib.rs\n".into()),
        (
            "cargo --version",
            "cargo 1.86.0 (adcbaa0b1 2025-03-04)\n".into(),
        ),
        (
            "op read op://Prod/db/password",
            "[ERROR] 2025/01/02 could not read secret: item not found\n".into(),
        ),
        ("terraform output -raw db_password", "<sensitive>\n".into()),
        (
            "kubectl get secret db -o jsonpath='{.data.password}' | base64 -d",
            "Error from server (NotFound): secrets \"db\" not found\n".into(),
        ),
        (
            "gh auth token",
            "no oauth token found for github.com\n".into(),
        ),
        ("printenv HOME", "/home/alice\n".into()),
        ("echo $PATH", "/usr/local/bin:/usr/bin:/bin\n".into()),
        ("pass show prod/db", "\n".into()),
        (
            "awk '{print $1}' access.log",
            "10.20.30.40\n10.20.30.41\n".into(),
        ),
        (
            "grep -rl API_TOKEN src/",
            "src/config.py\nsrc/settings_prod.py\n".into(),
        ),
        ("rg -l DB_PASSWORD", "docker-compose.yml\n".into()),
        (
            "awk -F= '/TOKEN/{print $1}' .env",
            "GITHUB_TOKEN\nNPM_TOKEN\n".into(),
        ),
        (
            "grep -o 'def [a-z_]*token' auth.py",
            "refresh_token\n".into(),
        ),
        ("pulumi config get aws:region", "eu-central-1\n".into()),
        ("grep -rl TODO src", "src/main.rs\nsrc/lib.rs\n".into()),
        (
            "python3 -c 'import sys; print(sys.executable)'",
            "/usr/bin/python3\n".into(),
        ),
    ];
    for (command, output) in cases {
        let body = serde_json::json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": command}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": output}]},
        ]});
        let (out, _) = mask_json(&m, &body);
        assert!(!out.contains("TOLLGATE_"), "{command}: {out}");
        let gemini = format!(
            "Command: {command}\nDirectory: (root)\nOutput: {}\nError: (none)\nExit Code: 0",
            output.trim_end()
        );
        let body = serde_json::json!({"contents": [
            {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": gemini}}}]},
        ]});
        let (out, _) = mask_json(&m, &body);
        assert!(!out.contains("TOLLGATE_"), "{command}: {out}");
        // The Gemini API, no ids: this answer's call is the one before it of its name, not
        // the revealing call of another name or a later one.
        let body = serde_json::json!({"contents": [
            {"role": "model", "parts": [
                {"functionCall": {"name": "shell", "args": {"command": command}}},
                {"functionCall": {"name": "env", "args": {"command": "printenv DB_PASSWORD"}}},
                {"functionCall": {"name": "shell", "args": {"command": "printenv DB_PASSWORD"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "shell", "response": {"output": output}}}]},
        ]});
        let (out, _) = mask_json(&m, &body);
        assert!(!out.contains("TOLLGATE_"), "{command}: {out}");
        let text = format!("$ {command}\n{output}");
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
        let (out, _) = mask_json(&m, &body);
        assert!(!out.contains("TOLLGATE_"), "{command}: {out}");
    }
}

#[test]
fn a_value_object_under_a_credential_name_and_cookie_objects_are_masked() {
    let v = vault();
    let m = masker(default_policy(), &v);
    let (pw, token, sid, csrf, go) = (
        format!("Tr0ub4dor-{}", fresh(LETTERS, 6)),
        fresh(ALNUM, 32),
        fresh(ALNUM, 32),
        fresh(ALNUM, 24),
        fresh(ALNUM, 28),
    );
    // `terraform output -json`, as a tool's answer and as the body's own structure.
    let tf = serde_json::json!({
        "db_password": {"sensitive": true, "type": "string", "value": pw},
        "api_token": {"sensitive": true, "type": "string", "value": token},
        "region": {"sensitive": false, "type": "string", "value": "eu-west-1"},
    });
    // A browser's saved cookies (Playwright's storage state, Puppeteer's page.cookies()).
    let state = serde_json::json!({"cookies": [
        {"name": "sid", "value": sid, "domain": ".shop.internal", "path": "/", "expires": -1, "httpOnly": true, "secure": true, "sameSite": "Lax"},
        {"name": "XSRF", "value": csrf, "domain": "shop.internal", "path": "/"},
        {"name": "theme", "value": "dark", "domain": "shop.internal", "path": "/"},
        {"name": "lang", "value": "en-US", "domain": "shop.internal", "path": "/"},
    ], "origins": []});
    for doc in [&tf, &state] {
        let pretty = serde_json::to_string_pretty(doc).unwrap();
        for content in [serde_json::json!(pretty), doc.clone()] {
            let v = vault();
            let m = masker(default_policy(), &v);
            let body = serde_json::json!({"messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": content}]}]});
            let (out, _) = mask_json(&m, &body);
            assert_absent(&out, &[&pw, &token, &sid, &csrf]);
            for kept in ["eu-west-1", "dark", "en-US"] {
                assert!(
                    out.contains(kept) || !pretty.contains(kept),
                    "{kept} masked: {out}"
                );
            }
        }
    }
    let cases = vec![
        (
            format!(
                "http.SetCookie(w, &http.Cookie{{Name: \"session\", Value: \"{go}\", Path: \"/\", HttpOnly: true}})"
            ),
            go.clone(),
        ),
        (
            format!("document.cookie = \"session_id={sid}; path=/\";"),
            sid.clone(),
        ),
        (
            format!("s.cookies.set('sessionid', '{csrf}', domain='shop.internal')"),
            csrf.clone(),
        ),
    ];
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "http.SetCookie(w, &http.Cookie{Name: \"lang\", Value: \"en-US\", Path: \"/\"})",
            "document.cookie = \"theme=dark; path=/\";",
            "{\"password\": {\"type\": \"string\", \"description\": \"The user's password\"}}",
        ],
    );
}

#[test]
fn values_in_a_tables_credential_column_are_masked() {
    let v = vault();
    let m = masker(default_policy(), &v);
    let (a, b, c) = (
        format!("Tr0ub4dor-{}", fresh(LETTERS, 6)),
        fresh(ALNUM, 20),
        format!("{}!{}", fresh(LETTERS, 5), fresh(ALNUM, 6)),
    );
    let tables = [
        format!(
            "| Service | Username | Password |\n|---------|----------|----------|\n| db      | admin    | {a} |\n| redis   | default  | {b} |\n| queue | app | `{c}` |\n"
        ),
        format!(
            "service,username,password,notes\ndb,admin,{a},primary\nredis,default,\"{b}\",\"cache, shared\"\nqueue,app,{c},\n"
        ),
        format!(
            "     1→name\temail\tapi_key\n     2→alice\ta@corp.io\t{a}\n     3→bob\tb@corp.io\t{b}\n     4→carol\tc@corp.io\t{c}\n"
        ),
        format!(
            " id | username | db_password \n----+----------+-------------\n  1 | alice    | {a}\n  2 | bob      | {b}\n  3 | carol    | {c}\n(3 rows)\n"
        ),
        format!(
            "┌─────────┬───────────┐\n│ Service │ Token     │\n├─────────┼───────────┤\n│ ci      │ {a} │\n│ deploy  │ {b} │\n│ api     │ {c} │\n└─────────┴───────────┘\n"
        ),
    ];
    for table in &tables {
        // A vault of its own: a value masked in one table is masked in the next by memory.
        let v = vault();
        let m = masker(default_policy(), &v);
        let cases = vec![
            (table.clone(), a.clone()),
            (table.clone(), b.clone()),
            (table.clone(), c.clone()),
        ];
        assert_masked_and_kept(&m, &cases, &[]);
        let body = serde_json::json!({"messages": [{"role": "user", "content": table}]});
        let (out, _) = mask_json(&m, &body);
        for kept in ["admin", "default", "alice", "Service", "corp.io"] {
            assert!(
                !table.contains(kept) || out.contains(kept),
                "{kept} masked: {out}"
            );
        }
    }
    assert_masked_and_kept(
        &m,
        &[],
        &[
            "| Field | Type | Description |\n|---|---|---|\n| password | string | The user's password |\n| token_ttl | duration | How long a token lives |\n",
            "| Password | Required |\n|---|---|\n| yes | always |\n| ******** | never |\n",
            "name,password_policy\nalice,strict\nbob,default_policy_v2\n",
            "user,password\nalice,<redacted>\nbob,${BOB_PASSWORD}\ncarol,changeme\n",
        ],
    );
}

#[test]
fn credentials_in_go_headers_php_swift_and_continued_command_lines() {
    let v = vault();
    let m = masker(default_policy(), &v);
    // (With digits: a value of letters alone, unquoted in a command line, is judged by how
    // random its letters look, which a few random strings in a hundred do not.)
    let s = || format!("{}{}", fresh(ALNUM, 20), fresh(b"0123456789", 2));
    let cases: Vec<(String, String)> = [
        "map[Authorization:[Bearer {s}] X-Api-Key:[{s2}]]",
        "req.Header = http.Header{\"Authorization\": []string{\"Bearer {s}\"}, \"X-Api-Key\": {\"{s2}\"}}",
        "let auth = format!(\"Bearer {}\", \"{s}\");",
        "String auth = String.format(\"Bearer %s\", \"{s}\");",
        "curl_setopt($ch, CURLOPT_USERPWD, \"admin:{s}\");",
        "mc alias set myminio https://minio.corp.io minioadmin {s}",
        "psexec \\\\fileserver -u CORP\\admin -p {s} cmd",
        "keychain.set(\"{s}\", forKey: \"password\")",
        "KeychainWrapper.standard.set(\"{s}\", forKey: \"authToken\")",
        "mysql -h db.corp.io -u root \\\n  -p'{s}' \\\n  appdb",
        "pg_dump --host=db --username=app \\\n  --password \\\n  {s}",
        "curl https://api.corp.io/v1 \\\n  -H \"X-Api-Key: {s}\" \\\n  -d @body.json",
    ]
    .iter()
    .flat_map(|t| {
        let (a, b) = (s(), s());
        let text = t.replace("{s}", &a).replace("{s2}", &b);
        let mut out = vec![(text.clone(), a)];
        if t.contains("{s2}") {
            out.push((text, b));
        }
        out
    })
    .collect();
    assert_masked_and_kept(
        &m,
        &cases,
        &[
            "map[Accept:[application/json] User-Agent:[Go-http-client/1.1]]",
            "let auth = format!(\"Bearer {}\", token);",
            "mc alias set myminio https://minio.corp.io $MINIO_USER $MINIO_PASSWORD",
            "keychain.set(token, forKey: \"authToken\")",
        ],
    );
}

#[test]
fn a_masked_answer_of_a_revealing_command_a_cookie_or_a_table_masks_to_the_same_bytes() {
    let v = vault();
    let m = masker(default_policy(), &v);
    let (a, b, c) = (fresh(ALNUM, 24), fresh(ALNUM, 28), fresh(ALNUM, 20));
    let cookies = serde_json::json!({"cookies": [{"name": "sid", "value": b, "domain": "shop.internal", "path": "/"}]});
    let bodies = [
        serde_json::json!({"messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "cat secrets/deploy_token"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": format!("{a}\n")}]},
        ]}),
        serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": serde_json::to_string_pretty(&cookies).unwrap()}]}]}),
        serde_json::json!({"messages": [{"role": "user", "content": format!("user,password\nalice,{c}\n")}]}),
        serde_json::json!({"messages": [{"role": "user", "content": format!("$ gh auth token\n{a}\n")}]}),
    ];
    for body in bodies {
        let once = m
            .mask_body(
                Some("application/json"),
                None,
                Bytes::from(body.to_string()),
            )
            .unwrap()
            .body
            .expect("something to mask");
        assert_absent(std::str::from_utf8(&once).unwrap(), &[&a, &b, &c]);
        let twice = m
            .mask_body(Some("application/json"), None, once.clone())
            .unwrap();
        assert!(
            twice.body.is_none(),
            "masked again: {}",
            String::from_utf8_lossy(&twice.body.unwrap())
        );
    }
}

#[test]
fn a_commands_words_in_an_array_are_masked_as_the_command_line_they_make() {
    let s = || {
        format!(
            "{}{}-{}",
            fresh(ALNUM, 16),
            fresh(b"0123456789", 2),
            fresh(ALNUM, 4)
        )
    };
    let tool_use = |input: serde_json::Value| {
        serde_json::json!({"messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Exec", "input": input}]}]})
    };
    let local_shell = |command: serde_json::Value, output: &str| {
        serde_json::json!({"model": "codex-mini-latest", "input": [
            // (Keys come sorted: the item's `call_id` before its own `id`.)
            {"type": "local_shell_call", "call_id": "call_7", "id": "lsh_7", "status": "completed",
             "action": {"type": "exec", "command": command}},
            {"type": "local_shell_call_output", "call_id": "call_7", "output": output}]})
    };
    type Shape<'a> = Box<dyn Fn(&str) -> serde_json::Value + 'a>;
    let bodies: Vec<Shape> = vec![
        Box::new(|v| {
            tool_use(serde_json::json!({"argv": ["mysql", "-u", "root", "--password", v, "app"]}))
        }),
        Box::new(|v| {
            tool_use(
                serde_json::json!({"args": ["docker", "login", "-u", "bot", "-p", v, "registry.corp.io"]}),
            )
        }),
        Box::new(|v| {
            tool_use(
                serde_json::json!({"command": ["curl", "-u", format!("admin:{v}"), "https://nexus.corp.io"]}),
            )
        }),
        Box::new(|v| tool_use(serde_json::json!({"cmd": ["deploy", "--api-key", v]}))),
        Box::new(|v| {
            local_shell(
                serde_json::json!(["mysql", "-uroot", format!("-p{v}"), "-e", "select 1"]),
                "1\n",
            )
        }),
        Box::new(|v| {
            local_shell(
                serde_json::json!(["printenv", "DB_PASSWORD"]),
                &format!("{v}\n"),
            )
        }),
        Box::new(|v| {
            local_shell(
                serde_json::json!(["bash", "-lc", "echo $API_TOKEN"]),
                &format!("{v}\n"),
            )
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "run", "arguments": serde_json::json!({"args": ["--db-password", v]}).to_string()}}]}]})
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "user", "content": format!(
            "containers:\n  - name: app\n    args: [\"--token\", \"{v}\"]\n")}]})
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "user", "content": format!(
            "subprocess.run(['psql', '--host', 'db', '--password', '{v}'])")}]})
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "user", "content": format!(
            "subprocess.check_call([\"docker\", \"login\", \"-u\", \"bob\", \"-p\", \"{v}\", \"registry.corp.io\"])")}]})
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "user", "content": format!(
            "FROM redis:7\nCMD [\"redis-server\", \"--requirepass\", \"{v}\"]\n")}]})
        }),
        Box::new(|v| {
            serde_json::json!({"messages": [{"role": "user", "content": format!(
            "args: ['sqlcmd', '-S', 'db', '-U', 'sa', '-P', '{v}']")}]})
        }),
        Box::new(|v| tool_use(serde_json::json!({"run": ["redis-cli", "-h", "cache", "AUTH", v]}))),
    ];
    for (i, body) in bodies.iter().enumerate() {
        // Each shape its own vault and value: nothing passes on what an earlier one taught.
        let v = vault();
        let m = masker(default_policy(), &v);
        let secret = s();
        let (out, _) = mask_json(&m, &body(&secret));
        assert_absent(&out, &[&secret]);
        assert!(out.contains("TOLLGATE_"), "shape {i}: {out}");
    }
    // A key whose lines are words of their own: every line of its body is masked.
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let lines: Vec<String> = (0..5).map(|_| fresh(B64, 64)).collect();
    let mut argv = vec![
        "bash".to_string(),
        "-c".into(),
        "echo".into(),
        "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
    ];
    argv.extend(lines.iter().cloned());
    argv.push("-----END OPENSSH PRIVATE KEY-----".into());
    let v = vault();
    let m = masker(default_policy(), &v);
    let (out, _) = mask_json(&m, &tool_use(serde_json::json!({ "command": argv })));
    assert_absent(&out, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    // The same as a YAML block sequence.
    let lines: Vec<String> = (0..5).map(|_| fresh(B64, 64)).collect();
    let text = format!(
        "command:\n  - bash\n  - -c\n  - echo\n  - \"-----BEGIN OPENSSH PRIVATE KEY-----\"\n{}  - \"-----END OPENSSH PRIVATE KEY-----\"\n",
        lines
            .iter()
            .map(|l| format!("  - {l}\n"))
            .collect::<String>()
    );
    let v = vault();
    let m = masker(default_policy(), &v);
    let (out, _) = mask_json(
        &m,
        &serde_json::json!({"messages": [{"role": "user", "content": text}]}),
    );
    assert_absent(&out, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    // Flattened onto one line, as a dotenv file often holds it.
    let lines: Vec<String> = (0..5).map(|_| fresh(B64, 64)).collect();
    let text = format!(
        "PRIVATE_KEY=\"-----BEGIN RSA PRIVATE KEY----- {} -----END RSA PRIVATE KEY-----\"",
        lines.join(" ")
    );
    let v = vault();
    let m = masker(default_policy(), &v);
    let (out, _) = mask_json(
        &m,
        &serde_json::json!({"messages": [{"role": "user", "content": text}]}),
    );
    assert_absent(&out, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    let v = vault();
    let m = masker(default_policy(), &v);
    for kept in [
        tool_use(
            serde_json::json!({"command": ["git", "commit", "-m", "fix the password reset form"]}),
        ),
        tool_use(serde_json::json!({"argv": ["ls", "-la", "--color=auto", "src/auth/token.rs"]})),
        serde_json::json!({"tools": [{"name": "login", "input_schema": {"type": "object",
            "required": ["username", "password"], "properties": {"password": {"type": "string"}}}}]}),
        local_shell(
            serde_json::json!(["cargo", "test", "--", "--nocapture"]),
            "test result: ok\n",
        ),
        serde_json::json!({"messages": [{"role": "user", "content":
            "cmd = [\"pytest\", \"-k\", \"test_password_reset\", \"-x\"]\nrun([\"ls\", \"-la\", \"/tmp\"])"}]}),
    ] {
        let (out, _) = mask_json(&m, &kept);
        assert!(!out.contains("TOLLGATE_"), "{out}");
    }
}

#[test]
fn prefixed_literals_escaped_values_dotted_yaml_and_encoded_url_passwords() {
    let s = || with_digits(10, 10);
    let shapes = [
        "app.secret_key = b'{s}'",
        "API_TOKEN = f\"{s}\"",
        "DB_PASSWORD = r'{s}'",
        "API_TOKEN = \"\"\"{s}\"\"\"",
        "string apiToken = @\"{s}\";",
        "let password = r#\"{s}\"#;",
        "const char* password = R\"({s})\";",
        "auto token = u8\"{s}\";",
        "DB_PASSWORD=\"q\\\"{s}\"",
        "DB_PASSWORD = 'q\\'{s}'",
        "config.json:\n{\"db\": {\"password\": \"q\\\"{s}\"}}",
        "DB_PASSWORD=q\\n{s}",
        "password: 'q\\t{s}'",
        "db:\n  host: db.internal\n  password: {s}.{s2}",
        "DATABASE_URL=postgres://app:p%2F{s}@db.internal:5432/app",
        "cache: redis://default:ab%3F{s}@cache:6379/0",
        "smbclient //files/share -U alice%4f{s}",
    ];
    masks_each_shape_alone(&shapes, s);
    assert_kept_alone(&[
        "password = f\"{prefix}{suffix}\"",
        "secret_key = r\"^[a-z0-9]{32}$\"",
        "token_re = r'\\d{4}-\\w+'",
        "password: settings.database.password",
        "token = self.config.auth.token",
        "print(\"token:\\n\", token)",
    ]);
}

#[test]
fn yaml_block_sequences_concatenated_and_other_languages_literals() {
    let s = || with_digits(8, 6);
    let shapes = [
        // A YAML block sequence is an argv: a flag and its value are items on two lines.
        "spec:\n  containers:\n  - name: cache\n    image: redis:7\n    command:\n      - redis-server\n      - --requirepass\n      - {s}\n",
        "    args:\n    - \"--db-password\"\n    - \"{s}\"\n    - --port\n    - \"5432\"\n",
        "services:\n  app:\n    entrypoint:\n      - /app/server\n      - '--api-key'\n      - '{s}'\n",
        "     7→    command:\n     8→      - mysql\n     9→      - -uroot\n    10→      - --password\n    11→      - {s}\n",
        // A secret split into literals that are joined.
        "const token = \"{s}\" + \"{s2}\";",
        "const apiKey = \"{s}\"\n  + \"{s2}\";",
        "PASSWORD = \"{s}\" \"{s2}\"",
        "API_TOKEN = (\n    \"{s}\"\n    \"{s2}\"\n)",
        "$password = '{s}' . '{s2}';",
        "local secret = \"{s}\" .. \"{s2}\"",
        // Literal forms of other languages.
        "let password = #\"{s}\"#",
        "let apiKey = ##\"{s}\"##",
        "password = %q({s})",
        "api_token = %Q[{s}]",
        "secret = %{{s}}",
        "val password = s\"{s}\"",
        "val secret = raw\"{s}\"",
        "const password = String.raw`{s}`;",
        "local password = [[{s}]]",
        "local token = [==[{s}]==]",
        "$password = @\"\n{s}\n\"@",
        "$token = @'\n{s}\n'@",
        "$password = <<<EOT\n{s}\nEOT;",
        "$token = <<<'EOT'\n    {s}\n    EOT;",
        "val password = \"\"\"\n    {s}\n\"\"\".trimIndent()",
        "String token = \"\"\"\n        {s}\n        \"\"\";",
        "#define DB_PASSWORD \"{s}\"",
        // Positional passwords of Ruby's standard library.
        "ftp = Net::FTP.new(\"ftp.corp.io\", \"deploy\", \"{s}\")",
        "Net::SMTP.start(\"smtp.corp.io\", 587, \"corp.io\", \"alerts\", \"{s}\", :login) do |smtp|",
        "smtp.start(\"corp.io\", \"alerts@corp.io\", \"{s}\", :plain)",
    ];
    masks_each_shape_alone(&shapes, s);
    assert_kept_alone(&[
        "command:\n  - python\n  - -m\n  - http.server\n  - --bind\n  - 0.0.0.0\n",
        "args:\n  - --config\n  - /etc/app/config.yaml\n  - --log-level\n  - debug\n",
        "- --password-file\n- /run/secrets/db_password\n",
        "steps:\n  - name: test\n    run: cargo test -- --nocapture\n  - name: lint\n",
        "const message = \"Invalid \" + \"password\";",
        "const token = \"Bearer \" + accessToken;",
        "password = \"\" + input.value",
        "words = %w[token password secret]",
        "local help = [[Set the password with --password.]]",
        "$password = <<<EOT\nYour password is {$pw}.\nEOT;",
        "#define PASSWORD_MAX_LENGTH 128",
        "#define TOKEN_HEADER \"X-Auth-Token\"",
        "#define LN_kx_psk \"kx-psk\"",
        "#define SSL_kPSK 0x00000004u",
        "#define RSA_set0_key BORINGSSL_ADD_PREFIX(BORINGSSL_PREFIX, RSA_set0_key)",
    ]);
}

#[test]
fn typed_wrapped_and_operator_less_assignments_of_many_languages() {
    let s = || with_digits(8, 6);
    let shapes = [
        // A type between the name and `=`.
        "var dbPassword string = \"{s}\"",
        "char password[] = \"{s}\";",
        "static const char api_key[64] = \"{s}\";",
        "std::string password{\"{s}\"};",
        "std::string token(\"{s}\");",
        "Dim password As String = \"{s}\"",
        "DECLARE @pwd NVARCHAR(50) = N'{s}';",
        "const API_TOKEN: &str = r#\"{s}\"#;",
        // A literal wrapped in a call that makes a value of it.
        "password = SecretStr(\"{s}\")",
        "let token = String::from(\"{s}\");",
        "secret := []byte(\"{s}\")",
        "const apiKey = Buffer.from(\"{s}\");",
        "password: Some(\"{s}\".to_owned()),",
        "API_KEY = str(\"{s}\")",
        // Other operators.
        "DB_PASSWORD ?= {s}",
        "@token ||= \"{s}\"",
        "config.apiKey ??= \"{s}\";",
        "db_password <- \"{s}\"",
        "password = <<EOF\n{s}\nEOF",
        // No operator.
        "(def config {:db-password \"{s}\"})",
        "  @api_key \"{s}\"",
        "{db_password, \"{s}\"}",
        "set password \"{s}\"",
        "account default\nhost smtp.corp.io\nuser alerts\npassword {s}\n",
        "masterauth {s}",
        // Short names.
        "pw = \"{s}\"",
        "creds = \"{s}\"",
        "passwd = 'geheim${s}'",
    ];
    masks_each_shape_alone(&shapes, s);
    assert_kept_alone(&[
        "var password string",
        "if password != \"\" && token == expected {",
        "Token *oauth2.Token",
        "Password *string `json:\"password\"`",
        "password required",
        "    pass  # nothing to do",
        "WHERE password IS NOT NULL AND token = 'pending'",
        "password = getpass.getpass(\"Password: \")",
        "token = os.getenv(\"GITHUB_TOKEN\")",
        "std::string password;",
        "pw_len = len(pw)",
        // Translation files, validation rules and labels name a credential.
        "{\"password\": \"Passwort\", \"forgot\": \"Passwort vergessen?\"}",
        "{\"login\": {\"password\": \"Passwort\", \"token\": \"Zugangsschlüssel\", \"secret\": \"Geheimnis\"}}",
        "export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "aws_access_key_id = AKIAXXXXXXXXXXXXXXXX",
        "password: Mot de passe",
        "api_key: Clave de API",
        "api_key: API Key",
        "'password' => 'required|string|min:8|confirmed',",
        "PASSWORD = \"password_hash_v2\"",
        "pub const LN_userPassword: &[u8; 13] = b\"userPassword\\0\";",
        "pub const SN_kx_psk: &[u8; 6] = b\"KxPSK\\0\";",
    ]);
}

#[test]
fn encoded_piped_defaulted_and_prose_secrets() {
    let s = || with_digits(8, 6);
    let shapes = [
        "auth = base64.b64encode(b\"admin:{s}\")",
        "String auth = Base64.getEncoder().encodeToString(\"admin:{s}\".getBytes());",
        "headers: { Authorization: 'Basic ' + btoa('admin:{s}') }",
        "echo {s} | gh auth login --with-token",
        "echo \"{s}\" | docker secret create db_password -",
        "http -a admin:{s} https://api.corp.io/status",
        "url = jdbc:oracle:thin:app/{s}@db.corp:1521/ORCL",
        "@Value(\"${stripe.key:{s}}\")",
        "  password: ${DB_PASSWORD:{s}}",
        "TOKEN=\"${API_TOKEN:-{s}}\"",
        "my db password is {s}",
        "Use api key {s} for the ops API.",
        "I set the JWT secret to {s} in prod",
        "log in with username admin and password {s}",
        "- **Password**: `{s}`",
        "Use token {s} as GITHUB_TOKEN",
        "CREDENTIALS = (\"admin\", \"{s}\")",
        "bearer = \"{s}\"",
        "TOTP_SEED = \"{s}\"",
        "SECURITY_PASSWORD_SALT = \"{s}\"",
        "API_TOKEN = \"{s}xxxx{s}\"",
        "let apiKey* = \"{s}\"",
        "{\"github-oauth\": {\"github.com\": \"{s}\"}}",
        "{\"bearer\": {\"repo.corp.io\": \"{s}\"}}",
        "{\"url\": \"https://api.corp.io\", \"headers\": [[\"X-API-Key\", \"{s}\"], [\"Accept\", \"application/json\"]]}",
        "{\"headers\": [[\"Authorization\", \"Bearer {s}\"]]}",
        "sh \"sonar-scanner -Dsonar.login={s}\"",
        "db:\n  password: &pw {s}\n  replica_password: *pw\n",
        "{my_app, [{api_key, <<\"{s}\">>}]}.",
    ];
    masks_each_shape_alone(&shapes, s);
    assert_kept_alone(&[
        "The password is stored as a bcrypt hash.",
        "Reset your password to continue.",
        "Set the token to expire after 3600 seconds.",
        "- **Password**: the one you chose at sign-up",
        "echo $TOKEN | gh auth login --with-token",
        "password: ${DB_PASSWORD:}",
        "url: ${BASE_URL:http://localhost:8080}",
        "auth = base64.b64encode(f\"{user}:{password}\".encode())",
        "Authorization: Bearer <token>",
        "The api key is required for every request.",
        "#define LN_pkcs9_challengePassword \"challengePassword\"",
        "{\"headers\": [[\"Authorization\", \"Bearer $TOKEN\"], [\"X-Request-Id\", \"abc123def456\"]]}",
        "{\"fields\": [[\"password\", \"string\"], [\"token\", \"string\"]]}",
        "{\"components\": {\"securitySchemes\": {\"bearer\": {\"type\": \"http\", \"scheme\": \"bearer\", \"bearerFormat\": \"JWT\", \"description\": \"A token from the login endpoint\"}}}}",
    ]);
}

#[test]
fn passwords_passed_by_position_and_set_by_sql_or_htpasswd() {
    let s = || with_digits(8, 6);
    let shapes = [
        "Connection c = DriverManager.getConnection(url, \"app\", \"{s}\");",
        "$db = new PDO($dsn, 'root', '{s}');",
        "$db = new PDO(\"mysql:host=db;dbname=app\", \"root\", \"{s}\");",
        "$c = new mysqli(\"localhost\", \"root\", \"{s}\", \"app\");",
        "$c = mysqli_connect('localhost', 'root', '{s}');",
        "db = MySQLdb.connect(\"localhost\", \"app\", \"{s}\", \"appdb\")",
        "conn = pymysql.connect('db', 'app', '{s}')",
        "server.login(\"alerts@corp.io\", \"{s}\")",
        "ftp.login('deploy', '{s}')",
        "const sequelize = new Sequelize(\"app\", \"app\", \"{s}\", { dialect: \"mysql\" });",
        "jedis.auth(\"{s}\");",
        "SET PASSWORD FOR 'app'@'localhost' = '{s}';",
        "SET PASSWORD = PASSWORD('{s}');",
        "htpasswd -b -c /etc/nginx/.htpasswd admin {s}",
        "conn.simple_bind_s(\"cn=admin,dc=corp,dc=io\", \"{s}\")",
        "conn = Connection(server, \"cn=svc,dc=corp\", \"{s}\", auto_bind=True)",
        "ssh.connect(\"bastion.corp.io\", 22, \"deploy\", \"{s}\")",
        "new PasswordAuthentication(\"svc\", \"{s}\".toCharArray())",
        "new UsernamePasswordCredentials(\"svc\", \"{s}\")",
        "ftp = ftplib.FTP(\"ftp.corp.io\", \"upload\", \"{s}\")",
        "keyring.set_password(\"corp-vpn\", \"alice\", \"{s}\")",
        "my $dbh = DBI->connect($dsn, \"app\", \"{s}\");",
        "conn = cx_Oracle.connect(\"app\", \"{s}\", \"db.corp:1521/ORCL\")",
        "r.auth(\"{s}\")",
        "db.auth(\"admin\", \"{s}\")",
        "mysqladmin -u root password {s}",
        "net user Administrator {s}",
        "redis-server --requirepass {s}",
        "redis-cli -h cache AUTH {s}",
        "API_TOKEN = (\n    \"{s}\"\n)",
    ];
    masks_each_shape_alone(&shapes, s);
    assert_kept_alone(&[
        "Connection c = DriverManager.getConnection(url, user, password);",
        "$db = new PDO($dsn, $user, $pass);",
        "server.login(user, password)",
        "smtp.login(os.environ['SMTP_USER'], os.environ['SMTP_PASSWORD'])",
        "client.login('user', '${PASSWORD}')",
        "redis.auth(process.env.REDIS_PASSWORD)",
        "SET PASSWORD FOR 'app'@'localhost' = '<new password>';",
        "htpasswd -c /etc/nginx/.htpasswd admin",
        "conn = Connection(server, user_dn, password, auto_bind=True)",
        "ssh.connect(host, 22, username, password)",
        "net user alice /delete",
        "net user alice *",
        "redis-cli -h cache AUTH $REDIS_PASSWORD",
        "r.auth(password)",
    ]);
}

/// Each shape, with `{s}` (and `{s2}`) made of fresh values, masks its `{s}` value, in a vault
/// of its own: nothing passes on what an earlier shape taught.
fn masks_each_shape_alone(shapes: &[&str], value: impl Fn() -> String) {
    for shape in shapes {
        let v = vault();
        let m = masker(default_policy(), &v);
        let (a, b) = (value(), value());
        let text = shape.replace("{s}", &a).replace("{s2}", &b);
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
        let (out, _) = mask_json(&m, &body);
        assert_absent(&out, &[&a]);
        if shape.contains("{s2}") {
            assert_absent(&out, &[&b]);
        }
    }
}

/// A fresh value: `head` letters and digits, two digits, `tail` more (a digit in every one, so
/// that none is judged by how random its letters alone look).
fn with_digits(head: usize, tail: usize) -> String {
    format!(
        "{}{}{}",
        fresh(ALNUM, head),
        fresh(b"0123456789", 2),
        fresh(ALNUM, tail)
    )
}

/// Each text, masked in a vault of its own, goes without a placeholder.
fn assert_kept_alone(kept: &[&str]) {
    let v = vault();
    let m = masker(default_policy(), &v);
    assert_masked_and_kept(&m, &[], kept);
}
