//! What `POST /clients` accepts: the body, the query and the headers, as the OpenAPI document
//! shows them.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{ClientInput, IfExists};
use crate::providers::TargetsSchema;

/// Body of `POST /clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!(super::examples::all_targets_body()))]
pub struct CreateClientRequest {
    /// The client (customer company) to create.
    #[schema(required = true, value_type = ClientInput)]
    pub client: Option<ClientInput>,
    /// The providers to create it in: a key present means "create it there". At least one.
    /// Each value holds that provider's options and may be `{}` when the gateway's configuration
    /// has the defaults.
    #[schema(required = true, value_type = TargetsSchema)]
    pub targets: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the client already exists at a provider: `fail` (the default: a provider that
    /// refuses duplicates answers `conflict`, one that accepts them gets a second client) or
    /// `adopt` (its result is `existing`, with its id, and nothing is created there). With
    /// `adopt`, each selected provider needs the field it finds clients by (a provider matched
    /// by `client.external_id` needs it: a 422 with its pointer otherwise).
    #[schema(value_type = Option<IfExists>, default = "fail")]
    pub if_exists: Option<IfExists>,
}

/// The query: `dry_run` only. An unknown or repeated parameter is a 400 (a typo such as
/// `?dryrun=true` must not send for real).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    /// `true`: validate and answer what would be sent to each provider, without sending
    /// anything (every target `planned`, credentials redacted).
    #[serde(default)]
    #[param(default = false)]
    pub dry_run: bool,
}

/// The optional headers of `POST /clients` (read from the request, documented here).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct CreateHeaders {
    /// Makes retries safe: the same key with the same body never creates a client twice.
    /// 1–255 printable ASCII characters.
    #[param(rename = "Idempotency-Key", value_type = String, min_length = 1, max_length = 255, pattern = "^[ -~]+$", required = false)]
    idempotency_key: Option<String>,
    /// Echoed back in the answer. Any value is accepted: one that is not 1–128 visible ASCII
    /// characters is replaced by a generated id.
    #[param(rename = "X-Request-Id", value_type = String, required = false)]
    x_request_id: Option<String>,
}
