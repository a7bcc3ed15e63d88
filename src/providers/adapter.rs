//! What an adapter is: a pure mapping between the canonical client and one provider's documented
//! requests and answers. The HTTP exchange, its protections and the authentication are the same
//! for every provider and live in [`crate::fanout`]; an adapter only says what to send and how to
//! read what came back.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

use super::auth::Auth;
use super::settings::ProviderSettings;
use crate::domain::pointer::parse_options;
use crate::domain::NewClient;
use crate::field_error::FieldError;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::secret::Credentials;

/// One provider's mapping. Implementations are pure (no I/O) and live in one file each,
/// `src/providers/<name>.rs`, with the provider's private wire structs.
pub trait Adapter: Sized + Send + Sync + 'static {
    /// Its configuration section, `providers.<name>` (declared with `provider_settings!`).
    type Settings: ProviderSettings;
    /// `targets.<name>` of a request: parsed once, generically, each fault with its pointer
    /// (unknown fields are refused: derive with `deny_unknown_fields`). The schema is the one
    /// the OpenAPI document shows.
    type Options: DeserializeOwned + ToSchema;

    /// The fields of the canonical client it sends, each with the provider's field it fills:
    /// `("external_id", "`customId`")`. The OpenAPI document's mapping table is made of these.
    const SENDS: &'static [(&'static str, &'static str)];

    /// The adapter, built once at start from its settings.
    fn new(settings: &Self::Settings) -> Result<Self, String>;

    /// How the gateway authenticates to the provider; `None` when no credentials are
    /// configured (the provider then cannot be selected).
    fn auth(settings: &Self::Settings) -> Result<Option<Auth>, String>;

    /// The create request for the canonical client and this target's options. `at` is the
    /// pointer of the options (`/targets/<name>`): faults in them are reported under it, faults
    /// of the client under `/client/...`; every fault is reported, not just the first.
    fn plan(
        &self,
        client: &NewClient,
        options: Self::Options,
        at: &str,
    ) -> Result<Plan, Vec<FieldError>>;

    /// Reads a 2xx JSON answer to the create: the provider-assigned id and any generated
    /// credentials. An `Err` says why the body is not the documented success.
    fn created(&self, body: &Value) -> Result<Created, String>;

    /// Maps a non-2xx answer (its JSON body, if it had one) to the normalized error.
    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        ProviderError::from_status(status, body)
    }

    /// JSON pointers of secrets inside the success body, redacted before it is returned as
    /// `response`.
    fn response_secrets(&self) -> &'static [&'static str] {
        &[]
    }

    /// How the provider appears in the OpenAPI document's examples.
    fn examples() -> Examples;
}

/// The object-safe face of an [`Adapter`], as the registry holds it: options arrive as JSON and
/// are parsed here, once, for every provider alike.
pub trait DynAdapter: Send + Sync {
    fn plan(&self, client: &NewClient, options: &Value, at: &str) -> Result<Plan, Vec<FieldError>>;
    fn created(&self, body: &Value) -> Result<Created, String>;
    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError;
    fn response_secrets(&self) -> &'static [&'static str];
}

impl<A: Adapter> DynAdapter for A {
    fn plan(&self, client: &NewClient, options: &Value, at: &str) -> Result<Plan, Vec<FieldError>> {
        let options: A::Options = parse_options(options, at).map_err(|e| vec![e])?;
        Adapter::plan(self, client, options, at)
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        Adapter::created(self, body)
    }

    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        Adapter::error(self, status, body)
    }

    fn response_secrets(&self) -> &'static [&'static str] {
        Adapter::response_secrets(self)
    }
}

/// One HTTP request to a provider, as an adapter describes it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// JSON pointers of secrets inside `body`, redacted wherever the request is shown.
    pub secret_pointers: &'static [&'static str],
}

impl Request {
    /// A JSON `POST` of a wire struct.
    pub fn post(url: Url, body: &impl Serialize) -> Self {
        Self {
            method: Method::POST,
            url,
            body: Some(serde_json::to_value(body).expect("a wire struct serializes")),
            secret_pointers: &[],
        }
    }

    /// Marks secrets inside the body (redacted in dry runs).
    pub fn with_secrets(mut self, pointers: &'static [&'static str]) -> Self {
        self.secret_pointers = pointers;
        self
    }
}

/// What to send for one target.
#[derive(Debug)]
pub struct Plan {
    /// The create request.
    pub create: Request,
    /// Credentials the gateway generated for this request, returned once on success.
    pub credentials: Option<Credentials>,
}

impl From<Request> for Plan {
    fn from(create: Request) -> Self {
        Plan {
            create,
            credentials: None,
        }
    }
}

/// What a success body told.
#[derive(Debug, Default)]
pub struct Created {
    pub id: Option<String>,
    pub credentials: Option<Credentials>,
}

/// A provider's part in the OpenAPI document's examples.
pub struct Examples {
    /// `targets.<name>` of the example request with every provider.
    pub options: Value,
    /// Its result in the "created everywhere" example answer.
    pub created: Value,
    /// Its result in the "partial outcome" example answer, if it shows there.
    pub partial: Option<Value>,
    /// Its result in the dry-run example answer, if it shows there.
    pub planned: Option<Value>,
    /// A client for an example request to this provider alone with `{}` options (the gateway's
    /// configured defaults), if it offers one.
    pub single: Option<Value>,
}

/// Reads a JSON body into a provider's wire struct.
pub fn read<T: DeserializeOwned>(body: &Value) -> Result<T, String> {
    T::deserialize(body).map_err(|e| e.to_string())
}

/// A 400 whose message contains `phrase` (compared case-insensitively) is a conflict: the
/// provider refused a duplicate.
pub fn conflict_when(err: ProviderError, status: StatusCode, phrase: &str) -> ProviderError {
    let says_so = err.message.to_lowercase().contains(&phrase.to_lowercase());
    if status == StatusCode::BAD_REQUEST && says_so {
        err.with_kind(ErrorKind::Conflict)
    } else {
        err
    }
}

/// Joins a base URL (the prefix before the documented path) with path segments, each
/// percent-encoded as one segment.
pub fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .expect("base URLs are checked at start to be http(s)");
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_keeps_the_base_path_and_encodes_segments() {
        let base = Url::parse("https://api.clockify.me/api").unwrap();
        let url = join_url(&base, &["v1", "workspaces", "a/b c", "clients"]);
        assert_eq!(
            url.as_str(),
            "https://api.clockify.me/api/v1/workspaces/a%2Fb%20c/clients"
        );
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            join_url(&base, &["client"]).as_str(),
            "http://127.0.0.1:9/client"
        );
    }

    #[test]
    fn a_400_saying_the_phrase_is_a_conflict() {
        let body = serde_json::json!({"error": "Login ID already in use"});
        let err = |status| ProviderError::from_status(status, Some(&body));
        let phrase = "login id already in use";
        assert_eq!(
            conflict_when(
                err(StatusCode::BAD_REQUEST),
                StatusCode::BAD_REQUEST,
                phrase
            )
            .kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            conflict_when(
                err(StatusCode::INTERNAL_SERVER_ERROR),
                StatusCode::INTERNAL_SERVER_ERROR,
                phrase
            )
            .kind,
            ErrorKind::Unavailable,
            "only a 400 says the request was refused as a duplicate"
        );
        assert_eq!(
            conflict_when(
                err(StatusCode::BAD_REQUEST),
                StatusCode::BAD_REQUEST,
                "taken"
            )
            .kind,
            ErrorKind::Validation
        );
    }
}
