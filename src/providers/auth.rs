//! How the gateway authenticates to a provider.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};

use super::oauth::TokenSource;
use crate::secret::REDACTED;

/// How a provider authenticates the gateway.
pub enum Auth {
    /// A fixed header (API key or static bearer token); the value is marked sensitive. The
    /// `&str` is the non-secret prefix of the value (the scheme), shown in dry runs.
    Header(HeaderName, HeaderValue, &'static str),
    /// OAuth2 client credentials: a bearer token fetched, cached and refreshed.
    OAuth2(Arc<TokenSource>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Header(name, _, prefix) => write!(f, "Header({name}: {prefix}{REDACTED})"),
            Auth::OAuth2(_) => f.write_str("OAuth2"),
        }
    }
}

impl Auth {
    /// A header `name: {prefix}{secret}`, e.g. `authorization: lucca application=KEY`.
    pub fn header(name: &'static str, prefix: &'static str, secret: &str) -> Result<Self, String> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{secret}"))
            .map_err(|_| "the credential is not a valid HTTP header value".to_owned())?;
        value.set_sensitive(true);
        Ok(Auth::Header(HeaderName::from_static(name), value, prefix))
    }

    /// [`Auth::header`] with a configured key; `None` when no key is configured.
    pub fn key(
        name: &'static str,
        prefix: &'static str,
        key: Option<&secrecy::SecretString>,
    ) -> Result<Option<Self>, String> {
        use secrecy::ExposeSecret;
        key.map(|key| Self::header(name, prefix, key.expose_secret()))
            .transpose()
    }

    /// The header as a dry run shows it: name and scheme, the secret redacted.
    pub fn shown(&self) -> (&str, String) {
        match self {
            Auth::Header(name, _, prefix) => (name.as_str(), format!("{prefix}{REDACTED}")),
            Auth::OAuth2(_) => ("authorization", format!("Bearer {REDACTED}")),
        }
    }
}
