//! Caller authentication: a corpus of forged and malformed tokens, each refused with the right
//! status before any provider is called; valid tokens for each key type; JWKS rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::future::join_all;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "clients-gateway";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"sub": "crm-app", "exp": now() + 600, "iss": ISSUER, "aud": AUDIENCE, "scope": "clients:read clients:write"})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
}

fn rs(claims: &Value, private_key: &str, kid: Option<&str>) -> String {
    sign(
        Algorithm::RS256,
        kid,
        claims,
        &EncodingKey::from_rsa_pem(&fixture(private_key)).unwrap(),
    )
}

fn es(claims: &Value) -> String {
    sign(
        Algorithm::ES256,
        None,
        claims,
        &EncodingKey::from_ec_pem(&fixture("es256.key.pem")).unwrap(),
    )
}

/// `alg: none`: a header and claims with an empty signature.
fn unsigned(claims: &Value) -> String {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(json!({"alg": "none", "typ": "JWT"})),
        part(claims.clone())
    )
}

/// POSTs a dry run with `authorization`; returns status and `WWW-Authenticate`.
async fn attempt(app: &TestApp, authorization: Option<&str>) -> (u16, String) {
    let mut request = app
        .http
        .post(format!("{}/clients?dry_run=true", app.address))
        .json(&one_target("lucca", json!({})));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge)
}

async fn hs256_app() -> TestApp {
    spawn_app_with(|s| {
        s.auth.issuer = Some(ISSUER.into());
        s.auth.audience = Some(AUDIENCE.into());
    })
    .await
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused_before_any_provider() {
    let app = hs256_app().await;
    app.mocks.expect_no_calls().await;
    let valid = hs(&claims());
    let rsa_public = String::from_utf8(fixture("rs256-a.pub.pem")).unwrap();
    let corpus: Vec<(&str, Option<String>, u16)> = vec![
        ("missing header", None, 401),
        ("Basic scheme", Some("Basic dXNlcjpwYXNz".into()), 401),
        ("garbage", Some("Bearer garbage".into()), 401),
        ("empty bearer", Some("Bearer ".into()), 401),
        (
            "truncated",
            Some(format!("Bearer {}", &valid[..valid.len() - 8])),
            401,
        ),
        (
            "bad signature",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    None,
                    &claims(),
                    &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!")
                )
            )),
            401,
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "exp", json!(now() - 3600)))
            )),
            401,
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "nbf", json!(now() + 3600)))
            )),
            401,
        ),
        (
            "wrong iss",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "iss", json!("https://evil.test")))
            )),
            401,
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "aud", json!("another-api")))
            )),
            401,
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "exp", Value::Null))
            )),
            401,
        ),
        (
            "no sub",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "sub", Value::Null))
            )),
            401,
        ),
        (
            "alg none",
            Some(format!("Bearer {}", unsigned(&claims()))),
            401,
        ),
        (
            "RS256 token against an HS256 key",
            Some(format!("Bearer {}", rs(&claims(), "rs256-a.key.pem", None))),
            401,
        ),
        (
            "HS256 signed with the RSA public key",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    None,
                    &claims(),
                    &EncodingKey::from_secret(rsa_public.as_bytes())
                )
            )),
            401,
        ),
        (
            "missing scope",
            Some(format!(
                "Bearer {}",
                hs(&with(claims(), "scope", json!("clients:read")))
            )),
            403,
        ),
    ];
    for (name, authorization, expected) in corpus {
        let (status, challenge) = attempt(&app, authorization.as_deref()).await;
        assert_eq!(status, expected, "{name}");
        let want = match (expected, authorization.is_some()) {
            (403, _) => r#"Bearer error="insufficient_scope""#,
            (_, true) => r#"Bearer error="invalid_token""#,
            (_, false) => r#"Bearer realm="clients-gateway""#,
        };
        assert!(challenge.starts_with(want), "{name}: {challenge}");
    }
    let (status, _) = attempt(&app, Some(&format!("Bearer {valid}"))).await;
    assert_eq!(status, 207, "the valid token passes");
}

#[tokio::test]
async fn scopes_may_come_as_an_scp_array_or_a_named_claim() {
    let app = hs256_app().await;
    let scp = hs(&with(
        with(claims(), "scope", Value::Null),
        "scp",
        json!(["clients:write"]),
    ));
    assert_eq!(attempt(&app, Some(&format!("Bearer {scp}"))).await.0, 207);

    let named = spawn_app_with(|s| s.auth.scope_claim = Some("permissions".into())).await;
    let token = hs(&json!({"sub": "a", "exp": now() + 60, "permissions": ["clients:write"]}));
    assert_eq!(
        attempt(&named, Some(&format!("Bearer {token}"))).await.0,
        207
    );
    let token = hs(&json!({"sub": "a", "exp": now() + 60, "scope": "clients:write"}));
    assert_eq!(
        attempt(&named, Some(&format!("Bearer {token}"))).await.0,
        403
    );
}

#[tokio::test]
async fn rs256_public_key() {
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.public_key_pem = Some(String::from_utf8(fixture("rs256-a.pub.pem")).unwrap());
    })
    .await;
    app.mocks.expect_no_calls().await;
    let ok = rs(&claims(), "rs256-a.key.pem", None);
    assert_eq!(attempt(&app, Some(&format!("Bearer {ok}"))).await.0, 207);
    let other_key = rs(&claims(), "rs256-b.key.pem", None);
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {other_key}"))).await.0,
        401
    );
    let public = fixture("rs256-a.pub.pem");
    let confused = sign(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(&public),
    );
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {confused}"))).await.0,
        401,
        "HS/RS confusion"
    );
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {}", unsigned(&claims()))))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn es256_public_key() {
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.public_key_pem = Some(String::from_utf8(fixture("es256.pub.pem")).unwrap());
    })
    .await;
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {}", es(&claims()))))
            .await
            .0,
        207
    );
    let rsa = rs(&claims(), "rs256-a.key.pem", None);
    assert_eq!(attempt(&app, Some(&format!("Bearer {rsa}"))).await.0, 401);
}

fn jwks(keys: &[(&str, &str)]) -> Value {
    let keys = keys
        .iter()
        .map(|(kid, private)| {
            let key = EncodingKey::from_rsa_pem(&fixture(private)).unwrap();
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_value(JwkSet { keys }).unwrap()
}

async fn serve_jwks(server: &MockServer, set: Value) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(set))
        .mount(server)
        .await;
}

async fn jwks_fetches(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn jwks_keys_rotate_and_unknown_kids_cannot_hammer_the_identity_provider() {
    let idp = MockServer::start().await;
    serve_jwks(&idp, jwks(&[("key-a", "rs256-a.key.pem")])).await;
    let url = Url::parse(&format!("{}/jwks.json", idp.uri())).unwrap();
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
        s.auth.jwks_min_refresh_s = 1;
    })
    .await;

    let a = rs(&claims(), "rs256-a.key.pem", Some("key-a"));
    assert_eq!(attempt(&app, Some(&format!("Bearer {a}"))).await.0, 207);
    assert_eq!(attempt(&app, Some(&format!("Bearer {a}"))).await.0, 207);
    assert_eq!(jwks_fetches(&idp).await, 1, "cached");

    // Rotation: the identity provider now publishes key-b as well.
    serve_jwks(
        &idp,
        jwks(&[("key-a", "rs256-a.key.pem"), ("key-b", "rs256-b.key.pem")]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = rs(&claims(), "rs256-b.key.pem", Some("key-b"));
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {b}"))).await.0,
        207,
        "an unknown kid refetches"
    );
    assert_eq!(jwks_fetches(&idp).await, 1);

    // A flood of unknown kids: refused, and at most one more fetch within the interval.
    let app = &app;
    let forged: Vec<String> = (0..30)
        .map(|i| rs(&claims(), "rs256-a.key.pem", Some(&format!("forged-{i}"))))
        .collect();
    let before = jwks_fetches(&idp).await;
    let floods = join_all(
        forged
            .iter()
            .map(|token| async move { attempt(app, Some(&format!("Bearer {token}"))).await.0 }),
    )
    .await;
    assert!(floods.iter().all(|s| *s == 401));
    let after = jwks_fetches(&idp).await;
    assert!(
        after <= before + 1,
        "30 unknown kids made {} fetches",
        after - before
    );

    // A token signed by key-b but naming key-a is refused (bad signature).
    let lying = rs(&claims(), "rs256-b.key.pem", Some("key-a"));
    assert_eq!(attempt(app, Some(&format!("Bearer {lying}"))).await.0, 401);
    let no_kid = rs(&claims(), "rs256-a.key.pem", None);
    assert_eq!(attempt(app, Some(&format!("Bearer {no_kid}"))).await.0, 401);
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let response = app
        .http
        .post(format!("{}/clients", app.address))
        .bearer_auth(&app.token)
        .header("x-padding", "x".repeat(20 * 1024))
        .json(&full_body())
        .send()
        .await
        .unwrap();
    assert_problem(response, 431).await;
}

#[tokio::test]
async fn a_cached_token_is_still_refused_after_its_exp() {
    let app = spawn_app_with(|s| {
        s.auth.leeway_s = 0;
        s.auth.cache_ttl_s = 60;
    })
    .await;
    let token = hs(&json!({"sub": "a", "exp": now() + 2, "scope": "clients:write"}));
    assert_eq!(attempt(&app, Some(&format!("Bearer {token}"))).await.0, 207);
    assert_eq!(
        attempt(&app, Some(&format!("Bearer {token}"))).await.0,
        207,
        "from the cache"
    );
    // Timestamps are whole seconds: the token is valid through the second of its `exp`.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(attempt(&app, Some(&format!("Bearer {token}"))).await.0, 401);
}

/// A JWKS answer is read within a bound: an oversized set is refused, not held in memory, and
/// tokens are then refused.
#[tokio::test]
async fn an_oversized_jwks_is_not_read_whole() {
    let idp = MockServer::start().await;
    let mut set = jwks(&[("key-a", "rs256-a.key.pem")]);
    set["padding"] = json!("x".repeat(4 << 20));
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(set))
        .mount(&idp)
        .await;
    let url = Url::parse(&format!("{}/jwks.json", idp.uri())).unwrap();
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
    })
    .await;
    let a = rs(&claims(), "rs256-a.key.pem", Some("key-a"));
    assert_eq!(attempt(&app, Some(&format!("Bearer {a}"))).await.0, 401);
}

/// A set past its age is refetched in the background: while the identity provider hangs, a
/// caller whose key is known is answered at once (stale-while-revalidate), and the refetch
/// still happens.
#[tokio::test]
async fn a_hung_jwks_refetch_does_not_stall_callers_whose_key_is_known() {
    let idp = MockServer::start().await;
    serve_jwks(&idp, jwks(&[("key-a", "rs256-a.key.pem")])).await;
    let url = Url::parse(&format!("{}/jwks.json", idp.uri())).unwrap();
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
        s.auth.jwks_min_refresh_s = 0;
        s.auth.jwks_max_age_s = 1;
        s.auth.cache_ttl_s = 0;
    })
    .await;
    let a = rs(&claims(), "rs256-a.key.pem", Some("key-a"));
    assert_eq!(attempt(&app, Some(&format!("Bearer {a}"))).await.0, 207);

    // The identity provider now takes 4 s to answer; the set ages past its 1 s.
    idp.reset().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks(&[("key-a", "rs256-a.key.pem")]))
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&idp)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(attempt(&app, Some(&format!("Bearer {a}"))).await.0, 207);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a known key is served while the set is refetched: {:?}",
            started.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        jwks_fetches(&idp).await,
        1,
        "one refetch in the background, not one per caller"
    );
}

/// A token with the JOSE header `header` (as written), signed with the test's HS256 key.
fn hs_with_header(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signed = format!("{}.{}", part(header), part(claims));
    let signature = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signed}.{signature}")
}

/// RFC 7515: a header parameter the gateway does not know is ignored whatever its value; one
/// listed as critical (`crit`) must be understood, and the gateway understands none.
#[tokio::test]
async fn unknown_header_parameters_are_ignored_and_critical_ones_refused() {
    let app = hs256_app().await;
    app.mocks.expect_no_calls().await;
    let ignored = hs_with_header(
        &json!({"alg": "HS256", "typ": "JWT", "x-n": 7, "x-o": {"a": [1, 2]}, "x-b": true}),
        &claims(),
    );
    let (status, _) = attempt(&app, Some(&format!("Bearer {ignored}"))).await;
    assert_eq!(
        status, 207,
        "an unknown parameter with a number or object value"
    );
    for crit in [
        json!({"alg": "HS256", "crit": ["x-ext"], "x-ext": 1}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        json!({"alg": "HS256", "crit": []}),
    ] {
        let token = hs_with_header(&crit, &claims());
        let (status, challenge) = attempt(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401, "{crit}");
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
}

/// Two `Authorization` lines: which counts would depend on who reads them (a proxy in front may
/// check the other one): refused, whichever is valid.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = hs256_app().await;
    app.mocks.expect_no_calls().await;
    let valid = format!("Bearer {}", hs(&claims()));
    let forged = format!("Bearer {}", unsigned(&claims()));
    for pair in [[&valid, &forged], [&forged, &valid], [&valid, &valid]] {
        let response = app
            .http
            .post(format!("{}/clients", app.address))
            .header("authorization", pair[0].as_str())
            .header("authorization", pair[1].as_str())
            .json(&one_target("lucca", json!({})))
            .send()
            .await
            .unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let problem = assert_problem(response, 400).await;
        assert_eq!(
            problem["type"],
            "urn:clients-gateway:problem:invalid-authorization"
        );
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="invalid_request""#)
        );
    }
}
