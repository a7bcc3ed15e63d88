//! Secrets: what replaces them wherever something is shown, the credentials shown once to a
//! caller, generated passwords, and secrets read from mounted files.

use std::fmt;
use std::path::PathBuf;

use rand::seq::{IndexedRandom, SliceRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What replaces a secret wherever a request or response is shown.
pub const REDACTED: &str = "[redacted]";

/// A login and password shown once to the caller (a password a provider generated, or one the
/// gateway generated for the caller).
#[derive(Clone, ToSchema)]
pub struct Credentials {
    #[schema(example = "nova.smith@nova.example")]
    pub login: String,
    #[schema(value_type = String, example = "Xp9#Ld2!ak")]
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("password", &REDACTED)
            .finish()
    }
}

impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            login: String,
            password: String,
        }
        let w = Wire::deserialize(d)?;
        Ok(Credentials {
            login: w.login,
            password: SecretString::from(w.password),
        })
    }
}

impl Serialize for Credentials {
    /// The password in clear: this is only ever serialized into the one 207 answer that created
    /// it (a record keeps [`Credentials::redacted`]).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Credentials", 2)?;
        st.serialize_field("login", &self.login)?;
        st.serialize_field("password", self.password.expose_secret())?;
        st.end()
    }
}

impl Credentials {
    /// The same login with the password replaced by [`REDACTED`] (what a record keeps).
    pub fn redacted(&self) -> Self {
        Credentials {
            login: self.login.clone(),
            password: SecretString::from(REDACTED),
        }
    }
}

/// Replaces the values at `pointers` (where present and not null) by [`REDACTED`].
pub fn redact(mut value: Value, pointers: &[&str]) -> Value {
    for p in pointers {
        if let Some(v) = value.pointer_mut(p) {
            if !v.is_null() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    value
}

/// Shortest secret scrubbed from text relayed from a provider (a shorter one would mangle
/// ordinary words; no real credential is that short).
const MIN_SCRUBBED: usize = 6;

/// Replaces every occurrence of each secret in `text` by [`REDACTED`].
pub fn scrub_text(text: &mut String, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SCRUBBED) {
        if text.contains(secret) {
            *text = text.replace(secret, REDACTED);
        }
    }
}

/// Replaces every occurrence of each secret in the strings (and object keys) of `value`.
pub fn scrub_value(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => scrub_text(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(map) => {
            let dirty: Vec<String> = map
                .keys()
                .filter(|k| {
                    secrets
                        .iter()
                        .any(|s| s.len() >= MIN_SCRUBBED && k.contains(s))
                })
                .cloned()
                .collect();
            for key in dirty {
                if let Some(v) = map.remove(&key) {
                    let mut clean = key;
                    scrub_text(&mut clean, secrets);
                    map.insert(clean, v);
                }
            }
            map.values_mut().for_each(|v| scrub_value(v, secrets));
        }
        _ => {}
    }
}

/// A 20-character password with upper and lower case letters, digits and symbols.
pub fn generate_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-=?@_";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| *set.choose(&mut rng).expect("non-empty set"))
        .collect();
    while chars.len() < 20 {
        chars.push(*all.choose(&mut rng).expect("non-empty set"));
    }
    chars.shuffle(&mut rng);
    SecretString::from(String::from_utf8(chars).expect("ASCII"))
}

/// A secret configured as `KEY_file` that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{key}: cannot read secret file {path}: {source}")]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: the secret file {path} is larger than {limit} bytes (a secret is a key, not a file's contents)")]
    TooLarge {
        key: String,
        path: PathBuf,
        limit: u64,
    },
    #[error("{key}: the secret file {path} is empty")]
    Empty { key: String, path: PathBuf },
    #[error("{key}: give either `{key}` or `{key}_file`, not both")]
    Twice { key: String },
}

/// The largest secret file read (a key, a token, a URL with a password).
pub const MAX_SECRET_FILE_BYTES: u64 = 16 * 1024;

/// Why a file read at start was not read.
#[derive(Debug)]
pub enum FileReadError {
    Io(std::io::Error),
    /// Longer than the limit: the rest was not read.
    TooLarge(u64),
}

/// Reads a file at start, at most `limit` bytes: a file that is longer (or never ends, as
/// `/dev/zero`) is refused, never read whole.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, FileReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(FileReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(FileReadError::TooLarge(limit));
    }
    Ok(bytes)
}

/// Reads `KEY_file` into `KEY`, trimming the trailing newline a mounted secret usually has.
pub fn read_secret_file(
    key: &str,
    value: &mut Option<SecretString>,
    file: &Option<PathBuf>,
) -> Result<(), SecretFileError> {
    let Some(path) = file else { return Ok(()) };
    if value.is_some() {
        return Err(SecretFileError::Twice { key: key.into() });
    }
    let read = |source| SecretFileError::Read {
        key: key.into(),
        path: path.clone(),
        source,
    };
    let bytes = read_bounded(path, MAX_SECRET_FILE_BYTES).map_err(|e| match e {
        FileReadError::Io(source) => read(source),
        FileReadError::TooLarge(limit) => SecretFileError::TooLarge {
            key: key.into(),
            path: path.clone(),
            limit,
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.trim().is_empty() {
        return Err(SecretFileError::Empty {
            key: key.into(),
            path: path.clone(),
        });
    }
    *value = Some(SecretString::from(secret));
    Ok(())
}

/// Serializes a configured secret as `[redacted]` (absent: `null`): settings are serialized to
/// describe them (the configuration reference, bounds checks), never to show a secret.
pub fn serialize_redacted<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str(REDACTED),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials {
            login: "l".into(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn generated_passwords_are_strong_and_differ() {
        let a = generate_password();
        let b = generate_password();
        let a = a.expose_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b.expose_secret());
        assert!(a.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(a.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(a.bytes().any(|c| c.is_ascii_digit()));
        assert!(a.bytes().any(|c| !c.is_ascii_alphanumeric()));
    }

    #[test]
    fn secrets_are_scrubbed_from_text_and_json() {
        let secrets = ["key-123456", "tok"];
        let mut text = "invalid key key-123456 (tok)".to_owned();
        scrub_text(&mut text, &secrets);
        assert_eq!(
            text, "invalid key [redacted] (tok)",
            "a 3-letter secret is not one"
        );
        let mut v =
            serde_json::json!({"error": "bad key-123456", "key-123456": [1, "key-123456x"]});
        scrub_value(&mut v, &secrets);
        assert_eq!(
            v,
            serde_json::json!({"error": "bad [redacted]", "[redacted]": [1, "[redacted]x"]})
        );
    }

    #[test]
    fn redact_replaces_present_values_only() {
        let v = serde_json::json!({"member": {"password": "p", "name": "n"}, "none": null});
        let r = redact(v, &["/member/password", "/none", "/absent"]);
        assert_eq!(
            r,
            serde_json::json!({"member": {"password": REDACTED, "name": "n"}, "none": null})
        );
    }
}
