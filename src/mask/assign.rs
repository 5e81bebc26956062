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
];

/// First segments that make the name an action on a credential, not one (`generate_private_key`,
/// `get_password`, `validate_token`).
const VERBS: &[&str] = &[
    "generate", "gen", "get", "set", "load", "read", "write", "create", "make", "new", "parse",
    "validate", "check", "verify", "fetch", "encode", "decode", "has", "is", "with", "use",
    "update", "delete", "remove", "rotate", "hash", "compare", "find", "lookup", "save", "store",
    "require", "reset", "change", "forgot", "show", "hide", "print", "log", "mask", "redact",
];

/// Trailing segments that still leave the key naming the secret (`SECRET_KEY_BASE`, `TOKEN_B64`).
const VALUE_SUFFIXES: &[&str] = &[
    "base", "value", "val", "b64", "base64", "hex", "raw", "enc", "encoded", "str",
];

/// The keywords (any case) that start a look at an assignment in text; used to prefilter.
pub const KEYWORDS: &[&str] = &[
    "pass",
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
    if key.len() > 64 {
        return false;
    }
    let mut segs = segments(key);
    while segs.len() > 1
        && segs
            .last()
            .is_some_and(|s| VALUE_SUFFIXES.contains(&s.as_str()))
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
    if CREDENTIAL_WORDS.contains(&last.as_str()) {
        return true;
    }
    if last == "key" {
        return segs.len() >= 2 && KEY_QUALIFIERS.contains(&segs[segs.len() - 2].as_str());
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
    if is_reference(v) || is_placeholder_value(v) {
        return false;
    }
    // A value that repeats the key's own word names a field: `TOKEN_NAME = "token"`,
    // `password = password`, `"access_token"`.
    let lower = v.to_ascii_lowercase();
    if let Some(word) = segments(key).last()
        && is_identifier_like(v)
        && segments(v).contains(word)
    {
        return false;
    }
    if v.contains("%s") || v.contains("{}") || v.contains("{0}") || v.contains("%(") {
        return false;
    }
    let words = v.split_whitespace().count();
    if words > 1 && (words > 6 || v.len() > 64) {
        // A sentence, not a passphrase.
        return false;
    }
    if v.starts_with('/') || lower.starts_with("http://") || lower.starts_with("https://") {
        return false;
    }
    match context {
        Context::Literal => true,
        Context::Line => {
            let prose = words > 1 && looks_like_prose(v);
            !(is_type_name(v) || is_code_expression(v) || prose)
        }
        Context::Yaml => {
            let bare_name = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let code = !bare_name && is_code_expression(v);
            let prose = words > 1 && looks_like_prose(v);
            !(is_type_name(v) || code || prose)
        }
        Context::Inline => words == 1 && looks_random(v) && !is_code_expression_strict(v),
    }
}

/// `$VAR`, `${VAR}`, `$(cmd)`, `%VAR%`, `{{ .Values.x }}`, `<token>`, `@Value(...)`.
fn is_reference(v: &str) -> bool {
    if let Some(rest) = v.strip_prefix('$') {
        if rest.starts_with('{') || rest.starts_with('(') {
            return true;
        }
        // `$VAR` / `$var` alone is a variable; `$ecretP4ss!`, `$2b$12$…` are values.
        let ident = rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let has_digit = rest.bytes().any(|b| b.is_ascii_digit());
        let upper = rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        return ident && (upper || !has_digit);
    }
    (v.starts_with('%') && v.ends_with('%'))
        || v.starts_with("{{")
        || v.contains("${")
        || v.contains("#{")
        || (v.starts_with('<') && v.ends_with('>'))
        || v.starts_with("@")
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
    TYPES.contains(&lower.as_str())
        || (v.as_bytes()[0].is_ascii_uppercase()
            && v.bytes().all(|b| b.is_ascii_alphanumeric())
            && !v.bytes().any(|b| b.is_ascii_digit())
            && v.bytes().skip(1).any(|b| b.is_ascii_lowercase()))
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
    true
}

/// As `is_code_expression`, for inline values: anything with call or attribute syntax.
fn is_code_expression_strict(v: &str) -> bool {
    is_code_expression(v) || v.contains('(') || v.contains("->") || v.contains("::")
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
                "the" | "a" | "an" | "to" | "of" | "for" | "your" | "is" | "be" | "and" | "or"
            )
        })
}

/// Letters and digits mixed with enough entropy to be generated, not typed as a name.
pub fn looks_random(v: &str) -> bool {
    let has_letter = v.bytes().any(|b| b.is_ascii_alphabetic());
    let has_digit = v.bytes().any(|b| b.is_ascii_digit());
    let needed = 3.0f64.min((v.len() as f64).log2() * 0.85);
    v.len() >= 8 && has_letter && has_digit && super::detect::entropy(v) >= needed
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Looks for an assignment whose key contains the keyword at `kw_start..kw_end` of `text`;
/// returns the span of the secret value, if one is assigned.
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
    if !is_credential_key(key_text) {
        return None;
    }
    let mut i = ke;
    // The key's closing quote: `"password": …`, also as written inside a JSON string (`\"`).
    let quoted_key = ks > 0 && matches!(b[ks - 1], b'"' | b'\'');
    if quoted_key {
        if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b[ks - 1]) {
            i += 2;
        } else if b.get(i) == Some(&b[ks - 1]) {
            i += 1;
        } else {
            return None;
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
    let op = if text[i..].starts_with(":=") || text[i..].starts_with("=>") {
        2
    } else if (b.get(i) == Some(&b'=') && b.get(i + 1) != Some(&b'='))
        || (b.get(i) == Some(&b':') && b.get(i + 1) != Some(&b':'))
    {
        1
    } else {
        return None;
    };
    let colon = b[i] == b':' && op == 1;
    i += op;
    let space_after = spaces(&mut i);
    if i >= b.len() {
        return None;
    }
    let line_start = text[..ks].rfind('\n').map_or(0, |n| n + 1);
    let line_end = text[i..].find('\n').map_or(b.len(), |n| i + n);
    let before_key = text[line_start..ks.saturating_sub(quoted_key as usize)].trim();
    let at_line_start = before_key.is_empty()
        || before_key == "export"
        || before_key == "-"
        || before_key == "set"
        || before_key == "SET"
        || before_key.ends_with(" export");

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
        return judge(key_text, value, Context::Literal).then_some((start, j));
    }

    // Unquoted: a whole-line value (dotenv, YAML, INI, flags), or one inside code or prose.
    let rest = &text[i..line_end];
    let rest_trimmed = strip_comment(rest).trim_end();
    let dotenv = at_line_start
        && !colon
        && space_before == 0
        && space_after == 0
        && key_text
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    let yaml = at_line_start && colon && space_after > 0 && !rest_trimmed.ends_with([',', ';']);
    let ini = at_line_start && !colon && !rest_trimmed.ends_with([',', ';', '{', '(']);
    let flag = text[ks..kw_start].starts_with("--") && !colon;
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
    let context = if flag { Context::Line } else { Context::Inline };
    judge(key_text, value, context).then_some((i, end))
}

/// A line's value without a trailing ` # comment`.
fn strip_comment(rest: &str) -> &str {
    match rest.find(" #") {
        Some(n) => &rest[..n],
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
