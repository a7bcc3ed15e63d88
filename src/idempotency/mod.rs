//! `Idempotency-Key`: the same key with the same body never creates a client twice.
//!
//! A record per (caller, key) holds the fingerprint of the body and, once a request finished,
//! each target's result. A new request with the key first *claims* the record atomically (so no
//! two requests, on any replica, run the same key at once), then:
//! - targets already `created` (or `existing`) are answered from the record (`replayed: true`),
//!   not re-sent;
//! - targets that `failed` are attempted again;
//! - targets left `unknown` are looked up, and sent again only once the provider has had time to
//!   act and the client is not there (the record keeps when each create was first sent).
//!
//! Two stores implement the small [`Store`] trait: [`memory::MemoryStore`] (one replica) and
//! [`redis::RedisStore`] (shared by the replicas). This module holds keys, records and stores;
//! running a request under a key is [`crate::keyed`].

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::ProviderId;
use crate::results::TargetResult;

/// A validated `Idempotency-Key` header: one key of 1–255 printable ASCII characters, no comma.
/// The IETF draft's form, a structured-field String (`"8e03978e"`, with `\"` and `\\` escaped),
/// is read as such. A comma is refused: `k1, k2` is what two header lines folded into one look
/// like, a list rather than one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let trimmed = raw.trim_ascii();
        if trimmed.contains(&b',') {
            return Err("Idempotency-Key holds one key, not a list (a comma): send one key".into());
        }
        let value = match trimmed {
            [b'"', inner @ .., b'"'] => unescape(inner),
            bare => bare.to_vec(),
        };
        if value.is_empty() || value.len() > 255 {
            return Err("Idempotency-Key must be 1–255 characters".into());
        }
        if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err("Idempotency-Key must be printable ASCII".into());
        }
        Ok(Self(String::from_utf8_lossy(&value).into_owned()))
    }

    /// The key as the caller gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key: caller and key hashed, so neither can collide with another caller's or
    /// grow the store key.
    pub fn scoped(&self, caller: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(caller.as_bytes());
        hash.update([0]);
        hash.update(self.0.as_bytes());
        format!("clients-gateway:idempotency:{:x}", hash.finalize())
    }
}

/// The inside of a quoted key: `\"` and `\\` stand for `"` and `\` (a structured-field String,
/// RFC 8941 §3.3.3); any other byte for itself.
fn unescape(inner: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter().peekable();
    while let Some(&b) = bytes.next() {
        match (b, bytes.peek()) {
            (b'\\', Some(&&next @ (b'"' | b'\\'))) => {
                value.push(next);
                bytes.next();
            }
            _ => value.push(b),
        }
    }
    value
}

/// The fingerprint of a body: SHA-256 of its JSON with object keys sorted (serialized compact),
/// so formatting and key order do not matter.
pub fn fingerprint(body: &Value) -> String {
    let mut canonical = body.clone();
    canonical.sort_all_objects();
    let text = serde_json::to_vec(&canonical).expect("a JSON value serializes");
    format!("{:x}", Sha256::digest(&text))
}

/// What a finished request left: each target's result, passwords redacted, and when each
/// target's create was first sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub operation_id: uuid::Uuid,
    pub results: BTreeMap<ProviderId, TargetResult>,
    /// Unix milliseconds when the create the result is about was first sent (what a lookup of
    /// an unanswered create, and its settling time, count from).
    #[serde(default)]
    pub sent_ms: BTreeMap<ProviderId, u64>,
}

/// Proof of a claim: only its holder may finish the record.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
}

impl Lease {
    pub fn new() -> Self {
        Self {
            owner: crate::ids::v4().to_string(),
        }
    }
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// The key is new: run every target.
    New,
    /// A request with this key finished: replay its record, attempt its failed targets again.
    Finished(Record),
    /// A request with this key started (at the unix milliseconds given, when known) and never
    /// finished (its replica stopped): its targets' fates are unknown, except those an even
    /// earlier request recorded.
    Abandoned(Option<Record>, Option<u64>),
    /// A request with this key is running now.
    InFlight,
    /// The store has no room for a new key (every record it holds is recent).
    Full,
    /// The key was used with another body.
    Mismatch,
}

#[derive(Debug, thiserror::Error)]
#[error("idempotency store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<crate::fleet::LinkError> for StoreError {
    fn from(e: crate::fleet::LinkError) -> Self {
        StoreError(e.message)
    }
}

/// Where records live.
pub trait Store: Send + Sync {
    /// Atomically claims `key` for a request whose body has `fingerprint`, for at most `lease`
    /// (then another request may take it over); the record lives `ttl`.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        holder: &'a Lease,
        lease: Duration,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Stores the finished record, if `holder` still holds the claim. `Ok(false)` when the claim
    /// was lost (the lease ran out and another request took the key over).
    fn finish<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Gives up a claim that never started anything (its request stopped before sending), so
    /// that a retry runs at once; a no-op if `holder` does not hold it.
    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether the store answers (readiness).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The store's clock minus this process's, in milliseconds: times in records (when a
    /// request started, when a create was sent) are on the store's clock, which every replica
    /// shares. Zero for a store in this process.
    fn clock_offset_ms(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_checked_and_scoped_by_caller() {
        assert!(IdempotencyKey::parse(b"order-42").is_ok());
        assert_eq!(
            IdempotencyKey::parse(b"\"8e03978e\"").unwrap(),
            IdempotencyKey::parse(b"8e03978e").unwrap()
        );
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(&[b'a'; 256]).is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"a\tb").is_err());
        assert!(
            IdempotencyKey::parse(b"k1, k2").is_err(),
            "two keys folded into one line"
        );
        assert!(
            IdempotencyKey::parse(b"\"k1\", \"k2\"").is_err(),
            "a list of two"
        );
        assert_eq!(
            IdempotencyKey::parse(br#""a\"b""#).unwrap().as_str(),
            "a\"b",
            "an escaped quote"
        );
        assert_eq!(
            IdempotencyKey::parse(b"order 42").unwrap().as_str(),
            "order 42"
        );
        let k = IdempotencyKey::parse(b"k").unwrap();
        assert_ne!(k.scoped("alice"), k.scoped("bob"));
        assert_eq!(k.scoped("alice"), k.scoped("alice"));
    }

    #[test]
    fn fingerprints_and_scoped_keys_are_stable() {
        // Records written by earlier releases must still be found and matched.
        let body = json!({"targets": {"lucca": {"organization_id": 12}, "clockify": {}},
            "client": {"name": "Nova \"Ltd\" é\u{1}", "emails": ["a@b", 1.5, null, true]}});
        assert_eq!(
            fingerprint(&body),
            "f7d737d1e3691315016a2a4461d96eb6b13e59a8875e024fe990703171183402"
        );
        assert_eq!(
            IdempotencyKey::parse(b"order-42").unwrap().scoped("alice"),
            "clients-gateway:idempotency:ea87458611f8e4186e44abe3306340ff7d0045e51e8d7f6437b5e1e3a4d62a23"
        );
    }

    #[test]
    fn fingerprints_ignore_key_order_not_values() {
        let a = json!({"client": {"name": "A", "code": "X"}, "targets": {"lucca": {}}});
        let b = json!({"targets": {"lucca": {}}, "client": {"code": "X", "name": "A"}});
        let c = json!({"client": {"name": "B", "code": "X"}, "targets": {"lucca": {}}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
