//! Secrets known by their name rather than their shape: a value assigned to a key that names a
//! credential (`DB_PASSWORD=…`, `"client_secret": "…"`, `password: …`, `--token=…`).
//!
//! Two questions are answered here, for text and for structured JSON alike: does this key name a
//! credential ([`is_credential_key`]), and is what is assigned to it a value rather than code, a
//! reference or a placeholder ([`judge`]). In text the assignment's context decides how strict the
//! second question is: a dotenv or YAML line assigns a literal, so any real value counts; code
//! assigns expressions (`password=password`, `token = self.token`), so there an unquoted value
//! must look random to count.

use super::detect::is_placeholder;

/// Key segments that name a credential on their own (`password`, `DB_PASS`, `apiToken`).
const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "passcode",
    "passwort",
    "secret",
    "secrets",
    "token",
    "credential",
    "credentials",
    "auth",
    "apikey",
    "apitoken",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "privatekey",
    "secretkey",
    "accesskey",
    "clientsecret",
    "masterkey",
    "signingkey",
    "encryptionkey",
    "dbpassword",
    "dbpass",
    "authorization",
    "secretstring",
    "pin",
    "mnemonic",
    "seedphrase",
    "cookie",
    "sessionid",
    "sessid",
    "identitytoken",
    "psk",
    "pw",
    "creds",
    "bearer",
    "totp",
    "masterauth",
    "requirepass",
];

/// Words before `key` that make it a credential (`API_KEY`, `ENCRYPTION_KEY`, `signingKey`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "encryption",
    "encrypt",
    "decryption",
    "signing",
    "sign",
    "master",
    "client",
    "auth",
    "app",
    "hmac",
    "jwt",
    "cipher",
    "crypto",
    "account",
    "license",
    "session",
    "storage",
    "subscription",
    "admin",
    "webhook",
    "consumer",
    "deploy",
    "service",
    "shared",
    "root",
    "aes",
];

/// Segments that make a key something other than a credential (`max_tokens`, `nextToken`,
/// `token_type`, `password_field`).
const NOT_CREDENTIAL: &[&str] = &[
    "max",
    "min",
    "num",
    "total",
    "count",
    "input",
    "output",
    "prompt",
    "completion",
    "eos",
    "bos",
    "pad",
    "unk",
    "sep",
    "cls",
    "special",
    "stop",
    "next",
    "page",
    "continuation",
    "cursor",
    "limit",
    "budget",
    "usage",
    "cached",
    "reasoning",
    "allow",
    "allowed",
    // Idempotency and paging tokens (`ChangeToken`, `IdempotencyToken`, `SyncToken`,
    // `CancellationToken`).
    "change",
    "idempotency",
    "sync",
    "cancellation",
];

/// First segments that make the name an action on a credential, not one (`generate_private_key`,
/// `get_password`, `validate_token`).
const VERBS: &[&str] = &[
    "generate", "gen", "get", "set", "load", "read", "write", "create", "make", "parse",
    "validate", "check", "verify", "fetch", "encode", "decode", "has", "is", "with", "use", "hash",
    "compare", "find", "lookup", "save", "store", "require", "show", "hide", "print", "log",
    "mask", "redact",
];

/// Trailing segments that qualify which credential it is (`DB_PASSWORD_PROD`, `API_KEY_STAGING`).
const QUALIFIERS: &[&str] = &[
    "prod",
    "production",
    "staging",
    "stage",
    "stg",
    "dev",
    "development",
    "test",
    "qa",
    "uat",
    "local",
    "live",
    "sandbox",
    "primary",
    "secondary",
    "old",
    "new",
    "current",
    "backup",
    "alt",
    "main",
    "default",
    "ro",
    "rw",
    "readonly",
    "readwrite",
    "admin",
    "root",
    "master",
    "replica",
    "v",
];

/// Trailing segments that still leave the key naming the secret (`SECRET_KEY_BASE`, `TOKEN_B64`).
const VALUE_SUFFIXES: &[&str] = &[
    "base", "value", "val", "b64", "base64", "hex", "raw", "enc", "encoded", "str", "string",
];

/// The keywords (any case) that start a look at an assignment in text; used to prefilter.
pub const KEYWORDS: &[&str] = &[
    "pass",
    "pw",
    "creds",
    "bearer",
    "totp",
    "mnemonic",
    "phrase",
    "cookie",
    "sessid",
    "sessionid",
    "psk",
    "_key",
    "-key",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "accesskey",
    "access-key",
    "private_key",
    "privatekey",
    "private-key",
    "encryption_key",
    "encryptionkey",
    "signing_key",
    "signingkey",
    "master_key",
    "masterkey",
    "client_key",
    "app_key",
    "appkey",
    "hmac_key",
    "jwt_key",
    "account_key",
    "accountkey",
    "license_key",
    "session_key",
    "storage_key",
    "subscription_key",
    "admin_key",
    "webhook_key",
    "consumer_key",
    "deploy_key",
    "service_key",
    "shared_key",
    "root_key",
    "aes_key",
    "cipher_key",
    "crypto_key",
    "decryption_key",
];

/// The words of an identifier, lower-cased: split at non-alphanumerics and camelCase humps.
fn segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `key` names a credential, case- and separator-insensitively: `password`, `DB_PASS`,
/// `client_secret`, `AWS_SECRET_ACCESS_KEY`, `apiKey`, `_auth`, `SIGNING_KEY`, `SECRET_KEY_BASE`;
/// not `max_tokens`, `token_type`, `nextToken`, `password_field`, `key`, `author`.
pub fn is_credential_key(key: &str) -> bool {
    // What decides is the key's last word (one of these, or `auth` or `key` with the word before
    // it), which is always part of the key in some case: a key holding none of them is not one,
    // and most keys are answered here without splitting them into words.
    static WORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
        // A DFA: keys are short, and most are answered after a few bytes.
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(CREDENTIAL_WORDS.iter().chain(&["auth", "key", "phrase"]))
            .expect("the credential words build an automaton")
    });
    key.len() <= 64 && WORDS.is_match(key) && names_credential(key)
}

/// [`is_credential_key`]'s decision, on the key's words.
fn names_credential(key: &str) -> bool {
    // A test log's `PASS:` and the shell's working directory, `PWD`.
    if matches!(key, "PASS" | "PWD") {
        return false;
    }
    let mut segs = segments(key);
    // `password1`, `REDIS_PASSWORD_2`: numbered variants name the same thing.
    for seg in segs.iter_mut() {
        let trimmed = seg.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if trimmed > 0 {
            seg.truncate(trimmed);
        }
    }
    while segs.len() > 1
        && segs.last().is_some_and(|s| {
            VALUE_SUFFIXES.contains(&s.as_str())
                || QUALIFIERS.contains(&s.as_str())
                || s.bytes().all(|b| b.is_ascii_digit())
        })
    {
        segs.pop();
    }
    let Some(last) = segs.last() else {
        return false;
    };
    if segs.iter().any(|s| NOT_CREDENTIAL.contains(&s.as_str()))
        || (segs.len() > 1 && VERBS.contains(&segs[0].as_str()))
    {
        return false;
    }
    if last == "auth" {
        // `auth`, `_auth`, `basicAuth`, `proxy_auth`; not `SERVER_AUTH`, `--jobserver-auth`.
        return segs.len() == 1
            || ["basic", "http", "proxy", "npm", "docker", "registry"]
                .contains(&segs[segs.len() - 2].as_str());
    }
    if CREDENTIAL_WORDS.contains(&last.as_str()) {
        return true;
    }
    if last == "key" {
        return segs.len() >= 2 && KEY_QUALIFIERS.contains(&segs[segs.len() - 2].as_str());
    }
    // A one-time password's seed (`TOTP_SEED`, `mfa_seed`), a password hashing's salt
    // (`SECURITY_PASSWORD_SALT`).
    if segs.len() >= 2 {
        let before = segs[segs.len() - 2].as_str();
        if (last == "seed" && ["totp", "otp", "hotp", "mfa", "2fa"].contains(&before))
            || (last == "salt" && ["password", "passwd", "security", "secret"].contains(&before))
        {
            return true;
        }
    }
    if last == "phrase" {
        // `SEED_PHRASE`, `recoveryPhrase`: a wallet's words.
        return segs.len() >= 2
            && ["seed", "recovery", "secret", "wallet", "backup"]
                .contains(&segs[segs.len() - 2].as_str());
    }
    // One lower-case word glued together: `dbpassword`, `smtppass`, `githubtoken`.
    segs.len() == 1
        && [
            "password",
            "passwd",
            "secret",
            "apikey",
            "privatekey",
            "secretkey",
        ]
        .iter()
        .any(|w| last.ends_with(w))
}

/// The credential inside an `Authorization`-style value: what follows its scheme
/// (`Bearer …`, `Basic …`, `Token …`), or the whole value. Returns the offset it starts at.
pub fn strip_scheme(value: &str) -> usize {
    for scheme in [
        "bearer ", "basic ", "token ", "bot ", "digest ", "apikey ", "key ",
    ] {
        if value.len() > scheme.len()
            && value
                .get(..scheme.len())
                .is_some_and(|v| v.eq_ignore_ascii_case(scheme))
        {
            return scheme.len()
                + (value[scheme.len()..].len() - value[scheme.len()..].trim_start().len());
        }
    }
    0
}

/// How a value was written, which decides how much it must look like a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A JSON string under a credential key, or a quoted literal in text: a literal for sure.
    Literal,
    /// An unquoted value that fills its INI or flag line, which may also be code.
    Line,
    /// An unquoted value that fills a YAML `key: value` line: a literal, unless a type name.
    Yaml,
    /// An unquoted value in the middle of code or prose: it could be an expression.
    Inline,
}

/// Whether `value`, assigned to a credential key, is a secret: not empty, not a placeholder,
/// a reference (`$VAR`, `${…}`, `%VAR%`, `{{ … }}`, `process.env.X`), a type name, or code.
pub fn judge(key: &str, value: &str, context: Context) -> bool {
    let v = value.trim();
    if v.len() < 6 || v.len() > 1024 || v.contains('\n') {
        return false;
    }
    if is_reference(v) || is_placeholder_literal(v) || super::vault::is_placeholder_token(v) {
        return false;
    }
    // Code-shaped stand-ins (`config.password`, `get_password()`) count only where code may be.
    if context != Context::Literal && is_placeholder_value(v) {
        return false;
    }
    // A value that shares a word with its key names a field: `TOKEN_NAME = "token"`,
    // `password = password`, `"access_token"`, `SESSION_KEY = "user_session"`.
    let lower = v.to_ascii_lowercase();
    // (A version at the end of a name is no digit of a value: `"password_hash_v2"`.)
    let unversioned = {
        let head = v.trim_end_matches(|c: char| c.is_ascii_digit());
        match head.strip_suffix(['v', 'V']) {
            Some(name) if head.len() < v.len() && name.ends_with(['_', '-', '.']) => {
                &name[..name.len() - 1]
            }
            _ => v,
        }
    };
    let has_digit = unversioned.bytes().any(|b| b.is_ascii_digit());
    if is_label(v) || is_validation_rules(v) {
        return false;
    }
    if !has_digit && is_identifier_like(unversioned) {
        let key_words = segments(key);
        if segments(v)
            .iter()
            .map(String::as_str)
            .chain(humps(v))
            .any(|w| w.len() >= 4 && key_words.iter().any(|k| k.eq_ignore_ascii_case(w)))
        {
            return false;
        }
    }
    if is_format_string(v) || is_regex_pattern(v) {
        return false;
    }
    let named = segments(key);
    let last_word = named
        .iter()
        .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()))
        .rfind(|w| !w.is_empty() && !VALUE_SUFFIXES.contains(w) && !QUALIFIERS.contains(w));
    if last_word == Some("cookie") && !has_secret_cookie(v) {
        return false;
    }
    // A wallet's words are many (`mnemonic: "regular expression"` is a manual's aside).
    if matches!(last_word, Some("mnemonic" | "phrase" | "seedphrase"))
        && !(is_passphrase(v) || looks_random(v))
    {
        return false;
    }
    // `passwd: files systemd`: nsswitch.conf's sources for the passwd database.
    if last_word == Some("passwd")
        && v.split_whitespace().all(|w| {
            matches!(
                w.trim_matches(['[', ']']),
                "files"
                    | "systemd"
                    | "compat"
                    | "ldap"
                    | "nis"
                    | "nisplus"
                    | "sss"
                    | "winbind"
                    | "db"
                    | "dns"
                    | "myhostname"
                    | "resolve"
                    | "mymachines"
                    | "altfiles"
                    | "cache"
                    | "extrausers"
            ) || w.starts_with('[')
        })
    {
        return false;
    }
    let words_of_value: Vec<&str> = v.split_whitespace().collect();
    // A description, not a value: `'Password used to generate key'`, `A challenge password`,
    // `New password: `.
    if words_of_value.len() > 1
        && (looks_like_prose(v)
            || words_of_value.iter().any(|w| {
                let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                w.len() >= 3 && named.iter().any(|k| k.eq_ignore_ascii_case(w))
            }))
    {
        return false;
    }
    // Names in capitals (`SELECTED`, `AUTH_HEADER`), not twelve or more capitals in one run
    // (`XKLWIYGJKJWCZQLR`) or gibberish; OIDs and version numbers; a JWT's header
    // (`eyJhbGciOi…`) the `jwt` rule did not take for a token. Other base64 JSON is a token of
    // its own (Cloudflare's tunnel tokens).
    if (v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        && v.len() <= 24
        && (v.contains('_') || v.len() < 12)
        && !is_gibberish(v))
        || (v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && v.contains('.'))
        || ["eyJhbGci", "eyJ0eXAi", "eyJraWQi", "eyJ0eXBlIj"]
            .iter()
            .any(|h| v.starts_with(h))
    {
        return false;
    }
    let words = v.split_whitespace().count();
    if words > 1 && (words > 6 || v.len() > 64) && !is_passphrase(v) {
        // A sentence, not a passphrase.
        return false;
    }
    if is_path(v) || lower.starts_with("http://") || lower.starts_with("https://") {
        return false;
    }
    // A colour (`Token: "#cccccc"`), an ARN (`arn:aws:iam::aws:policy/…`), a namespaced name
    // (`serverlessrepo:applicationId`), not two halves of gibberish (`uTwztJCd:tHFRDtwGNF`).
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic());
    if (v.starts_with('#')
        && (4..=9).contains(&v.len())
        && v[1..].bytes().all(|b| b.is_ascii_hexdigit()))
        || lower.starts_with("arn:")
        || v.split_once(':').is_some_and(|(a, b)| {
            word(a) && word(b) && !is_gibberish(a) && !is_gibberish(b) && !is_gibberish(v)
        })
    {
        return false;
    }
    // Code, not a value: `await token`, `token is not None`, `new Token()`.
    if context != Context::Literal
        && words > 1
        && v.split_whitespace().any(|w| {
            matches!(
                w,
                "await"
                    | "new"
                    | "yield"
                    | "typeof"
                    | "instanceof"
                    | "is"
                    | "not"
                    | "None"
                    | "null"
                    | "nil"
                    | "if"
                    | "else"
                    | "in"
                    | "lambda"
                    | "=="
                    | "!="
                    | "&&"
                    | "||"
            )
        })
    {
        return false;
    }
    match context {
        Context::Literal => true,
        Context::Line => {
            let prose = words > 1 && looks_like_prose(v);
            let arithmetic = [" + ", " % ", " | ", " or ", " and "]
                .iter()
                .any(|op| v.contains(op));
            let quoted_inside = v.contains('"') || v.contains('\'');
            !(is_type_name(v) || is_code_expression(v) || prose || arithmetic || quoted_inside)
        }
        Context::Yaml => {
            let bare_name = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let code = !bare_name && is_code_expression(v);
            let prose = words > 1 && looks_like_prose(v);
            !(is_type_name(v) || code || prose)
        }
        Context::Inline => {
            words == 1 && looks_random(v) && !is_code_expression_strict(v) && !is_camel_type(v)
        }
    }
}

/// Words for a password, a key or a token in other languages, as a translation file gives them
/// (`"password": "Passwort"`, `password: Mot de passe`).
const LABELS: &[&str] = &[
    "passwort",
    "kennwort",
    "mot de passe",
    "contraseña",
    "contrasena",
    "senha",
    "wachtwoord",
    "hasło",
    "haslo",
    "пароль",
    "parola",
    "lösenord",
    "losenord",
    "salasana",
    "jelszó",
    "heslo",
    "adgangskode",
    "passord",
    "şifre",
    "sifre",
    "κωδικός",
    "סיסמה",
    "كلمة المرور",
    "비밀번호",
    "mật khẩu",
    "パスワード",
    "密码",
    "密碼",
    "clave",
    "clé",
    "schlüssel",
    "chiave",
    "chave",
    "llave",
    "sleutel",
    "jeton",
    "токен",
    "geheimnis",
    "geheim",
    "zugangsschlüssel",
    "zugangsdaten",
    "anmeldedaten",
    "secreto",
    "segreto",
    "segredo",
    "sekret",
    "ключ",
    "トークン",
    "令牌",
];

/// A translation file's label for a credential, not one: words and a sentence's punctuation
/// holding one of [`LABELS`] as a word.
fn is_label(v: &str) -> bool {
    // Words, spaces and a sentence's punctuation only (`geheim$parole` is a password).
    if v.len() > 64
        || !v.chars().all(|c| {
            c.is_alphabetic() || matches!(c, ' ' | '\'' | '-' | '.' | '?' | '!' | ':' | '*')
        })
    {
        return false;
    }
    let lower = v.to_lowercase();
    let lower = lower.trim_end_matches([':', '.', '?', '!', '*']).trim();
    LABELS.iter().any(|label| {
        lower.match_indices(label).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + label.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

/// A validation rule list (Laravel's `'required|string|min:8|confirmed'`), not a value.
fn is_validation_rules(v: &str) -> bool {
    const RULES: &[&str] = &[
        "required",
        "nullable",
        "sometimes",
        "string",
        "confirmed",
        "min",
        "max",
        "between",
        "size",
        "regex",
        "email",
        "alpha_num",
        "alpha_dash",
        "numeric",
        "same",
        "different",
        "current_password",
        "password",
        "bail",
    ];
    let parts: Vec<&str> = v.split('|').collect();
    parts.len() >= 2
        && parts
            .iter()
            .any(|p| RULES.contains(&p.split(':').next().unwrap_or(p)))
        && parts.iter().all(|p| {
            let name = p.split(':').next().unwrap_or(p);
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
}

/// A CamelCase type name (`PKCS7PrivateKeyTypes`, `_DSAPrivateKey`): words of three letters or
/// more, digits only at a word's end. Generated values have shorter humps and digits inside.
fn is_camel_type(v: &str) -> bool {
    let v = v.trim_start_matches('_');
    if !v.starts_with(|c: char| c.is_ascii_uppercase())
        || !v.bytes().all(|b| b.is_ascii_alphanumeric())
        || !v.bytes().any(|b| b.is_ascii_lowercase())
    {
        return false;
    }
    let humps = humps(v);
    humps.len() >= 2
        && humps.iter().enumerate().all(|(i, h)| {
            let letters = h.trim_end_matches(|c: char| c.is_ascii_digit());
            // The last may be a two-letter word (`…KeyId`).
            let least = if i + 1 == humps.len() { 2 } else { 3 };
            letters.len() >= least && letters.bytes().all(|b| b.is_ascii_alphabetic())
        })
}

/// The CamelCase words of `v`: a capital (or a run of them, an acronym) and the lower-case
/// letters and digits after it (`AWSAccessKeyId`: `AWS`, `Access`, `Key`, `Id`).
fn humps(v: &str) -> Vec<&str> {
    let b = v.as_bytes();
    let mut humps = Vec::new();
    let mut start = 0;
    for i in 1..b.len() {
        let next_word = b[i].is_ascii_uppercase()
            && (b[i - 1].is_ascii_lowercase()
                || b[i - 1].is_ascii_digit()
                || b.get(i + 1).is_some_and(u8::is_ascii_lowercase)
                    && b[i - 1].is_ascii_uppercase());
        if next_word {
            humps.push(&v[start..i]);
            start = i;
        }
    }
    if start < v.len() {
        humps.push(&v[start..]);
    }
    humps
}

/// A value that is only a format directive: `%s`, `%(name)s`, `{}`, `{0}`, `{name}`.
fn is_format_string(v: &str) -> bool {
    let inner = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if v == "%s"
        || v == "%d"
        || (v.starts_with("%(") && v.ends_with(")s") && inner(&v[2..v.len() - 2]))
        || (v.starts_with('{') && v.ends_with('}') && inner(&v[1..v.len() - 1]))
    {
        return true;
    }
    // A template: what is left without its directives is punctuation or a scheme word
    // (`'{0}:{1}'`, `'Digest %s'`, `f"{prefix}{suffix}"`).
    let named = named_directives(v);
    let has_directive = v.contains("%s")
        || v.contains("{}")
        || v.contains("{0}")
        || v.contains("%(")
        || !named.is_empty();
    has_directive && {
        let mut rest = v.to_owned();
        for d in named
            .iter()
            .map(String::as_str)
            .chain(["%s", "%d", "{}", "{0}", "{1}", "{2}"])
        {
            rest = rest.replace(d, "");
        }
        let words: Vec<&str> = rest
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        words.len() <= 1
            && words
                .iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_alphabetic()))
    }
}

/// The named directives of a template (`{prefix}`, `{user.name}`, `{count:>4}`), each whole.
fn named_directives(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let name = inner.split([':', '!']).next().unwrap_or(inner);
        if !name.is_empty()
            && name.as_bytes()[0].is_ascii_alphabetic()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            out.push(format!("{{{inner}}}"));
        }
        rest = &after[close + 1..];
    }
    out
}

/// A regular expression rather than a value (`^[a-z]+$`, `\d{4}-\w+`, `(?i)token`).
fn is_regex_pattern(v: &str) -> bool {
    let class = [
        "[a-z", "[A-Z", "[0-9", "[^", "\\d", "\\w", "\\s", "\\b", "(?",
    ];
    let classes = class.iter().filter(|c| v.contains(*c)).count();
    (v.starts_with('^') && (v.ends_with('$') || classes > 0)) || classes >= 2
}

/// Stand-ins that are not values in any context: documented placeholders, defaults that are
/// words (`changeme`, `postgres`), enum words of APIs (`credentials: 'include'`, `auth: oauth2`).
pub fn is_placeholder_literal(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "changeme",
        "change_me",
        "changeit",
        "example",
        "test",
        "testing",
        "dummy",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "redacted",
        "hidden",
        "placeholder",
        "required",
        "optional",
        "string",
        "value",
        "your_password",
        "mypassword",
        "password123",
        "admin",
        "root",
        "user",
        "username",
        "include",
        "omit",
        "same-origin",
        "same_origin",
        "basic",
        "bearer",
        "oauth",
        "oauth2",
        "jwt",
        "api_key",
        "apikey",
        "header",
        "query",
        "cookie",
        "session",
        "enabled",
        "disabled",
        "yes",
        "no",
        "on",
        "off",
        "auto",
        "default",
        "plain",
        "masked",
        "postgres",
        "postgresql",
        "mysql",
        "guest",
        "redis",
        "mongo",
        "mongodb",
        "rabbitmq",
        "secret123",
        "letmein",
        "qwerty",
        "foobar",
        "foo",
        "bar",
        "xxx",
        "sample",
        "demo",
        "local",
        "dev",
        "development",
        "production",
        "staging",
        "sensitive",
        "confidential",
        "private",
        "public",
        "anonymous",
        "secretkey",
        "supersecret",
        "s3cr3t",
        "p@ssw0rd",
        "passw0rd",
        "12345678",
        "123456",
        "password1",
        "abc123",
        "keyboard",
        "notasecret",
        "insecure",
        "sekrit",
        "hunter2",
        "s3kr1t",
        "topsecret",
        "opensesame",
        "swordfish",
        "tiger",
        "scott",
    ];
    let lower = v
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    if lower.is_empty() || WORDS.contains(&lower.as_str()) {
        return true;
    }
    // A value mixing letters, digits and symbols was generated or chosen as a password,
    // whatever word or bracket it happens to contain (`k3<Pq9!zR2xT`, `Fake9$bEx…`).
    if mixes_all_classes(&lower) {
        return false;
    }
    let trimmed = v.trim_matches(|c| c == '"' || c == '\'');
    [
        "your",
        "example",
        "placeholder",
        "changeme",
        "insecure",
        "dummy",
        "fake",
        "environ",
    ]
    .iter()
    .any(|w| has_word(trimmed, &lower, w))
        // `sk-xxxx…`, `AKIAXXXXXXXXEXAMPLE`, `user:xxxx@`: mostly x's. A generated value may
        // hold four x's in a row by chance (about one in 40,000 of 28 letters and digits).
        || (lower.contains("xxxx") && lower.bytes().filter(|&b| b == b'x').count() * 3 >= lower.len())
        || lower.contains("****")
        || lower.contains("...")
        || lower.contains('…')
        || lower.contains("<")
        || lower.starts_with("env.")
        || lower.contains("getenv")
        || lower.contains("process.env")
        || lower.bytes().all(|b| b == lower.as_bytes()[0])
}

/// `$VAR`, `${VAR}`, `$(cmd)`, `%VAR%`, `{{ .Values.x }}`, `<token>`, `@Value(...)`.
fn is_reference(v: &str) -> bool {
    if v.starts_with('$') {
        // `$VAR` / `$var` alone is a variable; `$ecretP4ss!`, `$2b$12$…` are values.
        return super::detect::is_variable(v);
    }
    (v.starts_with('%') && v.ends_with('%'))
        || v.starts_with("{{")
        || v.contains("${")
        || v.contains("#{")
        || (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with('@') && !mixes_all_classes(v))
}

/// Whether `word` starts a word of `v` (`lower` is `v` in lower case): at its start, after a
/// byte that is not a letter, or where a lower-case letter meets an upper-case one; or
/// anywhere in capitals (`your_token`, `my-fake-key`, `myDummyToken`, `…7EXAMPLE`, not
/// `5uIgXyourVnx`).
fn has_word(v: &str, lower: &str, word: &str) -> bool {
    let b = v.as_bytes();
    lower.match_indices(word).any(|(at, _)| {
        let upper = b[at..at + word.len()].iter().all(u8::is_ascii_uppercase);
        upper
            || at == 0
            || !b[at - 1].is_ascii_alphabetic()
            || (b[at - 1].is_ascii_lowercase() && b[at].is_ascii_uppercase())
    })
}

/// At least 8 bytes with letters, digits and symbols (not counting `-`, `_`, `.` and spaces,
/// which names and sentences have).
fn mixes_all_classes(v: &str) -> bool {
    v.len() >= 8
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes()
            .any(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'-' | b'_' | b'.' | b' '))
}

fn is_placeholder_value(v: &str) -> bool {
    // `$`-prefixed values were judged by `is_reference`; the shared list treats every `$…` as one.
    let shared = if v.starts_with('$') {
        is_placeholder(&v.replacen('$', "s", 1))
    } else {
        is_placeholder(v)
    };
    shared || super::vault::is_placeholder_token(v)
}

fn is_identifier_like(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Type names in declarations: `password: str`, `token: String`, `secret: SecretStr`.
fn is_type_name(v: &str) -> bool {
    const TYPES: &[&str] = &[
        "str",
        "string",
        "bool",
        "boolean",
        "int",
        "integer",
        "bytes",
        "text",
        "any",
        "object",
        "number",
        "char",
        "none",
        "null",
        "nil",
        "undefined",
        "optional",
        "secretstr",
        "void",
        "float",
        "double",
        "long",
        "uuid",
        "date",
        "list",
        "dict",
        "array",
        "map",
    ];
    let lower = v.trim_end_matches([',', ';']).to_ascii_lowercase();
    // `SecretStr`, `Password`, `Token`: one or two capitalised words. A longer run of words
    // (`MarbleMeadowPillow`) is a passphrase.
    let humps = v.bytes().filter(u8::is_ascii_uppercase).count();
    TYPES.contains(&lower.as_str())
        || (v.as_bytes()[0].is_ascii_uppercase()
            && v.bytes().all(|b| b.is_ascii_alphanumeric())
            && !v.bytes().any(|b| b.is_ascii_digit())
            && v.bytes().skip(1).any(|b| b.is_ascii_lowercase())
            && humps <= 2)
}

/// An expression rather than a literal: a name, an attribute, a call or a subscript
/// (`get_password()`, `self.token`, `parts['password']`, `None`), unless it looks random.
fn is_code_expression(v: &str) -> bool {
    let v = v.trim_end_matches([',', ';']);
    let b = v.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return false;
    }
    let head_end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.'))
        .unwrap_or(b.len());
    let tail = &v[head_end..];
    let call_or_index = tail.is_empty()
        || tail.starts_with('(')
        || tail.starts_with('[')
        || tail.starts_with(" + ")
        || tail.starts_with(" % ")
        || tail.starts_with(" | ")
        || tail.starts_with(" & ")
        || tail.starts_with("![")
        || tail.starts_with("!(")
        || tail.starts_with(" or ")
        || tail.starts_with(" if ")
        || tail.starts_with(" ||")
        || tail.starts_with(" ??");
    if !call_or_index {
        return false;
    }
    let head = &v[..head_end];
    // `hunter_two` as a dotenv value is a value; in code it is a variable, and the caller
    // only asks here for lines that may be code. A random-looking name is still a value.
    if tail.is_empty() && looks_random(head) && !head.contains('.') {
        return false;
    }
    // An attribute chain's parts are names (`self.config.token`); a part that starts with a
    // digit or looks random makes a value with a dot in it (`oXIhdaU.5ProBH3U`).
    if tail.is_empty()
        && head.contains('.')
        && head.split('.').any(|part| {
            part.is_empty() || part.as_bytes()[0].is_ascii_digit() || looks_random(part)
        })
    {
        return false;
    }
    true
}

/// As `is_code_expression`, for inline values: anything with call or attribute syntax.
fn is_code_expression_strict(v: &str) -> bool {
    is_code_expression(v)
        || v.contains('(')
        || v.contains("->")
        || v.contains("::")
        || v.contains("![")
        || v.contains('"')
        || v.contains('\'')
}

fn looks_like_prose(v: &str) -> bool {
    v.split_whitespace()
        .filter(|w| w.len() > 2 && w.bytes().all(|b| b.is_ascii_lowercase()))
        .count()
        >= 3
        && v.contains(' ')
        && v.split_whitespace().any(|w| {
            matches!(
                w,
                "the"
                    | "a"
                    | "an"
                    | "to"
                    | "of"
                    | "for"
                    | "your"
                    | "is"
                    | "be"
                    | "and"
                    | "or"
                    | "if"
                    | "not"
                    | "with"
                    | "this"
                    | "that"
                    | "used"
                    | "in"
                    | "on"
            )
        })
}

/// Letters typed by no one: in one case, mostly consonants (`XKLWIYGJKJWCZQLR`); in mixed
/// case, flipping case every few letters (`uTwztJCdQ`), where names flip once per word.
pub fn is_gibberish(v: &str) -> bool {
    let letters: Vec<u8> = v.bytes().filter(u8::is_ascii_alphabetic).collect();
    if letters.len() < 8 {
        return false;
    }
    let flips = letters
        .windows(2)
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count();
    // A lower-case letter alone between capitals (`tJCdQ`'s `d`) beside capitals together is
    // no name's: names flip into words (`AsRefMut`, `getHTTPClient`).
    let lone_lower = letters.windows(3).any(|w| {
        w[0].is_ascii_uppercase() && w[1].is_ascii_lowercase() && w[2].is_ascii_uppercase()
    });
    let capitals_together = letters
        .windows(2)
        .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase());
    if flips * 4 >= letters.len() && lone_lower && capitals_together {
        return true;
    }
    let vowels = letters
        .iter()
        .filter(|b| matches!(b.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u'))
        .count();
    let mut run = 0;
    let mut longest = 0;
    for b in &letters {
        if matches!(
            b.to_ascii_lowercase(),
            b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
        ) {
            run = 0;
        } else {
            run += 1;
            longest = longest.max(run);
        }
    }
    letters.len() >= 12 && (vowels * 10 < letters.len() * 3 || longest >= 6)
}

/// `|`, `>`, with a chomping (`-`, `+`) or an indentation indicator.
fn is_block_indicator(v: &str) -> bool {
    let mut rest = v.strip_prefix(['|', '>']).unwrap_or("x");
    rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    rest.trim_start_matches(|c: char| c.is_ascii_digit())
        .is_empty()
}

/// Whether a cookie string (`name=value; …` pairs, or one cookie's value) holds a cookie whose
/// value looks generated, as sessions and CSRF tokens do; not `foo=bar; Path=/`, nor a date.
pub fn has_secret_cookie(v: &str) -> bool {
    // (`xxxxxxxxxx` and its like stand for a value in examples.)
    let generated = |x: &str| {
        let x = x.split("\\r").next().unwrap_or(x).trim().trim_matches('"');
        let filler = x
            .as_bytes()
            .windows(4)
            .any(|w| w.iter().all(|&c| c == w[0]));
        let mixed = x.len() >= 10
            && x.bytes().any(|b| b.is_ascii_alphabetic())
            && x.bytes().any(|b| b.is_ascii_digit());
        x.len() >= 8 && !filler && (mixed || looks_random(x) || is_gibberish(x))
    };
    if !v.contains('=') {
        return generated(v);
    }
    v.split(';')
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| {
            let attribute = [
                "expires",
                "path",
                "domain",
                "max-age",
                "samesite",
                "secure",
                "httponly",
                "version",
                "comment",
                "priority",
                "partitioned",
            ]
            .iter()
            .any(|a| name.trim().eq_ignore_ascii_case(a));
            !attribute && generated(value)
        })
}

/// Whether a table cell beside a credential name holds a value: one word, no call, path,
/// quoting or type syntax (`f()`, `a->b`, `a::B`, `"x"`, `*oauth2.Token`, `sql.NullString`),
/// and looking made rather than typed, since such rows are also code (`Password    string`).
fn is_table_value(key: &str, v: &str) -> bool {
    !v.is_empty()
        && !v.contains([' ', '\t', '(', '"', '\''])
        && !v.contains("->")
        && !v.contains("::")
        && !matches!(v.as_bytes()[0], b'=' | b':' | b'*' | b'&' | b'[' | b'`')
        && !is_qualified_type(v)
        && (is_distinctive_secret(v) || is_gibberish(v))
        && judge(key, v, Context::Yaml)
}

/// A type in a package (`sql.NullString`, `time.Duration`, `oauth2.Token`).
fn is_qualified_type(v: &str) -> bool {
    v.split_once('.').is_some_and(|(pkg, ty)| {
        !pkg.is_empty()
            && pkg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && ty.starts_with(|c: char| c.is_ascii_uppercase())
            && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !(looks_random(pkg) && looks_random(ty))
    })
}

/// A passphrase: four to two dozen lower-case words with no word prose needs
/// (`about absurd abandon absent absorb across access`, a wallet's mnemonic).
fn is_passphrase(v: &str) -> bool {
    const PROSE: &[&str] = &[
        "the", "a", "an", "to", "of", "for", "your", "is", "be", "and", "or", "in", "on", "with",
        "this", "that", "it", "you", "will", "not", "use", "used", "from", "by", "as", "at", "if",
        "are", "was", "can", "must", "should", "here", "enter",
    ];
    let words: Vec<&str> = v.split(' ').collect();
    // (`test test … test junk`, a framework's published test mnemonic, repeats itself.)
    let distinct = words
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    (4..=24).contains(&words.len())
        && distinct * 4 >= words.len() * 3
        && words.iter().all(|w| {
            (2..=12).contains(&w.len())
                && w.bytes().all(|b| b.is_ascii_lowercase())
                && !PROSE.contains(w)
        })
}

/// A file system path (`/run/secrets/db_password`, `/etc/ssl/private/key.pem`,
/// `tests/run-pass/*.rs`), not a base64 value that happens to start with a slash
/// (`/ywkHlpgUh5tTZ3Ms6JDt4gHvUg14g4=`).
fn is_path(v: &str) -> bool {
    let segments = v.split('/').collect::<Vec<_>>();
    let relative = v.starts_with("./")
        || v.starts_with("../")
        || (segments.len() >= 2
            && (v.contains('*') || segments.last().is_some_and(|s| s.contains('.'))));
    (v.starts_with('/') || relative)
        && !v.contains(['+', '='])
        && segments
            .iter()
            .all(|seg| seg.is_empty() || !(looks_random(seg) || is_gibberish(seg)))
}

pub use super::detect::looks_random;

/// Whether a value a generic rule found by its key is also to be looked for out of context,
/// where nothing but its spelling gives it away: one that looks generated, mixes letters,
/// digits or symbols (`P@ssyhsd`), is a passphrase's length, or mixes cases over twelve
/// letters (`LaceCapriltnc`). A short word (`development`) is not: it would be masked wherever
/// it is written.
pub fn is_distinctive_secret(v: &str) -> bool {
    // Words with spaces between them are looked for only where a name gives them away: taken
    // out of context, a phrase wrongly masked once would be masked in every sentence after.
    if v.contains(char::is_whitespace) {
        return false;
    }
    looks_random(v) || (v.len() >= 8 && super::vault::is_distinctive(v))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Looks for an assignment whose key contains the keyword at `kw_start..kw_end` of `text`;
/// returns the span of the secret value, if one is assigned.
/// Whether a `password` key stands in a multi-line `.netrc` entry (`machine h` / `login u` /
/// `password p`): both words within a few lines around it.
fn netrc_entry_around(text: &str, ks: usize, ke: usize) -> bool {
    let mut start = ks.saturating_sub(512);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (ke + 256).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let around = &text[start..end];
    around.contains("machine ") && around.contains("login ")
}

pub fn assigned_value(text: &str, kw_start: usize, kw_end: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut ks = kw_start;
    while ks > 0 && is_ident_byte(b[ks - 1]) {
        ks -= 1;
    }
    let mut ke = kw_end;
    while ke < b.len() && is_ident_byte(b[ke]) {
        ke += 1;
    }
    // `--password=…` flags, `.password` attributes: the key is what follows the punctuation.
    let key_text = text.get(ks..ke)?.trim_start_matches(['-', '.']);
    let key_text = key_text.rsplit('.').next().unwrap_or(key_text);
    // Authorization headers in text are the header rules' (`Bearer …`, `Basic …`).
    if key_text.eq_ignore_ascii_case("authorization") {
        return None;
    }
    // A setter or builder given a literal: `ds.setPassword("…")`, `.withToken("…")`,
    // `builder.password("…")`.
    let setter = ["set_", "set", "Set", "with_", "with", "With"]
        .iter()
        .find_map(|p| key_text.strip_prefix(p))
        .filter(|k| !k.is_empty());
    let key_at = ke - key_text.len();
    let dotted = key_at > 0 && b[key_at - 1] == b'.';
    // (`t.pass(…)`, `.auth(…)`, `.pin(…)` are too often something else.)
    let builder = dotted && !matches!(key_text, "pass" | "auth" | "pin" | "cookie");
    if let Some(name) = setter.or(builder.then_some(key_text))
        && is_credential_key(name)
        && b.get(ke) == Some(&b'(')
        && let Some(&q) = b.get(ke + 1).filter(|&&q| q == b'"' || q == b'\'')
    {
        let start = ke + 2;
        let end = text[start..].find(q as char).map(|n| start + n)?;
        let closed = text[end + 1..].trim_start().starts_with(')');
        return (closed && judge(name, &text[start..end], Context::Literal))
            .then_some((start, end));
    }
    if is_credential_key(key_text) {
        return value_span(text, ks, ke, kw_start, key_text);
    }
    // A vendor's `*_KEY` (`STRIPE_KEY`, `SENDGRID_KEY`): `key` alone names a key of anything
    // (`CACHE_KEY`, `sort_key`), so only a value that looks generated counts.
    if is_named_key(key_text) {
        let (start, end) = value_span(text, ks, ke, kw_start, key_text)?;
        let v = &text[start..end];
        return (v.len() >= 20 && (looks_random(v) || is_gibberish(v))).then_some((start, end));
    }
    None
}

/// A key whose last word is `key` after a name (`STRIPE_KEY`, `mailgun-key`), in capitals or
/// snake or kebab case; not `primary_key`, `keyboard`, or camelCase code.
fn is_named_key(key: &str) -> bool {
    let segs = segments(key);
    segs.len() >= 2
        && segs.last().is_some_and(|s| s == "key")
        && !segs.iter().any(|s| NOT_CREDENTIAL.contains(&s.as_str()))
        && !(segs.len() > 1 && VERBS.contains(&segs[0].as_str()))
        && ![
            "primary",
            "foreign",
            "sort",
            "partition",
            "cache",
            "hash",
            "idempotency",
            "object",
            "public",
            "publishable",
            "routing",
            "row",
            "map",
            "dict",
            "lookup",
            "index",
            "unique",
            "composite",
            "range",
            "shard",
            "dedup",
            "dedupe",
            "group",
            "cluster",
            "lock",
            "file",
            "s3",
            "bucket",
            "storage",
            "redis",
            "kv",
        ]
        .contains(&segs[segs.len() - 2].as_str())
        && key.bytes().any(|b| b == b'_' || b == b'-')
}

/// The span of the value assigned to the key at `ks..ke`, once the key is known to name a
/// credential.
fn value_span(
    text: &str,
    ks: usize,
    ke: usize,
    kw_start: usize,
    key_text: &str,
) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    // A resource type inside an ARN (`arn:aws:secretsmanager:…:secret:Name-a1b2c3`).
    let token_start = text[..ks]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | '='))
        .map_or(0, |(n, c)| n + c.len_utf8());
    if text[token_start..ks].starts_with("arn:") {
        return None;
    }
    let mut i = ke;
    // The key's closing quote: `"password": …`, also as written inside a JSON string (`\"`).
    // A key in quotes: `"password": …`, also inside a JSON string level (`\"`). A quote that
    // does not close right after the key opened a string holding more (`"X-API-Key: …"`).
    let mut quoted_key = false;
    if ks > 0 && matches!(b[ks - 1], b'"' | b'\'') {
        if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b[ks - 1]) {
            i += 2;
            quoted_key = true;
        } else if b.get(i) == Some(&b[ks - 1]) {
            i += 1;
            quoted_key = true;
        }
    }
    // `os.environ['API_KEY'] = …`, `config["password"] = …`: a quoted key in a subscript.
    if quoted_key && ks >= 2 && b[ks - 2] == b'[' && b.get(i) == Some(&b']') {
        i += 1;
    }
    // `<add key="DbPassword" value="…"/>`: the value attribute beside a credential-named key.
    if quoted_key {
        let rest = &text[i..text.len().min(i + 16)];
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("value=")
            && let Some(&q) = after
                .as_bytes()
                .first()
                .filter(|&&q| q == b'"' || q == b'\'')
        {
            let start = i + (rest.len() - trimmed.len()) + "value=".len() + 1;
            let end = text[start..].find(q as char).map(|n| start + n)?;
            return judge(key_text, &text[start..end], Context::Literal).then_some((start, end));
        }
    }
    // `<password>…</password>`
    if ks > 0 && b[ks - 1] == b'<' && b.get(ke) == Some(&b'>') {
        let start = ke + 1;
        let end = text[start..].find('<').map(|n| start + n)?;
        if !text[end..].starts_with("</") {
            return None;
        }
        return judge(key_text, &text[start..end], Context::Literal).then_some((start, end));
    }
    // A YAML name/value pair (a Kubernetes container's `env`): `- name: DB_PASSWORD` and, on
    // one of the next lines, `value: …`.
    if let Some(span) = yaml_pair_value(text, ks, ke, key_text) {
        return span;
    }
    // `define('DB_PASSWORD', '…')`, `setenv("TOKEN", "…")`: a quoted key, a comma, a quoted value.
    let logged = |before: &str| {
        [
            "info", "debug", "warn", "warning", "error", "log", "trace", "print", "printf",
            "verbose", "silly", "http", "notice",
        ]
        .iter()
        .any(|f| before.ends_with(f))
    };
    // `["--token", "…"]`: a flag and its value as two strings of an argv written in code or YAML.
    let quoted_flag = quoted_key
        && text[ks..].starts_with("--")
        && text[..ks - 1].trim_end().ends_with(['[', ',']);
    if quoted_key
        && (quoted_flag
            || text[..ks - 1]
                .trim_end()
                .strip_suffix('(')
                .is_some_and(|before| {
                    before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        && !logged(before)
                }))
    {
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if b.get(j) == Some(&b',') {
            j += 1;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if let Some(&q) = b.get(j).filter(|&&q| q == b'"' || q == b'\'') {
                let start = j + 1;
                let end = text[start..].find(q as char).map(|n| start + n)?;
                return judge(key_text, &text[start..end], Context::Literal)
                    .then_some((start, end));
            }
        }
    }
    let spaces = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
        *i - start
    };
    let space_before = spaces(&mut i);
    let line_of_key = {
        let ls = text[..ks].rfind('\n').map_or(0, |n| n + 1);
        let le = text[ks..].find('\n').map_or(b.len(), |n| ks + n);
        &text[ls..le]
    };
    // `--password Pw9!x`, and `.netrc`'s `machine h login u password Pw9!x`: no operator.
    let spaced_flag = text[ks..].starts_with("--")
        || line_of_key.contains("configure set ")
        || (matches!(key_text, "password" | "passwd")
            && (line_of_key.contains("login ")
                || line_of_key.trim_start().starts_with("machine ")
                || netrc_entry_around(text, ks, ke)));
    // Statements that assign without an operator: `setx NAME value`, fish's `set -gx NAME
    // value`, a Dockerfile's `ENV NAME value`.
    let line_start = text[..ks].rfind('\n').map_or(0, |n| n + 1);
    let before_key = after_gutter(text[line_start..ks.saturating_sub(quoted_key as usize)].trim());
    let statement = matches!(before_key, "setx" | "SETX" | "ENV" | "#define")
        || before_key.strip_prefix("set -").is_some_and(|flags| {
            !flags.is_empty() && flags.bytes().all(|b| b.is_ascii_alphabetic())
        });
    // A config file's `name value` line (msmtprc's `password …`, redis.conf's `masterauth …`):
    // the key alone at the start of its line, and one word after it that is quoted or looks
    // made (a line of prose goes on, or names a word: `Password required`).
    if before_key.is_empty()
        && !quoted_key
        && !spaced_flag
        && space_before > 0
        && !matches!(b.get(i), Some(b'=' | b':' | b'{' | b'(' | b'['))
    {
        let line_end = text[i..].find('\n').map_or(b.len(), |n| i + n);
        let word = text[i..line_end].trim_end();
        if !word.is_empty() && !word.contains(char::is_whitespace) {
            let value = word.trim_matches(|c| c == '"' || c == '\'');
            let quoted = value.len() + 2 == word.len();
            let mixed = value.bytes().any(|c| c.is_ascii_alphabetic())
                && value
                    .bytes()
                    .any(|c| !c.is_ascii_alphabetic() && !b"?!.,;:'\"()".contains(&c))
                && !value.ends_with(['?', '!', '.', ',', ';', ':']);
            let start = i + usize::from(quoted);
            let code = is_code_expression(value)
                || is_type_name(value)
                || is_qualified_type(value)
                || value.starts_with(['*', '&', '[', '$', '%', '{', '<', '(', '-', '#', '/']);
            if (quoted || mixed) && !code {
                return judge(key_text, value, Context::Literal)
                    .then_some((start, start + value.len()));
            }
        }
    }
    if (spaced_flag || statement) && space_before > 0 && !matches!(b.get(i), Some(b'=' | b':')) {
        let end = text[i..]
            .find(|c: char| c.is_whitespace())
            .map_or(b.len(), |n| i + n);
        let word = text.get(i..end)?;
        let value = word.trim_matches(|c| c == '"' || c == '\'');
        let start = i + text[i..end].find(value).unwrap_or(0);
        // A C macro counts with a string literal that looks made (`#define DB_PASSWORD "…"`),
        // not with code or a name (`#define SSL_kPSK 0x04u`, `#define LN_kx_psk "kx-psk"`).
        if before_key == "#define" {
            let made = value.len() >= 8 && (looks_random(value) || is_gibberish(value));
            return (value.len() < word.len() && made && judge(key_text, value, Context::Literal))
                .then_some((start, start + value.len()));
        }
        // A statement assigns a literal, as a dotenv line does; so does a quoted flag value.
        let context = if statement || value.len() < word.len() {
            Context::Literal
        } else {
            Context::Line
        };
        return judge(key_text, value, context).then_some((start, start + value.len()));
    }
    // A two-column table row (`vault kv get`: `password    s3cr3t`): a key alone at the start of
    // its line, a wide gap, one more word and nothing after it. Such rows are also code
    // (`Password    string`, `Token *oauth2.Token`), so only a value that looks made counts.
    let wide_gap = space_before >= 2 || b.get(i - space_before) == Some(&b'\t');
    if before_key.is_empty() && !quoted_key && wide_gap && i < b.len() {
        let line_end = text[i..].find('\n').map_or(b.len(), |n| i + n);
        let value = text[i..line_end].trim_end();
        if is_table_value(key_text, value) {
            return Some((i, i + value.len()));
        }
    }
    // A two-cell row of a Markdown or box-drawn table (`| DB_PASSWORD | … |`, `│ KEY │ … │`).
    let ticked = matches!(before_key, "| `" | "│ `" | "|`" | "│`");
    if matches!(before_key, "|" | "│") || (ticked && b.get(ke) == Some(&b'`')) {
        let line_end = text[i..].find('\n').map_or(b.len(), |n| i + n);
        // A key in backticks (`| \`DB_PASSWORD\` | … |`): the cell goes on after them.
        let from = if ticked {
            let after_tick = ke + 1;
            after_tick
                + (text[after_tick..line_end].len() - text[after_tick..line_end].trim_start().len())
        } else {
            i
        };
        let row = &text[from..line_end];
        if let Some(cell) = row.strip_prefix('|').or_else(|| row.strip_prefix('│'))
            && let Some(close) = cell.find(['|', '│'])
            && cell[close..]
                .trim_start_matches(['|', '│'])
                .trim()
                .is_empty()
        {
            let raw = &cell[..close];
            let value = raw.trim().trim_matches('`');
            let start = from + (row.len() - cell.len()) + raw.find(value).unwrap_or(0);
            if is_table_value(key_text, value) {
                return Some((start, start + value.len()));
            }
        }
        return None;
    }
    // Literals that follow their name with no operator: a Clojure or Emacs Lisp keyword
    // (`:db-password "…"`), an Elixir attribute (`@api_key "…"`), an Erlang tuple
    // (`{db_password, "…"}`), Tcl's `set password "…"`.
    {
        let mut j = i;
        let erlang = ks > 0 && b[ks - 1] == b'{' && b.get(ke) == Some(&b',');
        if erlang {
            j = ke + 1;
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            // A binary: `{api_key, <<"…">>}`.
            if text[j..].starts_with("<<\"") {
                j += 2;
            }
        }
        let sigil = ks > 0
            && matches!(b[ks - 1], b':' | b'@')
            && (ks < 2 || matches!(b[ks - 2], b' ' | b'\t' | b'\n' | b'(' | b'{' | b'['));
        let tcl = before_key == "set";
        if (erlang || ((sigil || tcl) && space_before > 0)) && b.get(j) == Some(&b'"') {
            let start = j + 1;
            let line_end = text[start..].find('\n').map_or(b.len(), |n| start + n);
            let end = text[start..line_end].find('"').map(|n| start + n)?;
            return judge(key_text, &text[start..end], Context::Literal).then_some((start, end));
        }
    }
    // A type between the name and its `=` (Go's `var password string = "…"`, VB's `Dim
    // password As String = "…"`, T-SQL's `DECLARE @pwd NVARCHAR(50) = N'…'`), or C's array
    // brackets (`char password[] = "…"`); C++'s brace or parenthesis initialiser after a type
    // (`std::string password{"…"}`).
    if !quoted_key && !matches!(b.get(i), Some(b'=' | b':')) {
        let line_end = text[ke..].find('\n').map_or(b.len(), |n| ke + n);
        let rest = &text[ke..line_end];
        if let Some(eq) = rest.find('=') {
            let ty = &rest[..eq];
            let words: Vec<&str> = ty.split_whitespace().collect();
            let brackets = ty.trim_end().starts_with('[')
                && ty.trim_end().ends_with(']')
                && ty.trim_end()[1..ty.trim_end().len() - 1]
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c == b'*');
            // (Nim's export marker: `let apiKey* = "…"`.)
            let exported = ty.trim() == "*";
            let type_words = ty.starts_with([' ', '\t'])
                && (1..=3).contains(&words.len())
                && words.iter().all(|w| {
                    w.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"_.[]()*&<>,:".contains(&c))
                        && w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[' || c == '*')
                        && !matches!(
                            w.to_ascii_lowercase().as_str(),
                            "and"
                                | "or"
                                | "is"
                                | "not"
                                | "in"
                                | "if"
                                | "then"
                                | "when"
                                | "where"
                                | "set"
                                | "null"
                                | "to"
                                | "from"
                                | "by"
                                | "of"
                                | "the"
                                | "a"
                        )
                });
            let next = rest.as_bytes().get(eq + 1);
            let prev = ty.as_bytes().last();
            if (brackets || type_words || exported)
                && next != Some(&b'=')
                && !matches!(
                    prev,
                    Some(b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'|' | b'&')
                )
            {
                i = ke + eq;
            }
        }
        let typed_before = before_key.rsplit(' ').next().is_some_and(|t| {
            matches!(
                t,
                "std::string"
                    | "string"
                    | "String"
                    | "QString"
                    | "auto"
                    | "CString"
                    | "std::wstring"
                    | "wstring"
                    | "SecureString"
                    | "const"
                    | "var"
                    | "let"
            ) || t.ends_with('>')
        });
        if typed_before && matches!(b.get(ke), Some(b'{' | b'(')) && b.get(ke + 1) == Some(&b'"') {
            let start = ke + 2;
            let end = text[start..line_end].find('"').map(|n| start + n)?;
            let closed = matches!(b.get(end + 1), Some(b'}' | b')'));
            return (closed && judge(key_text, &text[start..end], Context::Literal))
                .then_some((start, end));
        }
    }
    // Operators that assign: `:=`, `=>`, Make's `?=` and `::=`, Ruby's `||=`, JavaScript's
    // `??=`, R's `<-`.
    let op = if ["||=", "??=", "::="]
        .iter()
        .any(|o| text[i..].starts_with(o))
    {
        3
    } else if [":=", "=>", "?=", "<-"]
        .iter()
        .any(|o| text[i..].starts_with(o))
    {
        2
    } else if (b.get(i) == Some(&b'=') && b.get(i + 1) != Some(&b'='))
        || (b.get(i) == Some(&b':') && b.get(i + 1) != Some(&b':'))
    {
        1
    } else {
        return None;
    };
    // A match arm on a path (`Error::Token => "invalid token"`) assigns nothing.
    if op == 2 && b[i] == b'=' && text[..ks].ends_with("::") {
        return None;
    }
    let colon = b[i] == b':' && op == 1;
    i += op;
    let space_after = spaces(&mut i);
    if i >= b.len() {
        return None;
    }
    // A literal wrapped in a call that makes a value of it (`SecretStr("…")`,
    // `String::from("…")`, `[]byte("…")`, `Buffer.from("…")`, `Some("…".to_owned())`).
    for wrapper in [
        "SecretStr(",
        "SecretString(",
        "SecretBytes(",
        "SecretString::new(",
        "SecretString::from(",
        "Secret::new(",
        "Secret(",
        "Zeroizing::new(",
        "String::from(",
        "String(",
        "new String(",
        "str(",
        "bytes(",
        "[]byte(",
        "Buffer.from(",
        "Some(",
        "Ok(",
        "std::string(",
        "QStringLiteral(",
        "_T(",
        "TEXT(",
    ] {
        if text[i..].starts_with(wrapper)
            && matches!(
                b.get(i + wrapper.len()),
                Some(b'"' | b'\'' | b'`' | b'b' | b'r')
            )
            && !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            i += wrapper.len();
            break;
        }
    }
    // `API_TOKEN = (\n    "…"\n)`: a long literal alone in parentheses, as Black writes it,
    // or several that are joined (`"…"\n    "…"`), each alone on its line.
    let mut wrapped = false;
    if !colon && b[i] == b'(' {
        let next = text[i + 1..].trim_start_matches([' ', '\t', '\r']);
        if let Some(line) = next.strip_prefix('\n') {
            let at = text.len() - line.trim_start_matches([' ', '\t']).len();
            // Each line one string, and the next line after them closes the parenthesis (not a
            // string continued by code, which is a template or a path).
            let mut lines = text[at..].split('\n');
            let mut literals = 0;
            let closed = loop {
                let Some(line) = lines.next() else {
                    break false;
                };
                let line = line.trim();
                if line.starts_with(')') {
                    break literals > 0;
                }
                let Some(q) = line.chars().next().filter(|&q| q == '"' || q == '\'') else {
                    break false;
                };
                if line.len() < 2 || !line.ends_with(q) || literals == 8 {
                    break false;
                }
                literals += 1;
            };
            if closed {
                i = at;
                wrapped = true;
            }
        } else if next.starts_with(['"', '\'']) {
            // `TOKEN = ("…"\n         "…")`
            i = text.len() - next.len();
            wrapped = true;
        }
    }
    let line_end = text[i..].find('\n').map_or(b.len(), |n| i + n);
    // Go's headers: `X-Api-Key:[…]` as a printed map shows them, `"X-Api-Key": {"…"}` and
    // `[]string{"…"}` as code writes them.
    if colon {
        if b[i] == b'[' && space_after == 0 {
            let start = i + 1;
            let end = text[start..line_end].find(']').map(|n| start + n)?;
            let v = &text[start..end];
            return (!v.contains(' ') && judge(key_text, v, Context::Literal))
                .then_some((start, end));
        }
        if text[i..].starts_with("[]string{") {
            i += "[]string{".len();
        } else if b[i] == b'{' && b.get(i + 1) == Some(&b'"') {
            i += 1;
        }
    }
    // What may stand before a key on its line: diff markers, comments, list items, shell and
    // Dockerfile keywords.
    // A commented line counts as a line only in its dotenv form (`# DB_PASSWORD=…`), not as
    // prose (`# token          = 1*tchar`).
    let commented = matches!(before_key, "#" | "//") && (space_before > 0 || space_after > 0);
    // Published graphing tokens in badge URLs.
    if line_of_key.contains("codecov.io") || line_of_key.contains(".svg?token=") {
        return None;
    }
    let at_line_start = !commented
        && (before_key.is_empty()
            || matches!(
                before_key,
                "export"
                    | "-"
                    | "+"
                    | "#"
                    | "//"
                    | ">"
                    | "set"
                    | "SET"
                    | "ENV"
                    | "ARG"
                    | "env"
                    | "setenv"
            )
            || before_key.ends_with(" export")
            || (before_key.len() <= 2
                && before_key
                    .bytes()
                    .all(|b| b == b'+' || b == b'-' || b == b' ')));
    // Command-line forms that assign literals: `--from-literal=password=…`, `-e TOKEN=…`,
    // `--set password=…`, `--build-arg KEY=…`.
    let cli_literal = [
        "--from-literal=",
        "--set",
        "-e",
        "--env",
        "--build-arg",
        "--set-string",
    ]
    .iter()
    .any(|f| text[..ks].ends_with(f) || text[..ks].trim_end().ends_with(f));

    // A YAML anchor before the value (`secretRef: &tok …`): the value follows it.
    if colon && b.get(i) == Some(&b'&') {
        let name = text[i + 1..line_end]
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
            .count();
        if name > 0 && b.get(i + 1 + name) == Some(&b' ') {
            i += 1 + name;
            spaces(&mut i);
        }
    }
    // A literal with a prefix or delimiters of its own (`b'…'`, `r#"…"#`, `@"…"`, `"""…"""`).
    if let Some((start, end)) =
        prefixed_literal(text, i, line_end).or_else(|| block_literal(text, i, line_end))
    {
        let value = &text[start..end];
        let prefix = &text[i..start];
        // Words in a byte string are a test's data (`secret = b"input keying material"`).
        // An interpolating literal (`f"{user}-token"`, `$"{a}"`, `s"$user"`, `` `${a}` ``) is
        // an expression.
        let interpolated = value.contains("${")
            || (prefix.contains(['f', 'F', '$']) && value.contains('{'))
            || (prefix.starts_with('s') && value.contains('$'))
            || (prefix.starts_with("<<<") && !prefix.contains('\'') && value.contains('$'));
        let bytes_of_words = text[i..start].starts_with(['b', 'B'])
            && value.contains(' ')
            && value.bytes().all(|b| b.is_ascii_lowercase() || b == b' ');
        return (!bytes_of_words && !interpolated && judge(key_text, value, Context::Literal))
            .then_some((start, end));
    }
    // A quoted value, also with the quotes of a JSON string level around it (`\"…\"`).
    let escaped_quote = b[i] == b'\\' && matches!(b.get(i + 1), Some(b'"' | b'\''));
    if matches!(b[i], b'"' | b'\'' | b'`') || escaped_quote {
        let (q, open) = if escaped_quote {
            (b[i + 1], 2)
        } else {
            (b[i], 1)
        };
        let start = i + open;
        let mut j = start;
        while j < line_end {
            if escaped_quote {
                if b[j] == b'\\' && b.get(j + 1) == Some(&q) {
                    break;
                }
                j += 1;
            } else if b[j] == b'\\' {
                j += 2;
            } else if b[j] == q {
                break;
            } else {
                j += 1;
            }
        }
        if j >= line_end || j > b.len() {
            return None;
        }
        let value = text.get(start..j)?;
        let after = text.get(j + 1..).unwrap_or("");
        // A quoted annotation in a signature (`def f(private_key: "_DSAPrivateKey")`).
        if colon && is_camel_type(value) {
            return None;
        }
        if after.starts_with(".format(") || after.trim_start().starts_with("% ") {
            return None;
        }
        // A secret split into literals that are joined (`"…" + "…"`, `"…" "…"`): what is judged
        // and masked is all of them.
        if !escaped_quote && let Some((last, joined)) = joined_literals(text, start, j, wrapped) {
            return judge(key_text, &joined, Context::Literal).then_some((start, last));
        }
        // Backticks quote code in prose and Markdown (`Ok(None)`), not literals; and a short
        // lower-case word in quotes names something (`token: "explain"`).
        let word = value.len() < 12 && value.bytes().all(|b| b.is_ascii_lowercase());
        let context = if q == b'`' || word {
            Context::Inline
        } else {
            Context::Literal
        };
        return judge(key_text, value, context).then_some((start, j));
    }

    // Unquoted: a whole-line value (dotenv, YAML, INI, flags), or one inside code or prose.
    let rest = &text[i..line_end];
    let rest_trimmed = strip_comment(rest).trim_end();
    // `KEY=value` with nothing around `=`, at the start of a line: dotenv, shell, properties.
    // A value followed by more words is a shell prefix assignment (`PGPASSWORD=… psql …`).
    let dotenv = at_line_start
        && !colon
        && space_before == 0
        && space_after == 0
        && !rest_trimmed.ends_with([',', ')', ';', '('])
        && !is_argument_tail(rest_trimmed);
    // A quote left open in the first word goes on past its spaces, as in a shell
    // (`KEY=ab"c d'e`): the value is the rest of the line.
    let rest_trimmed = match rest_trimmed.split_whitespace().next() {
        Some(first) if dotenv && !open_quote(first) => first,
        _ => rest_trimmed,
    };
    let yaml = at_line_start
        && colon
        && space_after > 0
        && !rest_trimmed.ends_with([',', ';', '{', '(', '<', '['])
        && !rest_trimmed.contains(" = ");
    let ini = at_line_start
        && !colon
        && !rest_trimmed.ends_with([',', ';', '{', '('])
        && !is_argument_tail(rest_trimmed);
    let flag = text[ks..kw_start].starts_with("--") && !colon;
    // A YAML block scalar (`password: |` and the value on the lines below, more indented).
    if yaml && is_block_indicator(rest_trimmed) {
        let key_indent = text[line_start..ks].len() - text[line_start..ks].trim_start().len();
        let (mut start, mut end) = (None, line_end);
        let mut line_at = (line_end + 1).min(b.len());
        for line in text[line_at..].split_inclusive('\n') {
            let body = line.trim_end();
            let indent = body.len() - body.trim_start().len();
            if body.is_empty() || indent <= key_indent {
                break;
            }
            if !judge(key_text, body.trim_start(), Context::Yaml) {
                return None;
            }
            start.get_or_insert(line_at + indent);
            end = line_at + body.len();
            line_at += line.len();
        }
        return start.map(|start| (start, end));
    }
    if (dotenv || yaml || ini) && !rest_trimmed.is_empty() {
        let end = i + rest_trimmed.len();
        let value = &text[i..end];
        // Dotenv assigns literals whatever their shape; YAML and INI lines may also be code.
        let context = if dotenv {
            Context::Literal
        } else if yaml {
            Context::Yaml
        } else {
            Context::Line
        };
        return judge(key_text, value, context).then_some((i, end));
    }
    // `NAME: Type = "…"` (`const API_KEY: &str = "…"`, `apiKey: string = '…'`): a type
    // annotation, and a quoted literal after its `=` is the value.
    if colon
        && let Some(eq) = text[i..line_end].find('=').map(|n| i + n)
        && b.get(eq + 1) != Some(&b'=')
        && !text[i..eq].contains(['"', '(', '!', '='])
        && !text[i..eq].replace("&'", "&").contains('\'')
    {
        let mut j = eq + 1;
        spaces(&mut j);
        // `const API_TOKEN: &str = r#"…"#;` (a byte string there is a name's bytes:
        // `LN_userPassword: &[u8; 13] = b"userPassword\0"`).
        if matches!(b.get(j), Some(b'r' | b'#' | b'@'))
            && let Some((start, end)) = prefixed_literal(text, j, line_end)
        {
            return judge(key_text, &text[start..end], Context::Literal).then_some((start, end));
        }
        if let Some(&q) = b.get(j).filter(|&&q| q == b'"' || q == b'\'') {
            let start = j + 1;
            let mut k = start;
            while k < line_end && b[k] != q {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            if k >= line_end {
                return None;
            }
            return judge(key_text, &text[start..k], Context::Literal).then_some((start, k));
        }
    }
    let end = text[i..line_end]
        .find(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '&' | ',' | ';' | ')' | ']' | '}' | '"' | '\'' | '<' | '>' | '`' | '\\'
                )
        })
        .map_or(line_end, |n| i + n);
    if end == i {
        return None;
    }
    let value = &text[i..end];
    if colon && text[end..line_end].trim_start().starts_with('=') {
        // `NAME: Type = …`: a type annotation.
        return None;
    }
    let context = if cli_literal {
        Context::Literal
    } else if flag {
        Context::Line
    } else {
        Context::Inline
    };
    judge(key_text, value, context).then_some((i, end))
}

/// The line-number gutter a tool printed at the start of `line` (Claude Code's Read:
/// `     7→`, `7\t`; `cat -n` and `nl`: `     7\t`): its length, 0 if none.
pub(super) fn gutter_len(line: &str) -> usize {
    let b = line.as_bytes();
    let spaces = b.iter().take_while(|&&c| c == b' ').count();
    let digits = b[spaces..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if spaces > 8 || !(1..=7).contains(&digits) {
        return 0;
    }
    let at = spaces + digits;
    if b.get(at) == Some(&b'\t') {
        at + 1
    } else if line[at..].starts_with('→') {
        at + '→'.len_utf8()
    } else {
        0
    }
}

/// What stands before a key on its line once the line-number gutter tools print is taken off:
/// Claude Code's Read (`     7→`, `7\t`), `cat -n` and `nl` (`     7\t`), `grep -n` (`7:`,
/// `7-` for context lines, `path:7:`) and `grep -r` (`path:`). A file shown that way is still
/// the file: its `KEY=value` lines are dotenv lines.
fn after_gutter(before: &str) -> &str {
    let mut rest = before;
    // `path:` first, for `grep -r` and `grep -rn`: a name with a dot or a slash, no spaces.
    if let Some(n) = rest.find(':')
        && n > 0
        && !rest[..n].contains(char::is_whitespace)
        && rest[..n].contains(['.', '/'])
        && !rest[..n].contains("//")
    {
        rest = &rest[n + 1..];
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=7).contains(&digits) {
        let after = &rest[digits..];
        if after.is_empty() {
            return after;
        }
        for sep in ["\t", "→", ":", "-", "|", "│"] {
            if let Some(r) = after.strip_prefix(sep) {
                return r.trim_start();
            }
        }
        return before;
    }
    if rest.len() < before.len() {
        rest.trim_start()
    } else {
        before
    }
}

/// The value of a YAML name/value pair whose name is the key at `ks..ke`: `- name: KEY` alone
/// on its line (the key quoted or not), and `value: …` on one of the next three lines, in the
/// same mapping. `Some(None)` when the pair is there but its value is not a secret (a
/// reference, a placeholder); `None` when the key is not such a name.
fn yaml_pair_value(
    text: &str,
    ks: usize,
    ke: usize,
    key_text: &str,
) -> Option<Option<(usize, usize)>> {
    let line_start = text[..ks].rfind('\n').map_or(0, |n| n + 1);
    let before = text[line_start..ks].trim_end_matches(['"', '\'']);
    let name_at = before.find("name:")?;
    let lead = &before[..name_at];
    if !lead.trim_start().is_empty() && lead.trim() != "-"
        || !before[name_at + 5..].trim().is_empty()
    {
        return None;
    }
    let line_end = text[ke..].find('\n').map_or(text.len(), |n| ke + n);
    if !text[ke..line_end]
        .trim()
        .trim_matches(['"', '\''])
        .is_empty()
    {
        return None;
    }
    // The column the pair's keys start at (after `- ` for a list item).
    let column = lead.len();
    let mut at = line_end;
    for _ in 0..3 {
        if at >= text.len() {
            break;
        }
        let next_start = at + 1;
        let next_end = text[next_start..]
            .find('\n')
            .map_or(text.len(), |n| next_start + n);
        let line = &text[next_start..next_end];
        let indent = line.len() - line.trim_start().len();
        let rest = line.trim_start();
        if indent < column || rest.starts_with('-') {
            break;
        }
        if indent == column
            && let Some(value) = rest.strip_prefix("value:")
        {
            let value_at = next_end - value.len();
            let trimmed = value.trim();
            if trimmed.is_empty() {
                return Some(None);
            }
            let lead = value.len() - value.trim_start().len();
            let (start, len, context) = match trimmed.as_bytes()[0] {
                q @ (b'"' | b'\'') => match trimmed[1..].find(q as char) {
                    Some(n) => (value_at + lead + 1, n, Context::Literal),
                    None => return Some(None),
                },
                _ => (
                    value_at + lead,
                    strip_comment(trimmed).trim_end().len(),
                    Context::Yaml,
                ),
            };
            let v = &text[start..start + len];
            return Some(judge(key_text, v, context).then_some((start, start + len)));
        }
        at = next_end;
    }
    None
}

/// A keyword argument closing a call (`request_token=request.resource_owner_key):`): a dotted
/// name and the brackets and colon after it.
/// The contents of a string literal at `i` that has a prefix or delimiters of its own, on the
/// line ending at `line_end`: Python's `b'…'`, `f"…"`, `r'…'`, `u'…'` and `"""…"""`; C#'s
/// `@"…"` and `$"…"`; Rust's `r#"…"#` and `b"…"`; C++'s `R"(…)"`, `u8"…"` and `L"…"`; shell's
/// `$'…'`. Plain quotes are not its business.
fn prefixed_literal(text: &str, i: usize, line_end: usize) -> Option<(usize, usize)> {
    let b = &text.as_bytes()[..line_end];
    if let Some(span) = delimited_literal(text, i, line_end) {
        return Some(span);
    }
    // Scala's `s"…"` and `raw"…"`, JavaScript's ``String.raw`…` ``: a word before the quote.
    for word in ["String.raw`", "raw\"", "s\""] {
        if text[i..line_end].starts_with(word) {
            let start = i + word.len();
            let q = word.as_bytes()[word.len() - 1];
            let len = b[start..].iter().position(|&c| c == q)?;
            return (len > 0).then_some((start, start + len));
        }
    }
    let mut p = i;
    while p < b.len()
        && p - i < 3
        && matches!(
            b[p],
            b'b' | b'B' | b'f' | b'F' | b'r' | b'R' | b'u' | b'U' | b'L' | b'8' | b'@' | b'$'
        )
    {
        p += 1;
    }
    // T-SQL's national strings: `N'…'`.
    if b.get(i) == Some(&b'N') && b.get(i + 1) == Some(&b'\'') {
        p = i + 1;
    }
    let prefix = &text[i..p];
    if prefix.contains('8') && !prefix.starts_with("u8") {
        return None;
    }
    let hashes = b[p..].iter().take_while(|&&c| c == b'#').count();
    // Rust's `r#"…"#`, and Swift's `#"…"#` with no prefix.
    if hashes > 0 && !(prefix.ends_with('r') || prefix.is_empty()) {
        return None;
    }
    let q_at = p + hashes;
    let q = *b.get(q_at).filter(|&&q| q == b'"' || q == b'\'')?;
    let triple = b[q_at..].starts_with(&[q, q, q]);
    if prefix.is_empty() && !triple && hashes == 0 {
        return None;
    }
    let raw = prefix.contains(['r', 'R', '@']) || hashes > 0;
    let (start, close): (usize, Vec<u8>) = if triple {
        (q_at + 3, vec![q, q, q])
    } else if hashes > 0 {
        let mut close = vec![b'"'];
        close.extend(std::iter::repeat_n(b'#', hashes));
        (q_at + 1, close)
    } else if prefix == "R" && q == b'"' {
        // C++: `R"delim(…)delim"`; without the parenthesis, Python's raw string.
        let open = b[q_at + 1..]
            .iter()
            .take(17)
            .position(|&c| c == b'(')
            .filter(|&n| {
                b[q_at + 1..q_at + 1 + n]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
            });
        match open {
            Some(n) => {
                let mut close = vec![b')'];
                close.extend_from_slice(&b[q_at + 1..q_at + 1 + n]);
                close.push(b'"');
                (q_at + 2 + n, close)
            }
            None => (q_at + 1, vec![q]),
        }
    } else {
        (q_at + 1, vec![q])
    };
    let mut j = start;
    while j + close.len() <= b.len() {
        if !raw && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j..].starts_with(&close) {
            return (j > start).then_some((start, j));
        }
        j += 1;
    }
    None
}

/// The literals joined to the one whose contents are `start..close` (`close` at its closing
/// quote): `"…" + "…"` (JavaScript, Java, C#), `"…" "…"` (Python, C), `'…' . '…'` (PHP, Perl),
/// `"…" .. "…"` (Lua), `'…' || '…'` (SQL), `"…" & "…"` (VB). Parts may stand on the next line
/// when an operator joins them there, or when they are `wrapped` in parentheses. The end of the
/// last part's contents and all the parts' contents joined; `None` when nothing is joined.
fn joined_literals(
    text: &str,
    start: usize,
    close: usize,
    wrapped: bool,
) -> Option<(usize, String)> {
    let b = text.as_bytes();
    let operator = |k: usize| -> usize {
        let at = |n: usize| b.get(k + n).copied();
        match (at(0), at(1), at(2)) {
            (Some(b'+'), Some(b'+' | b'='), _) | (Some(b'&'), Some(b'&' | b'='), _) => 0,
            (Some(b'.'), Some(b'.'), Some(b'.')) => 0,
            (Some(b'.'), Some(b'.'), _) | (Some(b'|'), Some(b'|'), _) => 2,
            (Some(b'+' | b'.' | b'&' | b'~'), _, _) => 1,
            _ => 0,
        }
    };
    let spaces = |k: &mut usize| {
        while matches!(b.get(*k), Some(b' ' | b'\t')) {
            *k += 1;
        }
    };
    let mut joined = String::new();
    let (mut end, mut p, mut parts) = (close, close + 1, 1);
    while parts < 16 {
        let mut k = p;
        spaces(&mut k);
        let mut joins = operator(k);
        k += joins;
        let mut crossed = false;
        loop {
            match b.get(k) {
                Some(b' ' | b'\t' | b'\r') => k += 1,
                Some(b'\n') => {
                    crossed = true;
                    k += 1;
                }
                Some(b'\\') if b.get(k + 1) == Some(&b'\n') => {
                    crossed = true;
                    k += 2;
                }
                _ => break,
            }
        }
        if joins == 0 {
            joins = operator(k);
            k += joins;
            spaces(&mut k);
        }
        if crossed && joins == 0 && !wrapped {
            break;
        }
        let Some(&q) = b.get(k).filter(|&&c| matches!(c, b'"' | b'\'' | b'`')) else {
            break;
        };
        let from = k + 1;
        let mut j = from;
        while j < b.len() && b[j] != q && b[j] != b'\n' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        if b.get(j) != Some(&q) {
            break;
        }
        if parts == 1 {
            joined.push_str(&text[start..close]);
        }
        joined.push_str(&text[from..j]);
        (end, p, parts) = (j, j + 1, parts + 1);
    }
    (parts > 1).then_some((end, joined))
}

/// The contents of a literal at `i` whose delimiters are not quotes, on the line ending at
/// `line_end`: Ruby's `%q(…)`, `%Q[…]`, `%(…)` and `%{…}` (any bracket, or one character twice),
/// and Lua's long brackets `[[…]]` and `[==[…]==]`.
fn delimited_literal(text: &str, i: usize, line_end: usize) -> Option<(usize, usize)> {
    let b = &text.as_bytes()[..line_end];
    let (start, close): (usize, Vec<u8>) = match (b.get(i), b.get(i + 1), b.get(i + 2)) {
        (Some(b'%'), Some(b'q' | b'Q'), Some(&d)) if !d.is_ascii_alphanumeric() && d != b' ' => {
            (i + 3, vec![closing(d)])
        }
        (Some(b'%'), Some(&d @ (b'(' | b'[' | b'{' | b'<' | b'|' | b'!')), _) => {
            (i + 2, vec![closing(d)])
        }
        (Some(b'['), Some(b'[' | b'='), _) => {
            let level = b[i + 1..].iter().take_while(|&&c| c == b'=').count();
            if b.get(i + 1 + level) != Some(&b'[') {
                return None;
            }
            let mut close = vec![b']'];
            close.extend(std::iter::repeat_n(b'=', level));
            close.push(b']');
            (i + 2 + level, close)
        }
        _ => return None,
    };
    let len = memchr::memmem::find(&b[start..], &close)?;
    (len > 0).then_some((start, start + len))
}

/// The bracket that closes `open`, or `open` itself.
fn closing(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        b'<' => b'>',
        d => d,
    }
}

/// The one line a multi-line literal opened at `i` holds (its line ending at `line_end`, where
/// the opener stands last): PowerShell's here-strings `@"` … `"@` and `@'` … `'@`, PHP's and
/// Ruby's heredocs (`<<<EOT`, `<<<'EOT'`, `<<~EOS`) and triple quotes (`"""` in Kotlin, Java,
/// Python, TOML). A literal of several lines is a document, whose lines are read as lines.
fn block_literal(text: &str, i: usize, line_end: usize) -> Option<(usize, usize)> {
    let opener = text[i..line_end].trim_end();
    let terminator: &str = match opener {
        "@\"" => "\"@",
        "@'" => "'@",
        "\"\"\"" | "'''" => opener,
        _ => {
            let tag = opener
                .strip_prefix("<<<")
                .or_else(|| opener.strip_prefix("<<~"))
                .or_else(|| opener.strip_prefix("<<-"))
                .or_else(|| opener.strip_prefix("<<"))?;
            let tag = tag.trim_matches(|c| c == '\'' || c == '"');
            if tag.is_empty() || !tag.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return None;
            }
            tag
        }
    };
    let body_at = line_end + 1;
    let mut lines = text.get(body_at..)?.split_inclusive('\n');
    let value = lines.next()?;
    let last = lines.next()?.trim();
    if !last.starts_with(terminator) {
        return None;
    }
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return None;
    }
    let start = body_at + (value.len() - value.trim_start().len());
    Some((start, start + trimmed.len()))
}

fn is_argument_tail(rest: &str) -> bool {
    let name = rest.trim_end_matches([')', ']', ':', ',', ';']);
    name.len() < rest.len()
        && rest[name.len()..].contains(')')
        && name.contains('.')
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// Whether `word` leaves a quote open: an odd count of `"` or of `'` in it.
fn open_quote(word: &str) -> bool {
    word.bytes().filter(|&b| b == b'"').count() % 2 == 1
        || word.bytes().filter(|&b| b == b'\'').count() % 2 == 1
}

/// A line's value without a trailing ` # comment`.
fn strip_comment(rest: &str) -> &str {
    match rest.find(" #") {
        Some(n) => &rest[..n],
        None => rest,
    }
}

/// A table's cells under a header that names a credential (`| Service | User | Password |`, a
/// CSV's `user,password`, `psql`'s ` id | api_key `, a box-drawn `│ Token │`), for the keyword
/// at `ks..ke` in that header: the span of each row's value in that column. A header of pipes
/// has a rule line under it (`|---|`, `----+----`, `├──┼──┤`); a CSV's or TSV's header opens
/// the text, a block, or a file shown with line numbers.
pub fn column_values(text: &str, ks: usize, ke: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let ls = text[..ks].rfind('\n').map_or(0, |n| n + 1);
    let le = text[ke..].find('\n').map_or(text.len(), |n| ke + n);
    let gutter = gutter_len(&text[ls..le]);
    let line = &text[ls + gutter..le];
    let sep = if line.contains('│') {
        '│'
    } else if line.contains('|') {
        '|'
    } else if line.contains('\t') {
        '\t'
    } else if line.contains(',') {
        ','
    } else {
        return out;
    };
    let header = split_cells(line, sep);
    let Some(at) = (ks - ls).checked_sub(gutter) else {
        return out;
    };
    let Some(column) = header.iter().position(|&(s, e)| s <= at && at < e) else {
        return out;
    };
    let name = line[header[column].0..header[column].1]
        .trim_matches(['`', '"', '\'', '*'])
        .replace(' ', "_");
    let pipes = matches!(sep, '|' | '│');
    // Every header cell a label (`Service`, `db_password`, `` `API key` ``, `"user"`), and this
    // one a credential's name; a CSV's header has no empty cell.
    let label = |c: &str| {
        let c = c.trim_matches(['`', '"', '\'', '*']);
        c.len() <= 48
            && (c.is_empty() && pipes
                || c.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b" _-./#".contains(&b)))
    };
    if header.len() < 2
        || !header.iter().all(|&(s, e)| label(&line[s..e]))
        || !is_credential_key(&name)
    {
        return out;
    }
    let mut next = (le + 1).min(text.len());
    if pipes {
        match text_line(text, next) {
            Some((rule, end)) if is_rule_line(&rule[gutter_len(rule)..]) => next = end + 1,
            _ => return out,
        }
    } else {
        let first = ls == 0 || {
            let prev = text[..ls - 1].rsplit('\n').next().unwrap_or("");
            let prev = prev.trim();
            prev.is_empty() || prev.starts_with("```") || prev.ends_with("Output:")
        };
        let numbered_one = text[ls..ls + gutter].trim().trim_end_matches('→') == "1";
        if !first && !numbered_one {
            return out;
        }
    }
    for _ in 0..2000 {
        let Some((row, end)) = text_line(text, next) else {
            break;
        };
        let row_start = next;
        next = end + 1;
        let gutter = gutter_len(row);
        let cells_line = &row[gutter..];
        if pipes && is_rule_line(cells_line) {
            if cells_line.contains(['└', '┘']) {
                break;
            }
            continue;
        }
        if !cells_line.contains(sep) {
            break;
        }
        let cells = split_cells(cells_line, sep);
        // A row has its header's cells; a line with other cells ends the table.
        if cells.len() != header.len() {
            break;
        }
        let Some(&(s, e)) = cells.get(column) else {
            continue;
        };
        let cell = &cells_line[s..e];
        let value = cell.trim_matches(['`', '"', '\'']);
        if value.is_empty()
            || value.contains(char::is_whitespace)
            || !judge(&name, value, Context::Literal)
        {
            continue;
        }
        let start = row_start + gutter + s + cell.find(value).unwrap_or(0);
        out.push((start, start + value.len()));
        if next > text.len() {
            break;
        }
    }
    out
}

/// The line of `text` that starts at `at`, and where it ends.
fn text_line(text: &str, at: usize) -> Option<(&str, usize)> {
    if at >= text.len() {
        return None;
    }
    let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
    Some((text[at..end].trim_end_matches('\r'), end))
}

/// A table's rule line: dashes and corners (`|---|:--:|`, `----+----`, `├───┼───┤`).
fn is_rule_line(line: &str) -> bool {
    let l = line.trim();
    !l.is_empty()
        && l.contains(['-', '─', '═', '━'])
        && l.chars()
            .all(|c| "-|+:= \t─━═┼├┤┬┴┌┐└┘│╞╡╪╇╈╋┃┏┓┗┛┣┫┳┻".contains(c))
}

/// The cells of a table row, as trimmed spans of `line`: split at `sep` (outer pipes dropped),
/// a CSV's quoted cells kept whole.
fn split_cells(line: &str, sep: char) -> Vec<(usize, usize)> {
    let mut cells = Vec::new();
    let b = line.as_bytes();
    let (mut start, mut quoted) = (0, false);
    let mut push = |s: usize, e: usize| {
        let cell = &line[s..e];
        let lead = cell.len() - cell.trim_start().len();
        cells.push((s + lead, s + lead + cell.trim().len()));
    };
    for (i, c) in line.char_indices() {
        if sep == ',' && c == '"' && (i == start || quoted || line[start..i].trim().is_empty()) {
            quoted = !quoted || b.get(i + 1) == Some(&b'"');
            continue;
        }
        if c == sep && !quoted {
            push(start, i);
            start = i + c.len_utf8();
        }
    }
    push(start, line.len());
    if matches!(sep, '|' | '│') {
        // `| a | b |`: the empty cells outside the outer pipes are not cells.
        if cells.first().is_some_and(|&(s, e)| s == e) {
            cells.remove(0);
        }
        if cells.last().is_some_and(|&(s, e)| s == e) {
            cells.pop();
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick test on the key's letters never turns away a key its words would name a
    /// credential: every word list, in every case and spelling, glued and separated.
    #[test]
    fn the_quick_test_turns_away_only_keys_the_words_would_too() {
        let words: Vec<&str> = CREDENTIAL_WORDS
            .iter()
            .chain(KEY_QUALIFIERS)
            .chain(QUALIFIERS)
            .chain(VALUE_SUFFIXES)
            .chain(VERBS)
            .chain(NOT_CREDENTIAL)
            .chain(&["key", "auth", "db", "redis", "user", "name", "id", "2"])
            .copied()
            .collect();
        let spell = |w: &str, how: usize| match how {
            0 => w.to_owned(),
            1 => w.to_ascii_uppercase(),
            _ => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        };
        let mut named = 0;
        for (i, a) in words.iter().enumerate() {
            for (j, b) in words.iter().enumerate() {
                for sep in ["_", "-", ".", "", " "] {
                    let how = (i + j) % 3;
                    let key = format!("{}{sep}{}", spell(a, how), spell(b, how));
                    if names_credential(&key) {
                        named += 1;
                        assert!(is_credential_key(&key), "{key} turned away");
                    }
                }
            }
        }
        assert!(named > 1000, "{named}");
    }

    #[test]
    fn credential_keys_are_named_case_and_separator_insensitively() {
        for key in [
            "password",
            "PASSWORD",
            "db_password",
            "DB_PASS",
            "SMTP_PASS",
            "passwd",
            "pwd",
            "secret",
            "client_secret",
            "clientSecret",
            "AWS_SECRET_ACCESS_KEY",
            "api_key",
            "apiKey",
            "x-api-key",
            "ENCRYPTION_KEY",
            "SIGNING_KEY",
            "SECRET_KEY_BASE",
            "github_token",
            "accessToken",
            "auth",
            "_auth",
            "private_key",
            "passphrase",
            "dbpassword",
            "credentials",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in [
            "max_tokens",
            "maxTokens",
            "token_type",
            "nextToken",
            "password_field",
            "key",
            "author",
            "tokens",
            "bypass",
            "compass",
            "secret_name",
            "TOKEN_ENDPOINT",
            "generate_private_key",
            "api_key_id",
            "input_tokens",
            "cache_key",
            "primary_key",
        ] {
            assert!(!is_credential_key(key), "{key}");
        }
    }

    fn found(text: &str) -> Option<&str> {
        let lower = text.to_ascii_lowercase();
        let kw = KEYWORDS
            .iter()
            .filter_map(|k| lower.find(k).map(|at| (at, at + k.len())))
            .min()?;
        assigned_value(text, kw.0, kw.1).map(|(s, e)| &text[s..e])
    }

    #[test]
    fn values_in_each_context() {
        for (text, value) in [
            ("DB_PASSWORD=correct-horse-battery", "correct-horse-battery"),
            ("DB_PASS=hunterpass", "hunterpass"),
            ("export API_TOKEN=Pa(ss)w0rd!x", "Pa(ss)w0rd!x"),
            ("ENCRYPTION_KEY=abcdefghijklmnop", "abcdefghijklmnop"),
            ("password: correcthorsebattery", "correcthorsebattery"),
            ("  password: \"s3cr3t!pw\"", "s3cr3t!pw"),
            (r#"{"password": "hunter two x"}"#, "hunter two x"),
            ("password = 'Pa(ss)word!'", "Pa(ss)word!"),
            ("mysql --password=Zq8xLm2pWq", "Zq8xLm2pWq"),
            ("url?token=a8Fk2mQ9xZ7pL3&next=1", "a8Fk2mQ9xZ7pL3"),
            ("SECRET=$ecretP4ss!", "$ecretP4ss!"),
            (r#"{\"api_key\": \"q8Zm4Lp2Xw9\"}"#, "q8Zm4Lp2Xw9"),
        ] {
            assert_eq!(found(text), Some(value), "{text}");
        }
    }

    #[test]
    fn code_references_and_placeholders_are_not_values() {
        for text in [
            "def connect(user, pwd=None):",
            "    conn = connect(password=password)",
            "password = parts['password']",
            "let tokens = self.tokens();",
            "token = self.token",
            "password = get_password()",
            "TOKEN_ENDPOINT = \"/v1/oauth/token\"",
            "DB_PASSWORD=${DB_PASSWORD}",
            "API_KEY=$API_KEY",
            "password: string;",
            "pub password: String,",
            "password: Optional[str] = None",
            "secret: SecretStr",
            "api_key = os.environ['API_KEY']",
            "password=changeme",
            "TOKEN_NAME = \"access_token\"",
            "token: '<your token here>'",
            "password = \"%s\"",
            "if password:",
            "?a=b&token=&c=d",
            "grant_type=password&username=x",
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }
}
