//! What an operation keeps at rest — the request body, a password a tool or the gateway
//! generated — sealed with an AEAD (ChaCha20-Poly1305, `ring`), under a key read from
//! `operations.encryption_key_file` (32 random bytes, base64). Each sealed value names its key
//! (an id derived from the key), so that keys can be rotated: older keys
//! (`operations.previous_key_files`) are kept for reading only. The place a value is kept (its
//! operation and field) is bound to it as associated data: a value moved elsewhere does not
//! open.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// The format of a sealed value: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
const VERSION: &str = "v1";

/// One key.
struct Key {
    id: String,
    aead: LessSafeKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// The key that seals, and the keys that may still open what older ones sealed.
#[derive(Debug)]
pub struct KeyRing {
    current: Key,
    previous: Vec<Key>,
    random: SystemRandom,
}

/// A sealed value that cannot be opened, and why (never the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SealError(pub String);

impl Key {
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| format!("a key is {} bytes", CHACHA20_POLY1305.key_len()))?;
        let digest = Sha256::digest(bytes);
        let id: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Key {
            id,
            aead: LessSafeKey::new(unbound),
        })
    }

    /// A key as `openssl rand -base64 32` prints it (surrounding whitespace ignored).
    fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "not base64 (make one with `openssl rand -base64 32`)".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!(
                "{} bytes once decoded; a key is 32 random bytes (`openssl rand -base64 32`)",
                bytes.len()
            ));
        }
        Self::from_bytes(&bytes)
    }
}

impl KeyRing {
    /// The ring of `current` (base64) and the `previous` keys (base64), oldest last.
    pub fn from_base64(current: &str, previous: &[String]) -> Result<Self, String> {
        Ok(Self {
            current: Key::from_base64(current)?,
            previous: previous
                .iter()
                .map(|k| Key::from_base64(k))
                .collect::<Result<_, _>>()?,
            random: SystemRandom::new(),
        })
    }

    /// A ring of one key made now (the sandbox, or operations kept in the process: nothing is
    /// at rest beyond the process).
    pub fn ephemeral() -> Self {
        let random = SystemRandom::new();
        let mut bytes = [0u8; 32];
        random
            .fill(&mut bytes)
            .expect("the system's random generator");
        Self {
            current: Key::from_bytes(&bytes).expect("32 bytes"),
            previous: Vec::new(),
            random,
        }
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// `plain` sealed under the current key, bound to `place`.
    pub fn seal(&self, plain: &[u8], place: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random generator");
        let mut sealed = plain.to_vec();
        self.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut sealed,
            )
            .expect("a value of any length seals");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// A value sealed under any key of the ring, bound to `place`.
    pub fn open(&self, sealed: &str, place: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError("not a value this gateway sealed".into()));
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                SealError(format!(
                    "sealed with key {id}, which is neither operations.encryption_key_file ({}) nor one of operations.previous_key_files",
                    self.current.id
                ))
            })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError("a sealed value is damaged".into()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError("a sealed value is damaged".into()));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let mut rest = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SealError("a sealed value is damaged".into()))?;
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut rest)
            .map_err(|_| {
                SealError(format!(
                    "a value sealed with key {id} does not open: damaged, or moved from another place"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "3q2+7w0BAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_value_opens_where_it_was_sealed_and_nowhere_else() {
        let ring = KeyRing::from_base64(K1, &[]).unwrap();
        let sealed = ring.seal(b"Nova Consulting Ltd", "op-1/body");
        assert!(!sealed.contains("Nova"));
        assert_eq!(
            ring.open(&sealed, "op-1/body").unwrap(),
            b"Nova Consulting Ltd"
        );
        assert!(ring.open(&sealed, "op-2/body").is_err());
        assert_ne!(
            ring.seal(b"x", "p"),
            ring.seal(b"x", "p"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_rotated_key_still_opens_older_values_and_a_wrong_key_says_so() {
        let old = KeyRing::from_base64(K1, &[]).unwrap();
        let sealed = old.seal(b"secret", "op/c:lucca");
        let rotated = KeyRing::from_base64(K2, &[K1.to_owned()]).unwrap();
        assert_eq!(rotated.open(&sealed, "op/c:lucca").unwrap(), b"secret");
        assert!(rotated.seal(b"s", "p").contains(rotated.current_id()));
        let wrong = KeyRing::from_base64(K2, &[]).unwrap();
        let e = wrong.open(&sealed, "op/c:lucca").unwrap_err();
        assert!(
            e.0.contains(old.current_id()) && e.0.contains("previous_key_files"),
            "{e}"
        );
    }

    #[test]
    fn a_key_must_be_32_random_bytes_in_base64() {
        assert!(KeyRing::from_base64("not base64!", &[]).is_err());
        assert!(KeyRing::from_base64(&STANDARD.encode([1u8; 16]), &[]).is_err());
        assert!(KeyRing::from_base64(&format!("  {K1}\n"), &[]).is_ok());
    }
}
