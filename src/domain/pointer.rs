//! JSON pointers (RFC 6901) for the fields a deserializer rejected.

use serde::de::DeserializeOwned;
use serde_path_to_error::{Path, Segment};

use crate::field_error::{push, FieldError};

fn from_path(base: &str, path: &Path) -> String {
    let mut pointer = base.to_owned();
    for segment in path.iter() {
        pointer = match segment {
            Segment::Seq { index } => push(&pointer, &index.to_string()),
            Segment::Map { key } => push(&pointer, key),
            Segment::Enum { variant } => push(&pointer, variant),
            Segment::Unknown => pointer,
        };
    }
    pointer
}

/// Turns a deserializer's complaint into a field error, the pointer naming the field itself
/// (for an unknown field too, whose name serde gives in its message).
pub fn field_error(base: &str, path: &Path, message: &str) -> FieldError {
    let mut pointer = from_path(base, path);
    let message = message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i]);
    for (prefix, detail) in [
        ("unknown field `", "unknown field"),
        ("duplicate field `", "given twice: a key may appear once"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((name, _)) = rest.split_once('`') {
                if !pointer.ends_with(&push("", name)) {
                    pointer = push(&pointer, name);
                }
                return FieldError::new(pointer, detail);
            }
        }
    }
    FieldError::new(pointer, plain(message))
}

/// serde's wording with the Rust type names replaced by JSON ones.
fn plain(message: &str) -> String {
    let mut out = message.to_owned();
    if let Some(i) = out.find("expected struct ") {
        out.replace_range(i.., "expected an object");
    }
    for (rust, json) in [
        ("expected a map", "expected an object"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
    ] {
        out = out.replace(rust, json);
    }
    out
}

/// Deserializes a provider's target options, reporting a fault with its pointer under `base`.
pub fn parse_options<T: DeserializeOwned>(
    value: &serde_json::Value,
    base: &str,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| field_error(base, e.path(), &e.inner().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Options {
        id: Option<u64>,
        items: Option<Vec<Item>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
    }

    #[test]
    fn pointers_name_the_field() {
        let e =
            parse_options::<Options>(&serde_json::json!({"id": "x"}), "/targets/a").unwrap_err();
        assert_eq!(e.pointer, "/targets/a/id");
        assert!(e.detail.starts_with("invalid type: string"), "{}", e.detail);

        let e = parse_options::<Options>(
            &serde_json::json!({"items": [{"name": "a"}, {"nam": 1}]}),
            "/t",
        )
        .unwrap_err();
        assert_eq!(e.pointer, "/t/items/1/nam");
        assert_eq!(e.detail, "unknown field");

        let e = parse_options::<Options>(&serde_json::json!({"a/b": 1}), "/t").unwrap_err();
        assert_eq!(e.pointer, "/t/a~1b");
    }
}
