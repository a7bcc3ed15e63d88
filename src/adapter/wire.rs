//! Reading and writing the providers' JSON: wire structs from a body, integers from a provider
//! and from a request, and the JSON Schema rules an adapter states about a request.

use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

use crate::field_error::FieldError;
use crate::json_number;

/// Reads a JSON body into a provider's wire struct.
pub fn from_json<T: DeserializeOwned>(body: &Value) -> Result<T, String> {
    T::deserialize(body).map_err(|e| e.to_string())
}

/// A provider's integer id, as a string (an integer written `12.0` included).
pub fn integer_id(n: &Number) -> Result<String, String> {
    if n.is_u64() {
        return Ok(n.to_string());
    }
    json_number::integer(n)
        .map(|i| i.to_string())
        .ok_or_else(|| format!("`id` is not an integer: {n}"))
}

/// A positive integer option of a request (at most 2^53 − 1, what JSON numbers hold exactly);
/// a fault at `pointer` otherwise.
pub fn positive(v: Option<i64>, pointer: String, errors: &mut Vec<FieldError>) -> Option<u64> {
    match v {
        Some(n) if (1..=json_number::MAX_EXACT).contains(&n) => Some(n.unsigned_abs()),
        Some(_) => {
            errors.push(FieldError::new(
                pointer,
                "must be a positive integer, at most 9007199254740991",
            ));
            None
        }
        None => None,
    }
}

/// A JSON Schema rule: when the request selects provider `name`, the body must also be `then`.
pub fn when_selected(name: &str, then: Value) -> Value {
    serde_json::json!({
        "if": { "required": ["targets"], "properties": { "targets": { "required": [name] } } },
        "then": then
    })
}
