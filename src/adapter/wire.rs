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

/// When an ObjectId (24 hexadecimal characters, as MongoDB-backed providers assign them) was
/// made, in unix milliseconds: its first four bytes are the seconds.
pub fn object_id_ms(id: &str) -> Option<u64> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&id[..8], 16).ok().map(|s| s * 1000)
}

/// An RFC 3339 time (`2026-12-06T10:00:00.000Z`) in unix milliseconds.
pub fn rfc3339_ms(time: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339_weak(time.trim()).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_from_object_ids_and_dates() {
        assert_eq!(
            object_id_ms("6650c0ffee00000000000042"),
            Some(0x6650c0ff * 1000)
        );
        assert_eq!(object_id_ms("not-an-object-id"), None);
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
