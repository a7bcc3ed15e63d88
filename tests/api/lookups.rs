//! Finding clients at the providers, through the server: adopting an existing client
//! (`if_exists: adopt`), settling an unanswered create in the same answer or on a replay (both
//! idempotency stores), never creating twice.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::Mock;

use crate::helpers::*;

fn adopting(mut body: Value) -> Value {
    body["if_exists"] = json!("adopt");
    body
}

/// Mounts each provider's create: `first` for its first `n` calls, its duplicate answer (or
/// its success again, for a provider that accepts duplicates) after; `then` calls expected.
async fn creates(
    mocks: &Mocks,
    first: impl Fn(&Fixture) -> wiremock::ResponseTemplate,
    n: u64,
    then: impl Fn(&Fixture) -> u64,
) {
    for f in fixtures() {
        let again = f.duplicate.map_or_else(|| f.created(), |d| d());
        answer_first_then(
            mocks.of(f.id),
            Some(f.create_path),
            first(&f),
            n,
            again,
            then(&f),
        )
        .await;
    }
}

/// Mounts each provider's lookup: not found for its first `misses` calls, found after.
async fn lookups(mocks: &Mocks, misses: impl Fn(&Fixture) -> u64) {
    for f in fixtures() {
        let server = mocks.of(f.id);
        let misses = misses(&f);
        if misses > 0 {
            for mock in (f.lookup)(false) {
                mock.up_to_n_times(misses)
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
        }
        for mock in (f.lookup)(true) {
            mock.with_priority(2).mount(server).await;
        }
    }
}

/// The settings' idempotency store: in process, or the given Redis.
fn store(redis: Option<&RedisServer>) -> impl FnOnce(&mut clients_gateway::config::Settings) + '_ {
    move |s| {
        if let Some(redis) = redis {
            s.idempotency.redis_url = Some(redis.url.clone().into());
        }
    }
}

#[tokio::test]
async fn a_second_request_with_adopt_finds_every_client_the_first_created() {
    let app = spawn_app().await;
    app.mocks.mount_support().await;
    // Each provider creates once; one that refuses duplicates answers its conflict after.
    creates(
        &app.mocks,
        |f| f.created(),
        1,
        |f| u64::from(f.duplicate.is_some()),
    )
    .await;
    // A provider that accepts duplicates is looked up before its create: not there yet then.
    lookups(&app.mocks, |f| u64::from(f.duplicate.is_none())).await;
    let body = adopting(full_body());

    let first = app.create(&body).await;
    let second = app.create(&body).await;

    assert_eq!(first["outcome"], "succeeded", "{first}");
    assert_eq!(second["outcome"], "succeeded", "{second}");
    for f in fixtures() {
        let (a, b) = (&first["results"][f.name], &second["results"][f.name]);
        assert_eq!(a["status"], "created", "{}: {a}", f.name);
        assert_eq!(b["status"], "existing", "{}: {b}", f.name);
        assert_eq!(
            b["attempts"],
            u64::from(f.duplicate.is_some()),
            "{}",
            f.name
        );
        assert_eq!(b["provider_client_id"], f.found_id, "{}", f.name);
        assert_eq!(
            b["provider_client_id"], a["provider_client_id"],
            "{}: the first request's client",
            f.name
        );
        assert!(b["response"].is_object(), "{}: the record found", f.name);
    }
}

#[tokio::test]
async fn concurrent_adopts_leave_one_client_per_provider() {
    let (address, token, _sandbox) = crate::sandbox::sandbox_app(|_| {}).await;
    let body = adopting(full_body());
    let http = reqwest::Client::new();
    let answers = join_all((0..8).map(|_| post_keyed(&http, &address, &token, None, &body))).await;
    let last = crate::sandbox::post(&address, &token, &body).await;
    for f in fixtures() {
        let id = &last["results"][f.name]["provider_client_id"];
        assert_eq!(last["results"][f.name]["status"], "existing", "{}", f.name);
        let mut created = 0;
        for (status, answer) in &answers {
            assert_eq!(*status, 207);
            let r = &answer["results"][f.name];
            assert_eq!(
                &r["provider_client_id"], id,
                "{}: one client: {answer}",
                f.name
            );
            created += usize::from(r["status"] == "created");
        }
        assert_eq!(
            created, 1,
            "{}: created once, adopted by the others",
            f.name
        );
    }
}

#[tokio::test]
async fn an_unanswered_create_is_found_and_reported_created_in_the_same_answer() {
    let redis = RedisServer::start().await;
    for redis in [None, Some(&redis)] {
        let app = spawn_app_with(|s| {
            set_timeouts(s, 300);
            store(redis)(s);
        })
        .await;
        app.mocks.mount_support().await;
        // The create is performed (the lookup finds it) but its answer comes too late.
        for f in fixtures() {
            Mock::given(method("POST"))
                .and(path(f.create_path))
                .respond_with(f.created().set_delay(Duration::from_secs(2)))
                .expect(1)
                .mount(app.mocks.of(f.id))
                .await;
        }
        lookups(&app.mocks, |_| 0).await;
        let body = full_body();

        let (status, answer) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-late"), &body).await;
        let (_, replay) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-late"), &body).await;

        assert_eq!(status, 207);
        assert_eq!(answer["outcome"], "succeeded", "{answer}");
        for f in fixtures() {
            let r = &answer["results"][f.name];
            assert_eq!(r["status"], "created", "{}: {r}", f.name);
            assert_eq!(r["reconciled"], true, "{}", f.name);
            assert_eq!(r["provider_client_id"], f.found_id, "{}", f.name);
            assert_eq!(r["attempts"], 1, "{}", f.name);
            let again = &replay["results"][f.name];
            assert_eq!(again["status"], "created", "{}", f.name);
            assert_eq!(again["replayed"], true, "{}: not sent again", f.name);
        }
        // The password the gateway chose for the member is shown: the member has it.
        assert!(answer["results"]["chatdash"]["credentials"]["password"].is_string());
    }
}

#[tokio::test]
async fn an_unanswered_create_is_found_on_a_replay_with_its_key() {
    let redis = RedisServer::start().await;
    for redis in [None, Some(&redis)] {
        // No time is left after the timeout: the first answer stays unknown.
        let app = spawn_app_with(|s| {
            set_timeouts(s, 300);
            s.server.deadline_ms = 300;
            store(redis)(s);
        })
        .await;
        app.mocks.mount_support().await;
        for f in fixtures() {
            Mock::given(method("POST"))
                .and(path(f.create_path))
                .respond_with(f.created().set_delay(Duration::from_secs(2)))
                .expect(1)
                .named(format!("{}: one create", f.name))
                .mount(app.mocks.of(f.id))
                .await;
        }
        lookups(&app.mocks, |_| 0).await;
        let body = full_body();

        let (_, first) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-settle"), &body).await;
        let (_, replay) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-settle"), &body).await;

        for f in fixtures() {
            assert_eq!(first["results"][f.name]["status"], "unknown", "{}", f.name);
            let r = &replay["results"][f.name];
            assert_eq!(r["status"], "created", "{}: {r}", f.name);
            assert_eq!(r["reconciled"], true, "{}", f.name);
            assert_eq!(r["provider_client_id"], f.found_id, "{}", f.name);
        }
        assert_eq!(replay["outcome"], "succeeded");
        assert_eq!(replay["operation_id"], first["operation_id"]);
    }
}

#[tokio::test]
async fn a_create_never_performed_is_sent_again_once_settled_and_not_before() {
    let redis = RedisServer::start().await;
    for redis in [None, Some(&redis)] {
        let app = spawn_app_with(|s| {
            set_timeouts(s, 300);
            for id in clients_gateway::catalog::ProviderId::ALL {
                s.providers.update_common(*id, |c| c.settle_s = 1);
            }
            store(redis)(s);
        })
        .await;
        app.mocks.mount_support().await;
        // The first create goes unanswered and is never performed (never listed); the one sent
        // again is answered.
        for f in fixtures() {
            let late = f.created().set_delay(Duration::from_secs(2));
            answer_first_then(
                app.mocks.of(f.id),
                Some(f.create_path),
                late,
                1,
                f.created(),
                1,
            )
            .await;
            for mock in (f.lookup)(false) {
                mock.mount(app.mocks.of(f.id)).await;
            }
        }
        let body = full_body();
        let send = || post_keyed(&app.http, &app.address, &app.token, Some("k-never"), &body);

        let (_, first) = send().await;
        let (_, early) = send().await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, settled) = send().await;

        for f in fixtures() {
            assert_eq!(first["results"][f.name]["status"], "unknown", "{}", f.name);
            let r = &early["results"][f.name];
            assert_eq!(
                r["status"], "unknown",
                "{}: too early to send again: {r}",
                f.name
            );
            assert_eq!(r["error"]["retry_after_s"], 1, "{}", f.name);
            assert_eq!(r["replayed"], true, "{}", f.name);
            let r = &settled["results"][f.name];
            assert_eq!(r["status"], "created", "{}: sent again: {r}", f.name);
            assert_eq!(r["reconciled"], false, "{}", f.name);
            assert_eq!(r["replayed"], false, "{}", f.name);
        }
    }
}

#[tokio::test]
async fn adopt_needs_the_field_each_provider_is_found_by() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let mut body = adopting(full_body());
    body["client"]
        .as_object_mut()
        .unwrap()
        .remove("external_id");
    let problem = assert_problem(app.post_clients(&body).await, 422).await;
    assert_eq!(pointers(&problem), ["/client/external_id"]);
    // Without adopt, the same body is fine (dry run: nothing sent).
    body.as_object_mut().unwrap().remove("if_exists");
    let dry = assert_207(app.post_clients_query(&body, "?dry_run=true").await).await;
    assert_eq!(dry["outcome"], "planned");
}

#[tokio::test]
async fn a_dry_run_shows_each_lookup_with_its_credentials_redacted() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let dry = assert_207(
        app.post_clients_query(&adopting(full_body()), "?dry_run=true")
            .await,
    )
    .await;
    let text = dry.to_string();
    for f in fixtures() {
        let lookup = &dry["results"][f.name]["lookup"][0];
        assert_eq!(lookup["method"], "GET", "{}: {lookup}", f.name);
        let url = lookup["url"].as_str().unwrap();
        assert!(
            url.starts_with(&app.mocks.of(f.id).uri()),
            "{}: {url}",
            f.name
        );
        assert!(lookup.get("body").is_none(), "{}", f.name);
        let (_, secret) = f.secret;
        assert!(!text.contains(secret), "{} leaked", f.name);
    }
}
