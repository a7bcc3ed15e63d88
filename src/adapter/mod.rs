//! The adapter contract: what a provider's adapter is ([`Adapter`]) and everything it is written
//! against. An adapter is a pure mapping between the canonical client and one provider's
//! documented requests and answers; the HTTP exchange, its protections and the authentication
//! are the same for every provider and live in [`crate::outbound`] and [`crate::fanout`]. An
//! adapter only says what to send, how the provider lets the gateway in ([`credentials`]) and
//! how to read what came back ([`reply`]).
//!
//! Adding a provider touches nothing here: `docs/building/adding-a-provider.md` has the recipe.
//!
//! Two operations: create the client ([`Adapter::plan`], [`Adapter::created`]), and find it by
//! its natural key ([`Adapter::list`], [`Adapter::read_list`], [`Adapter::read_candidate`]) to
//! adopt an existing client, settle an unanswered create, or read an id the create does not
//! answer.

use std::any::Any;
use std::time::SystemTime;

use ::url::Url;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub mod credentials;
pub mod reply;
pub mod settings;
pub mod url;
pub mod wire;

pub use credentials::{ClientCredentials, ProviderAuth, StaticHeader};
pub use reply::{error_of, read_error, Duplicate, Reply};
pub(crate) use settings::{provider_settings, provider_settings_with, with_common_keys};
pub use settings::{Common, ProviderSettings};
pub use url::{join_url, query_number, with_query};
pub use wire::{from_json, integer_id, object_id_ms, positive, rfc3339_ms, when_selected};

use crate::domain::pointer::parse_options;
use crate::domain::{IfExists, NewClient};
use crate::field_error::FieldError;
use crate::provider_error::{ProviderError, USUAL_MESSAGE_MEMBERS};
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
    /// What finds the client at the provider: its natural key and where to look. Its `Debug`
    /// text names the client at the provider (adoptions of one client take turns by it).
    type Lookup: std::fmt::Debug + Send + Sync + 'static;

    /// Whether the provider accepts a second client with the same natural key. With
    /// `if_exists: adopt`, such a provider is looked up before the create; one that refuses
    /// duplicates is asked to create, and looked up on its conflict answer.
    const ACCEPTS_DUPLICATES: bool;

    /// Its options that the gateway's configuration may give instead of the request
    /// (`organization_id`): a request that omits one where none is configured is refused (422).
    /// The OpenAPI document's description of the operation lists them.
    const CONFIGURED: &'static [&'static str] = &[];

    /// The fields of the canonical client it sends, each with the provider's field it fills:
    /// `("external_id", "`customId`")`. The OpenAPI document's mapping table is made of these.
    const SENDS: &'static [(&'static str, &'static str)];

    /// The adapter, built once at start from its settings.
    fn new(settings: &Self::Settings) -> Result<Self, String>;

    /// How the gateway authenticates to the provider; `None` when no credentials are
    /// configured (the provider then cannot be selected).
    fn auth(settings: &Self::Settings) -> Result<Option<ProviderAuth>, String>;

    /// Headers the provider requires on every request besides its authentication (an account
    /// id, a `User-Agent` naming the integration), from its settings; each is marked secret or
    /// not.
    fn headers(_settings: &Self::Settings) -> Result<Vec<StaticHeader>, String> {
        Ok(Vec::new())
    }

    /// The create request for the canonical client and this target's options. `at` is the
    /// pointer of the options (`/targets/<name>`): faults in them are reported under it, faults
    /// of the client under `/client/...`; every fault is reported, not just the first.
    fn plan(
        &self,
        client: &NewClient,
        options: Self::Options,
        at: &str,
    ) -> Result<Planned<Self::Lookup>, Vec<FieldError>>;

    /// Reads a 2xx JSON answer to the create: the provider-assigned id and any generated
    /// credentials. An `Err` says why the body is not the documented success.
    fn created(&self, body: &Value) -> Result<Created, String>;

    /// The members of its JSON error body that hold a human-readable message, in the order
    /// they are read (the first non-blank one wins): `["error_description", "error"]` for a
    /// provider whose `error` is a code. The default: `message`, `error`, `title`, `detail`,
    /// `error_description`.
    const ERROR_MESSAGE: &'static [&'static str] = USUAL_MESSAGE_MEMBERS;

    /// How it refuses a duplicate of its natural key, if its documents say: the status and a
    /// phrase of its message (`Duplicate { status: 422, says: "already been taken" }`). Such an
    /// answer is a `conflict` (looked up with `if_exists: adopt`).
    const DUPLICATE: Option<Duplicate> = None;

    /// Maps a non-2xx answer — its status, content type and (bounded) body, JSON or not — to
    /// the normalized error. The default ([`read_error`]) reads the message from
    /// [`Adapter::ERROR_MESSAGE`] of a JSON body, or a plain-text body, and recognises
    /// [`Adapter::DUPLICATE`]; an adapter whose errors need more (Lucca's per-field problems)
    /// reads them itself.
    fn error(&self, reply: &Reply) -> ProviderError {
        read_error(reply, Self::ERROR_MESSAGE, Self::DUPLICATE)
    }

    /// JSON pointers of secrets inside the success body, redacted before it is returned as
    /// `response`.
    fn response_secrets(&self) -> &'static [&'static str] {
        &[]
    }

    /// The first request of a lookup: the documented list endpoint, filtered as far as the
    /// provider allows. `since`, when known, is a time before the client can have been created
    /// (a provider that can filter by date may use it).
    fn list(&self, lookup: &Self::Lookup, since: Option<SystemTime>) -> Request;

    /// Reads one page of the list: the client if it is there (matched by the natural key, by
    /// the provider's own rule), candidates whose details must be read to tell, and the next
    /// page, if any. An `Err` says why the page is not the documented one.
    fn read_list(&self, lookup: &Self::Lookup, page: &Page) -> Result<Listed, String>;

    /// Reads the details of a candidate ([`Listed::candidates`]): the client, if it is this one.
    fn read_candidate(
        &self,
        _lookup: &Self::Lookup,
        _candidate: &Value,
        _page: &Page,
    ) -> Result<Option<Found>, String> {
        Ok(None)
    }

    /// Whether a created client's id, which the create does not answer, is read by a lookup.
    fn resolves_id(&self) -> bool {
        false
    }

    /// How the provider appears in the OpenAPI document's examples.
    fn examples() -> Examples;

    /// What the provider requires of the whole request beyond its own options, as JSON Schema
    /// rules on the request body (`{"if": ..., "then": ...}`; [`when_selected`] makes the usual
    /// one). The OpenAPI document lists them, so that a body it calls valid is one the gateway
    /// accepts; `plan` enforces the same.
    fn request_rules(_name: &str) -> Vec<Value> {
        Vec::new()
    }
}

/// What an adapter plans for one target: the create, and what finds the client.
#[derive(Debug)]
pub struct Planned<L> {
    pub create: Request,
    /// Credentials the gateway generated for this request, returned once on success.
    pub credentials: Option<Credentials>,
    /// What finds the client, or why it cannot be found (a natural key is missing: with
    /// `if_exists: adopt` that is a fault of the request).
    pub lookup: Result<L, FieldError>,
}

/// A lookup key of some adapter: opaque here, read back by the adapter that made it.
pub struct LookupKey(Box<dyn Any + Send + Sync>);

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey")
    }
}

/// One page of a provider's list, as answered.
pub struct Page<'a> {
    /// The request's URL (next-page links are relative to it).
    pub url: &'a Url,
    pub headers: &'a HeaderMap,
    pub body: &'a Value,
    /// How long ago the create looked for was sent, on the gateway's clock (`None`: not a
    /// create's lookup, an adoption). A provider whose list is ordered by time may stop where
    /// its own clock (its `Date`) says the rest is older: a duration, never the gateway's clock
    /// against the provider's.
    pub sent_ago: Option<std::time::Duration>,
}

/// What one page of a list told.
#[derive(Debug, Default)]
pub struct Listed {
    /// The clients on this page with the natural key (a provider that takes duplicates may
    /// list several: the oldest is the one adopted).
    pub found: Vec<Found>,
    /// Records that may be the client, each with the request that reads its details.
    pub candidates: Vec<Candidate>,
    /// The request for the next page.
    pub next: Option<Request>,
}

#[derive(Debug)]
pub struct Candidate {
    pub request: Request,
    pub record: Value,
}

/// The client, found at the provider.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its provider-assigned id, as a string.
    pub id: String,
    /// The record the provider listed.
    pub record: Value,
    /// When the provider created it (unix ms), if its record says (or its id does).
    pub created_ms: Option<u64>,
    /// How many clients the lookup found with the natural key (set by the lookup: more than
    /// one means the provider holds duplicates; this is the oldest).
    pub matches: u32,
}

impl Found {
    /// The client with provider id `id`, listed as `record`.
    pub fn new(id: String, record: Value) -> Self {
        Self {
            created_ms: wire::object_id_ms(&id),
            id,
            record,
            matches: 1,
        }
    }

    /// When the provider created it, from an RFC 3339 time of its record (when it has one).
    pub fn created_at(mut self, rfc3339: Option<&str>) -> Self {
        if let Some(ms) = rfc3339.and_then(wire::rfc3339_ms) {
            self.created_ms = Some(ms);
        }
        self
    }
}

/// The object-safe face of an [`Adapter`], as the registry holds it: options arrive as JSON and
/// are parsed here, once, for every provider alike; lookup keys travel opaque.
pub trait DynAdapter: Send + Sync {
    fn plan(
        &self,
        client: &NewClient,
        options: &Value,
        at: &str,
        if_exists: IfExists,
    ) -> Result<Plan, Vec<FieldError>>;
    fn created(&self, body: &Value) -> Result<Created, String>;
    fn error(&self, reply: &Reply) -> ProviderError;
    fn response_secrets(&self) -> &'static [&'static str];
    fn accepts_duplicates(&self) -> bool;
    fn list(&self, key: &LookupKey, since: Option<SystemTime>) -> Request;
    fn read_list(&self, key: &LookupKey, page: &Page) -> Result<Listed, String>;
    fn read_candidate(
        &self,
        key: &LookupKey,
        candidate: &Value,
        page: &Page,
    ) -> Result<Option<Found>, String>;
    fn resolves_id(&self) -> bool;
    /// The natural key as text (one client at the provider, one text).
    fn key_text(&self, key: &LookupKey) -> String;
}

impl<A: Adapter> DynAdapter for A {
    fn plan(
        &self,
        client: &NewClient,
        options: &Value,
        at: &str,
        if_exists: IfExists,
    ) -> Result<Plan, Vec<FieldError>> {
        let options: A::Options = parse_options(options, at).map_err(|e| vec![e])?;
        let planned = Adapter::plan(self, client, options, at)?;
        let lookup = match (planned.lookup, if_exists) {
            (Ok(key), _) => Some(LookupKey(Box::new(key))),
            (Err(missing), IfExists::Adopt) => return Err(vec![missing]),
            (Err(_), IfExists::Fail) => None,
        };
        Ok(Plan {
            create: planned.create,
            credentials: planned.credentials,
            lookup,
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        Adapter::created(self, body)
    }

    fn error(&self, reply: &Reply) -> ProviderError {
        Adapter::error(self, reply)
    }

    fn response_secrets(&self) -> &'static [&'static str] {
        Adapter::response_secrets(self)
    }

    fn accepts_duplicates(&self) -> bool {
        A::ACCEPTS_DUPLICATES
    }

    fn list(&self, key: &LookupKey, since: Option<SystemTime>) -> Request {
        Adapter::list(self, own::<A>(key), since)
    }

    fn read_list(&self, key: &LookupKey, page: &Page) -> Result<Listed, String> {
        Adapter::read_list(self, own::<A>(key), page)
    }

    fn read_candidate(
        &self,
        key: &LookupKey,
        candidate: &Value,
        page: &Page,
    ) -> Result<Option<Found>, String> {
        Adapter::read_candidate(self, own::<A>(key), candidate, page)
    }

    fn resolves_id(&self) -> bool {
        Adapter::resolves_id(self)
    }

    fn key_text(&self, key: &LookupKey) -> String {
        format!("{:?}", own::<A>(key))
    }
}

/// The key an adapter made, for that adapter (a plan's key only ever goes back to its own
/// target's adapter).
fn own<A: Adapter>(key: &LookupKey) -> &A::Lookup {
    key.0
        .downcast_ref::<A::Lookup>()
        .expect("a lookup key goes back to the adapter that made it")
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

    /// A `GET` (of a list, or of a record's details).
    pub fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
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
    /// What finds the client at the provider; `None` when the request lacks its natural key.
    pub lookup: Option<LookupKey>,
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
