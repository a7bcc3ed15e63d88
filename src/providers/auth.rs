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

/// A configured credential, refused when it is blank (a provider would only answer 401).
fn nonempty(secret: &str) -> Result<&str, String> {
    if secret.trim().is_empty() {
        Err("the credential is empty".to_owned())
    } else {
        Ok(secret)
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
        key.map(|key| Self::header(name, prefix, nonempty(key.expose_secret())?))
            .transpose()
    }

    /// `Authorization: Bearer {token}`, with a configured token; `None` when none is.
    pub fn bearer(token: Option<&secrecy::SecretString>) -> Result<Option<Self>, String> {
        Self::key("authorization", "Bearer ", token)
    }

    /// `Authorization: Basic base64({user}:{password})` (RFC 7617), from a configured secret
    /// and what the provider documents beside it (Toggl's `{token}:api_token`, say); `None`
    /// when the secret is not configured. `secret_is_user`: the secret is the user part.
    pub fn basic(
        secret: Option<&secrecy::SecretString>,
        other: &str,
        secret_is_user: bool,
    ) -> Result<Option<Self>, String> {
        use base64::Engine;
        use secrecy::ExposeSecret;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let secret = nonempty(secret.expose_secret())?;
        let pair = if secret_is_user {
            format!("{secret}:{other}")
        } else {
            format!("{other}:{secret}")
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Self::header("authorization", "Basic ", &encoded).map(Some)
    }

    /// OAuth2 client credentials: a bearer token fetched from `source`, cached and refreshed.
    pub fn client_credentials(source: TokenSource) -> Self {
        Auth::OAuth2(Arc::new(source))
    }

    /// What a fixed header carries beyond its scheme, as sent (a Basic credential encoded):
    /// scrubbed, like the configured secret, from anything relayed from the provider.
    pub fn sent_secret(&self) -> Option<secrecy::SecretString> {
        match self {
            Auth::Header(_, value, prefix) => value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix(prefix))
                .filter(|v| !v.is_empty())
                .map(|v| secrecy::SecretString::from(v.to_owned())),
            Auth::OAuth2(_) => None,
        }
    }

    /// The header as a dry run shows it: name and scheme, the secret redacted.
    pub fn shown(&self) -> (&str, String) {
        match self {
            Auth::Header(name, _, prefix) => (name.as_str(), format!("{prefix}{REDACTED}")),
            Auth::OAuth2(_) => ("authorization", format!("Bearer {REDACTED}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    #[test]
    fn basic_credentials_are_encoded_and_shown_redacted() {
        let token = SecretString::from("1971800d4d82861d8f2c1651fea4d212");
        let auth = Auth::basic(Some(&token), "api_token", true)
            .unwrap()
            .unwrap();
        let Auth::Header(name, value, _) = &auth else {
            panic!("a header")
        };
        assert_eq!(name, "authorization");
        assert_eq!(
            value.to_str().unwrap(),
            "Basic MTk3MTgwMGQ0ZDgyODYxZDhmMmMxNjUxZmVhNGQyMTI6YXBpX3Rva2Vu"
        );
        assert!(value.is_sensitive());
        assert_eq!(auth.shown(), ("authorization", "Basic [redacted]".into()));
        assert_eq!(
            auth.sent_secret().unwrap().expose_secret(),
            "MTk3MTgwMGQ0ZDgyODYxZDhmMmMxNjUxZmVhNGQyMTI6YXBpX3Rva2Vu",
            "the encoded form is scrubbed too"
        );
        assert!(Auth::basic(None, "api_token", true).unwrap().is_none());
    }

    #[test]
    fn a_bearer_token_is_a_header() {
        let token = SecretString::from("t0k3n");
        let auth = Auth::bearer(Some(&token)).unwrap().unwrap();
        assert_eq!(auth.shown(), ("authorization", "Bearer [redacted]".into()));
        assert_eq!(auth.sent_secret().unwrap().expose_secret(), "t0k3n");
    }
}
