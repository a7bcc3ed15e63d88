//! A provider's answer as an adapter reads it ([`Reply`]), the reading of a refusal
//! ([`read_error`]: the members its message is in, the duplicate it documents), and a duplicate
//! recognised in a refusal ([`Duplicate`]).

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::net::Incomplete;

use super::wire::from_json;
use crate::provider_error::{message_in, ErrorKind, ProviderError, USUAL_MESSAGE_MEMBERS};

/// A provider's answer as read, its body bounded: what an adapter maps to its errors, JSON,
/// JSON strings and plain text alike.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub status: StatusCode,
    /// Its `Content-Type` (empty when it sent none).
    pub content_type: &'a str,
    /// The body, as far as it was read.
    pub body: &'a [u8],
    /// The body parsed as JSON, when it is (whole) JSON: an object, an array, a string...
    pub json: Option<&'a Value>,
    /// Why the body is incomplete, when it is.
    pub incomplete: Option<&'a Incomplete>,
}

/// Longest text of a body kept in a message.
const MAX_TEXT: usize = 500;

impl<'a> Reply<'a> {
    /// A reply with a JSON body (tests, and answers read whole).
    pub fn json(status: StatusCode, json: &'a Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: &[],
            json: Some(json),
            incomplete: None,
        }
    }

    /// A reply with a plain-text body.
    pub fn text(status: StatusCode, body: &'a str) -> Self {
        Self {
            status,
            content_type: "text/plain",
            body: body.as_bytes(),
            json: None,
            incomplete: None,
        }
    }

    /// The body's text: a JSON string's value, or a body that is not JSON, HTML or empty, read
    /// as UTF-8; trimmed, control characters replaced, at most 500 characters.
    pub fn message(&self) -> Option<String> {
        let text = match self.json {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return None,
            None if self.incomplete.is_some() || self.looks_like_html() || self.says_json() => {
                return None
            }
            None => std::str::from_utf8(self.body).ok()?,
        };
        let text: String = text
            .trim()
            .chars()
            .map(|c| {
                if c.is_control() || is_bidi_control(c) {
                    ' '
                } else {
                    c
                }
            })
            .take(MAX_TEXT)
            .collect();
        (!text.trim().is_empty()).then_some(text)
    }

    fn says_json(&self) -> bool {
        self.content_type.to_ascii_lowercase().contains("json")
    }

    /// The body read into a provider's wire struct, when it is JSON of that shape.
    pub fn json_as<T: DeserializeOwned>(&self) -> Option<T> {
        self.json.and_then(|j| from_json(j).ok())
    }

    fn looks_like_html(&self) -> bool {
        self.content_type.to_ascii_lowercase().contains("html")
            || self.body.trim_ascii_start().starts_with(b"<")
    }

    /// What the body is, in words, when it is not the JSON expected.
    pub fn described(&self) -> String {
        if let Some(incomplete) = self.incomplete {
            return format!("the body was {incomplete}");
        }
        let ct = self.content_type.to_ascii_lowercase();
        let n = self.body.len();
        let what = if self.body.is_empty() {
            "an empty body".to_owned()
        } else if self.looks_like_html() {
            format!("an HTML body ({n} bytes)")
        } else if self.says_json() {
            format!("invalid JSON ({n} bytes)")
        } else {
            let ct = if ct.is_empty() {
                "no content type"
            } else {
                &ct
            };
            format!("a non-JSON body ({ct}, {n} bytes)")
        };
        format!("with {what}")
    }
}

/// How a provider refuses a duplicate of its natural key, as its documents say: the status it
/// answers and a phrase its message contains (compared case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub status: u16,
    pub says: &'static str,
}

impl Duplicate {
    /// `err` as a `conflict` when the answer is this duplicate; else unchanged.
    pub fn recognise(self, err: ProviderError, status: StatusCode) -> ProviderError {
        let says_so = err
            .message
            .to_lowercase()
            .contains(&self.says.to_lowercase());
        if status.as_u16() == self.status && says_so {
            err.with_kind(ErrorKind::Conflict)
        } else {
            err
        }
    }
}

/// The default reading of a refusal: its kind from the status, its message from a JSON error
/// body's usual members, from a plain-text or JSON-string body, else what the body was.
pub fn error_of(reply: &Reply) -> ProviderError {
    read_error(reply, USUAL_MESSAGE_MEMBERS, None)
}

/// A refusal read the way a provider documents it: its message from the JSON error body's
/// `members` (the first non-blank one), from a plain-text or JSON-string body, else what the body
/// was; a `conflict` when it is the provider's `duplicate`.
pub fn read_error(reply: &Reply, members: &[&str], duplicate: Option<Duplicate>) -> ProviderError {
    let err = read_message(reply, members);
    match duplicate {
        Some(duplicate) => duplicate.recognise(err, reply.status),
        None => err,
    }
}

fn read_message(reply: &Reply, members: &[&str]) -> ProviderError {
    let code = reply.status.as_u16();
    let err = ProviderError::from_status(reply.status, reply.json);
    if matches!(reply.json, Some(Value::Object(_) | Value::Array(_))) {
        let message = reply.json.and_then(|body| message_in(body, members));
        return err.with_message(message);
    }
    let message = match (reply.message(), reply.incomplete) {
        (Some(text), _) => format!("answered HTTP {code}: {text}"),
        (None, Some(incomplete)) => {
            format!("answered HTTP {code}; the body was {incomplete}")
        }
        (None, None) => format!("answered HTTP {code} {}", reply.described()),
    };
    ProviderError { message, ..err }
}

/// Bidirectional-text controls, which make a message read otherwise than it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_json_strings_reach_the_message() {
        let e = error_of(&Reply::text(
            StatusCode::BAD_REQUEST,
            "  name already taken\n",
        ));
        assert_eq!(e.message, "answered HTTP 400: name already taken");
        assert_eq!(e.kind, ErrorKind::Validation);
        let s = Value::String("Login ID already in use".into());
        let e = error_of(&Reply::json(StatusCode::BAD_REQUEST, &s));
        assert_eq!(e.message, "answered HTTP 400: Login ID already in use");
        let html = Reply {
            content_type: "text/html",
            ..Reply::text(StatusCode::BAD_GATEWAY, "<html>oops</html>")
        };
        assert_eq!(
            error_of(&html).message,
            "answered HTTP 502 with an HTML body (17 bytes)"
        );
        let object = serde_json::json!({"message": "no such workspace"});
        assert_eq!(
            error_of(&Reply::json(StatusCode::NOT_FOUND, &object)).message,
            "no such workspace"
        );
        let empty = Reply::text(StatusCode::SERVICE_UNAVAILABLE, "");
        assert_eq!(
            error_of(&empty).message,
            "answered HTTP 503 with an empty body"
        );
        let control = Reply::text(StatusCode::BAD_REQUEST, "a\u{1b}[31mb");
        assert_eq!(control.message().as_deref(), Some("a [31mb"));
    }

    #[test]
    fn a_duplicate_is_recognised_at_its_documented_status_only() {
        let body = serde_json::json!({"error": "Login ID already in use"});
        let duplicate = Some(Duplicate {
            status: 400,
            says: "login id already in use",
        });
        let kind = |status, duplicate| {
            read_error(
                &Reply::json(status, &body),
                USUAL_MESSAGE_MEMBERS,
                duplicate,
            )
            .kind
        };
        assert_eq!(
            kind(StatusCode::BAD_REQUEST, duplicate),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind(StatusCode::INTERNAL_SERVER_ERROR, duplicate),
            ErrorKind::Unavailable,
            "only the documented status says the request was refused as a duplicate"
        );
        let taken = Some(Duplicate {
            status: 400,
            says: "taken",
        });
        assert_eq!(kind(StatusCode::BAD_REQUEST, taken), ErrorKind::Validation);
        let at_422 = Some(Duplicate {
            status: 422,
            says: "already been taken",
        });
        let body = serde_json::json!({"message": "Name has already been taken"});
        let e = read_error(
            &Reply::json(StatusCode::UNPROCESSABLE_ENTITY, &body),
            USUAL_MESSAGE_MEMBERS,
            at_422,
        );
        assert_eq!(e.kind, ErrorKind::Conflict, "a duplicate answered 422");
    }

    #[test]
    fn the_message_comes_from_the_members_a_provider_documents() {
        let body = serde_json::json!({"error": "invalid_token", "error_description": "The access token provided is expired"});
        let usual = read_error(
            &Reply::json(StatusCode::UNAUTHORIZED, &body),
            USUAL_MESSAGE_MEMBERS,
            None,
        );
        assert_eq!(usual.message, "invalid_token");
        let described = read_error(
            &Reply::json(StatusCode::UNAUTHORIZED, &body),
            &["error_description", "error"],
            None,
        );
        assert_eq!(described.message, "The access token provided is expired");
        assert_eq!(described.kind, ErrorKind::Unauthorized);
        let bare = serde_json::json!({"error": "invalid_token"});
        let fallback = read_error(
            &Reply::json(StatusCode::UNAUTHORIZED, &bare),
            &["error_description", "error"],
            None,
        );
        assert_eq!(
            fallback.message, "invalid_token",
            "the next member when the first is absent"
        );
    }
}
