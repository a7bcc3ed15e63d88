//! The settings as their own types describe them: every key with its type, default, bounds and
//! description, read from the JSON Schema derived from the settings types (their doc comments,
//! `#[schema(minimum, maximum)]` bounds and `Default` values). One source, three uses: the
//! configuration reference (`clients-gateway config-reference`, kept as
//! `docs/reference/configuration.md`), the bounds check of every configuration loaded, and the
//! typing of environment overrides (a secret is always a string).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use utoipa::{PartialSchema, ToSchema};

use super::Settings;
use crate::adapter::Common;

/// The schema of the settings, with the schemas it refers to.
pub struct SettingsSchema {
    root: Value,
    components: BTreeMap<String, Value>,
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    /// One of these strings.
    Choice(Vec<String>),
    /// A list of values of one kind.
    List(Box<Kind>),
    /// A table whose keys are names of the operator's choice, each holding a section.
    Table,
}

/// One configuration key.
#[derive(Debug, Clone)]
pub struct Key {
    /// `server.deadline_ms`.
    pub path: String,
    pub kind: Kind,
    /// May be absent (`null`).
    pub optional: bool,
    /// A secret: never shown, always read as a string.
    pub secret: bool,
    pub description: String,
    pub default: Value,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

impl Default for SettingsSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl SettingsSchema {
    pub fn new() -> Self {
        let mut schemas = Vec::new();
        Settings::schemas(&mut schemas);
        Common::schemas(&mut schemas);
        let mut components: BTreeMap<String, Value> = schemas
            .into_iter()
            .map(|(name, schema)| (name, to_json(&schema)))
            .collect();
        components.insert(Common::name().into_owned(), to_json(&Common::schema()));
        Self {
            root: to_json(&Settings::schema()),
            components,
        }
    }

    /// The schema behind `$ref`s and `null` alternatives.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
        {
            return self
                .components
                .get(name)
                .map_or(schema, |s| self.resolve(s));
        }
        for combinator in ["oneOf", "anyOf", "allOf"] {
            if let Some(alternatives) = schema.get(combinator).and_then(Value::as_array) {
                if let Some(s) = alternatives.iter().find(|s| !is_null_type(s)) {
                    return self.resolve(s);
                }
            }
        }
        schema
    }

    /// Every key of the settings, in the order the types declare them.
    pub fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        self.collect(&self.root, "", &Value::Null, &mut keys);
        keys
    }

    /// The keys every provider has (`[providers.<name>]`), with the defaults of the first
    /// provider's section (the same for all but `base_url`).
    pub fn common_keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        let common = self.components.get("Common").cloned().unwrap_or_default();
        self.collect(&common, "providers.<name>", &Value::Null, &mut keys);
        let all = self.keys();
        for key in &mut keys {
            let name = key.path.rsplit('.').next().unwrap_or_default();
            key.default = all
                .iter()
                .find(|k| k.path.starts_with("providers.") && k.path.ends_with(&format!(".{name}")))
                .map_or(Value::Null, |k| k.default.clone());
            if name == "base_url" {
                key.default = Value::Null;
                key.description = format!(
                    "{} Default: the provider's production API (below).",
                    key.description
                );
            }
        }
        keys
    }

    fn collect(&self, schema: &Value, prefix: &str, inherited: &Value, keys: &mut Vec<Key>) {
        let resolved = self.resolve(schema);
        let Some(properties) = resolved.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let path = join(prefix, name);
            let inner = self.resolve(property);
            let default = property
                .get("default")
                .or_else(|| inherited.get(name))
                .cloned()
                .unwrap_or(Value::Null);
            if inner.get("properties").is_some() {
                self.collect(property, &path, &default, keys);
                continue;
            }
            keys.push(self.key(path.clone(), property, inner, default));
            // A table of named sections (`operations.webhooks.<name>`): each section's keys too.
            if let Some(each) = inner.get("additionalProperties").filter(|a| a.is_object()) {
                let named = format!("{path}.<name>");
                self.collect(each, &named, &Value::Null, keys);
            }
        }
    }

    fn key(&self, path: String, property: &Value, inner: &Value, default: Value) -> Key {
        let description = [property, inner]
            .iter()
            .find_map(|s| s.get("description").and_then(Value::as_str))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let number = |name: &str| {
            [property, inner]
                .iter()
                .find_map(|s| s.get(name).and_then(Value::as_f64))
        };
        Key {
            kind: self.kind(inner),
            optional: is_optional(property),
            secret: [property, inner]
                .iter()
                .any(|s| s.get("format").and_then(Value::as_str) == Some("password")),
            description,
            default,
            minimum: number("minimum"),
            maximum: number("maximum"),
            path,
        }
    }

    fn kind(&self, schema: &Value) -> Kind {
        let schema = self.resolve(schema);
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            return Kind::Choice(
                choices
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        match main_type(schema).as_deref() {
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => Kind::List(Box::new(
                schema
                    .get("items")
                    .map_or(Kind::String, |items| self.kind(items)),
            )),
            Some("object") => Kind::Table,
            _ => Kind::String,
        }
    }

    /// The key at `path` (its segments), following tables of named sections.
    pub fn find(&self, path: &[&str]) -> Option<Key> {
        let mut schema = &self.root;
        let mut walked = String::new();
        for (i, segment) in path.iter().enumerate() {
            let resolved = self.resolve(schema);
            let next = match resolved.get("properties").and_then(|p| p.get(*segment)) {
                Some(next) => next,
                None => resolved
                    .get("additionalProperties")
                    .filter(|a| a.is_object())?,
            };
            walked = join(&walked, segment);
            let inner = self.resolve(next);
            if i + 1 == path.len() {
                let key = self.key(walked, next, inner, Value::Null);
                return (inner.get("properties").is_none()).then_some(key);
            }
            schema = next;
        }
        None
    }

    /// Every number of `settings` within the bounds its key declares: the first one out of them,
    /// with its key and bounds, in words.
    pub fn out_of_bounds(&self, settings: &Value) -> Option<String> {
        let mut found = None;
        self.check(&self.root, settings, "", &mut found);
        found
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, found: &mut Option<String>) {
        if found.is_some() {
            return;
        }
        let resolved = self.resolve(schema);
        if let (Some(properties), Some(values)) = (
            resolved.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (name, property) in properties {
                if let Some(v) = values.get(name) {
                    self.check(property, v, &join(path, name), found);
                }
            }
            return;
        }
        let Some(n) = value.as_f64() else {
            return;
        };
        let bound = |name: &str| {
            [schema, resolved]
                .iter()
                .find_map(|s| s.get(name).and_then(Value::as_f64))
        };
        let (min, max) = (bound("minimum"), bound("maximum"));
        let below = min.is_some_and(|m| n < m);
        let above = max.is_some_and(|m| n > m);
        if below || above {
            let shown = |b: Option<f64>| b.map_or_else(|| "…".to_owned(), number);
            *found = Some(format!(
                "{path} must be between {} and {}, got {value}",
                shown(min),
                shown(max)
            ));
        }
    }
}

fn to_json<T: serde::Serialize>(schema: &T) -> Value {
    serde_json::to_value(schema).expect("a schema serializes")
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The type a schema names besides `null`.
fn main_type(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        _ => None,
    }
}

fn is_optional(schema: &Value) -> bool {
    let null_type = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => false,
    };
    let null_alternative = ["oneOf", "anyOf"].iter().any(|c| {
        schema
            .get(*c)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(is_null_type))
    });
    null_type || null_alternative
}

/// A bound as written in the reference: an integer without its `.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Every key as JSON: `[{"path", "default", "minimum", "maximum", "secret"}]`.
pub fn keys_json() -> String {
    let keys: Vec<Value> = SettingsSchema::new()
        .keys()
        .into_iter()
        .map(|k| {
            serde_json::json!({
                "path": k.path,
                "default": k.default,
                "minimum": k.minimum,
                "maximum": k.maximum,
                "secret": k.secret,
            })
        })
        .collect();
    serde_json::to_string_pretty(&keys).unwrap_or_default()
}

/// The configuration reference, in Markdown: every key with its default, bounds and
/// description, the environment variable that overrides it, section by section.
pub fn reference() -> String {
    let schema = SettingsSchema::new();
    let mut out = String::from(REFERENCE_HEAD);
    let keys = schema.keys();
    let common: Vec<Key> = schema.common_keys();
    let common_names: Vec<&str> = common
        .iter()
        .filter_map(|k| k.path.rsplit('.').next())
        .collect();
    let mut sections: Vec<(String, Vec<&Key>)> = Vec::new();
    for key in &keys {
        let section = section_of(&key.path);
        let is_common = key.path.starts_with("providers.")
            && key
                .path
                .rsplit('.')
                .next()
                .is_some_and(|n| common_names.contains(&n) && n != "base_url");
        if is_common {
            continue;
        }
        match sections.last_mut() {
            Some((name, list)) if *name == section => list.push(key),
            _ => sections.push((section, vec![key])),
        }
    }
    let mut common_written = false;
    for (section, list) in &sections {
        if section.starts_with("providers.") && !common_written {
            out.push_str(&table(
                "providers.<name>",
                &common.iter().collect::<Vec<_>>(),
                COMMON_NOTE,
            ));
            common_written = true;
        }
        out.push_str(&table(section, list, ""));
    }
    out
}

/// The section a key belongs to: `server` for `server.bind`, `providers.lucca` for
/// `providers.lucca.api_key`.
fn section_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let depth = if parts.first() == Some(&"providers") {
        2
    } else {
        1
    };
    parts[..depth.min(parts.len() - 1)].join(".")
}

const REFERENCE_HEAD: &str = "# Configuration reference

<!-- Generated by `clients-gateway config-reference` (`cargo xtask generate`) from the settings
types: edit their doc comments, not this file. -->

Every key the gateway reads, with its default, its bounds and what it does, generated from the
settings types themselves (their documentation, bounds and defaults), so it cannot drift from
the code. A configuration is a TOML file (`--config FILE` or `CLIENTS_GATEWAY_CONFIG`); any key
may be set by an environment variable instead, `CLIENTS_GATEWAY__` then the key's path in
capitals with `__` between the parts (`server.deadline_ms` is `CLIENTS_GATEWAY__SERVER__DEADLINE_MS`;
a value from the environment is read as the key's type: a secret or any text key is taken
verbatim). A secret may be given as `<key>_file` (a path to a mounted secret) instead of the
key itself. Unknown keys are refused, and so is every number outside its bounds:
`clients-gateway check-config --config FILE` says whether a configuration would start.

";

const COMMON_NOTE: &str = "Every provider has these keys besides its own (below); only `base_url`'s default differs from one provider to another.\n\n";

/// One section's table.
fn table(section: &str, keys: &[&Key], note: &str) -> String {
    let mut out =
        format!("## `[{section}]`\n\n{note}| key | default | description |\n|---|---|---|\n");
    for key in keys {
        // Relative to the section: `url` of `[operations]`'s `webhooks.<name>` is
        // `webhooks.<name>.url`.
        let name = match key.path.contains("<name>") {
            true => key
                .path
                .strip_prefix(&format!("{section}."))
                .unwrap_or(&key.path),
            false => key.path.rsplit('.').next().unwrap_or(&key.path),
        };
        let file_key = key.path.rsplit('.').next().unwrap_or(&key.path);
        let env = format!(
            "CLIENTS_GATEWAY__{}",
            key.path.replace('.', "__").to_uppercase()
        );
        let mut description = key.description.replace('\n', " ");
        if let Some(bounds) = bounds(key) {
            description = format!("{description} {bounds}");
        }
        if key.secret {
            description = format!(
                "{description} A secret: never shown; `{file_key}_file` reads it from a file."
            );
        }
        let description = description.trim().replace('|', "\\|");
        out.push_str(&format!(
            "| `{name}` <br>`{env}` | {} | {description} |\n",
            shown_default(key)
        ));
    }
    out.push('\n');
    out
}

fn bounds(key: &Key) -> Option<String> {
    match (key.minimum, key.maximum) {
        (Some(min), Some(max)) => Some(format!("From {} to {}.", number(min), number(max))),
        // Every unsigned number is at least 0: nothing worth saying.
        (Some(0.0), None) => None,
        (Some(min), None) => Some(format!("At least {}.", number(min))),
        (None, Some(max)) => Some(format!("At most {}.", number(max))),
        (None, None) => None,
    }
}

fn shown_default(key: &Key) -> String {
    match &key.default {
        Value::Null => "–".to_owned(),
        Value::String(s) if key.secret => format!("`{s}`"),
        Value::Array(a) if a.is_empty() => "`[]`".to_owned(),
        Value::Object(o) if o.is_empty() => "`{}`".to_owned(),
        other => format!("`{}`", toml_value(other)),
    }
}

/// A JSON value as TOML writes it (strings quoted, arrays inline).
fn toml_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The settings as JSON (secrets shown as `[redacted]`), for the bounds check.
pub fn as_json(settings: &Settings) -> Value {
    serde_json::to_value(settings).unwrap_or(Value::Object(Map::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_described_with_its_type_default_and_bounds() {
        let schema = SettingsSchema::new();
        let keys = schema.keys();
        let key = |path: &str| {
            keys.iter()
                .find(|k| k.path == path)
                .unwrap_or_else(|| panic!("{path} is a key"))
        };
        let deadline = key("server.deadline_ms");
        assert_eq!(deadline.kind, Kind::Integer);
        assert_eq!(deadline.default, serde_json::json!(10000));
        assert_eq!(
            (deadline.minimum, deadline.maximum),
            (Some(1.0), Some(600000.0))
        );
        assert!(deadline.description.contains("deadline"));
        let secret = key("providers.clockify.api_key");
        assert!(secret.secret && secret.optional);
        assert_eq!(secret.kind, Kind::String);
        assert_eq!(
            key("providers.missionx.base_url").default,
            serde_json::json!("https://open.api.missionx.ai/v2")
        );
        assert_eq!(
            key("telemetry.log_format").kind,
            Kind::Choice(vec!["json".into(), "text".into()])
        );
        assert_eq!(
            key("idempotency.redis_sentinels").kind,
            Kind::List(Box::new(Kind::String))
        );
        for key in &keys {
            assert!(
                !key.description.is_empty(),
                "{} has no description",
                key.path
            );
        }
    }

    #[test]
    fn a_number_out_of_its_bounds_is_named_with_them() {
        let schema = SettingsSchema::new();
        let mut settings = Settings::default();
        assert_eq!(schema.out_of_bounds(&as_json(&settings)), None);
        settings.providers.lucca.timeout_ms = 0;
        assert_eq!(
            schema.out_of_bounds(&as_json(&settings)).as_deref(),
            Some("providers.lucca.timeout_ms must be between 1 and 600000, got 0")
        );
        let mut settings = Settings::default();
        settings.server.memory_budget_mb = Some(4);
        assert!(schema
            .out_of_bounds(&as_json(&settings))
            .unwrap()
            .starts_with("server.memory_budget_mb must be between 64"));
    }

    #[test]
    fn keys_are_found_by_their_path() {
        let schema = SettingsSchema::new();
        assert_eq!(schema.find(&["server", "bind"]).unwrap().kind, Kind::String);
        assert!(
            schema
                .find(&["providers", "lucca", "api_key"])
                .unwrap()
                .secret
        );
        assert!(schema.find(&["server", "nope"]).is_none());
        assert!(schema.find(&["server"]).is_none(), "a section is not a key");
    }
}
