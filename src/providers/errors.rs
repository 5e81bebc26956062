//! Error bodies shaped like each provider's own, so an agent prints Tollgate's reason the way it
//! prints the provider's errors instead of a parse failure.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// Which provider's error JSON a refusal imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param","code"}}` (OpenAI and the many APIs that copy it).
    #[default]
    Openai,
    /// `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// `{"error":{"code","message","status"}}` (Gemini, Vertex AI).
    Google,
    /// `{"message"}` with an `x-amzn-ErrorType` header (Bedrock).
    Aws,
}

/// A rendered error: the JSON body and any header the format adds.
pub struct ErrorBody {
    pub json: Vec<u8>,
    pub extra_header: Option<(&'static str, &'static str)>,
}

impl ErrorFormat {
    /// Renders `message` as this provider would; `code` is Tollgate's short reason slug.
    pub fn render(self, status: StatusCode, code: &str, message: &str) -> ErrorBody {
        let (value, extra_header) = match self {
            ErrorFormat::Openai => (
                json!({"error": {
                    "message": message,
                    "type": openai_type(status),
                    "param": null,
                    "code": code,
                }}),
                None,
            ),
            ErrorFormat::Anthropic => (
                json!({"type": "error", "error": {
                    "type": anthropic_type(status),
                    "message": message,
                }}),
                None,
            ),
            ErrorFormat::Google => (
                json!({"error": {
                    "code": status.as_u16(),
                    "message": message,
                    "status": google_status(status),
                }}),
                None,
            ),
            ErrorFormat::Aws => (
                json!({"message": message}),
                Some(("x-amzn-errortype", aws_type(status))),
            ),
        };
        ErrorBody {
            json: serde_json::to_vec(&value).expect("a JSON value always serializes"),
            extra_header,
        }
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 421 | 426 => "invalid_request_error",
        401 | 407 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 407 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 407 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        400..=499 => "INVALID_ARGUMENT",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn aws_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 | 407 => "AccessDeniedException",
        400..=499 => "ValidationException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &ErrorBody) -> serde_json::Value {
        serde_json::from_slice(&body.json).unwrap()
    }

    #[test]
    fn openai_shape_carries_message_and_code() {
        let b = ErrorFormat::Openai.render(StatusCode::FORBIDDEN, "host_denied", "no");
        let v = parse(&b);
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(v["error"]["code"], "host_denied");
        assert_eq!(v["error"]["type"], "permission_error");
    }

    #[test]
    fn anthropic_shape_is_typed_error() {
        let v = parse(&ErrorFormat::Anthropic.render(StatusCode::BAD_GATEWAY, "x", "down"));
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(v["error"]["message"], "down");
    }

    #[test]
    fn google_and_aws_shapes() {
        let v = parse(&ErrorFormat::Google.render(StatusCode::FORBIDDEN, "x", "m"));
        assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
        assert_eq!(v["error"]["code"], 403);
        let b = ErrorFormat::Aws.render(StatusCode::FORBIDDEN, "x", "m");
        assert_eq!(parse(&b)["message"], "m");
        assert_eq!(
            b.extra_header,
            Some(("x-amzn-errortype", "AccessDeniedException"))
        );
    }
}
