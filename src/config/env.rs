//! Environment overrides: `CLIENTS_GATEWAY__SECTION__KEY=value` sets `section.key`, read as the
//! key's own type ([`super::schema`]): a number, a boolean, a list; a text key (every secret
//! among them) verbatim, quotes, spaces and digits included. A variable naming no key (a typo, a
//! doubled `__`) or whose value is not UTF-8 or not of its key's type stops the start, naming
//! the variable and never showing a secret's value.

use std::ffi::OsString;

use serde_json::{Map, Value};

use super::schema::{Kind, SettingsSchema};

/// Prefix of the environment overrides; `__` separates the path segments.
pub const ENV_PREFIX: &str = "CLIENTS_GATEWAY__";

/// The overrides among `vars`, as a tree of settings.
pub fn overrides(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    schema: &SettingsSchema,
) -> Result<Value, String> {
    let mut tree = Map::new();
    let mut found: Vec<(String, OsString)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX).then_some((name, value))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in found {
        let (path, value) = one(&name, value, schema)?;
        insert(&mut tree, &path, value);
    }
    Ok(Value::Object(tree))
}

/// One variable: the key it sets, and its value typed.
fn one(
    name: &str,
    value: OsString,
    schema: &SettingsSchema,
) -> Result<(Vec<String>, Value), String> {
    let rest = &name[ENV_PREFIX.len()..];
    let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!(
            "{name}: an empty part between `__`s names no setting (one `__` separates two parts: CLIENTS_GATEWAY__SERVER__BIND)"
        ));
    }
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let Some(key) = schema.find(&segments) else {
        return Err(format!(
            "{name}: there is no setting `{}` (docs/reference/configuration.md lists them)",
            path.join(".")
        ));
    };
    let Ok(text) = value.into_string() else {
        return Err(format!("{name} is not UTF-8 text"));
    };
    let typed = typed(&key.kind, &text).map_err(|expected| match key.secret {
        true => format!("{name} must be {expected}"),
        false => format!("{name} must be {expected}, got `{}`", text.escape_debug()),
    })?;
    Ok((path, typed))
}

/// `text` read as `kind`, or what was expected.
fn typed(kind: &Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::String | Kind::Choice(_) => Ok(Value::String(text.to_owned())),
        Kind::Integer => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.trim().parse::<u64>().map(Value::from))
            .map_err(|_| "an integer".to_owned()),
        Kind::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| "a number".to_owned()),
        Kind::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("`true` or `false`".to_owned()),
        },
        Kind::List(item) => list(item, text),
        Kind::Table => Err("set key by key (…__NAME__KEY)".to_owned()),
    }
}

/// A list: a TOML array (`["a", "b"]`), or items separated by commas (`a,b`).
fn list(item: &Kind, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let parsed: toml::Value = toml::from_str(&format!("v = {trimmed}"))
            .ok()
            .and_then(|t: toml::Table| t.get("v").cloned())
            .ok_or_else(|| "a list, `[\"a\", \"b\"]` or `a,b`".to_owned())?;
        return serde_json::to_value(parsed).map_err(|e| e.to_string());
    }
    if trimmed.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    trimmed
        .split(',')
        .map(|part| typed(item, part.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn insert(tree: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            tree.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = tree
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert(child, rest, value);
            }
        }
    }
}

/// A configuration error from reading the file and the overrides, in words that never show a
/// value (a secret written as a number would be shown by the deserializer's own message).
pub fn describe(e: &figment::Error) -> String {
    use figment::error::{Actual, Kind as ErrorKind};
    let at = match e.path.join(".") {
        path if path.is_empty() => String::new(),
        path => format!("{path}: "),
    };
    let what = |actual: &Actual| -> &'static str {
        match actual {
            Actual::Bool(_) => "a boolean",
            Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
            Actual::Float(_) => "a number",
            Actual::Char(_) | Actual::Str(_) => "a string",
            Actual::Bytes(_) => "bytes",
            Actual::Seq => "a list",
            Actual::Map => "a table",
            Actual::Unit | Actual::Option => "nothing",
            _ => "another kind of value",
        }
    };
    let message = match &e.kind {
        ErrorKind::InvalidType(actual, expected) => {
            format!("expected {expected}, got {}", what(actual))
        }
        ErrorKind::InvalidValue(actual, expected) => {
            format!("expected {expected}, got {} that is not one", what(actual))
        }
        ErrorKind::UnknownField(field, known) => {
            format!("unknown key `{field}`; known: {}", known.join(", "))
        }
        ErrorKind::UnknownVariant(variant, known) => {
            format!("unknown value `{variant}`; one of: {}", known.join(", "))
        }
        other => other.to_string(),
    };
    let file = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| format!(" (in {s})"))
        .unwrap_or_default();
    format!("{at}{message}{file}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &[u8])]) -> Result<Value, String> {
        use std::os::unix::ffi::OsStringExt;
        let vars = vars
            .iter()
            .map(|(k, v)| (OsString::from(*k), OsString::from_vec(v.to_vec())));
        overrides(vars, &SettingsSchema::new())
    }

    #[test]
    fn values_are_read_as_their_key_s_type_and_secrets_verbatim() {
        let tree = env(&[
            ("CLIENTS_GATEWAY__SERVER__DEADLINE_MS", b"3000"),
            (
                "CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__API_KEY",
                b"31415926535",
            ),
            (
                "CLIENTS_GATEWAY__AUTH__HS256_SECRET",
                b" \"quoted secret\" ",
            ),
            (
                "CLIENTS_GATEWAY__IDEMPOTENCY__REDIS_SENTINELS",
                b"a:26379,b:26379",
            ),
            ("CLIENTS_GATEWAY__PROVIDERS__LUCCA__HTTP2", b"false"),
            ("OTHER", b"ignored"),
        ])
        .unwrap();
        assert_eq!(tree["server"]["deadline_ms"], 3000);
        assert_eq!(
            tree["providers"]["clockify"]["api_key"], "31415926535",
            "a secret of digits is a string"
        );
        assert_eq!(
            tree["auth"]["hs256_secret"], " \"quoted secret\" ",
            "verbatim"
        );
        assert_eq!(
            tree["idempotency"]["redis_sentinels"],
            serde_json::json!(["a:26379", "b:26379"])
        );
        assert_eq!(tree["providers"]["lucca"]["http2"], false);
    }

    #[test]
    fn names_that_set_nothing_and_bad_values_are_refused_without_showing_secrets() {
        let e = env(&[("CLIENTS_GATEWAY__SERVER____BIND", b"x")]).unwrap_err();
        assert!(
            e.contains("CLIENTS_GATEWAY__SERVER____BIND") && e.contains("empty part"),
            "{e}"
        );
        let e = env(&[("CLIENTS_GATEWAY__SERVER__BND", b"x")]).unwrap_err();
        assert!(e.contains("server.bnd"), "{e}");
        let e = env(&[("CLIENTS_GATEWAY__SERVER__DEADLINE_MS", b"soon")]).unwrap_err();
        assert!(e.contains("an integer") && e.contains("soon"), "{e}");
        let e = env(&[("CLIENTS_GATEWAY__AUTH__HS256_SECRET", b"\xff\xfesecret")]).unwrap_err();
        assert!(e.contains("not UTF-8") && !e.contains("secret`"), "{e}");
        let e = env(&[("CLIENTS_GATEWAY__SERVER", b"x")]).unwrap_err();
        assert!(e.contains("no setting `server`"), "{e}");
    }
}
