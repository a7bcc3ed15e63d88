//! How a provider lets the gateway in, as its adapter declares it from the configuration: a
//! fixed header ([`ProviderAuth::Header`]: an API key, a static bearer token, a Basic
//! credential) or an OAuth2 client-credentials grant ([`ClientCredentials`]); and the other
//! headers the provider requires on every request ([`StaticHeader`]: an account id, a
//! `User-Agent` naming the integration), each marked secret or not. The gateway's outbound
//! runtime sends them, fetches the tokens, redacts the secrets in dry runs and scrubs them from
//! what the provider relays.

use std::fmt;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::secret::REDACTED;

/// How a provider authenticates the gateway.
pub enum ProviderAuth {
    /// A fixed header, its value marked sensitive; `prefix` is the value's non-secret beginning
    /// (the scheme), shown in dry runs.
    Header {
        name: HeaderName,
        value: HeaderValue,
        prefix: &'static str,
    },
    /// OAuth2 client credentials (RFC 6749 §4.4): a bearer token fetched from the token
    /// endpoint, cached and refreshed by the gateway.
    ClientCredentials(ClientCredentials),
}

/// An OAuth2 client-credentials grant.
pub struct ClientCredentials {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The `scope` of the token request, if the provider wants one.
    pub scope: Option<String>,
    /// Headers the token endpoint needs besides the grant (missionX's `Org-Id`); not secret.
    pub headers: Vec<(HeaderName, String)>,
}

impl fmt::Debug for ProviderAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderAuth::Header { name, prefix, .. } => {
                write!(f, "Header({name}: {prefix}{REDACTED})")
            }
            ProviderAuth::ClientCredentials(grant) => {
                write!(f, "ClientCredentials({})", grant.token_url)
            }
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

impl ProviderAuth {
    /// A header `name: {prefix}{secret}`, e.g. `authorization: lucca application=KEY`.
    pub fn header(name: &'static str, prefix: &'static str, secret: &str) -> Result<Self, String> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{secret}"))
            .map_err(|_| "the credential is not a valid HTTP header value".to_owned())?;
        value.set_sensitive(true);
        Ok(ProviderAuth::Header {
            name: HeaderName::from_static(name),
            value,
            prefix,
        })
    }

    /// [`ProviderAuth::header`] with a configured key; `None` when no key is configured.
    pub fn key(
        name: &'static str,
        prefix: &'static str,
        key: Option<&SecretString>,
    ) -> Result<Option<Self>, String> {
        key.map(|key| Self::header(name, prefix, nonempty(key.expose_secret())?))
            .transpose()
    }

    /// `Authorization: Bearer {token}`, with a configured token; `None` when none is.
    pub fn bearer(token: Option<&SecretString>) -> Result<Option<Self>, String> {
        Self::key("authorization", "Bearer ", token)
    }

    /// `Authorization: Basic base64({user}:{password})` (RFC 7617), from a configured secret
    /// and what the provider documents beside it (Toggl's `{token}:api_token`, say); `None`
    /// when the secret is not configured. `secret_is_user`: the secret is the user part.
    pub fn basic(
        secret: Option<&SecretString>,
        other: &str,
        secret_is_user: bool,
    ) -> Result<Option<Self>, String> {
        use base64::Engine;
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

    /// OAuth2 client credentials, the gateway fetching and caching the tokens.
    pub fn client_credentials(grant: ClientCredentials) -> Result<Self, String> {
        crate::net::url_problem("token_url", &grant.token_url).map_or(Ok(()), Err)?;
        nonempty(grant.client_secret.expose_secret())?;
        Ok(ProviderAuth::ClientCredentials(grant))
    }

    /// What a fixed header carries beyond its scheme, as sent (a Basic credential encoded):
    /// scrubbed, like the configured secret, from anything relayed from the provider.
    pub fn sent_secret(&self) -> Option<SecretString> {
        match self {
            ProviderAuth::Header { value, prefix, .. } => value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix(prefix))
                .filter(|v| !v.is_empty())
                .map(|v| SecretString::from(v.to_owned())),
            ProviderAuth::ClientCredentials(_) => None,
        }
    }

    /// The header as a dry run shows it: name and scheme, the secret redacted.
    pub fn shown(&self) -> (&str, String) {
        match self {
            ProviderAuth::Header { name, prefix, .. } => {
                (name.as_str(), format!("{prefix}{REDACTED}"))
            }
            ProviderAuth::ClientCredentials(_) => ("authorization", format!("Bearer {REDACTED}")),
        }
    }
}

/// A header the provider requires on every request besides its authentication, from the
/// provider's configuration. A secret one is marked sensitive, redacted in dry runs and
/// scrubbed from what the provider relays.
#[derive(Clone)]
pub struct StaticHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub secret: bool,
}

impl fmt::Debug for StaticHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.secret {
            true => write!(f, "{}: {REDACTED}", self.name),
            false => write!(f, "{}: {:?}", self.name, self.value),
        }
    }
}

impl StaticHeader {
    /// A header `name: value` that is not secret (an account id, a `User-Agent`).
    pub fn plain(name: &str, value: &str) -> Result<Self, String> {
        Self::new(name, value, false)
    }

    /// A header `name: value` whose value is a secret.
    pub fn secret(name: &str, value: &SecretString) -> Result<Self, String> {
        Self::new(name, nonempty(value.expose_secret())?, true)
    }

    fn new(name: &str, value: &str, secret: bool) -> Result<Self, String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not an HTTP header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            format!("the value of the header `{name}` is not a valid HTTP header value")
        })?;
        value.set_sensitive(secret);
        Ok(Self {
            name,
            value,
            secret,
        })
    }

    /// The value as a dry run shows it.
    pub fn shown(&self) -> String {
        match self.secret {
            true => REDACTED.to_owned(),
            false => String::from_utf8_lossy(self.value.as_bytes()).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_encoded_and_shown_redacted() {
        let token = SecretString::from("1971800d4d82861d8f2c1651fea4d212");
        let auth = ProviderAuth::basic(Some(&token), "api_token", true)
            .unwrap()
            .unwrap();
        let ProviderAuth::Header { name, value, .. } = &auth else {
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
        assert!(ProviderAuth::basic(None, "api_token", true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_bearer_token_is_a_header() {
        let token = SecretString::from("t0k3n");
        let auth = ProviderAuth::bearer(Some(&token)).unwrap().unwrap();
        assert_eq!(auth.shown(), ("authorization", "Bearer [redacted]".into()));
        assert_eq!(auth.sent_secret().unwrap().expose_secret(), "t0k3n");
    }

    #[test]
    fn static_headers_are_shown_unless_secret() {
        let plain = StaticHeader::plain("Harvest-Account-Id", "12345").unwrap();
        assert_eq!(plain.shown(), "12345");
        assert!(!plain.value.is_sensitive());
        let secret = StaticHeader::secret("X-Tenant-Key", &SecretString::from("k3y")).unwrap();
        assert_eq!(secret.shown(), "[redacted]");
        assert!(secret.value.is_sensitive());
        assert!(!format!("{secret:?}").contains("k3y"));
        assert!(StaticHeader::plain("bad name", "x").is_err());
        assert!(StaticHeader::plain("X-Id", "a\nb").is_err());
        assert!(StaticHeader::secret("X-Key", &SecretString::from(" ")).is_err());
    }
}
