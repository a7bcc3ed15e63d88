//! What `POST /clients` accepts: the body, the query and the headers, as the OpenAPI document
//! shows them.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
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
    pub targets: Option<Targets>,
    /// When the client already exists at a provider: `fail` (the default: a provider that
    /// refuses duplicates answers `conflict`, one that accepts them gets a second client) or
    /// `adopt` (its result is `existing`, with its id, and nothing is created there). With
    /// `adopt`, each selected provider needs the field it finds clients by (a provider matched
    /// by `client.external_id` needs it: a 422 with its pointer otherwise).
    #[schema(value_type = Option<IfExists>, default = "fail")]
    pub if_exists: Option<IfExists>,
    /// With `Prefer: respond-async`: the webhook (a name from `operations.webhooks`, never a
    /// URL) told when the operation is done, by a signed `client.operation.completed` event.
    /// A name the configuration does not have is a 422.
    #[schema(min_length = 1, max_length = 64, example = "crm")]
    pub notify: Option<String>,
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
    /// One key: 1–255 printable ASCII characters but the comma (a list of keys, or two
    /// `Idempotency-Key` headers, is a 400); a structured-field String (`"8e03978e"`) is read
    /// as its value.
    #[param(rename = "Idempotency-Key", value_type = String, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x2B\\x2D-\\x7E]+$", required = false)]
    idempotency_key: Option<String>,
    /// `respond-async` (RFC 7240) hands the gateway the job: the same checks as always, then
    /// `202 Accepted` with the operation, its `Location` (`/clients/operations/{id}`) and
    /// `Retry-After`; the gateway attempts every target until it settles (re-driving what may
    /// succeed later, for up to `operations.redrive_for_s`). `wait=N` (seconds) answers the
    /// usual 207 instead if every target settled within N seconds.
    #[param(rename = "Prefer", value_type = String, required = false, example = "respond-async, wait=5")]
    prefer: Option<String>,
    /// Echoed back in the answer. Any value is accepted: one that is not 1–128 visible ASCII
    /// characters is replaced by a generated id.
    #[param(rename = "X-Request-Id", value_type = String, required = false)]
    x_request_id: Option<String>,
}

/// `targets` as received: each provider's options, read strictly — a key given twice, at any
/// depth, is refused, as it is everywhere else in the body (never "the last one wins").
#[derive(Debug)]
pub struct Targets(pub Map<String, Value>);

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrictJson)? {
            Value::Object(map) => Ok(Targets(map)),
            _ => Err(de::Error::custom(
                "invalid type: expected an object of targets",
            )),
        }
    }
}

/// A JSON body read as a value whose objects may not repeat a key; a repeated key is a fault
/// with its pointer.
pub fn strict_value(body: &[u8]) -> Result<Value, crate::field_error::FieldError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let value = StrictJson.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    value.map_err(|e| crate::domain::pointer::field_error("", &track.path(), &e.to_string()))
}

/// A JSON value whose objects may not repeat a key.
struct StrictJson;

impl<'de> DeserializeSeed<'de> for StrictJson {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictJson)
    }
}

impl<'de> Visitor<'de> for StrictJson {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictJson)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value = map.next_value_seed(StrictJson)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
