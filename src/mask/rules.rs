//! The built-in secret detectors, written from the token formats their issuers document.
//!
//! Each rule names the keywords (ASCII, matched case-insensitively) one of which must occur in or
//! just before a secret of its kind; the detector runs a rule's regex only near those keywords,
//! so the number of rules does not drive the cost. Where a rule's regex has a capture group,
//! that group is the secret and only it is masked (`password=` stays, its value goes).

/// How a match is confirmed beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// The regex is specific enough.
    None,
    /// The secret must not be a placeholder (`changeme`, `${VAR}`, `<token>`, `YOUR_KEY`, …)
    /// nor an identifier reference (`config.api_key`).
    NotPlaceholder,
    /// A URL's password: not a documented placeholder, not the user name again
    /// (`postgres:postgres@`, `guest:guest@`), not a reference; dots and brackets are fine.
    UrlPassword,
    /// The secret must look generated (letters and digits with entropy, or gibberish), not be a
    /// name someone typed (`https://deploy-bot@host`).
    Random,
    /// A PEM block with a body (not a parser's `-----BEGIN … PRIVATE KEY-----` constant, nor a
    /// documentation sample whose body is `XXXX`).
    PemBody,
    /// A cookie string with a cookie whose value looks generated (`session=…`), not a
    /// documentation example (`foo=bar; Path=/`).
    Cookie,
    /// A value a command printed on a line of its own: not a placeholder (`<sensitive>`), not a
    /// label or a code fence.
    Printed,
    /// No regex: each keyword hit is looked at as a possible `name = value` assignment by
    /// [`super::assign`], which judges the value by its context.
    Assignment,
    /// No regex, no keywords: a JSON value under a credential key, judged where the structure
    /// is walked.
    Field,
}

/// One built-in rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleSpec {
    pub id: &'static str,
    pub category: &'static str,
    pub keywords: &'static [&'static str],
    pub pattern: &'static str,
    pub check: Check,
    /// How far past a keyword the secret may end (bytes).
    pub reach: usize,
}

const REACH: usize = 512;

macro_rules! rule {
    ($id:literal, $cat:literal, [$($kw:literal),+], $re:expr) => {
        rule!($id, $cat, [$($kw),+], $re, Check::None, REACH)
    };
    ($id:literal, $cat:literal, [$($kw:literal),+], $re:expr, $check:expr) => {
        rule!($id, $cat, [$($kw),+], $re, $check, REACH)
    };
    ($id:literal, $cat:literal, [$($kw:literal),+], $re:expr, $check:expr, $reach:expr) => {
        RuleSpec {
            id: $id,
            category: $cat,
            keywords: &[$($kw),+],
            pattern: $re,
            check: $check,
            reach: $reach,
        }
    };
}

/// Commands that print a secret: secret managers' read commands, cloud CLIs' token printers,
/// `printenv`/`echo` of a credential's variable, `cat` of a secret's file, `jq` of its field.
macro_rules! revealing_command {
    () => {
        concat!(
            r"(?:",
            r"(?-u:\b)op\s+(?:read|inject|item\s+get(?-u:\b)[^\n]*--(?:fields?|reveal))(?-u:\b)",
            r"|(?-u:\b)terraform\s+output(?-u:\b)",
            r"|(?-u:\b)kubectl(?-u:\b)[^\n]*(?-u:\b)secrets?(?-u:\b)[^\n]*(?:jsonpath|go-template|base64)",
            r"|(?-u:\b)kubectl\s+create\s+token(?-u:\b)",
            r"|(?-u:\b)vault\s+(?:kv\s+get|read|token\s+create)(?-u:\b)[^\n]*-field(?-u:\b)|(?-u:\b)vault\s+print\s+token(?-u:\b)",
            r"|(?-u:\b)(?:gh|glab)\s+auth\s+token(?-u:\b)",
            r"|(?-u:\b)gcloud\s+(?:secrets\s+versions\s+access|auth\s+(?:application-default\s+)?print-(?:access|identity)-token)(?-u:\b)",
            r"|(?-u:\b)aws\s+(?:ecr(?:-public)?\s+get-login-password|secretsmanager\s+get-secret-value|ssm\s+get-parameters?(?-u:\b)[^\n]*--with-decryption|configure\s+get\s+\S*(?:secret|token)\S*|codeartifact\s+get-authorization-token|rds\s+generate-db-auth-token)(?-u:\b)",
            r"|(?-u:\b)az\s+(?:keyvault\s+secret\s+show|account\s+get-access-token|acr\s+login(?-u:\b)[^\n]*--expose-token|storage\s+account\s+keys\s+list)(?-u:\b)",
            r"|(?-u:\b)security\s+find-(?:generic|internet)-password(?-u:\b)[^\n]*\s-w(?-u:\b)",
            r"|(?-u:\b)(?:pass|gopass)\s+show(?-u:\b)|(?-u:\b)gopass\s+(?:cat|otp)(?-u:\b)",
            r"|(?-u:\b)secret-tool\s+lookup(?-u:\b)|(?-u:\b)keyring\s+get(?-u:\b)|(?-u:\b)bw\s+get\s+(?:password|totp)(?-u:\b)|(?-u:\b)lpass\s+show(?-u:\b)|(?-u:\b)chamber\s+read(?-u:\b)",
            r"|(?-u:\b)doppler\s+secrets\s+get(?-u:\b)|(?-u:\b)heroku\s+(?:auth:token|config:get)(?-u:\b)|(?-u:\b)sops\s+(?:-d|--decrypt)(?-u:\b)",
            r"|(?-u:\b)openssl\s+rand(?-u:\b)|(?-u:\b)pwgen(?-u:\b)|(?-u:\b)npm\s+token\s+create(?-u:\b)",
            r"|(?-u:\b)(?:head|tail|less|more|bat|type|Get-Content|gc)\s+[^\n|;&]*?(?i:secret|token|passw|credential|api[_-]?key|\.pem(?-u:\b)|\.key(?-u:\b)|id_rsa|id_ed25519)",
            r"|(?-u:\b)(?:git\s+config|npm\s+config\s+get|yarn\s+config\s+get)(?-u:\b)[^\n|;&]*?(?i:token|passw|secret|_auth)",
            r"|(?-u:\b)security\s+find-(?:generic|internet)-password(?-u:\b)[^\n]*\s-[a-z]*w[a-z]*(?-u:\b)",
            r"|(?-u:\b)kubectl\s+config\s+view(?-u:\b)[^\n]*--raw(?-u:\b)[^\n]*(?i:token|password|client-key)",
            r"|(?-u:\b)gpg\s+(?:[^\n|;&]*\s)?(?:-d|--decrypt)(?-u:\b)|(?-u:\b)aws\s+kms\s+decrypt(?-u:\b)",
            r"|(?-u:\b)(?:netlify\s+env:get|infisical\s+secrets\s+get|vercel\s+env\s+pull)(?-u:\b)",
            r"|(?-u:\b)echo\s+%",
            credential_variable!(),
            r"%|\$env:",
            credential_variable!(),
            r"|GetEnvironmentVariable\(\s*['\x22]",
            credential_variable!(),
            r"|(?-u:\b)Get-Secret(?-u:\b)[^\n]*-AsPlainText",
            r"|(?-u:\b)consul\s+kv\s+get(?-u:\b)[^\n]*(?i:secret|passw|token|key)",
            r"|(?-u:\b)printenv\s+",
            credential_variable!(),
            r"|(?-u:\b)(?:echo|printf)\s+[^\n|;&]*?\$\{?",
            credential_variable!(),
            r#"|(?-u:\b)cat\s+[^\n|;&]*?(?i:secret|token|passw|credential|api[_-]?key|\.pem(?-u:\b)|\.key(?-u:\b)|id_rsa|id_ed25519)"#,
            r"|(?-u:\b)(?:jq|yq)(?-u:\b)[^\n]*\.",
            credential_variable!(),
            // Scripts and filters that print a credential's variable or line.
            r"|(?-u:\b)(?:(?:python[0-9.]*|node|deno|bun|ruby|perl|php)\s+(?:-[A-Za-z]+\s+)*-(?:c|e|p|r|-eval|-print)|deno\s+eval)(?-u:\b)[^\n]*?(?:environ|getenv|env(?-u:\b)|ENV)[^\n]*?",
            credential_variable!(),
            // The same script over several lines: a quoted `-c` script with line breaks, or a
            // heredoc (`python3 - <<'EOF'`).
            r"|(?-u:\b)(?:python[0-9.]*|node|deno|bun|ruby|perl|php)\s+(?:-[A-Za-z]+\s+)*(?:-(?:c|e|r|-eval)\s+['\x22]|-?\s*<<-?\s*['\x22]?[A-Za-z_]+['\x22]?)[^\n]*\n(?:[^\n]*\n)*?[^\n]*?(?:environ|getenv|env(?-u:\b)|ENV)[^\n]*?",
            credential_variable!(),
            // Filters that print a credential's value, not its line or its name: `grep NAME … |
            // cut -f2`, `sed -n 's/^NAME=//p'`, `awk '/NAME/{print $2}'`.
            r"|(?-u:\b)(?:grep|egrep|rg)(?-u:\b)[^\n|;&]*?",
            credential_variable!(),
            r"[^\n]*\|\s*(?:cut(?-u:\b)[^\n|]*-f\s*[2-9]|(?:g?awk)(?-u:\b)[^\n|]*print\s+\$[2-9]|sed(?-u:\b))",
            r"|(?-u:\b)sed\s+(?:-[A-Za-z]+\s+)*-n(?-u:\b)[^\n]*?",
            credential_variable!(),
            r"|(?-u:\b)g?awk(?-u:\b)[^\n]*?",
            credential_variable!(),
            r"[^\n]*print\s+\$[2-9]",
            r"|(?-u:\b)pulumi\s+config\s+get\s+",
            credential_variable!(),
            r")"
        )
    };
}

/// A variable or field named for a credential (`DB_PASSWORD`, `deployToken`, `.api_key`).
macro_rules! credential_variable {
    () => {
        r"(?i:[a-z0-9_]*(?:token|secret|passw|_pass(?-u:\b)|pass_|_pw(?-u:\b)|api_?key|private_?key|access_?key|credential))"
    };
}

/// [`revealing_command!`] as a pattern of its own.
pub const REVEALING_COMMAND: &str = revealing_command!();

/// Value of an `name = value` / `"name": "value"` assignment, as group 1.
macro_rules! assigned {
    ($name:literal, $value:literal) => {
        concat!(
            r#"(?i)"#,
            $name,
            r#"[a-z0-9_.\-]{0,24}["']?\s*(?::=|=>|=|:)\s*["']?("#,
            $value,
            r#")(?:[^A-Za-z0-9_\-+/=]|$)"#
        )
    };
}

pub const RULES: &[RuleSpec] = &[
    // ── Cloud ──────────────────────────────────────────────────────────────────────────────
    rule!(
        "aws-access-key-id",
        "cloud",
        ["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
        r"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})\b",
        Check::NotPlaceholder
    ),
    rule!(
        "aws-secret-access-key",
        "cloud",
        [
            "secret_access_key",
            "secretaccesskey",
            "aws_secret",
            "awssecret",
            "secret-access-key",
            "secret access key"
        ],
        r#"(?i)(?:aws)?[_ ]?secret[_ ]?(?:access)?[_ ]?key(?: \[[^\]\n]{0,40}\])?["']?\s*(?::=|=>|=|:)\s*["']?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#
    ),
    rule!(
        "aws-secret-access-key-pair",
        "cloud",
        ["AKIA", "ASIA"],
        r#"\b(?:AKIA|ASIA)[A-Z2-7]{16}[\s,;|:"'=]{1,8}([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        Check::NotPlaceholder
    ),
    rule!(
        "aws-session-token",
        "cloud",
        ["session_token", "sessiontoken", "security_token"],
        r#"(?i)(?:session|security)_?token["']?\s*(?::=|=>|=|:)\s*["']?([A-Za-z0-9/+=]{100,})"#,
        Check::None,
        2048
    ),
    rule!(
        "aws-session-token-bare",
        "cloud",
        ["FwoGZXIvYXdz", "IQoJb3JpZ2luX2Vj"],
        // STS session tokens begin with the same bytes (base64 of their framing and `origin_ec`).
        r"\b(?:FwoGZXIvYXdz|IQoJb3JpZ2luX2Vj)[A-Za-z0-9+/]{100,}={0,2}"
    ),
    rule!(
        "aws-cli-credentials-text",
        "cloud",
        ["CREDENTIALS"],
        // `aws sts … --output text`: CREDENTIALS, key id, expiry, secret key, session token.
        r"\bCREDENTIALS\s+(?:ASIA|AKIA)[A-Z0-9]{16}\s+\S+\s+([A-Za-z0-9+/]{40})\b"
    ),
    rule!(
        "aws-mws-key",
        "cloud",
        ["amzn.mws."],
        r"amzn\.mws\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    ),
    rule!(
        "gcp-api-key",
        "cloud",
        ["AIza"],
        r"\b(AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)"
    ),
    rule!(
        "gcp-service-account-key-id",
        "cloud",
        ["private_key_id"],
        r#""private_key_id"\s*:\s*"([0-9a-f]{40})""#
    ),
    rule!(
        "gcp-oauth-client-secret",
        "cloud",
        ["GOCSPX-"],
        r"\bGOCSPX-[A-Za-z0-9_\-]{28}"
    ),
    rule!(
        "google-oauth-access-token",
        "cloud",
        ["ya29."],
        r"\bya29\.[0-9A-Za-z_\-]{20,}"
    ),
    rule!(
        "google-oauth-refresh-token",
        "cloud",
        ["1//0"],
        r"\b1//0[0-9A-Za-z_\-]{40,}"
    ),
    rule!(
        "azure-storage-account-key",
        "cloud",
        ["AccountKey="],
        r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)"
    ),
    rule!(
        "azure-shared-access-key",
        "cloud",
        ["SharedAccessKey="],
        r"(?i)SharedAccessKey=([A-Za-z0-9+/]{42,44}=?)"
    ),
    rule!(
        "azure-sas-signature",
        "cloud",
        ["sig="],
        r"(?i)[?&]sig=([A-Za-z0-9%+/]{40,}(?:%3D|=)*)"
    ),
    rule!(
        "azure-ad-client-secret",
        "cloud",
        ["Q~"],
        r"(?:^|[^A-Za-z0-9_~.\-])([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?:[^A-Za-z0-9_~.\-]|$)"
    ),
    rule!(
        "azure-openai-key",
        "cloud",
        ["azure"],
        assigned!("azure[a-z_\\-]*(?:api|openai)[_\\-]?key", "[0-9a-f]{32}")
    ),
    rule!(
        "alibaba-access-key-id",
        "cloud",
        ["LTAI"],
        r"\bLTAI[A-Za-z0-9]{20}\b"
    ),
    rule!(
        "alibaba-secret-key",
        "cloud",
        ["alibaba", "aliyun"],
        assigned!("(?:alibaba|aliyun)[a-z_\\-]*secret", "[A-Za-z0-9]{30}")
    ),
    rule!(
        "ibm-cloud-api-key",
        "cloud",
        ["ibm"],
        assigned!("ibm[a-z_\\-]*api[_\\-]?key", "[A-Za-z0-9_\\-]{44}")
    ),
    rule!(
        "digitalocean-pat",
        "cloud",
        ["dop_v1_"],
        r"\bdop_v1_[a-f0-9]{64}\b"
    ),
    rule!(
        "digitalocean-oauth-token",
        "cloud",
        ["doo_v1_"],
        r"\bdoo_v1_[a-f0-9]{64}\b"
    ),
    rule!(
        "digitalocean-refresh-token",
        "cloud",
        ["dor_v1_"],
        r"\bdor_v1_[a-f0-9]{64}\b"
    ),
    rule!(
        "heroku-api-key",
        "cloud",
        ["heroku"],
        assigned!(
            "heroku",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        )
    ),
    rule!(
        "heroku-api-key-v2",
        "cloud",
        ["HRKU-"],
        r"\bHRKU-[A-Za-z0-9_\-]{60}"
    ),
    rule!(
        "cloudflare-api-token",
        "cloud",
        ["cloudflare", "cf_api"],
        assigned!("(?:cloudflare|cf_api)", "[A-Za-z0-9_\\-]{40}")
    ),
    rule!(
        "cloudflare-origin-ca-key",
        "cloud",
        ["v1.0-"],
        r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b"
    ),
    rule!(
        "fly-io-token",
        "cloud",
        ["FlyV1", "fo1_"],
        r"\b(?:FlyV1 fm\d_[A-Za-z0-9+/=_\-]{100,}|fo1_[A-Za-z0-9_\-]{43})"
    ),
    rule!(
        "vault-service-token",
        "cloud",
        ["hvs."],
        r"\bhvs\.[A-Za-z0-9_\-]{90,}"
    ),
    rule!(
        "vault-batch-token",
        "cloud",
        ["hvb."],
        r"\bhvb\.[A-Za-z0-9_\-]{90,}"
    ),
    rule!(
        "terraform-cloud-token",
        "cloud",
        ["atlasv1"],
        r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}"
    ),
    rule!("pulumi-token", "cloud", ["pul-"], r"\bpul-[a-f0-9]{40}\b"),
    rule!(
        "doppler-token",
        "cloud",
        ["dp.pt.", "dp.st.", "dp.sa.", "dp.ct."],
        r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}\b"
    ),
    rule!(
        "scalingo-token",
        "cloud",
        ["tk-us-"],
        r"\btk-us-[A-Za-z0-9_\-]{48}\b"
    ),
    rule!(
        "netlify-token",
        "cloud",
        ["netlify"],
        assigned!("netlify", "[A-Za-z0-9_\\-]{40,46}")
    ),
    rule!(
        "vercel-token",
        "cloud",
        ["vercel"],
        assigned!("vercel", "[A-Za-z0-9]{24}")
    ),
    rule!(
        "linode-token",
        "cloud",
        ["linode"],
        assigned!("linode", "[a-f0-9]{64}")
    ),
    // ── Source hosting ─────────────────────────────────────────────────────────────────────
    rule!(
        "github-pat",
        "source-hosting",
        ["ghp_"],
        r"\bghp_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "github-oauth-token",
        "source-hosting",
        ["gho_"],
        r"\bgho_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "github-user-to-server-token",
        "source-hosting",
        ["ghu_"],
        r"\bghu_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "github-server-to-server-token",
        "source-hosting",
        ["ghs_"],
        r"\bghs_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "github-refresh-token",
        "source-hosting",
        ["ghr_"],
        r"\bghr_[A-Za-z0-9]{36,76}\b"
    ),
    rule!(
        "github-fine-grained-pat",
        "source-hosting",
        ["github_pat_"],
        r"\bgithub_pat_[A-Za-z0-9_]{80,90}\b"
    ),
    rule!(
        "github-legacy-token",
        "source-hosting",
        ["github"],
        assigned!("github[a-z_\\-]*(?:token|secret)", "[0-9a-f]{40}")
    ),
    rule!(
        "gitlab-pat",
        "source-hosting",
        ["glpat-"],
        r"\bglpat-[A-Za-z0-9_\-.]{20,}"
    ),
    rule!(
        "gitlab-pipeline-trigger-token",
        "source-hosting",
        ["glptt-"],
        r"\bglptt-[A-Za-z0-9_\-]{40}"
    ),
    rule!(
        "gitlab-runner-registration-token",
        "source-hosting",
        ["GR1348941"],
        r"\bGR1348941[A-Za-z0-9_\-]{20}"
    ),
    rule!(
        "gitlab-runner-token",
        "source-hosting",
        ["glrt-"],
        r"\bglrt-[A-Za-z0-9_\-.]{20,}"
    ),
    rule!(
        "gitlab-deploy-token",
        "source-hosting",
        ["gldt-"],
        r"\bgldt-[A-Za-z0-9_\-]{20,}"
    ),
    rule!(
        "gitlab-feed-token",
        "source-hosting",
        ["glft-"],
        r"\bglft-[A-Za-z0-9_\-]{20,}"
    ),
    rule!(
        "gitlab-oauth-secret",
        "source-hosting",
        ["gloas-"],
        r"\bgloas-[A-Za-z0-9_\-]{64}"
    ),
    rule!(
        "gitlab-scim-token",
        "source-hosting",
        ["glsoat-"],
        r"\bglsoat-[A-Za-z0-9_\-]{20}"
    ),
    rule!(
        "gitlab-incoming-mail-token",
        "source-hosting",
        ["glimt-"],
        r"\bglimt-[A-Za-z0-9_\-]{25}"
    ),
    rule!(
        "gitlab-agent-token",
        "source-hosting",
        ["glagent-"],
        r"\bglagent-[A-Za-z0-9_\-]{50,}"
    ),
    rule!(
        "gitlab-cicd-job-token",
        "source-hosting",
        ["glcbt-"],
        r"\bglcbt-[A-Za-z0-9_\-]{20,}"
    ),
    rule!(
        "bitbucket-app-password",
        "source-hosting",
        ["ATBB"],
        r"\bATBB[A-Za-z0-9_=.\-]{32}\b"
    ),
    rule!(
        "atlassian-api-token",
        "source-hosting",
        ["ATATT3", "ATCTT3"],
        r"\bAT[AC]TT3[A-Za-z0-9_\-=]{150,}"
    ),
    rule!(
        "gitea-token",
        "source-hosting",
        ["gitea"],
        assigned!("gitea", "[a-f0-9]{40}")
    ),
    // ── Chat ───────────────────────────────────────────────────────────────────────────────
    rule!(
        "slack-bot-token",
        "chat",
        ["xoxb-"],
        r"\bxoxb-[0-9]{10,13}-[0-9]{10,13}[A-Za-z0-9\-]*"
    ),
    rule!(
        "slack-user-token",
        "chat",
        ["xoxp-"],
        r"\bxoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{28,34}"
    ),
    rule!(
        "slack-config-token",
        "chat",
        ["xoxe.xox", "xoxe-"],
        r"\bxoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{146,170}"
    ),
    rule!(
        "slack-app-token",
        "chat",
        ["xapp-"],
        r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"
    ),
    rule!(
        "slack-legacy-token",
        "chat",
        ["xoxa-", "xoxo-", "xoxr-", "xoxs-"],
        r"\bxox[aors]-(?:\d+-)+[a-z0-9]+"
    ),
    rule!(
        "slack-webhook-url",
        "chat",
        ["hooks.slack.com"],
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{40,80}"
    ),
    rule!(
        "discord-webhook-url",
        "chat",
        ["/api/webhooks/"],
        r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,68}"
    ),
    rule!(
        "discord-bot-token",
        "chat",
        ["discord"],
        assigned!(
            "discord",
            "[MNO][A-Za-z0-9_\\-]{23,25}\\.[A-Za-z0-9_\\-]{6}\\.[A-Za-z0-9_\\-]{27,38}"
        )
    ),
    rule!(
        "telegram-bot-token",
        "chat",
        [":AA"],
        r"(?:\b|bot)([0-9]{8,10}:AA[0-9A-Za-z_\-]{33})(?:[^0-9A-Za-z_\-]|$)"
    ),
    rule!(
        "teams-webhook-url",
        "chat",
        ["webhook.office.com"],
        r"https://[a-z0-9\-]+\.webhook\.office\.com/webhookb2/[a-z0-9\-]+@[a-z0-9\-]+/IncomingWebhook/[a-z0-9]{32}/[a-z0-9\-]{36}"
    ),
    rule!(
        "twitter-bearer-token",
        "chat",
        ["AAAAAAAAAAAAAAAAAAAAA"],
        r"\bA{21}[A-Za-z0-9%]{30,}",
        Check::NotPlaceholder
    ),
    rule!(
        "mattermost-token",
        "chat",
        ["mattermost"],
        assigned!("mattermost", "[a-z0-9]{26}")
    ),
    // ── Payments ───────────────────────────────────────────────────────────────────────────
    rule!(
        "stripe-secret-key",
        "payments",
        ["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,99}\b"
    ),
    rule!(
        "stripe-webhook-secret",
        "payments",
        ["whsec_"],
        r"\bwhsec_[A-Za-z0-9]{32,}\b"
    ),
    rule!(
        "square-access-token",
        "payments",
        ["EAAA", "sq0atp-"],
        r"\b(?:EAAA[A-Za-z0-9_\-]{60}|sq0atp-[A-Za-z0-9_\-]{22})\b"
    ),
    rule!(
        "square-oauth-secret",
        "payments",
        ["sq0csp-"],
        r"\bsq0csp-[A-Za-z0-9_\-]{43}\b"
    ),
    rule!(
        "braintree-access-token",
        "payments",
        ["access_token$"],
        r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}"
    ),
    rule!(
        "flutterwave-secret-key",
        "payments",
        ["FLWSECK"],
        r"\bFLWSECK(?:_TEST)?-[a-h0-9]{32}-X\b"
    ),
    rule!(
        "razorpay-key",
        "payments",
        ["rzp_"],
        r"\brzp_(?:live|test)_[A-Za-z0-9]{14}\b"
    ),
    rule!(
        "coinbase-secret",
        "payments",
        ["coinbase"],
        assigned!("coinbase[a-z_\\-]*secret", "[A-Za-z0-9+/=]{32,88}")
    ),
    // ── LLM vendors ────────────────────────────────────────────────────────────────────────
    rule!(
        "anthropic-api-key",
        "llm",
        ["sk-ant-"],
        r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_\-]{80,120}"
    ),
    rule!(
        "openai-api-key",
        "llm",
        ["sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"],
        r"\bsk-(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_\-]{20,200}T3BlbkFJ[A-Za-z0-9_\-]{20,200}|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,200}"
    ),
    rule!(
        "openai-legacy-key",
        "llm",
        ["sk-"],
        r"\bsk-[A-Za-z0-9]{48}\b"
    ),
    rule!(
        "openrouter-api-key",
        "llm",
        ["sk-or-"],
        r"\bsk-or-v1-[a-f0-9]{64}\b"
    ),
    rule!(
        "huggingface-token",
        "llm",
        ["hf_"],
        r"\bhf_[A-Za-z0-9]{34,40}\b"
    ),
    rule!(
        "huggingface-org-token",
        "llm",
        ["api_org_"],
        r"\bapi_org_[A-Za-z0-9]{34}\b"
    ),
    rule!("groq-api-key", "llm", ["gsk_"], r"\bgsk_[A-Za-z0-9]{52}\b"),
    rule!("replicate-token", "llm", ["r8_"], r"\br8_[A-Za-z0-9]{37}\b"),
    rule!(
        "perplexity-api-key",
        "llm",
        ["pplx-"],
        r"\bpplx-[A-Za-z0-9]{48}\b"
    ),
    rule!("xai-api-key", "llm", ["xai-"], r"\bxai-[A-Za-z0-9]{80}\b"),
    rule!(
        "langsmith-api-key",
        "llm",
        ["lsv2_"],
        r"\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b"
    ),
    rule!(
        "fireworks-api-key",
        "llm",
        ["fw_"],
        r"\bfw_[A-Za-z0-9]{24}\b"
    ),
    rule!(
        "pinecone-api-key",
        "llm",
        ["pcsk_"],
        r"\bpcsk_[A-Za-z0-9_]{50,}"
    ),
    rule!("elevenlabs-api-key", "llm", ["sk_"], r"\bsk_[a-f0-9]{48}\b"),
    rule!(
        "cohere-api-key",
        "llm",
        ["cohere", "co_api"],
        assigned!("(?:cohere|co_api)", "[A-Za-z0-9]{40}")
    ),
    rule!(
        "mistral-api-key",
        "llm",
        ["mistral"],
        assigned!("mistral", "[A-Za-z0-9]{32}")
    ),
    rule!(
        "deepseek-api-key",
        "llm",
        ["deepseek"],
        assigned!("deepseek", "sk-[a-f0-9]{32}")
    ),
    rule!(
        "together-api-key",
        "llm",
        ["together"],
        assigned!("together", "[a-f0-9]{64}|tgp_v1_[A-Za-z0-9_\\-]{40,}")
    ),
    rule!(
        "wandb-api-key",
        "llm",
        ["wandb"],
        assigned!("wandb", "[a-f0-9]{40}")
    ),
    rule!(
        "voyage-api-key",
        "llm",
        ["voyage"],
        assigned!("voyage", "pa-[A-Za-z0-9_\\-]{40,}")
    ),
    // ── Package registries ─────────────────────────────────────────────────────────────────
    rule!(
        "npm-token",
        "registry",
        ["npm_"],
        r"\bnpm_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "npmrc-auth-token",
        "registry",
        ["_authToken"],
        r"_authToken\s*=\s*([A-Za-z0-9_\-.+/=]{20,})"
    ),
    rule!(
        "npmrc-auth",
        "registry",
        ["_auth", "_password"],
        r#"(?m)(?:^|[\s:])_(?:auth|password)\s*=\s*["']?([A-Za-z0-9+/]{8,}={0,2})"#
    ),
    rule!(
        "pypi-token",
        "registry",
        ["pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"],
        r"\bpypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}"
    ),
    rule!(
        "rubygems-api-key",
        "registry",
        ["rubygems_"],
        r"\brubygems_[a-f0-9]{48}\b"
    ),
    rule!("nuget-api-key", "registry", ["oy2"], r"\boy2[a-z0-9]{43}\b"),
    rule!(
        "docker-hub-pat",
        "registry",
        ["dckr_pat_", "dckr_oat_"],
        r"\bdckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,}"
    ),
    rule!(
        "crates-io-token",
        "registry",
        ["cio"],
        r"\bcio[A-Za-z0-9]{32}\b"
    ),
    rule!(
        "jfrog-api-key",
        "registry",
        ["AKCp"],
        r"\bAKCp[A-Za-z0-9]{69}\b"
    ),
    rule!(
        "jfrog-identity-token",
        "registry",
        ["cmVmdGtuOjAx"],
        r"\bcmVmdGtuOjAx[A-Za-z0-9]{52,}"
    ),
    rule!(
        "clojars-token",
        "registry",
        ["CLOJARS_"],
        r"\bCLOJARS_[a-z0-9]{60}\b"
    ),
    rule!(
        "postman-api-key",
        "registry",
        ["PMAK-"],
        r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b"
    ),
    rule!(
        "pubdev-token",
        "registry",
        ["pub-dev", "PUB_TOKEN"],
        assigned!("pub[_\\-]?(?:dev)?[_\\-]?token", "[A-Za-z0-9_\\-.]{40,}")
    ),
    // ── SaaS ───────────────────────────────────────────────────────────────────────────────
    rule!(
        "twilio-api-key",
        "saas",
        ["twilio"],
        assigned!("twilio", "SK[0-9a-fA-F]{32}|[0-9a-f]{32}")
    ),
    rule!(
        "sendgrid-api-key",
        "saas",
        ["SG."],
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b"
    ),
    rule!("mailgun-api-key", "saas", ["key-"], r"\bkey-[a-f0-9]{32}\b"),
    rule!(
        "mailchimp-api-key",
        "saas",
        ["-us"],
        r"\b[0-9a-f]{32}-us[0-9]{1,2}\b"
    ),
    rule!(
        "shopify-access-token",
        "saas",
        ["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"
    ),
    rule!(
        "databricks-token",
        "saas",
        ["dapi"],
        r"\bdapi[a-f0-9]{32}(?:-\d)?\b"
    ),
    rule!(
        "datadog-api-key",
        "saas",
        ["datadog", "dd_api", "dd_app"],
        assigned!("(?:datadog|dd_api|dd_app)", "[a-f0-9]{40}|[a-f0-9]{32}")
    ),
    rule!(
        "new-relic-key",
        "saas",
        ["NRAK-", "NRJS-", "NRII-"],
        r"\b(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19}|NRII-[A-Za-z0-9_\-]{32})\b"
    ),
    rule!(
        "sentry-token",
        "saas",
        ["sntrys_", "sntryu_"],
        r"\b(?:sntrys_[A-Za-z0-9+/=_]{50,}|sntryu_[a-f0-9]{64})"
    ),
    rule!(
        "linear-api-key",
        "saas",
        ["lin_api_"],
        r"\blin_api_[A-Za-z0-9]{40}\b"
    ),
    rule!(
        "tailscale-key",
        "cloud",
        ["tskey-"],
        r"\btskey-(?:auth|api|client|scim|webhook|oauth)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}\b"
    ),
    rule!(
        "supabase-secret-key",
        "cloud",
        ["sb_secret_"],
        r"\bsb_secret_[A-Za-z0-9_\-]{20,}\b"
    ),
    rule!(
        "render-api-key",
        "cloud",
        ["rnd_"],
        r"\brnd_[A-Za-z0-9]{24,}\b"
    ),
    rule!(
        "resend-api-key",
        "saas",
        ["re_"],
        r"\bre_[A-Za-z0-9]{6,12}_[A-Za-z0-9]{16,}\b"
    ),
    rule!(
        "neon-api-key",
        "cloud",
        ["napi_"],
        r"\bnapi_[a-z0-9]{60,72}\b"
    ),
    rule!(
        "buildkite-token",
        "saas",
        ["bkua_"],
        r"\bbkua_[a-f0-9]{40}\b"
    ),
    rule!(
        "sourcegraph-token",
        "source-hosting",
        ["sgp_"],
        r"\bsgp_(?:local_|[a-f0-9]{16}_)?[a-f0-9]{40}\b"
    ),
    rule!(
        "netlify-pat",
        "cloud",
        ["nfp_", "nfc_", "nfo_", "nfu_"],
        r"\bnf[pcou]_[A-Za-z0-9]{36,44}\b"
    ),
    rule!(
        "dropbox-token",
        "saas",
        ["sl."],
        r"\bsl\.(?:u\.)?[A-Za-z0-9_\-]{130,}"
    ),
    rule!(
        "cloudflare-tunnel-token",
        "cloud",
        ["eyJhIjoi"],
        // Base64 of `{"a":account,"t":tunnel,"s":secret}`.
        r"\beyJhIjoi[A-Za-z0-9+/_\-]{60,}={0,2}"
    ),
    rule!(
        "notion-token",
        "saas",
        ["ntn_", "secret_"],
        r"\b(?:ntn_[0-9]{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43})\b"
    ),
    rule!(
        "okta-api-token",
        "saas",
        ["okta"],
        assigned!("okta", "00[A-Za-z0-9_\\-]{40}")
    ),
    rule!(
        "grafana-token",
        "saas",
        ["glc_", "glsa_"],
        r"\b(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})"
    ),
    rule!(
        "planetscale-token",
        "saas",
        ["pscale_"],
        r"\bpscale_(?:tkn|oauth|pw)_[A-Za-z0-9_\-=.]{32,64}"
    ),
    rule!("supabase-token", "saas", ["sbp_"], r"\bsbp_[a-f0-9]{40}\b"),
    rule!(
        "figma-token",
        "saas",
        ["figd_"],
        r"\bfigd_[A-Za-z0-9_\-]{40}"
    ),
    rule!(
        "dynatrace-token",
        "saas",
        ["dt0c01."],
        r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b"
    ),
    rule!(
        "mapbox-secret-token",
        "saas",
        ["sk.eyJ"],
        r"\bsk\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]{20,}"
    ),
    rule!(
        "readme-api-key",
        "saas",
        ["rdme_"],
        r"\brdme_[a-z0-9]{70}\b"
    ),
    rule!(
        "prefect-api-key",
        "saas",
        ["pnu_"],
        r"\bpnu_[A-Za-z0-9]{36}\b"
    ),
    rule!(
        "easypost-api-key",
        "saas",
        ["EZAK", "EZTK"],
        r"\bEZ[AT]K[A-Za-z0-9]{54}\b"
    ),
    rule!(
        "typeform-token",
        "saas",
        ["tfp_"],
        r"\btfp_[A-Za-z0-9_\-.=]{59}"
    ),
    rule!(
        "onepassword-service-token",
        "saas",
        ["ops_eyJ"],
        r"\bops_eyJ[A-Za-z0-9+/=_\-]{250,}",
        Check::None,
        2048
    ),
    rule!(
        "circleci-token",
        "saas",
        ["CCIPAT_"],
        r"\bCCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}\b"
    ),
    rule!(
        "airtable-pat",
        "saas",
        ["airtable"],
        assigned!(
            "airtable",
            "pat[A-Za-z0-9]{14}\\.[a-f0-9]{64}|key[A-Za-z0-9]{14}"
        )
    ),
    rule!(
        "asana-token",
        "saas",
        ["asana"],
        assigned!(
            "asana",
            "[0-9]/[0-9]{16}:[A-Za-z0-9]{32}|[0-9]{16}:[a-f0-9]{32}"
        )
    ),
    rule!(
        "hubspot-token",
        "saas",
        ["pat-na1-", "pat-eu1-"],
        r"\bpat-(?:na|eu)1-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}\b"
    ),
    rule!(
        "zendesk-token",
        "saas",
        ["zendesk"],
        assigned!("zendesk", "[A-Za-z0-9]{40}")
    ),
    rule!(
        "snyk-token",
        "saas",
        ["snyk"],
        assigned!(
            "snyk",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        )
    ),
    rule!(
        "age-secret-key",
        "crypto",
        ["AGE-SECRET-KEY-1"],
        r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"
    ),
    // ── Private keys, tokens, credentials in URLs ──────────────────────────────────────────
    rule!(
        "private-key",
        "private-key",
        ["-----BEGIN"],
        r"-----BEGIN[ A-Z0-9_\-]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:(?s:.)*?-----END[ A-Z0-9_\-]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?:[A-Za-z0-9+/=:\- \t\r\n]|\\[nr])+)",
        Check::PemBody,
        16384
    ),
    rule!(
        "jwk-private-key",
        "private-key",
        ["\"kty\""],
        // A JSON Web Key's private members (EC and OKP `d`, RSA's primes and exponents, an
        // octet key's `k`), near its `kty`.
        r#""(?:d|p|q|dp|dq|qi|k)"\s*:\s*"([A-Za-z0-9_\-]{16,})""#,
        Check::None,
        8192
    ),
    rule!(
        "openvpn-static-key",
        "private-key",
        ["OpenVPN Static key"],
        r"-----BEGIN OpenVPN Static key V\d-----(?:(?s:.)*?-----END OpenVPN Static key V\d-----|(?:[0-9a-fA-F \t\r\n]|\\[nr])+)",
        Check::None,
        8192
    ),
    rule!(
        "putty-private-key",
        "private-key",
        ["PuTTY-User-Key-File"],
        r"PuTTY-User-Key-File-\d: (?s:.)*?Private-MAC: [0-9a-f]+",
        Check::None,
        16384
    ),
    rule!(
        "jwt",
        "token",
        ["eyJ"],
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    ),
    rule!(
        "url-credentials",
        "credentials",
        ["://"],
        // The scheme before `://` is checked by the detector (`Check::UrlPassword`).
        r#"://[^\s:/?#@"'<>\\]{0,128}:([^\s/?<>\\]{1,256})@[A-Za-z0-9.\-\[\]]+"#,
        Check::UrlPassword
    ),
    rule!(
        "connection-string-password",
        "credentials",
        ["password=", "pwd="],
        r#"(?im)(?:^|[;"'?&])\s*(?:password|pwd)\s*=\s*(?:\{((?:[^}]|\}\})+)\}|([^;"'\r\n&{=]{3,128});|([^;"'\s&{,)(\[]{3,128})(?:[;\s&,)]|$))"#,
        Check::NotPlaceholder
    ),
    rule!(
        "cli-password",
        "credentials",
        [
            "-u ",
            "--user",
            "sshpass",
            "mysql",
            "mariadb",
            "sqlplus",
            "-p'",
            "-p\"",
            "redis-cli",
            "mongo",
            "docker login",
            "htpasswd",
            "storepass",
            "keypass",
            "7z ",
            "7za ",
            "zip -",
            "smbclient",
            "mc alias",
            "mc config",
            "psexec",
            "paexec",
            "chpasswd",
            "secret set",
            "ldap",
            "sqlcmd",
            "xfreerdp",
            "lftp",
            "az login",
            "az sql",
            "az ad",
            "ssh-keygen",
            "rabbitmqctl",
            "unrar",
            "openssl passwd",
            "twine",
            "net use",
            "--password-stdin",
            "--stdin",
            "secret put",
            "env add",
            "mysqladmin",
            "net user",
            "requirepass",
            "secret create",
            "--with-token",
            "jdbc:oracle:thin:",
            "http -a",
            "https -a",
            "http --auth",
            "--auth="
        ],
        r#"(?:(?:^|\s)(?:-u|--user)[ =]['"]?[^\s:'"@/]+:([^\s'"]{4,})|(?-u:\b)sshpass\s+-p\s*['"]?([^\s'"]{4,})|(?-u:\b)(?:mysql|mysqldump|mariadb|mysqladmin)(?-u:\b)[^\n|;&]*?\s-p['"]?([^\s'"]{4,})|(?-u:\b)sqlplus\s+(?:-\w+\s+)*[A-Za-z0-9_$#]+/([^\s@'"]{3,128})@|(?-u:\b)redis-cli(?-u:\b)[^\n|;&]*?\s(?:-a|--pass)\s+['"]?([^\s'"]{4,})|(?-u:\b)mongo(?:sh)?(?-u:\b)[^\n|;&]*?\s-p\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)docker\s+login(?-u:\b)[^\n|;&]*?\s-p\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)htpasswd\s+-[A-Za-z]*n[A-Za-z]*\s+\S+\s+['"]?([^\s'"]{4,})|(?-u:\b)htpasswd\s+(?:-[A-Za-z]+\s+)*-[A-Za-z]*b[A-Za-z]*\s+(?:-[A-Za-z]+\s+)*[^\s-]\S*\s+\S+\s+['"]?([^\s'"]{4,})|(?-u:\b)ldap(?:search|modify|add|delete|passwd|whoami|compare)(?-u:\b)[^\n|;&]*?\s-w\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)sqlcmd(?-u:\b)[^\n|;&]*?\s-P\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)xfreerdp(?-u:\b)[^\n|;&]*?\s/p:['"]?([^\s'"]{4,})|(?-u:\b)lftp(?-u:\b)[^\n|;&]*?\s-u\s+['"]?[^\s,'"]+,([^\s'"]{4,})|(?-u:\b)az\s+[a-z\- ]*?(?-u:\b)(?:login|create|update|reset)(?-u:\b)[^\n|;&]*?\s(?:-p|--password|--admin-password|--secret)\s+['"]?([^\s'"$-][^\s'"]{3,})|(?-u:\b)ssh-keygen(?-u:\b)[^\n|;&]*?\s-[NP]\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)rabbitmqctl\s+(?:add_user|change_password)\s+\S+\s+['"]?([^\s'"]{4,})|(?-u:\b)unrar(?-u:\b)[^\n|;&]*?\s-p([^\s'"-][^\s'"]{3,})|(?-u:\b)openssl\s+passwd(?:\s+-[0-9a-z]+)*\s+['"]?([^\s'"$-][^\s'"]{3,})|(?-u:\b)twine(?-u:\b)[^\n|;&]*?\s(?:-p|--password)\s+['"]?([^\s'"$-][^\s'"]{3,})|(?-u:\b)net\s+use(?-u:\b)[^\n|;&]*?/user:\S+\s+['"]?([^\s'"/*$][^\s'"]{3,})|(?-u:\b)echo\s+(?:-[ne]\s+)?['"]?([^\s'"$|-][^\s'"|]{3,})['"]?\s*\|\s*(?:sudo\s+)?(?:[^\n|]*--password-stdin|passwd\s+--stdin|[^\n|]*(?-u:\b)secret\s+(?:put|set|create)|vercel\s+env\s+add|[^\n|]*--with-token)|\s-(?:src|dest)?(?:store|key)pass\s+['"]?([^\s'"$%-][^\s'"]{3,})|(?-u:\b)7za?\s+[a-z](?-u:\b)[^\n|;&]*?\s-p['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)(?:un)?zip(?-u:\b)[^\n|;&]*?\s(?:-P|--password)\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)smbclient(?-u:\b)[^\n|;&]*?\s(?:-U|--user)[ =]['"]?[^\s%'"]+%([^\s'"]{4,})|(?-u:\b)echo\s+(?:-[ne]\s+)?['"]?[A-Za-z0-9_.\-]{1,32}:([^\s:'"]{4,})['"]?\s*\|\s*(?:sudo\s+)?chpasswd|(?-u:\b)chpasswd\s*<<<\s*['"]?[A-Za-z0-9_.\-]{1,32}:([^\s:'"]{4,})|(?-u:\b)gh\s+secret\s+set(?-u:\b)[^\n|;&]*?\s(?:--body|-b)[ =]?['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)mc\s+(?:alias\s+set|config\s+host\s+add)\s+\S+\s+\S+\s+\S+\s+['"]?([^\s'"$-][^\s'"]{3,})|(?-u:\b)(?:psexec|paexec)(?:64)?(?:\.exe)?(?-u:\b)[^\n|;&]*?\s-p\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)mysqladmin(?-u:\b)[^\n|;&]*?\spassword\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)net\s+user\s+[^\s/]+\s+['"]?([^\s'"*/][^\s'"]{3,})|(?:--|(?-u:\b))requirepass\s+['"]?([^\s'"-][^\s'"]{3,})|(?-u:\b)redis-cli(?-u:\b)[^\n|;&]*?\sAUTH\s+(?:default\s+)?['"]?([^\s'"]{4,})|(?-u:\b)jdbc:oracle:thin:[A-Za-z0-9_$#]+/([^\s@'"]{3,})@|(?-u:\b)https?\s+(?:[^\n|;&]*?\s)?(?:-a|--auth)[ =]['"]?[^\s:'"]+:([^\s'"]{4,}))"#,
        Check::UrlPassword
    ),
    rule!(
        "sql-password",
        "credentials",
        ["identified", "password '", "set password"],
        // In double quotes only where the statement is written in capitals: prose says a
        // problem was "identified by" someone.
        r#"(?i)\b(?:identified\s+(?:with\s+\w+\s+)?by|(?:with|login|encrypted|unencrypted|user\s+\S+|role\s+\S+)\s+password)\s+'((?:[^'\n]|''){4,128})'|(?-i:\b(?:IDENTIFIED\s+(?:WITH\s+\w+\s+)?BY|(?:WITH|LOGIN|ENCRYPTED|UNENCRYPTED)\s+PASSWORD))\s+"([^"\n]{4,128})"|\bset\s+password(?:\s+for\s+\S+)?\s*=\s*(?:password\(\s*)?'((?:[^'\n]|''){4,128})'"#,
        Check::UrlPassword
    ),
    rule!(
        "positional-password",
        "credentials",
        [
            "getconnection(",
            "pdo(",
            "mysqli",
            "connect(",
            "login(",
            "sequelize(",
            ".auth(",
            "ftp(",
            "ftp_tls(",
            "bind(",
            "bind_s(",
            "ldap_bind",
            "connection(",
            "passwordauthentication",
            "usernamepasswordcredentials",
            "set_password(",
            "ftp_login",
            "->connect",
            "ftp.new(",
            ", :login",
            ", :plain",
            ", :cram_md5"
        ],
        // A password passed by position: JDBC's `getConnection(url, "u", "pw")`, PHP's
        // `new PDO($dsn, 'u', 'pw')` and `mysqli("host", "u", "pw")`, Python's
        // `MySQLdb.connect("host", "u", "pw")` and `smtp.login("u", "pw")`, Sequelize's
        // `new Sequelize("db", "u", "pw")`, a Redis client's `auth("pw")`, Ruby's
        // `Net::FTP.new("host", "u", "pw")` and `Net::SMTP.start(…, "u", "pw", :login)`.
        r#"(?i)(?:(?-u:\b)getConnection\(\s*[^,()\n]+,|(?-u:\b)PDO\(\s*[^,()\n]+,|(?-u:\b)(?:mysqli(?:_connect)?|(?:MySQLdb|pymysql|mysql\.connector|psycopg2?|pg8000)\.connect)\(\s*["'][^"'\n]*["']\s*,|(?-u:\b)Sequelize\(\s*["'][^"'\n]*["']\s*,)\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|\.login\(\s*["'][^"'\n]+["']\s*,\s*["']([^"'\n]{4,})["']\s*\)|(?-u:\b)(?:r|rc|rdb|client|conn|cache|\w*jedis\w*|\w*redis\w*)\.auth\(\s*["']([^"'\n]{4,})["']\s*\)|\.auth\(\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']\s*\)|(?-u:\b)(?:cx_Oracle|oracledb)\.connect\(\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)(?:pymssql\.connect|mysql_connect|FTP(?:_TLS)?(?:\.new)?)\(\s*["'][^"'\n]*["']\s*,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)(?:simple_bind_s|simple_bind|bind_s|ldap_bind)\(\s*(?:\$\w+\s*,\s*)?["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)Connection\(\s*\w+\s*,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|\.bind\(\s*["'][^"'\n]*(?:cn|uid|dc)=[^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|\.connect\(\s*[^,()\n]+,\s*\d+\s*,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)(?:PasswordAuthentication|UsernamePasswordCredentials)\(\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)set_password\(\s*["'][^"'\n]*["']\s*,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|->connect\(\s*[^,()\n]+,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|(?-u:\b)ftp_login\(\s*\$\w+\s*,\s*["'][^"'\n]*["']\s*,\s*["']([^"'\n]{4,})["']|\.start\([^()\n]*?,\s*["']([^"'\n]{4,})["']\s*,\s*:(?:plain|login|cram_md5)(?-u:\b)"#,
        Check::UrlPassword
    ),
    rule!(
        "auth-pair-password",
        "credentials",
        [
            "auth=(",
            "auth = (",
            "auth = [",
            "creds = (",
            "creds=(",
            "credentials = (",
            "credentials=(",
            "login = (",
            "basicauth(",
            "networkcredential(",
            "credentials("
        ],
        // A user and a password passed as a pair: requests' `auth=('u', 'pw')`,
        // `HTTPBasicAuth('u', 'pw')`, .NET's `NetworkCredential("u", "pw")`.
        r#"(?i)(?:\b(?:auth|creds|credentials|basic_auth|http_auth|login)\s*=\s*[\(\[]|basicauth\(|\bnetworkcredential\(|\bcredentials\()\s*['"][^'"\n]{1,64}['"]\s*,\s*['"]([^'"\n]{4,128})['"]"#,
        Check::UrlPassword
    ),
    rule!(
        "encoded-basic-auth",
        "credentials",
        [
            "b64encode(",
            "encodetostring(",
            "btoa(",
            "base64_encode(",
            "encode64(",
            "strict_encode64(",
            "tobase64string("
        ],
        // Basic credentials encoded in code: Python's `b64encode(b"user:pw")`, Java's
        // `encodeToString("user:pw".getBytes())`, `btoa("user:pw")`, PHP's `base64_encode`,
        // Ruby's `Base64.strict_encode64`, .NET's `Convert.ToBase64String(…("user:pw"))`.
        r#"(?i)(?:b64encode|encodeToString|btoa|base64_encode|encode64|ToBase64String)\(\s*(?:[A-Za-z_.]+\(\s*)?[bu]?['"`][^'"`:\s]{1,64}:([^'"`\s]{4,128})['"`]"#,
        Check::UrlPassword
    ),
    rule!(
        "sonar-token",
        "credentials",
        ["sonar.login", "sonar.token", "sonar.password"],
        // SonarQube's token as a scanner's property (`-Dsonar.login=…`, `sonar.token=…`).
        r#"(?i)sonar\.(?:login|token|password)\s*[=:]\s*['"]?([^\s'"$][^\s'"]{7,})"#,
        Check::UrlPassword
    ),
    rule!(
        "placeholder-default",
        "credentials",
        ["${"],
        // A default written into a placeholder for a credential: Spring's
        // `${DB_PASSWORD:…}`, `@Value("${stripe.key:…}")`, shell's `${API_TOKEN:-…}`.
        r"\$\{[A-Za-z0-9_.\-]*(?i:pass|secret|token|key|credential|auth)[A-Za-z0-9_.\-]*:-?([^}\s'`]{8,256})\}",
        Check::Random
    ),
    rule!(
        "prose-secret",
        "credentials",
        [
            "password is ",
            "password was ",
            "password to ",
            "password ",
            "api key ",
            "api key is ",
            "secret to ",
            "secret is ",
            "token is ",
            "token to ",
            "use token ",
            "using token ",
            "with token ",
            "use api key ",
            "using api key ",
            "with api key ",
            "use password ",
            "with password ",
            "**password**",
            "**token**",
            "**api key**",
            "**secret**"
        ],
        // A secret in prose or Markdown: `my db password is …`, `use api key … for`, `set the JWT
        // secret to …`, `- **Password**: `…``. Only what looks generated counts.
        r"(?i)(?-u:\b)(?:password|passwd|passphrase|api[ _-]?key|secret|token)(?:\*\*)?(?: (?:is|was|to|of)| ?:)? [`'\x22]?([A-Za-z0-9][A-Za-z0-9_\-+/=!@#%^&*~]{7,255}?)[`'\x22]?(?:[\s,;)]|\.(?:\s|$)|$)",
        Check::Random
    ),
    rule!(
        "dsn-password",
        "credentials",
        ["@tcp(", "@unix("],
        r#"[A-Za-z0-9_.\-]{1,64}:([^\s@/:"'`]{3,128})@(?:tcp|unix)\("#,
        Check::UrlPassword
    ),
    rule!(
        "pgpass-password",
        "credentials",
        [":5432:", ":*:"],
        r"(?m)(?:^|\s)[^:\s#]+:(?:\d+|\*):[^:\s]+:[^:\s]+:([^\s:]{4,128})(?:\s|$)",
        Check::UrlPassword
    ),
    rule!(
        "powershell-plaintext-password",
        "credentials",
        ["ConvertTo-SecureString"],
        r#"(?i)ConvertTo-SecureString\s+(?:-String\s+)?['"]([^'"\r\n]{4,128})['"]\s+-AsPlainText"#,
        Check::UrlPassword
    ),
    rule!(
        "netscape-cookie",
        "credentials",
        ["\tTRUE\t", "\tFALSE\t"],
        // A cookies.txt line: domain, subdomains, path, secure, expiry, name, value.
        r"(?m)^[^\t\n]+\t(?:TRUE|FALSE)\t[^\t\n]*\t(?:TRUE|FALSE)\t\d+\t[^\t\n]+\t(\S{8,})",
        Check::NotPlaceholder
    ),
    rule!(
        "curl-userpwd",
        "credentials",
        ["userpwd"],
        // libcurl's `CURLOPT_USERPWD, "user:password"` (PHP, pycurl, C), also for a proxy.
        r#"(?i)\b(?:curlopt_|pycurl\.)?(?:proxy)?userpwd["']?\s*(?:,|=>|=)\s*["'][^:"'\s]{0,64}:([^"'\s]{4,128})["']"#,
        Check::NotPlaceholder
    ),
    rule!(
        "keychain-set",
        "credentials",
        ["forkey"],
        // Apple's keychain wrappers and defaults: `.set("…", forKey: "password")`.
        r#"(?i)\.set\(\s*"([^"\\]{6,256})"\s*,\s*forKey:\s*"[^"]*(?:password|passwd|token|secret|apikey|api_key|credential)[^"]*""#,
        Check::NotPlaceholder
    ),
    rule!(
        "command-output",
        "credentials",
        [
            "op read",
            "op item",
            "op inject",
            "terraform output",
            "kubectl",
            "vault ",
            "auth token",
            "print-access-token",
            "print-identity-token",
            "versions access",
            "get-login-password",
            "get-secret-value",
            "get-parameter",
            "configure get",
            "get-authorization-token",
            "generate-db-auth-token",
            "keyvault",
            "get-access-token",
            "expose-token",
            "keys list",
            "find-generic-password",
            "find-internet-password",
            "pass show",
            "gopass",
            "secret-tool",
            "keyring get",
            "bw get",
            "lpass",
            "chamber",
            "doppler",
            "heroku",
            "sops",
            "openssl rand",
            "pwgen",
            "token create",
            "consul kv",
            "printenv",
            "echo",
            "printf",
            "cat ",
            "jq ",
            "yq ",
            "python",
            "node ",
            "deno ",
            "bun ",
            "ruby ",
            "perl ",
            "php ",
            "grep",
            "rg ",
            "sed ",
            "awk ",
            "pulumi",
            "head ",
            "tail ",
            "get-content",
            "git config",
            "npm config",
            "yarn config",
            "security find",
            "gpg ",
            "kms decrypt",
            "netlify env",
            "infisical",
            "echo %",
            "$env:",
            "getenvironmentvariable",
            "get-secret"
        ],
        // A terminal transcript: a command that prints a secret, and the one word on the line
        // after it (`$ op read op://…` / `hZ8…`).
        concat!(
            r"(?m)^[^\n]*",
            revealing_command!(),
            r"[^\n]*\r?\n[ \t]*(\S{6,})[ \t]*\r?$"
        ),
        Check::Printed,
        1024
    ),
    rule!(
        "cookie-header",
        "credentials",
        ["cookie", " -b "],
        // A request's cookies (sessions, CSRF and remember-me tokens among them), whole; the
        // first pair of a `Set-Cookie`, without its attributes; curl's `-b`/`--cookie`; Go's
        // `http.Cookie{…, Value: "…"}`, `document.cookie = "…"`, `cookies.set("name", "…")`.
        r#"(?im)(?:(?:^|[\s"'{,>(])cookie["']?\s*:\s*["']?([^\s=;"']{1,128}=[^\r\n"']{6,})|\bset-cookie["']?\s*:\s*["']?[^=;\s"']{1,128}=([^;\s"']{8,})|\bcurl\b[^\n]*?\s(?:-b|--cookie)[ =]["']?([^"'\s]*=[^"'\s]{8,})|\bcookie\s*\{[^}]{0,200}?\bvalue:\s*"([^"]{8,})"|\bdocument\.cookie\s*=\s*["'`]([^"'`]*=[^"'`]{8,})|\bcookies\.set\(\s*["'][^"']+["']\s*,\s*["']([^"']{8,})["'])"#,
        Check::Cookie
    ),
    rule!(
        "url-token-user",
        "credentials",
        ["://"],
        // A token as a URL's only user part (`https://<PAT>@dev.azure.com/…`).
        r#"://([A-Za-z0-9_\-]{20,256})@[A-Za-z0-9.\-]+"#,
        Check::Random
    ),
    rule!(
        "basic-auth-header",
        "credentials",
        ["authorization"],
        r#"(?i)\bauthorization["']?\]?(?:\s*(?:=>|[:=,])\s*\[?|\s+)["']?basic\s+([A-Za-z0-9+/]{12,}={0,2})"#
    ),
    rule!(
        "bearer-auth-header",
        "credentials",
        [
            "authorization",
            "bearer_auth",
            "authenticationheadervalue",
            "bearer {",
            "bearer %"
        ],
        // Also as code writes it: ``Authorization: `Bearer …` ``, `Header.Set("Authorization",
        // "Bearer …")`, `f"Bearer …"`, `"Bearer " + "…"`, `format!("Bearer {}", "…")`,
        // `String.format("Bearer %s", "…")`, Go's `http.Header{"Authorization": []string{…}}`.
        // Also Go's `map[Authorization:[Bearer …]]`, Ruby's `=>`, nginx's
        // `proxy_set_header Authorization "Bearer …"`, .NET's `AuthenticationHeaderValue(
        // "Bearer", "…")`, reqwest's `.bearer_auth("…")`.
        r#"(?i)(?:\bauthorization["']?\]?(?:\s*(?:=>|[:=,])\s*(?:\[\]string\s*)?[\[{]?|\s+)(?:[fr]?["'`])?\s*(?:bearer|token|bot|apikey)(?:\s+|\s*["'`]\s*\+\s*["'`]\s*)|\.bearer_auth\(\s*"|authenticationheadervalue\(\s*"bearer"\s*,\s*"|["'`]bearer\s+(?:\{0?\}|%[sv])["'`]\s*(?:,|%|\.format\()\s*\(?\s*["'])([A-Za-z0-9_\-.~+/]{20,}=*)"#,
        Check::NotPlaceholder
    ),
    RuleSpec {
        id: "generic-secret-assignment",
        category: "generic",
        keywords: super::assign::KEYWORDS,
        pattern: "",
        check: Check::Assignment,
        reach: 0,
    },
    RuleSpec {
        id: "credential-field",
        category: "generic",
        keywords: &[],
        pattern: "",
        check: Check::Field,
        reach: 0,
    },
];

/// Rules only run when no more specific rule claimed the same span.
pub fn is_generic(id: &str) -> bool {
    matches!(
        id,
        "generic-secret-assignment"
            | "prose-secret"
            | "bearer-auth-header"
            | "credential-field"
            | "url-token-user"
            | "command-output"
    )
}
