//! Every answer Tollgate gives instead of the upstream's: one type, one function that renders it
//! in the provider's own error shape with `x-tollgate-*` headers naming the cause.

use super::dial::DialError;
use crate::providers::ErrorFormat;
use http::{HeaderValue, Response, StatusCode};
use hudsucker::Body;

/// Header naming why Tollgate answered (`host-denied`, `upstream-unreachable`, …).
pub const REASON_HEADER: &str = "x-tollgate-reason";
/// Header naming the policy rule that refused, where one did.
pub const RULE_HEADER: &str = "x-tollgate-rule";

/// Why a request or tunnel was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    HostDenied,
    InternalAddress,
    HostMismatch,
    PlaintextToProvider,
    WebSocketRefused,
    NestedConnect,
    NotAProxyRequest,
    Draining,
    UpstreamUnreachable,
    UpstreamTimeout,
    UpstreamTls,
    UpstreamFailed,
    SecretBlocked,
    /// Waiting for an approver (`retry` mode): the message carries the approval id.
    ApprovalPending,
    /// An approver refused it; the message carries their reason.
    ApprovalDenied,
    /// Nobody decided within the rule's `wait`.
    ApprovalTimeout,
    BodyTooLarge,
    UndecodableBody,
    /// The client stopped sending mid-body for longer than `timeouts.body_idle`.
    RequestTimeout,
    UninspectableBody,
    SignedBody,
    StoreUnavailable,
    ProxyAuthRequired,
    IdentityUnavailable,
    CredentialsExpired,
    ProviderNotAllowed,
    RegionNotAllowed,
    RegionMismatch,
    ModelNotAllowed,
}

impl Reason {
    pub fn slug(self) -> &'static str {
        match self {
            Reason::HostDenied => "host-denied",
            Reason::InternalAddress => "internal-address",
            Reason::HostMismatch => "host-mismatch",
            Reason::PlaintextToProvider => "plaintext-to-provider",
            Reason::WebSocketRefused => "websocket-refused",
            Reason::NestedConnect => "nested-connect",
            Reason::NotAProxyRequest => "not-a-proxy-request",
            Reason::Draining => "draining",
            Reason::UpstreamUnreachable => "upstream-unreachable",
            Reason::UpstreamTimeout => "upstream-timeout",
            Reason::UpstreamTls => "upstream-tls",
            Reason::UpstreamFailed => "upstream-failed",
            Reason::SecretBlocked => "secret-blocked",
            Reason::ApprovalPending => "approval-pending",
            Reason::ApprovalDenied => "approval-denied",
            Reason::ApprovalTimeout => "approval-timeout",
            Reason::BodyTooLarge => "body-too-large",
            Reason::UndecodableBody => "undecodable-body",
            Reason::RequestTimeout => "request-timeout",
            Reason::UninspectableBody => "uninspectable-body",
            Reason::SignedBody => "signed-body",
            Reason::StoreUnavailable => "store-unavailable",
            Reason::ProxyAuthRequired => "proxy-auth-required",
            Reason::IdentityUnavailable => "identity-unavailable",
            Reason::CredentialsExpired => "credentials-expired",
            Reason::ProviderNotAllowed => "provider-not-allowed",
            Reason::RegionNotAllowed => "region-not-allowed",
            Reason::RegionMismatch => "region-mismatch",
            Reason::ModelNotAllowed => "model-not-allowed",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Reason::HostDenied
            | Reason::InternalAddress
            | Reason::PlaintextToProvider
            | Reason::SecretBlocked
            | Reason::ApprovalPending
            | Reason::ApprovalDenied
            | Reason::SignedBody
            | Reason::ProviderNotAllowed
            | Reason::RegionNotAllowed
            | Reason::ModelNotAllowed => StatusCode::FORBIDDEN,
            Reason::RegionMismatch => StatusCode::BAD_REQUEST,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::UndecodableBody => StatusCode::BAD_REQUEST,
            Reason::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reason::UninspectableBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::HostMismatch => StatusCode::MISDIRECTED_REQUEST,
            Reason::ProxyAuthRequired | Reason::CredentialsExpired => {
                StatusCode::PROXY_AUTHENTICATION_REQUIRED
            }
            Reason::WebSocketRefused => StatusCode::UPGRADE_REQUIRED,
            Reason::NestedConnect | Reason::NotAProxyRequest => StatusCode::BAD_REQUEST,
            Reason::Draining | Reason::StoreUnavailable | Reason::IdentityUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Reason::UpstreamTimeout | Reason::ApprovalTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::UpstreamUnreachable | Reason::UpstreamTls | Reason::UpstreamFailed => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// Whether a client may succeed by trying again (SDKs honour `x-should-retry`).
    fn retryable(self) -> bool {
        matches!(
            self,
            Reason::Draining
                | Reason::StoreUnavailable
                | Reason::IdentityUnavailable
                | Reason::UpstreamUnreachable
                | Reason::UpstreamTimeout
                | Reason::UpstreamFailed
        )
    }
}

/// A refusal: why, what to tell the user, and which rule decided it.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub rule: Option<String>,
    /// A 407 also offers `Bearer` (an OIDC provider is configured).
    bearer: bool,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            rule: None,
            bearer: false,
        }
    }

    /// Offers `Bearer` besides `Basic` in a 407's `Proxy-Authenticate`.
    pub fn with_bearer_challenge(mut self, bearer: bool) -> Self {
        self.bearer = bearer;
        self
    }

    /// `host` is refused by the policy entry `rule`.
    pub fn host_denied(host: &str, rule: String) -> Self {
        Refusal::new(
            Reason::HostDenied,
            format!("{host} is denied by policy ({rule})"),
        )
        .with_rule(rule)
    }

    /// A request body that masking refused.
    pub fn masking(err: crate::mask::MaskError) -> Self {
        use crate::mask::MaskError;
        use crate::mask::decode::DecodeError;
        let message = err.to_string();
        match err {
            MaskError::Blocked { rule, .. } => Refusal::new(Reason::SecretBlocked, message)
                .with_rule(format!("masking.rules: {rule}")),
            MaskError::Decode(DecodeError::TooLarge { .. }) => {
                Refusal::new(Reason::BodyTooLarge, message)
                    .with_rule("masking.limits.max_body_bytes")
            }
            MaskError::Decode(_) => Refusal::new(Reason::UndecodableBody, message),
            MaskError::Uninspectable { .. } | MaskError::Charset { .. } => {
                Refusal::new(Reason::UninspectableBody, message)
            }
            MaskError::NulByte { .. }
            | MaskError::NotStrictJson(_)
            | MaskError::DuplicateKey(_) => Refusal::new(Reason::UndecodableBody, message),
            MaskError::Attachment { .. } => Refusal::new(Reason::UninspectableBody, message)
                .with_rule("masking.attachments: refuse"),
        }
    }

    /// What the access rules of policy.yaml refused.
    pub fn access(err: crate::policy::AccessError) -> Self {
        use crate::policy::AccessError;
        use crate::policy::access::DeniedKind;
        match err {
            AccessError::Mismatch { mismatch, rule } => {
                Refusal::new(Reason::RegionMismatch, mismatch.to_string()).with_rule(rule)
            }
            AccessError::Denied(denied) => {
                let reason = match denied.kind {
                    DeniedKind::Provider => Reason::ProviderNotAllowed,
                    DeniedKind::Region => Reason::RegionNotAllowed,
                    DeniedKind::Model => Reason::ModelNotAllowed,
                };
                Refusal::new(reason, denied.message)
                    .with_rule(format!("policy.yaml: {}", denied.rule))
            }
        }
    }

    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// Classifies a failed upstream connection or exchange. `host` names the upstream.
    pub fn from_upstream_error(host: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        if let Some(dial) = find_in_chain::<DialError>(err) {
            let reason = match dial {
                DialError::InternalAddress { .. } => Reason::InternalAddress,
                DialError::Timeout { .. } => Reason::UpstreamTimeout,
                _ => Reason::UpstreamUnreachable,
            };
            let refusal = Refusal::new(reason, dial.to_string());
            return match reason {
                Reason::InternalAddress => refusal.with_rule("hosts.allow_internal"),
                _ => refusal,
            };
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(err) {
            return Refusal::new(
                Reason::UpstreamTls,
                format!(
                    "TLS with {host} failed, its certificate was not accepted or the handshake broke: {tls}"
                ),
            );
        }
        Refusal::new(
            Reason::UpstreamFailed,
            format!(
                "the exchange with {host} failed: {}",
                crate::net::describe_error(err)
            ),
        )
    }

    /// The response the client sees, shaped like `format`'s own errors.
    pub fn into_response(self, format: ErrorFormat) -> Response<Body> {
        let status = self.status();
        let message = format!("Tollgate refused this request: {}", self.message);
        let body = format.render(status, &self.reason.slug().replace('-', "_"), &message);
        let mut response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(REASON_HEADER, self.reason.slug())
            .header(
                "x-should-retry",
                if self.reason.retryable() {
                    "true"
                } else {
                    "false"
                },
            );
        if let Some(rule) = self
            .rule
            .as_deref()
            .and_then(|r| HeaderValue::from_str(r).ok())
        {
            response = response.header(RULE_HEADER, rule);
        }
        if let Some((name, value)) = body.extra_header {
            response = response.header(name, value);
        }
        if self.reason == Reason::ProxyAuthRequired {
            response = response.header(
                http::header::PROXY_AUTHENTICATE,
                "Basic realm=\"tollgate\", charset=\"UTF-8\"",
            );
            if self.bearer {
                response = response.header(
                    http::header::PROXY_AUTHENTICATE,
                    "Bearer realm=\"tollgate\"",
                );
            }
        }
        if matches!(self.reason, Reason::Draining | Reason::CredentialsExpired) {
            response = response.header(http::header::CONNECTION, "close");
        }
        response
            .body(Body::from(body.json))
            .expect("refusal headers are valid")
    }
}

/// Finds an error of type `T` in a source chain, looking inside `io::Error` wrappers too
/// (`io::Error::source` skips the error it wraps).
pub fn find_in_chain<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(found) = inner.downcast_ref::<T>() {
                return Some(found);
            }
            if let Some(found) = find_in_chain::<T>(inner) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn refusal_renders_provider_shape_and_headers() {
        let r = Refusal::new(Reason::HostDenied, "pastebin.com is denied")
            .with_rule("hosts.deny: pastebin.com")
            .into_response(ErrorFormat::Anthropic);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()[REASON_HEADER], "host-denied");
        assert_eq!(r.headers()[RULE_HEADER], "hosts.deny: pastebin.com");
        assert_eq!(r.headers()["x-should-retry"], "false");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("pastebin.com is denied")
        );
    }

    #[test]
    fn finds_errors_wrapped_in_io_errors() {
        let tls = rustls::Error::General("bad".into());
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(find_in_chain::<rustls::Error>(&io).is_some());
        let r = Refusal::from_upstream_error("api.openai.com", &io);
        assert_eq!(r.reason, Reason::UpstreamTls);
    }
}
