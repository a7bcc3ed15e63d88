//! Caller authentication: a bearer JWT checked with a key and `Validation` built once at start.
//! The [`Caller`] extractor runs before the body is read, so a refused caller reaches no provider.

use std::future::{ready, Ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::AuthSettings;
use crate::problem::{ApiError, Problem};
use crate::request_id;

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
    key: DecodingKey,
    validation: Validation,
    required_scope: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Space-separated scopes (RFC 8693 style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Scopes as an array (Azure AD / Okta style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<Vec<String>>,
}

impl Claims {
    fn has_scope(&self, wanted: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split_ascii_whitespace().any(|s| s == wanted))
            || self
                .scp
                .as_ref()
                .is_some_and(|s| s.iter().any(|s| s == wanted))
    }
}

impl Authenticator {
    /// Builds the verifier; refuses to build "no authentication" unless it was asked for.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, String> {
        if settings.disabled {
            return Ok(Authenticator::Disabled);
        }
        let Some(secret) = &settings.hs256_secret else {
            return Err("auth: no key configured: set auth.hs256_secret (or auth.hs256_secret_file), or auth.disabled = true for a development gateway".into());
        };
        if secret.expose_secret().len() < 32 {
            return Err("auth.hs256_secret must be at least 32 bytes".into());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
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
        Ok(Authenticator::Jwt(Box::new(JwtVerifier {
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            validation,
            required_scope: settings.required_scope.clone(),
        })))
    }

    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
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
        let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
            .map_err(|e| invalid_token(&describe_jwt_error(&e)))?;
        if !data.claims.has_scope(&verifier.required_scope) {
            let scope = &verifier.required_scope;
            return Err(ApiError::Forbidden {
                detail: format!("the token lacks the scope `{scope}`"),
                challenge: format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
            });
        }
        Ok(Caller {
            subject: data.claims.sub,
        })
    }
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
fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet (nbf)",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not allowed",
        K::MissingRequiredClaim(_) => "a required claim (exp, sub) is missing",
        _ => "the token is malformed",
    }
    .into()
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req
            .app_data::<web::Data<Authenticator>>()
            .expect("the Authenticator is registered at start");
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        ready(
            authenticator
                .verify(header)
                .map_err(|e| e.with_request(&request_id::of(req))),
        )
    }
}

/// Mints an HS256 token for development (`clients-gateway token`, `--sandbox`).
pub fn mint(
    secret: &SecretString,
    settings: &AuthSettings,
    subject: &str,
    scope: &str,
    ttl: Duration,
) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        sub: subject.into(),
        exp: now + ttl.as_secs(),
        nbf: Some(now),
        iat: Some(now),
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        scope: Some(scope.into()),
        scp: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}
