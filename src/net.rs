//! What every outbound HTTP read shares (provider calls, token endpoints, the JWKS): a body read
//! within a size limit, transport errors in words, and the check of a configured URL.

/// Why a body was not read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// Over the limit (in bytes); the rest was not read.
    TooLarge(usize),
    /// The connection failed while reading.
    Broken(String),
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::TooLarge(limit) => write!(f, "over {limit} bytes"),
            Incomplete::Broken(cause) => write!(f, "cut: {cause}"),
        }
    }
}

/// Reads a response body, at most `limit` bytes: what was read, and why it stopped early if it
/// did. A larger body is never held whole in memory.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, Option<Incomplete>) {
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return (Vec::new(), Some(Incomplete::TooLarge(limit)));
    }
    let mut body = Vec::new();
    loop {
        match Box::pin(response.chunk()).await {
            Ok(Some(chunk)) if body.len() + chunk.len() > limit => {
                return (body, Some(Incomplete::TooLarge(limit)));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (body, None),
            Err(e) => return (body, Some(Incomplete::Broken(describe_transport(&e)))),
        }
    }
}

/// The request reached an HTTP/2 provider that refused it unprocessed: the stream was refused
/// (`REFUSED_STREAM`) or came after a graceful `GOAWAY` (RFC 9113 §8.7): nothing was acted on,
/// so sending it again cannot duplicate anything.
pub fn unprocessed(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            let remote = h2.is_remote();
            let refused = h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM);
            let away = h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR);
            return remote && (refused || away);
        }
        source = s.source();
    }
    false
}

/// A transport error in words, without the URL: the innermost cause says what went wrong
/// ("Connection refused", "connection reset").
pub fn describe_transport(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| e.to_string())
}

/// What is wrong with a configured URL `key` if anything: it must be http(s),
/// with a path that can take the documented one, and carry no credentials (those are secrets,
/// given as the provider's `*_file` keys; a URL is shown in dry runs and errors). The message
/// never shows a URL that carries credentials.
pub fn url_problem(key: &str, url: &url::Url) -> Option<String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Some(format!(
            "{key} must not carry credentials (user or password): give them as the provider's secrets (`*_file` keys)"
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Some(format!("{key} must be an http(s) URL, got {url}"));
    }
    None
}
