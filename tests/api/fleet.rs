//! One gateway, many replicas: three gateways sharing one real Redis behave as one — adoptions
//! of one client take turns across them, a provider's quota is one budget for the fleet, leases
//! are compared on Redis's clock (a replica whose clock is 90 s ahead cannot take a running key
//! over), and an outcome is recorded even when Redis restarts mid-request. Without Redis an
//! adoption fails closed. Redis over TLS with a password from a file, and through Sentinel
//! across a failover.

use std::time::Duration;

use clients_gateway::catalog::ProviderId;
use clients_gateway::config::Settings;
use clients_gateway::sandbox::{Sandbox, SandboxOptions};
use clients_gateway::startup::Application;
use futures_util::future::join_all;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::Mock;

use crate::helpers::*;

/// Waits until every gateway of `replicas` is ready: its connection to Redis is made before the
/// test's burst (a first connection under load must not pass for Redis not answering).
async fn ready(replicas: Vec<String>) -> Vec<String> {
    let http = reqwest::Client::new();
    for address in &replicas {
        let mut status = 0;
        for _ in 0..50 {
            status = match http.get(format!("{address}/readyz")).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "{address} is ready");
    }
    replicas
}

/// A gateway in this process with `settings`; its address.
fn start(settings: &Settings) -> String {
    let app = Application::build(settings).expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// Three replicas on the sandbox's providers, sharing the Redis at `redis`.
fn replicas_on_sandbox(sandbox: &Sandbox, redis: &str) -> Vec<String> {
    (0..3)
        .map(|_| {
            let mut settings = Settings::default();
            settings.server.bind = "127.0.0.1:0".into();
            settings.server.workers = Some(1);
            settings.auth.hs256_secret = Some(SecretString::from(JWT_SECRET));
            settings.operations.encryption_key = Some(SecretString::from(OPERATIONS_KEY));
            settings.idempotency.redis_url = Some(redis.to_owned().into());
            sandbox.configure(&mut settings);
            start(&settings)
        })
        .collect()
}

/// `n` concurrent requests with `body`, spread over `replicas` in turn; their answers.
async fn spread(replicas: &[String], n: usize, body: &Value) -> Vec<(u16, Value)> {
    let http = reqwest::Client::new();
    let token = token_for("fleet");
    join_all((0..n).map(|i| {
        let (http, token) = (&http, &token);
        let address = &replicas[i % replicas.len()];
        async move { post_keyed(http, address, token, None, body).await }
    }))
    .await
}

/// The full client, at the tools that accept duplicates, adopted where it exists.
fn adopt_at_duplicate_accepting_tools() -> Value {
    let mut body = full_body();
    let targets = body["targets"].as_object().unwrap().clone();
    body["targets"] = targets
        .into_iter()
        .filter(|(name, _)| {
            fixtures()
                .iter()
                .any(|f| f.name == name && f.duplicate.is_none())
        })
        .collect();
    body["if_exists"] = json!("adopt");
    body
}

#[tokio::test]
async fn concurrent_adopts_spread_over_three_replicas_create_one_client() {
    let redis = RedisServer::start().await;
    // Slow enough that every lookup overlaps another replica's create.
    let sandbox = Sandbox::start(SandboxOptions {
        delay: Duration::from_millis(150),
        ..SandboxOptions::default()
    })
    .unwrap();
    let replicas = ready(replicas_on_sandbox(&sandbox, &redis.url)).await;
    let body = adopt_at_duplicate_accepting_tools();
    let tools: Vec<String> = body["targets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(tools.len() >= 2, "{tools:?}");

    let answers = spread(&replicas, 9, &body).await;

    for tool in &tools {
        assert_one_client(&answers, tool);
    }
}

/// Every answer is a 207 naming one client at `tool`, created by exactly one of them (the others
/// found it: `existing`).
fn assert_one_client(answers: &[(u16, Value)], tool: &str) {
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for (status, answer) in answers {
        assert_eq!(*status, 207, "{answer}");
        let r = &answer["results"][tool];
        match r["status"].as_str() {
            Some("created") => created += 1,
            Some("existing") => {}
            other => panic!("{tool}: {other:?}: {r}"),
        }
        ids.insert(r["provider_client_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "{tool}: one create across the fleet");
    assert_eq!(
        ids.len(),
        1,
        "{tool}: every answer names the one client: {ids:?}"
    );
}

#[tokio::test]
async fn adopts_of_one_client_spelt_in_different_cases_take_turns() {
    let redis = RedisServer::start().await;
    let sandbox = Sandbox::start(SandboxOptions {
        delay: Duration::from_millis(300),
        ..SandboxOptions::default()
    })
    .unwrap();
    let replicas = ready(replicas_on_sandbox(&sandbox, &redis.url)).await;
    // PlusVibe matches a client by its login e-mail, whatever its case.
    let mut body = full_body();
    body["targets"] = json!({ "plusvibe": body["targets"]["plusvibe"].clone() });
    body["if_exists"] = json!("adopt");
    let email = body["client"]["contact"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut shouted = body.clone();
    shouted["client"]["contact"]["email"] = json!(email.to_uppercase());

    let http = reqwest::Client::new();
    let token = token_for("fleet");
    // Two of each spelling at once: without turns, the first of each looks up, finds
    // nothing, and creates. With turns (four at most, well within the wait for one), one
    // creates and the others find it.
    let answers = join_all((0..4).map(|i| {
        let (http, token, address) = (&http, &token, &replicas[i % 3]);
        let body = if i % 2 == 0 { &body } else { &shouted };
        async move { post_keyed(http, address, token, None, body).await }
    }))
    .await;

    assert_one_client(&answers, "plusvibe");
}

/// The guard leases in `redis` and their time left (ms).
async fn guard_leases(redis: &str) -> Vec<i64> {
    let client = redis::Client::open(redis).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("clients-gateway:guard:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut left = Vec::new();
    for key in keys {
        left.push(
            redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap(),
        );
    }
    left
}

#[tokio::test]
async fn after_an_unknown_create_the_guard_is_kept_while_the_provider_may_act() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let plusvibe = crate::fixture(ProviderId::Plusvibe);
    plusvibe.mount_not_found(&mocks).await;
    Mock::given(method("POST"))
        .respond_with(plusvibe.created().set_delay(Duration::from_secs(5)))
        .expect(1)
        .mount(&mocks.plusvibe)
        .await;
    let replicas: Vec<String> = ready(
        (0..2)
            .map(|_| {
                let mut settings = test_settings(&mocks);
                settings.idempotency.redis_url = Some(redis.url.clone().into());
                settings.server.deadline_ms = 1_000;
                settings.providers.update_common(ProviderId::Plusvibe, |c| {
                    c.timeout_ms = 600;
                    c.settle_s = 30;
                });
                start(&settings)
            })
            .collect(),
    )
    .await;
    let mut body = plusvibe.findable_request();
    body["if_exists"] = json!("adopt");

    let first = spread(&replicas[..1], 1, &body).await;
    assert_eq!(
        first[0].1["results"]["plusvibe"]["status"], "unknown",
        "{:?}",
        first[0]
    );
    // The lease now lasts settle_s (30 s), not the request's deadline and its 5 s margin.
    let mut left = Vec::new();
    for _ in 0..20 {
        left = guard_leases(&redis.url).await;
        if left.iter().any(|ms| *ms > 10_000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.len() == 1 && left[0] > 10_000, "{left:?}");

    // Another replica's adoption of the same client waits, then gives up: nothing sent.
    let second = spread(&replicas[1..], 1, &body).await;
    let r = &second[0].1["results"]["plusvibe"];
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another request for the same client"));
}

/// Clockify with `max_per_minute = 6` for the three replicas, each pointing at `mocks`.
fn quota_replicas(mocks: &Mocks, redis: &str) -> Vec<String> {
    (0..3)
        .map(|_| {
            let mut settings = test_settings(mocks);
            settings.idempotency.redis_url = Some(redis.to_owned().into());
            settings
                .providers
                .update_common(ProviderId::Clockify, |c| c.max_per_minute = Some(6));
            start(&settings)
        })
        .collect()
}

#[tokio::test]
async fn a_quota_is_one_budget_for_the_fleet() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let f = crate::fixture(ProviderId::Clockify);
    Mock::given(method("POST"))
        .respond_with(f.created())
        .mount(&mocks.clockify)
        .await;
    let replicas = ready(quota_replicas(&mocks, &redis.url)).await;
    let body = one_target("clockify", (f.minimal_options)());

    let answers = spread(&replicas, 30, &body).await;

    let received = mocks.clockify.received_requests().await.unwrap().len();
    assert_eq!(
        received, 6,
        "the fleet's allowance, not three replicas' own"
    );
    let mut limited = 0;
    for (status, answer) in &answers {
        assert_eq!(*status, 207, "{answer}");
        let r = &answer["results"]["clockify"];
        if r["status"] == "failed" {
            assert_eq!(r["error"]["kind"], "rate_limited", "{r}");
            assert!(r["error"]["retry_after_s"].as_u64().unwrap() >= 1, "{r}");
            assert!(r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was sent"));
            limited += 1;
        } else {
            assert_eq!(r["status"], "created", "{r}");
        }
    }
    assert_eq!(limited, 30 - received);
}

#[tokio::test]
async fn without_redis_an_adoption_fails_closed_and_plain_creates_still_work() {
    let redis = RedisServer::start().await;
    let url = redis.url.clone();
    let app = spawn_app_with(|s| {
        s.idempotency.redis_url = Some(url.into());
        s.providers
            .update_common(ProviderId::Clockify, |c| c.max_per_minute = Some(5));
    })
    .await;
    app.mocks.mount_support().await;
    drop(redis);
    let plusvibe = crate::fixture(ProviderId::Plusvibe);
    let mut adopt = plusvibe.findable_request();
    adopt["if_exists"] = json!("adopt");

    let answer = assert_207(app.post_clients(&adopt).await).await;
    let r = &answer["results"]["plusvibe"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "unavailable");
    assert_eq!(r["error"]["retryable"], true);
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nothing was sent") && message.contains("Redis"),
        "{message}"
    );
    assert!(
        app.mocks
            .plusvibe
            .received_requests()
            .await
            .unwrap()
            .is_empty(),
        "neither looked up nor created"
    );

    // A plain create needs no guard; the quota falls back to the replica's own.
    for f in [plusvibe, crate::fixture(ProviderId::Clockify)] {
        Mock::given(method("POST"))
            .respond_with(f.created())
            .expect(1)
            .mount(app.mocks.of(f.id))
            .await;
        let answer = assert_207(
            app.post_clients(&one_target(f.name, (f.minimal_options)()))
                .await,
        )
        .await;
        assert_eq!(answer["results"][f.name]["status"], "created", "{answer}");
    }
}

/// The configuration of a real gateway on `port` whose Lucca is at `lucca` (answering slowly)
/// and whose records are in `redis`.
fn lucca_config(port: u16, lucca: &str, redis: &str) -> String {
    let f = crate::fixture(ProviderId::Lucca);
    let (key, secret) = f.secret;
    binary_config(
        port,
        &format!(
            "[idempotency]\nredis_url = \"{redis}\"\n[providers.lucca]\n{}{key} = \"{secret}\"\n",
            (f.toml)(&format!("{lucca}{}", f.base_path))
        ),
    )
}

#[tokio::test]
async fn a_replica_whose_clock_is_ahead_cannot_take_a_running_key_over() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let f = crate::fixture(ProviderId::Lucca);
    Mock::given(method("POST"))
        .respond_with(f.created().set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&mocks.lucca)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (on_time, ahead) = (free_port(), free_port());
    let on_time_config = dir.path().join("on-time.toml");
    let ahead_config = dir.path().join("ahead.toml");
    std::fs::write(
        &on_time_config,
        lucca_config(on_time, &mocks.lucca.uri(), &redis.url),
    )
    .unwrap();
    std::fs::write(
        &ahead_config,
        lucca_config(ahead, &mocks.lucca.uri(), &redis.url),
    )
    .unwrap();
    let mut first = start_binary(&on_time_config, on_time, None).await;
    // 90 s ahead: more than the lease (the deadline and its 30 s margin) of the running key.
    // faketime runs the gateway in a child of its own: both go when `skewed` drops.
    let skewed = Spawned::start(
        std::process::Command::new("faketime")
            .args([
                "-f",
                "+90s",
                env!("CARGO_BIN_EXE_clients-gateway"),
                "--config",
            ])
            .arg(&ahead_config)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null()),
    )
    .expect("faketime is needed: run `bash .ci/install-tools`");
    assert!(listens_within(ahead, Duration::from_secs(10)).await);
    let http = reqwest::Client::new();
    let token = token_for("fleet");
    let body = one_target("lucca", (f.minimal_options)());

    let running = {
        let (http, token, body) = (http.clone(), token.clone(), body.clone());
        tokio::spawn(async move {
            post_keyed(
                &http,
                &format!("http://127.0.0.1:{on_time}"),
                &token,
                Some("skew-1"),
                &body,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, problem) = post_keyed(
        &http,
        &format!("http://127.0.0.1:{ahead}"),
        &token,
        Some("skew-1"),
        &body,
    )
    .await;
    assert_eq!(status, 409, "the key is still running: {problem}");

    let (status, answer) = running.await.unwrap();
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["results"]["lucca"]["status"], "created");
    // The skewed replica then replays the record rather than sending again.
    let (status, replay) = post_keyed(
        &http,
        &format!("http://127.0.0.1:{ahead}"),
        &token,
        Some("skew-1"),
        &body,
    )
    .await;
    assert_eq!(status, 207, "{replay}");
    assert_eq!(replay["results"]["lucca"]["replayed"], true);
    drop(skewed);
    terminate(&mut first).await;
}

#[tokio::test]
async fn an_outcome_is_recorded_when_redis_restarts_mid_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis = RedisServer::durable(port, dir.path()).await;
    let url = redis.url.clone();
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(url.into())).await;
    let f = crate::fixture(ProviderId::Lucca);
    Mock::given(method("POST"))
        .respond_with(f.created().set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let body = one_target("lucca", (f.minimal_options)());

    let running = {
        let (http, address, token, body) = (
            app.http.clone(),
            app.address.clone(),
            app.token.clone(),
            body.clone(),
        );
        tokio::spawn(
            async move { post_keyed(&http, &address, &token, Some("blip-1"), &body).await },
        )
    };
    // Redis goes away once the claim is written and the create is at Lucca, not at a fixed
    // time: on a loaded machine the request may not have claimed its key 0.5 s in.
    let at_lucca = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .mocks
        .lucca
        .received_requests()
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < at_lucca,
            "the create never reached Lucca"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(redis); // SIGKILL
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = RedisServer::durable(port, dir.path()).await;

    let (status, answer) = running.await.unwrap();
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["results"]["lucca"]["status"], "created");
    let (status, replay) =
        post_keyed(&app.http, &app.address, &app.token, Some("blip-1"), &body).await;
    assert_eq!(
        status, 207,
        "the record was written after Redis came back: {replay}"
    );
    assert_eq!(replay["results"]["lucca"]["replayed"], true);
}

#[tokio::test]
async fn a_managed_redis_over_tls_with_a_password_from_a_file() {
    let pki = Pki::new();
    let (cert, key) = pki.server_files();
    let tls_port = free_port();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        pki.ca_file().to_str().unwrap(),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "Redis-Pa55word",
    ])
    .await;
    assert!(listens_within(tls_port, Duration::from_secs(10)).await);
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis-password");
    std::fs::write(&password_file, "Redis-Pa55word\n").unwrap();
    let url = format!("rediss://localhost:{tls_port}/0");
    // The real binary: the password is read from its file at start.
    let mocks = Mocks::start().await;
    let f = crate::fixture(ProviderId::Lucca);
    Mock::given(method("POST"))
        .respond_with(f.created())
        .expect(1)
        .mount(&mocks.lucca)
        .await;
    let port = free_port();
    let (key, secret) = f.secret;
    let config = write_config(
        secrets.path(),
        &binary_config(
            port,
            &format!(
                "[idempotency]\nredis_url = \"{url}\"\nredis_password_file = \"{}\"\n\
                 [tls]\nca_file = \"{}\"\nbundled_roots = false\n\
                 [providers.lucca]\n{}{key} = \"{secret}\"\n",
                password_file.display(),
                pki.ca_file().display(),
                (f.toml)(&format!("{}{}", mocks.lucca.uri(), f.base_path)),
            ),
        ),
    );
    let mut gateway = start_binary(&config, port, None).await;
    let http = reqwest::Client::new();
    let address = format!("http://127.0.0.1:{port}");
    let token = token_for("managed");
    let body = one_target("lucca", (f.minimal_options)());
    let (status, first) = post_keyed(&http, &address, &token, Some("managed-1"), &body).await;
    assert_eq!(status, 207, "{first}");
    assert_eq!(first["results"]["lucca"]["status"], "created");
    let (status, replay) = post_keyed(&http, &address, &token, Some("managed-1"), &body).await;
    assert_eq!(status, 207, "{replay}");
    assert_eq!(replay["results"]["lucca"]["replayed"], true);
    terminate(&mut gateway).await;

    // The gateway's trust decides: without the CA, no connection (503), and nothing is sent.
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(url.clone().into())).await;
    let (status, problem) = post_keyed(
        &app.http,
        &app.address,
        &app.token,
        Some("untrusted"),
        &one_target("lucca", json!({})),
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    app.mocks.expect_no_calls().await;
    drop(redis);
}

#[tokio::test]
async fn through_sentinel_the_gateway_follows_a_failover() {
    let master = RedisServer::start().await;
    let master_port = master
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/0");
    // Two replicas, as a Sentinel set-up should have: the promoted one has the other, which
    // acknowledges the gateway's writes (a master without replicas refuses keyed requests
    // unless redis_wait_replicas = 0).
    let _replica = RedisServer::replica_of(&master).await;
    let _another = RedisServer::replica_of_with(&master, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (sentinel, sentinel_port) = sentinel(dir.path(), master_port).await;
    let app = spawn_app_with(|s| {
        s.idempotency.redis_sentinels = vec![format!("127.0.0.1:{sentinel_port}")];
        s.idempotency.redis_master_name = Some("gateway".into());
    })
    .await;
    let f = crate::fixture(ProviderId::Lucca);
    Mock::given(method("POST"))
        .respond_with(f.created())
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let body = one_target("lucca", (f.minimal_options)());
    let keyed = || {
        post_keyed(
            &app.http,
            &app.address,
            &app.token,
            Some("sentinel-1"),
            &body,
        )
    };
    let (status, first) = keyed().await;
    assert_eq!(status, 207, "{first}");
    assert_eq!(first["results"]["lucca"]["status"], "created");
    // The record reaches the replica before the master goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(master);

    // The sentinel promotes the replica; the gateway asks it again after the error, and the
    // record is there: replayed, not sent again.
    let mut replayed = None;
    for _ in 0..80 {
        let (status, answer) = keyed().await;
        if status == 207 {
            replayed = Some(answer);
            break;
        }
        assert_eq!(status, 503, "{answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let replayed = replayed.expect("the gateway follows the failover within 20 s");
    assert_eq!(replayed["results"]["lucca"]["replayed"], true, "{replayed}");
    drop(sentinel);
}

#[tokio::test]
async fn the_healthcheck_follows_the_configured_bind() {
    let port = free_port();
    let (dir, config) = binary_config_file(port, "");
    let healthcheck = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
            .arg("healthcheck")
            .arg("--config")
            .arg(&config)
            .env_remove("CLIENTS_GATEWAY__SERVER__BIND")
            .output()
            .unwrap()
    };
    assert!(
        !healthcheck().status.success(),
        "nothing listens yet: unhealthy"
    );
    let mut child = start_binary(&config, port, None).await;
    let out = healthcheck();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With an ops listener, the probe goes there.
    let ops = free_port();
    let with_ops = write_config(
        dir.path(),
        &binary_config(port, &format!("ops_bind = \"0.0.0.0:{ops}\"\n")),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
        .args(["healthcheck", "--config"])
        .arg(&with_ops)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the ops port is not served yet");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{ops}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    terminate(&mut child).await;
}
