//! Redis as platforms run it, against real Redis servers and sentinels: a planned failover, an
//! endpoint that moves to the promoted replica, a policy that evicts keys, a user without
//! scripts, connections closed while idle, a Redis that turns slow under the fleet quota. Each
//! checks the promise at the provider: no client created twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// PlusVibe (which takes duplicates) creating whatever it is sent.
async fn plusvibe_creates(mocks: &Mocks) {
    Mock::given(method("POST"))
        .and(path("/api/v1/client"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "70218d5e05561a3877dcb77f", "email": "x@nova.example", "password": "p"
        })))
        .mount(&mocks.plusvibe)
        .await;
}

/// A PlusVibe client of its own for key `i`.
fn body(i: usize) -> Value {
    json!({
        "client": { "name": format!("Nova {i}"),
            "contact": { "first_name": "Nova", "last_name": "Smith", "email": format!("k{i}@nova.example") } },
        "targets": { "plusvibe": {} }
    })
}

/// Creates at PlusVibe, by the contact's e-mail.
async fn creates_by_client(server: &MockServer) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for request in server.received_requests().await.unwrap() {
        if request.method.as_str() == "POST" {
            let sent: Value = serde_json::from_slice(&request.body).unwrap();
            let email = sent["client_email"].as_str().unwrap().to_owned();
            *seen.entry(email).or_insert(0) += 1;
        }
    }
    seen
}

/// Sends key `key` until it is answered 207 (a 503 says nothing was sent: sent again later).
async fn until_answered(address: &str, token: &str, key: &str, body: &Value) -> Value {
    let http = reqwest::Client::new();
    for _ in 0..150 {
        let (status, answer) = post_keyed(&http, address, token, Some(key), body).await;
        match status {
            207 => return answer,
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("{key}: {other} {answer}"),
        }
    }
    panic!("{key} never answered 207 within 30 s");
}

async fn role(redis: &RedisServer) -> String {
    let role: Vec<redis::Value> = redis.run(&["ROLE"]).await;
    match &role[0] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

async fn readyz(address: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{address}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_planned_sentinel_failover_during_keyed_requests_creates_no_client_twice() {
    let master = RedisServer::start().await;
    let replica = RedisServer::replica_of(&master).await;
    let dir = tempfile::tempdir().unwrap();
    let (_sentinel, sentinel_port) = sentinel(dir.path(), &master.port().to_string()).await;
    let through_sentinel = |s: &mut clients_gateway::config::Settings| {
        s.idempotency.redis_sentinels = vec![format!("127.0.0.1:{sentinel_port}")];
        s.idempotency.redis_master_name = Some("gateway".into());
    };
    let app = spawn_app_with(through_sentinel).await;
    plusvibe_creates(&app.mocks).await;
    let mut settings = test_settings(&app.mocks);
    through_sentinel(&mut settings);
    let second = spawn_gateway(&settings).await;

    for i in 0..40 {
        if i == 7 {
            // As managed Redis does during maintenance: the replica promoted while the old
            // master still takes writes until the sentinel reconfigures it.
            let failover: String = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("gateway")
                .query_async(
                    &mut redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}"))
                        .unwrap()
                        .get_multiplexed_async_connection()
                        .await
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(failover, "OK");
        }
        let answer = until_answered(&app.address, &app.token, &format!("fo-{i}"), &body(i)).await;
        assert_eq!(
            answer["results"]["plusvibe"]["status"], "created",
            "{answer}"
        );
        // Spread over the failover, which takes seconds.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The failover is over: the old master follows the new one.
    for _ in 0..100 {
        if role(&master).await == "slave" && role(&replica).await == "master" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(role(&replica).await, "master", "the replica was promoted");

    // Every key replayed, on the first gateway and on another: answered from its record.
    for address in [&app.address, &second] {
        for i in 0..40 {
            let answer = until_answered(address, &app.token, &format!("fo-{i}"), &body(i)).await;
            assert_eq!(
                answer["results"]["plusvibe"]["replayed"], true,
                "fo-{i} on {address}: {answer}"
            );
        }
    }
    let creates = creates_by_client(&app.mocks.plusvibe).await;
    assert_eq!(creates.len(), 40, "{creates:?}");
    assert!(
        creates.values().all(|n| *n == 1),
        "a client created twice: {creates:?}"
    );
}

#[tokio::test]
async fn a_redis_that_may_evict_keys_is_refused_and_a_replay_never_creates_again() {
    let redis = RedisServer::start_with(&["--maxmemory", "4mb"]).await;
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(redis.url.clone().into())).await;
    plusvibe_creates(&app.mocks).await;
    let first = until_answered(&app.address, &app.token, "ev-1", &body(1)).await;
    assert_eq!(first["results"]["plusvibe"]["status"], "created");

    // A cache sharing the Redis: evicting keys with a TTL first, as several managed offerings
    // do by default, and filling it until the record is gone.
    let _: String = redis
        .run(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"])
        .await;
    let mut c = redis.connection().await;
    for n in 0..2_000 {
        let _: () = redis::cmd("SET")
            .arg(format!("cache:{n}"))
            .arg("x".repeat(8 * 1024))
            .arg("EX")
            .arg(3600)
            .query_async(&mut c)
            .await
            .unwrap_or(());
    }
    let info: String = redis.run(&["INFO", "stats"]).await;
    assert!(
        !info.contains("evicted_keys:0\r"),
        "the filler evicted keys"
    );
    let records: Vec<String> = redis.run(&["KEYS", "clients-gateway:idempotency:*"]).await;
    assert!(records.is_empty(), "the record was evicted: {records:?}");

    // The replay is refused, nothing sent: a vanished record is never read as "never sent".
    let http = reqwest::Client::new();
    let (status, problem) =
        post_keyed(&http, &app.address, &app.token, Some("ev-1"), &body(1)).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(creates_by_client(&app.mocks.plusvibe).await.len(), 1);
    // Visible where operators look: readiness, the metric.
    let (status, ready) = readyz(&app.address).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("maxmemory-policy volatile-lru"),
        "{ready}"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clients_gateway_redis_usable 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_gateway_started_on_an_evicting_redis_is_not_ready_and_check_config_says_why() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]).await;
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(redis.url.clone().into())).await;
    app.mocks.expect_no_calls().await;
    let (status, ready) = readyz(&app.address).await;
    assert_eq!(status, 503, "{ready}");
    let (status, _) = post_keyed(&app.http, &app.address, &app.token, Some("ev-2"), &body(2)).await;
    assert_eq!(status, 503);

    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!("[idempotency]\nredis_url = \"{}\"\n", redis.url),
    );
    let out = check_config(&config, &[]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("maxmemory-policy allkeys-lru"), "{text}");
}

#[tokio::test]
async fn a_connection_redis_closed_while_idle_costs_no_request() {
    let redis = RedisServer::start_with(&["--timeout", "1"]).await;
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(redis.url.clone().into())).await;
    plusvibe_creates(&app.mocks).await;
    let http = reqwest::Client::new();
    for i in 0..3 {
        // Longer than Redis's idle timeout: the connection is closed under the gateway.
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let (status, answer) = post_keyed(
            &http,
            &app.address,
            &app.token,
            Some(&format!("idle-{i}")),
            &body(i),
        )
        .await;
        assert_eq!(status, 207, "after an idle close: {answer}");
        let mut adopt = body(100 + i);
        adopt["if_exists"] = json!("adopt");
        Mock::given(method("GET"))
            .and(path("/api/v1/client/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"clients": []})))
            .mount(&app.mocks.plusvibe)
            .await;
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let answer = app.create(&adopt).await;
        assert_eq!(
            answer["results"]["plusvibe"]["status"], "created",
            "an adoption's guard after an idle close: {answer}"
        );
    }
}

#[tokio::test]
async fn an_endpoint_that_moves_to_the_promoted_replica_is_followed() {
    let first = RedisServer::start().await;
    let second = RedisServer::replica_of(&first).await;
    // What ElastiCache, Azure Cache or a Kubernetes Service in front of the master is: one
    // address, moved to the promoted replica in a failover; open connections stay where they
    // were.
    let endpoint = TcpProxy::to(first.port()).await;
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(endpoint.url().into())).await;
    plusvibe_creates(&app.mocks).await;
    for i in 0..5 {
        until_answered(&app.address, &app.token, &format!("mv-{i}"), &body(i)).await;
    }
    // The failover: the replica promoted, the old master demoted under the open connection,
    // the endpoint moved.
    let _: String = second.run(&["REPLICAOF", "NO", "ONE"]).await;
    let port = second.port().to_string();
    let _: String = first.run(&["REPLICAOF", "127.0.0.1", &port]).await;
    endpoint.point_to(second.port());

    let http = reqwest::Client::new();
    let mut refused = 0;
    for i in 5..25 {
        let (status, answer) = post_keyed(
            &http,
            &app.address,
            &app.token,
            Some(&format!("mv-{i}")),
            &body(i),
        )
        .await;
        match status {
            207 => assert_eq!(answer["results"]["plusvibe"]["status"], "created"),
            503 => refused += 1,
            other => panic!("{other}: {answer}"),
        }
    }
    assert!(
        refused <= 1,
        "the gateway follows the endpoint at the first READONLY: {refused} of 20 refused"
    );
    assert_eq!(readyz(&app.address).await.0, 200);
    // Replays read the records from the promoted replica.
    for i in 0..5 {
        let answer = until_answered(&app.address, &app.token, &format!("mv-{i}"), &body(i)).await;
        assert_eq!(answer["results"]["plusvibe"]["replayed"], true, "{answer}");
    }

    // An endpoint that leads to a replica only: not ready, and nothing is written there.
    endpoint.point_to(first.port());
    let stranded = spawn_app_with(|s| s.idempotency.redis_url = Some(endpoint.url().into())).await;
    let (status, ready) = readyz(&stranded.address).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("replica"),
        "{ready}"
    );
    let creates = creates_by_client(&app.mocks.plusvibe).await;
    assert!(creates.values().all(|n| *n == 1), "{creates:?}");
}

#[tokio::test]
async fn a_redis_user_without_scripting_is_a_configuration_error() {
    let redis = RedisServer::start().await;
    let _: String = redis
        .run(&[
            "ACL",
            "SETUSER",
            "gateway",
            "on",
            ">gw-password-1",
            "~*",
            "+@all",
            "-@scripting",
        ])
        .await;
    let mocks = Mocks::start().await;
    let restricted = |s: &mut clients_gateway::config::Settings| {
        s.idempotency.redis_url = Some(redis.url.clone().into());
        s.idempotency.redis_username = Some("gateway".into());
        s.idempotency.redis_password = Some("gw-password-1".to_owned().into());
        s.providers.lucca.max_per_minute = Some(3);
    };
    let mut settings = test_settings(&mocks);
    restricted(&mut settings);
    let replicas = [
        spawn_gateway(&settings).await,
        spawn_gateway(&settings).await,
    ];
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(0)
        .mount(&mocks.lucca)
        .await;
    let token = token_for("acl");
    let http = reqwest::Client::new();
    for (n, address) in replicas.iter().cycle().take(6).enumerate() {
        let (status, answer) = post_keyed(
            &http,
            address,
            &token,
            None,
            &one_target("lucca", json!({})),
        )
        .await;
        assert_eq!(status, 207, "{answer}");
        let lucca = &answer["results"]["lucca"];
        assert_eq!(lucca["status"], "failed", "{n}: {lucca}");
        assert!(
            lucca["error"]["message"]
                .as_str()
                .unwrap()
                .contains("scripts"),
            "{lucca}"
        );
    }
    let (status, ready) = readyz(&replicas[0]).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("+@scripting"),
        "{ready}"
    );

    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            "[idempotency]\nredis_url = \"{}\"\nredis_username = \"gateway\"\nredis_password = \"gw-password-1\"\n",
            redis.url
        ),
    );
    let out = check_config(&config, &[]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("+@scripting") && !text.contains("gw-password-1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_fleet_quota_never_passes_its_allowance_when_redis_turns_slow() {
    let redis = RedisServer::start().await;
    let proxy = TcpProxy::to(redis.port()).await;
    let app = spawn_app_with(|s| {
        s.idempotency.redis_url = Some(proxy.url().into());
        s.providers.lucca.max_per_minute = Some(4);
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&app.mocks.lucca)
        .await;
    let lucca = one_target("lucca", json!({}));
    let create = || app.create(&lucca);
    for _ in 0..4 {
        assert_eq!(create().await["results"]["lucca"]["status"], "created");
    }
    // Redis answers, but later than a quota decision waits: this replica decides alone, from
    // where the fleet stood.
    proxy.delay(Duration::from_millis(400));
    for _ in 0..4 {
        let answer = create().await;
        assert_eq!(answer["results"]["lucca"]["status"], "failed", "{answer}");
        assert_eq!(answer["results"]["lucca"]["error"]["kind"], "rate_limited");
    }
    let sent = app
        .mocks
        .lucca
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(sent, 4, "never more than max_per_minute in the minute");
}
