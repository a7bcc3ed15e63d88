//! Caller authentication: a bearer JWT checked against one key source built once at start — an
//! HS256 secret, an RS256/ES256 public key (PEM), or a JWKS URL. The algorithm is bound to the
//! key: a token whose header names another algorithm (`none`, HS256 against an RSA key, ...) is
//! refused before any signature check. The [`Caller`] extractor runs before the body is read,
//! so a refused caller reaches no provider.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use url::Url;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};
use crate::request_id::RequestId;

/// `[auth]`: how callers' bearer tokens are checked (one key source: `hs256_secret`,
/// `public_key_pem` or `jwks_url`).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Serve without caller authentication. Never the default; logged loudly when set.
    pub disabled: bool,
    /// HS256 shared key (at least 32 bytes).
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub hs256_secret: Option<SecretString>,
    /// A file holding `hs256_secret` (a mounted Kubernetes secret).
    #[schema(value_type = Option<String>)]
    pub hs256_secret_file: Option<PathBuf>,
    /// RS256 (RSA) or ES256 (P-256) public key, PEM.
    pub public_key_pem: Option<String>,
    /// A file holding `public_key_pem`.
    #[schema(value_type = Option<String>)]
    pub public_key_pem_file: Option<PathBuf>,
    /// Keys published by the identity provider (RS256 and ES256 keys, by `kid`); http(s).
    #[schema(value_type = Option<String>)]
    pub jwks_url: Option<Url>,
    /// An unknown `kid` refetches the JWKS at most once per this many seconds.
    #[schema(minimum = 0, maximum = 86400)]
    pub jwks_min_refresh_s: u64,
    /// The JWKS is refetched (in the background, its keys still used) when older than this.
    #[schema(minimum = 1, maximum = 604800)]
    pub jwks_max_age_s: u64,
    /// The `iss` a token must carry; absent: not checked.
    pub issuer: Option<String>,
    /// The `aud` a token must carry; absent: not checked.
    pub audience: Option<String>,
    /// The scope a token needs to create clients.
    pub required_scope: String,
    /// Claim holding the scopes; absent: `scope` (space-separated) or `scp` (array).
    pub scope_claim: Option<String>,
    /// Clock skew absorbed when checking `exp` and `nbf`.
    #[schema(minimum = 0, maximum = 3600)]
    pub leeway_s: u64,
    /// A verified token is trusted again without a new check for at most this long (never past
    /// its `exp`); 0: every request is checked in full.
    #[schema(minimum = 0, maximum = 86400)]
    pub cache_ttl_s: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            disabled: false,
            hs256_secret: None,
            hs256_secret_file: None,
            public_key_pem: None,
            public_key_pem_file: None,
            jwks_url: None,
            jwks_min_refresh_s: 30,
            jwks_max_age_s: 600,
            issuer: None,
            audience: None,
            required_scope: "clients:write".into(),
            scope_claim: None,
            leeway_s: 30,
            cache_ttl_s: 60,
        }
    }
}

/// Who is calling, from the verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `sub`; `anonymous` when authentication is disabled.
    pub subject: String,
}

/// How callers are checked; built once from the settings.
pub enum Authenticator {
    /// No check at all (`auth.disabled = true`): every caller is `anonymous`.
    Disabled,
    Jwt(Box<JwtVerifier>),
}

pub struct JwtVerifier {
    keys: Keys,
    /// Tokens already verified, so that a caller reusing its token is not checked again each time.
    cache: TokenCache,
    /// Claims, leeway, issuer and audience, one per algorithm the keys allow (built at start):
    /// checked once the signature is ([`JwtVerifier::verify`]).
    validations: Vec<(Algorithm, Validation)>,
    required_scope: String,
    scope_claim: Option<String>,
}

enum Keys {
    Static { key: DecodingKey, alg: Algorithm },
    Jwks(std::sync::Arc<JwksCache>),
}

/// Why a token was refused; words safe to send back (nothing about the key).
#[derive(Debug)]
enum Refusal {
    Invalid(&'static str),
    Scope,
}

/// The one key source configured: an HS256 secret, a public key, or a JWKS.
fn keys(settings: &AuthSettings, egress: &crate::egress::Egress) -> Result<Keys, String> {
    let sources = [
        settings.hs256_secret.is_some(),
        settings.public_key_pem.is_some(),
        settings.jwks_url.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if sources == 0 {
        return Err("auth: no key configured: set one of auth.hs256_secret, auth.public_key_pem or auth.jwks_url (or auth.disabled = true for a development gateway)".into());
    }
    if sources > 1 {
        return Err("auth: configure exactly one of auth.hs256_secret, auth.public_key_pem and auth.jwks_url".into());
    }
    if let Some(secret) = &settings.hs256_secret {
        if secret.expose_secret().len() < 32 {
            return Err("auth.hs256_secret must be at least 32 bytes".into());
        }
        return Ok(Keys::Static {
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            alg: Algorithm::HS256,
        });
    }
    if let Some(pem) = &settings.public_key_pem {
        return public_key(pem.as_bytes());
    }
    let url = settings.jwks_url.clone().expect("counted above");
    Ok(Keys::Jwks(std::sync::Arc::new(JwksCache::new(
        url,
        egress,
        Duration::from_secs(settings.jwks_min_refresh_s),
        Duration::from_secs(settings.jwks_max_age_s),
    )?)))
}

/// A PEM public key: RSA (RS256) or P-256 (ES256).
fn public_key(pem: &[u8]) -> Result<Keys, String> {
    match (
        DecodingKey::from_rsa_pem(pem),
        DecodingKey::from_ec_pem(pem),
    ) {
        (Ok(key), _) => Ok(Keys::Static {
            key,
            alg: Algorithm::RS256,
        }),
        (_, Ok(key)) => Ok(Keys::Static {
            key,
            alg: Algorithm::ES256,
        }),
        _ => Err("auth.public_key_pem is neither an RSA nor a P-256 EC public key in PEM".into()),
    }
}

/// The checks of a token signed with `alg`: `exp` and `sub` required, `nbf` honoured, `iss`
/// and `aud` when configured, the leeway.
fn validation(alg: Algorithm, settings: &AuthSettings) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = settings.leeway_s;
    validation.validate_nbf = true;
    if let Some(iss) = &settings.issuer {
        validation.set_issuer(&[iss]);
    }
    match &settings.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    validation
}

impl Authenticator {
    /// Builds the verifier; refuses "no authentication" unless it was asked for. A JWKS is
    /// fetched with `egress`'s trust and proxy.
    pub fn from_settings(
        settings: &AuthSettings,
        egress: &crate::egress::Egress,
    ) -> Result<Self, String> {
        if settings.disabled {
            return Ok(Authenticator::Disabled);
        }
        let keys = keys(settings, egress)?;
        let algorithms = match &keys {
            Keys::Static { alg, .. } => vec![*alg],
            Keys::Jwks(_) => vec![Algorithm::RS256, Algorithm::ES256],
        };
        // The signature is checked first, over the token as sent (the header read here, with
        // whatever parameters it has); then the claims, by the crate's validation.
        let validations = algorithms
            .into_iter()
            .map(|alg| {
                let mut claims_only = validation(alg, settings);
                // Never without the signature check of `JwtVerifier::verify`, which comes first
                // (over the token as sent: `jsonwebtoken::crypto::verify`).
                #[allow(deprecated)]
                claims_only.insecure_disable_signature_validation();
                (alg, claims_only)
            })
            .collect();
        Ok(Authenticator::Jwt(Box::new(JwtVerifier {
            keys,
            cache: TokenCache::new(Duration::from_secs(settings.cache_ttl_s), settings.leeway_s),
            validations,
            required_scope: settings.required_scope.clone(),
            scope_claim: settings.scope_claim.clone(),
        })))
    }

    /// Checks the `Authorization` header.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let verifier = match self {
            Authenticator::Disabled => {
                return Ok(Caller {
                    subject: "anonymous".into(),
                })
            }
            Authenticator::Jwt(v) => v,
        };
        let Some(header) = authorization else {
            return Err(ApiError::Unauthorized {
                detail: "a bearer token is required: send `Authorization: Bearer <JWT>`".into(),
                challenge: r#"Bearer realm="clients-gateway""#.into(),
            });
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(invalid_token(
                    "the Authorization header must use the Bearer scheme",
                ))
            }
        };
        match verifier.check(token).await {
            Ok(subject) => Ok(Caller { subject }),
            Err(Refusal::Invalid(why)) => Err(invalid_token(why)),
            Err(Refusal::Scope) => {
                let scope = &verifier.required_scope;
                Err(ApiError::Forbidden {
                    detail: format!("the token lacks the scope `{scope}`"),
                    challenge: format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
                })
            }
        }
    }
}

impl JwtVerifier {
    async fn check(&self, token: &str) -> Result<String, Refusal> {
        if let Some(subject) = self.cache.get(token) {
            return Ok(subject);
        }
        let (subject, exp) = self.verify(token).await?;
        self.cache.put(token, &subject, exp);
        Ok(subject)
    }

    /// The full check: header, key, signature, claims, scope. The subject and `exp` when valid.
    ///
    /// The JOSE header is read here as RFC 7515 has it: a parameter the gateway does not know is
    /// ignored whatever its value (the crate refuses a non-string one), and a `crit` header —
    /// extensions the recipient must understand — is refused, since the gateway understands
    /// none. The signature is verified over the token as sent; the claims are then validated by
    /// the crate on the same payload.
    async fn verify(&self, token: &str) -> Result<(String, u64), Refusal> {
        let malformed = Refusal::Invalid("the token is malformed or its algorithm is not allowed");
        let jws = Jws::split(token).ok_or(malformed)?;
        let header = jws.header().ok_or(Refusal::Invalid(
            "the token is malformed or its algorithm is not allowed",
        ))?;
        if header.crit.is_some() {
            return Err(Refusal::Invalid(
                "the token names critical header extensions (crit), which the gateway does not support",
            ));
        }
        let jwks_key;
        let (key, alg) = match &self.keys {
            Keys::Static { key, alg } => (key, *alg),
            Keys::Jwks(cache) => {
                jwks_key = cache.key(header.kid.as_deref()).await?;
                (jwks_key.0.as_ref(), jwks_key.1)
            }
        };
        if header.alg != alg {
            return Err(Refusal::Invalid("algorithm not allowed for this key"));
        }
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(Refusal::Invalid("algorithm not allowed for this key"))?;
        let signed = jsonwebtoken::crypto::verify(jws.signature, jws.signed.as_bytes(), key, alg)
            .map_err(|e| Refusal::Invalid(describe_jwt_error(&e)))?;
        if !signed {
            return Err(Refusal::Invalid("bad signature"));
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(jws.claims_token(alg), key, validation)
                .map_err(|e| Refusal::Invalid(describe_jwt_error(&e)))?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or(Refusal::Invalid(
                "the `sub` claim must be a non-empty string",
            ))?;
        if !has_scope(&claims, self.scope_claim.as_deref(), &self.required_scope) {
            return Err(Refusal::Scope);
        }
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((subject.to_owned(), exp))
    }
}

/// A compact JWS, split: `header.payload.signature`.
struct Jws<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, what the signature covers.
    signed: &'a str,
}

/// The JOSE header parameters the gateway reads; any other is ignored, whatever its value.
#[derive(serde::Deserialize)]
struct JoseHeader {
    alg: Algorithm,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// Largest token read (a header and claims far larger than any identity provider issues).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl<'a> Jws<'a> {
    fn split(token: &'a str) -> Option<Self> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        Some(Self {
            header,
            payload,
            signature,
            signed,
        })
    }

    fn header(&self) -> Option<JoseHeader> {
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.header)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The claims as a token the crate validates (signature already verified): a header of
    /// `alg` alone, the payload as sent.
    fn claims_token(&self, alg: Algorithm) -> String {
        use base64::Engine;
        let header = serde_json::json!({ "alg": alg });
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
        format!("{header}.{}.{}", self.payload, self.signature)
    }
}

/// Verified tokens, kept at most `ttl` and never past their `exp` (plus the leeway). Bounded:
/// when full, expired entries go, and if none had expired, all go. Only valid tokens with the
/// scope are kept; a refused token is checked in full every time.
struct TokenCache {
    ttl: Duration,
    leeway_s: u64,
    entries: parking_lot::Mutex<HashMap<String, CachedToken>>,
}

struct CachedToken {
    subject: String,
    /// Unix seconds after which the token is refused (`exp` + leeway).
    until: u64,
    cached_at: Instant,
}

const TOKEN_CACHE_CAPACITY: usize = 2048;
/// A longer token is checked in full every time, not kept (the cache stays within a few MiB).
const TOKEN_CACHE_MAX_LEN: usize = 2048;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenCache {
    fn new(ttl: Duration, leeway_s: u64) -> Self {
        Self {
            ttl,
            leeway_s,
            entries: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, token: &str) -> Option<String> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        let hit = entries.get(token)?;
        (hit.cached_at.elapsed() < self.ttl && unix_now() <= hit.until).then(|| hit.subject.clone())
    }

    fn put(&self, token: &str, subject: &str, exp: u64) {
        if self.ttl.is_zero() || token.len() > TOKEN_CACHE_MAX_LEN || subject.len() > 256 {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            let now = unix_now();
            entries.retain(|_, c| c.cached_at.elapsed() < self.ttl && now <= c.until);
            if entries.len() >= TOKEN_CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            token.to_owned(),
            CachedToken {
                subject: subject.to_owned(),
                until: exp.saturating_add(self.leeway_s),
                cached_at: Instant::now(),
            },
        );
    }
}

/// The scope is in the configured claim, else in `scope` (space-separated) or `scp` (array or
/// space-separated string).
fn has_scope(claims: &Map<String, Value>, claim: Option<&str>, wanted: &str) -> bool {
    let names: &[&str] = match claim {
        Some(c) => &[c][..],
        None => &["scope", "scp"],
    };
    let holds = |v: &Value| match v {
        Value::String(s) => s.split_ascii_whitespace().any(|s| s == wanted),
        Value::Array(a) => a.iter().any(|s| s.as_str() == Some(wanted)),
        _ => false,
    };
    names.iter().any(|n| claims.get(*n).is_some_and(holds))
}

fn invalid_token(description: &str) -> ApiError {
    ApiError::Unauthorized {
        detail: format!("invalid token: {description}"),
        challenge: format!(
            r#"Bearer error="invalid_token", error_description="{}""#,
            description.replace(['"', '\\'], "'")
        ),
    }
}

/// A short reason that reveals nothing about the key.
fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet (nbf)",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not allowed for this key",
        K::MissingRequiredClaim(_) => "a required claim (exp, sub) is missing",
        _ => "the token is malformed",
    }
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req
            .app_data::<web::Data<Authenticator>>()
            .expect("the Authenticator is registered at start")
            .clone();
        let mut lines = req.headers().get_all(AUTHORIZATION);
        let header = lines.next().map(|v| v.to_str().unwrap_or("").to_owned());
        // Two credentials: which one counts would depend on who reads them (a proxy in front
        // may check the other). Refused, whatever they hold.
        let twice = lines.next().is_some();
        let request_id = RequestId::of(req);
        Box::pin(async move {
            if twice {
                return Err(ApiError::InvalidAuthorization {
                    detail: "the request has more than one Authorization header: send one".into(),
                }
                .with_request(&request_id));
            }
            authenticator
                .verify(header.as_deref())
                .await
                .map_err(|e| e.with_request(&request_id))
        })
    }
}

/// Largest JWKS answer read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one JWKS.
const MAX_JWKS_KEYS: usize = 64;

/// Signing keys published at a JWKS URL, cached. An unknown `kid` (a key rotation) triggers a
/// refetch, at most once per `min_refresh` however many tokens name unknown keys; the set is
/// also refetched when older than `max_age` (so a withdrawn key stops being accepted).
pub struct JwksCache {
    url: Url,
    http: reqwest::Client,
    keys: RwLock<Fetched>,
    fetching: Mutex<()>,
    /// A refetch of a stale set runs in the background (one at a time).
    revalidating: std::sync::atomic::AtomicBool,
    min_refresh: Duration,
    max_age: Duration,
}

type KeyEntry = (Arc<DecodingKey>, Algorithm);

#[derive(Default)]
struct Fetched {
    keys: HashMap<String, KeyEntry>,
    at: Option<Instant>,
}

impl JwksCache {
    fn new(
        url: Url,
        egress: &crate::egress::Egress,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        let http = egress
            .client()
            .map_err(|e| format!("auth.jwks_url: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("auth.jwks_url: cannot build the HTTP client: {e}"))?;
        Ok(Self {
            url,
            http,
            keys: RwLock::new(Fetched::default()),
            fetching: Mutex::new(()),
            revalidating: std::sync::atomic::AtomicBool::new(false),
            min_refresh,
            max_age,
        })
    }

    async fn lookup(&self, kid: &str) -> (Option<KeyEntry>, bool) {
        let fetched = self.keys.read().await;
        let stale = fetched.at.is_none_or(|at| at.elapsed() > self.max_age);
        (fetched.keys.get(kid).cloned(), stale)
    }

    /// The key `kid` names. A known key is served at once, even from a set past its age: the
    /// set is then refetched in the background (stale-while-revalidate), so that a slow or hung
    /// identity provider never stalls the callers it already knows. An unknown `kid` waits for
    /// a refetch (at most one per `jwks_min_refresh_s`, each bounded by its timeout).
    async fn key(self: &std::sync::Arc<Self>, kid: Option<&str>) -> Result<KeyEntry, Refusal> {
        let kid = kid.ok_or(Refusal::Invalid("the token names no key (kid)"))?;
        match self.lookup(kid).await {
            (Some(entry), false) => Ok(entry),
            (Some(entry), true) => {
                self.revalidate();
                Ok(entry)
            }
            (None, _) => {
                self.refresh().await;
                match self.lookup(kid).await {
                    (Some(entry), _) => Ok(entry),
                    (None, _) => Err(Refusal::Invalid("unknown key (kid)")),
                }
            }
        }
    }

    /// Refetches a stale set in the background, unless a refetch is under way.
    fn revalidate(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.revalidating.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.refresh().await;
            this.revalidating.store(false, Ordering::Release);
        });
    }

    /// Refetches the set unless another refetch happened within `min_refresh`.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(at) = self.keys.read().await.at {
            if at.elapsed() < self.min_refresh {
                return;
            }
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().await;
        keys.at = Some(Instant::now());
        match fetched {
            Ok(set) => {
                tracing::info!(keys = set.len(), "JWKS fetched");
                keys.keys = set;
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the keys known so far")
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, KeyEntry>, String> {
        let response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let (body, cut) = crate::net::read_limited(response, MAX_JWKS_BYTES).await;
        if let Some(cut) = cut {
            return Err(format!("the JWKS answer was {cut}"));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in set.keys.iter().take(MAX_JWKS_KEYS) {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let declared = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
            if declared.is_some_and(|d| d != format!("{alg:?}")) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (Arc::new(key), alg));
            }
        }
        Ok(keys)
    }
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    scope: &'a str,
}

/// Mints an HS256 token for development (`clients-gateway token`, `--sandbox`).
/// The longest lifetime of a minted development token.
pub const MAX_MINTED_TTL: Duration = Duration::from_secs(366 * 86_400);

pub fn mint(
    secret: &SecretString,
    settings: &AuthSettings,
    subject: &str,
    scope: &str,
    ttl: Duration,
) -> Result<String, String> {
    // What the gateway requires of a caller's `sub` (a non-empty string), so that the token
    // minted is one it accepts.
    if subject.trim().is_empty() {
        return Err("a token's subject (--sub) must be a name, not empty nor blank".into());
    }
    if scope.trim().is_empty() {
        return Err("a token's scope (--scope) must name at least one scope".into());
    }
    if ttl.is_zero() || ttl > MAX_MINTED_TTL {
        return Err(format!(
            "a token's lifetime must be between 1 s and {} days, got {}",
            MAX_MINTED_TTL.as_secs() / 86_400,
            humantime::format_duration(ttl)
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = MintedClaims {
        sub: subject,
        exp: now + ttl.as_secs(),
        nbf: now,
        iat: now,
        iss: settings.issuer.as_deref(),
        aud: settings.audience.as_deref(),
        scope,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_from_scope_scp_or_a_named_claim() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert!(has_scope(
            &c(json!({"scope": "a clients:write b"})),
            None,
            "clients:write"
        ));
        assert!(has_scope(
            &c(json!({"scp": ["clients:write"]})),
            None,
            "clients:write"
        ));
        assert!(!has_scope(
            &c(json!({"scope": "clients:writer"})),
            None,
            "clients:write"
        ));
        assert!(!has_scope(
            &c(json!({"scope": ["x"]})),
            None,
            "clients:write"
        ));
        assert!(has_scope(
            &c(json!({"perms": ["clients:write"]})),
            Some("perms"),
            "clients:write"
        ));
        assert!(!has_scope(
            &c(json!({"scope": "clients:write"})),
            Some("perms"),
            "clients:write"
        ));
    }
}
