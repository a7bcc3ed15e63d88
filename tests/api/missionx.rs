//! missionX adapter, against a mock of its API and of its OAuth2 token endpoint.

use std::time::Duration;

use clients_gateway::catalog::ProviderId;

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{
    body_json, body_string_contains, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, ResponseTemplate};

use secrecy::SecretString;
use url::Url;

use crate::helpers::*;

const PATH: &str = "/v2/clients";
const BEARER: &str = "Bearer test-missionx-access-token";

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "_id": "6650c0ffee00000000000042",
        "createdBy": "6650c0ffee00000000000001",
        "createdAt": "2026-11-24T10:00:00.000Z",
        "updatedAt": "2026-11-24T10:00:00.000Z",
        "customId": "crm-4711",
        "title": "Nova Consulting Ltd",
        "emailDomains": ["nova.example"],
        "departments": [DEPARTMENT]
    }))
}

#[tokio::test]
async fn full_request_is_the_documented_one_with_a_client_credentials_token() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .and(header("org-id", MISSIONX_ORG))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=test-missionx-client"))
        .and(body_string_contains("client_secret=test-missionx-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": MISSIONX_TOKEN, "token_type": "Bearer", "expires_in": 14400
        })))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", BEARER))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "title": "Nova Consulting Ltd",
            "customId": "crm-4711",
            "emailDomains": ["nova.example"],
            "departments": ["6650c0ffee0000000000abce"]
        })))
        .respond_with(created())
        .expect(2)
        .mount(&app.mocks.missionx)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "missionx": { "departments": ["6650c0ffee0000000000abce"] } });

    let answer = app.create(&body).await;
    let again = app.create(&body).await;

    let r = &answer["results"]["missionx"];
    assert_eq!(r["status"], "created");
    assert_eq!(r["provider_status"], 200);
    assert_eq!(r["provider_client_id"], "6650c0ffee00000000000042");
    assert_eq!(
        again["results"]["missionx"]["status"], "created",
        "the cached token is reused"
    );
    let requests = app.mocks.missionx.received_requests().await.unwrap();
    let create = requests.iter().find(|r| r.url.path() == PATH).unwrap();
    assert_auth_header(create, ("authorization", BEARER));
}

#[tokio::test]
async fn minimal_request_derives_domains_and_uses_configured_departments() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", BEARER))
        .and(body_json(json!({
            "title": "Nova Consulting Ltd",
            "emailDomains": ["nova.example"],
            "departments": [DEPARTMENT]
        })))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;

    let answer = app.create(&one_target("missionx", json!({}))).await;

    assert_eq!(answer["results"]["missionx"]["status"], "created");
}

#[tokio::test]
async fn a_static_access_token_skips_the_token_endpoint() {
    let app = spawn_app_with(|s| {
        s.providers.missionx.access_token = Some("static-token".to_owned().into());
    })
    .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", "Bearer static-token"))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&app.mocks.missionx)
        .await;
    let answer = app.create(&one_target("missionx", json!({}))).await;
    assert_eq!(answer["results"]["missionx"]["status"], "created");
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"message": "Unauthorized", "code": "UNAUTHORIZED", "data": {}}),
            ),
        )
        .expect(2)
        .mount(&app.mocks.missionx)
        .await;

    let answer = app.create(&one_target("missionx", json!({}))).await;

    let r = &answer["results"]["missionx"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "unauthorized");
    assert_eq!(r["attempts"], 2, "one retry with a fresh token, no more");
    let tokens = app
        .mocks
        .missionx
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v2/auth/token")
        .count();
    assert_eq!(
        tokens, 2,
        "the refused token was dropped and a new one fetched"
    );
}

#[tokio::test]
async fn refused_client_credentials_fail_without_sending_the_client() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"message": "Invalid client credentials", "code": "INVALID_CLIENT", "data": {}}),
        ))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(path(PATH))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.missionx)
        .await;

    let answer = app.create(&one_target("missionx", json!({}))).await;

    let r = &answer["results"]["missionx"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "unauthorized");
    assert_eq!(r["attempts"], 0);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Invalid client credentials"));
    assert!(!answer.to_string().contains(MISSIONX_SECRET));
}

async fn answer_with(response: ResponseTemplate) -> Value {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    // A 5xx is read as `failed` once a lookup (by `external_id`) shows nothing was created.
    let f = fixture(ProviderId::Missionx);
    f.mount_not_found(&app.mocks).await;
    let answer = app.create(&f.findable_request()).await;
    answer["results"]["missionx"].clone()
}

#[tokio::test]
async fn documented_message_code_data_errors() {
    let body = json!({"message": "\"title\" is required", "code": "VALIDATION_ERROR", "data": {"field": "title"}});
    let r = answer_with(ResponseTemplate::new(400).set_body_json(body.clone())).await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "validation");
    assert_eq!(r["error"]["message"], "\"title\" is required");
    assert_eq!(r["error"]["provider_error"], body);

    let body = json!({"message": "Internal error", "code": "INTERNAL", "data": {}});
    let r = answer_with(ResponseTemplate::new(500).set_body_json(body)).await;
    assert_eq!(r["error"]["kind"], "unavailable");
    assert_eq!(r["error"]["message"], "Internal error");
}

#[tokio::test]
async fn one_missionx_token_serves_twenty_concurrent_requests() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": MISSIONX_TOKEN, "expires_in": 14400}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/clients"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_id": "m1"})))
        .expect(20)
        .mount(&app.mocks.missionx)
        .await;
    let body = one_target("missionx", json!({}));
    let answers = join_all((0..20).map(|_| app.create(&body))).await;
    for answer in answers {
        assert_eq!(answer["results"]["missionx"]["status"], "created");
    }
}

/// Department ids are checked before anything is sent, with every other fault of the request.
#[tokio::test]
async fn bad_departments_are_a_422_listed_with_the_other_faults() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let cases = [
        (
            json!({"client": minimal_client(), "targets": {"missionx": {"departments": ["nope"]}}}),
            vec!["/targets/missionx/departments/0"],
        ),
        (
            json!({"client": {"name": "Nova", "email": "bad"}, "targets": {"chatdash": {}, "missionx": {"departments": [1]}}}),
            vec![
                "/client/email",
                "/targets/chatdash/member/login_id",
                "/targets/chatdash/member/name",
                "/targets/missionx/departments/0",
            ],
        ),
        (
            json!({"client": {"name": "Nova", "email_domains": ["ok.example", "no@pe"]}, "targets": {"missionx": {}}}),
            vec!["/client/email_domains/1"],
        ),
    ];
    for (body, expected) in cases {
        let problem = assert_problem(app.post_clients(&body).await, 422).await;
        assert_eq!(pointers(&problem), expected, "body {body}");
    }
}

#[tokio::test]
async fn a_dry_run_shows_the_bearer_scheme_and_fetches_no_token() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let response = app
        .post_clients_query(&one_target("missionx", json!({})), "?dry_run=true")
        .await;
    let answer = assert_207(response).await;
    let request = &answer["results"]["missionx"]["request"];
    assert_eq!(request["headers"]["authorization"], "Bearer [redacted]");
    assert_eq!(
        request["url"],
        format!("{}{PATH}", app.mocks.missionx.uri())
    );
}

fn adopt_nova() -> Value {
    let mut body = full_body();
    body["targets"] = json!({ "missionx": {} });
    body["if_exists"] = json!("adopt");
    body
}

fn client(id: &str, custom_id: &str) -> Value {
    json!({"_id": id, "customId": custom_id, "title": "Nova Consulting Ltd", "emailDomains": ["nova.example"], "departments": [DEPARTMENT]})
}

fn listing() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(header("authorization", BEARER))
        .and(query_param("limit", "100"))
        .and(query_param("sortBy", "updatedAt"))
        .and(query_param("sortDirection", "desc"))
        .and(query_param("withArchived", "true"))
}

/// missionX accepts duplicates and cannot filter by customId: with adopt, the list is read
/// (newest first, following nextLink) before any create.
#[tokio::test]
async fn adopt_reads_the_list_for_the_custom_id_before_creating() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    let page_two = format!("{}/v2/clients?page-token=2", app.mocks.missionx.uri());
    listing()
        .and(query_param_is_missing("page-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [client("n1", "CRM-4711"), client("n2", "crm-47110")], "nextLink": page_two
        })))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(header("authorization", BEARER))
        .and(query_param("page-token", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"value": [client("n3", "crm-4711")]})),
        )
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.missionx)
        .await;

    let r = &app.create(&adopt_nova()).await["results"]["missionx"];

    assert_eq!(r["status"], "existing", "{r}");
    assert_eq!(r["provider_client_id"], "n3");
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_and_nothing_is_created() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    listing()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [client("n1", "other")], "nextLink": "https://elsewhere.example/v2/clients?page=2"
        })))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.missionx)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["missionx"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "invalid_response");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another host"));
}

/// missionX as a server whose clock is `behind` the gateway's: its `Date`, its records' times,
/// and an `updatedAt` filter read on its own clock. It holds one client, `crm-4711`, updated
/// just now by its clock, on the first page; a second page (`older`) lists clients updated
/// long ago.
fn missionx_behind(behind: Duration) -> impl Fn(&wiremock::Request) -> ResponseTemplate {
    move |request: &wiremock::Request| {
        let now = std::time::SystemTime::now() - behind;
        let date = httpdate::fmt_http_date(now);
        let at = humantime::format_rfc3339_millis(now).to_string();
        let filter = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "updatedAt")
            .and_then(|(_, v)| humantime::parse_rfc3339_weak(v.trim_start_matches("gte ")).ok());
        let page_two = request.url.query_pairs().any(|(k, _)| k == "page");
        let mut ours = client("n9", "crm-4711");
        ours["updatedAt"] = json!(at);
        ours["createdAt"] = json!(at);
        let value = match (page_two, filter) {
            (true, _) => vec![],
            // The filter is read on missionX's clock: a gateway ahead of it filters its own
            // client out.
            (false, Some(since)) if since > now => vec![],
            (false, _) => vec![ours],
        };
        ResponseTemplate::new(200)
            .insert_header("date", date.as_str())
            .set_body_json(json!({"value": value}))
    }
}

#[tokio::test]
async fn an_unanswered_create_is_found_whatever_the_gateway_s_clock_says() {
    // missionX 10 minutes behind the gateway: a window on the gateway's clock would miss it.
    let app = spawn_app_with(|s| s.providers.missionx.timeout_ms = 300).await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created().set_delay(std::time::Duration::from_secs(2)))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    listing()
        .respond_with(missionx_behind(Duration::from_secs(600)))
        .mount(&app.mocks.missionx)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "missionx": {} });

    let r = &app.create(&body).await["results"]["missionx"];

    assert_eq!(r["status"], "created", "{r}");
    assert_eq!(r["reconciled"], true);
    assert_eq!(r["provider_client_id"], "n9");
}

/// Sorted by `updatedAt`, most recent first: once a page reaches clients updated before the
/// create was sent (on missionX's clock: its `Date` minus how long ago that was), the rest is
/// older still, and is not read.
#[tokio::test]
async fn a_lookup_stops_where_missionx_s_own_clock_says_the_rest_is_older() {
    let app = spawn_app_with(|s| s.providers.missionx.timeout_ms = 300).await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created().set_delay(std::time::Duration::from_secs(2)))
        .mount(&app.mocks.missionx)
        .await;
    // missionX 10 minutes ahead of the gateway; the first page lists one client updated an
    // hour before its now, and links to a next page.
    let ahead = std::time::SystemTime::now() + Duration::from_secs(600);
    let mut old = client("n1", "crm-1");
    old["updatedAt"] =
        json!(humantime::format_rfc3339_millis(ahead - Duration::from_secs(3600)).to_string());
    listing()
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("date", httpdate::fmt_http_date(ahead).as_str())
                .set_body_json(json!({"value": [old], "nextLink": "/v2/clients?page=2"})),
        )
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "missionx": {} });

    let r = &app.create(&body).await["results"]["missionx"];

    assert_eq!(
        r["status"], "unknown",
        "not found, the create may still land: {r}"
    );
    let requests = app.mocks.missionx.received_requests().await.unwrap();
    let pages = requests
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(pages, 1, "the next page is not read");
}

/// The sandbox lists what it holds, paged as the provider documents: adopting the oldest of
/// many missionX clients follows `nextLink` (100 a page) to find it.
#[tokio::test]
async fn the_sandbox_lists_its_clients_with_paging() {
    let (address, token, _sandbox) = crate::sandbox::sandbox_app(|_| {}).await;
    let body = |i: usize| {
        json!({"client": {"name": format!("Client {i}"), "external_id": format!("crm-{i}")},
               "targets": {"missionx": {}}})
    };
    let first = crate::sandbox::post(&address, &token, &body(0)).await;
    let id = first["results"]["missionx"]["provider_client_id"].clone();
    for i in 1..=104 {
        crate::sandbox::post(&address, &token, &body(i)).await;
    }
    let mut again = body(0);
    again["if_exists"] = json!("adopt");
    let answer = crate::sandbox::post(&address, &token, &again).await;
    let r = &answer["results"]["missionx"];
    assert_eq!(r["status"], "existing", "{r}");
    assert_eq!(r["provider_client_id"], id);
}

fn token_with(body: Value) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
}

/// `expires_in` = u64::MAX: bounded (a day at most), never added to a clock as is.
#[tokio::test]
async fn a_token_lifetime_of_any_size_is_bounded() {
    let app = spawn_app().await;
    token_with(json!({"access_token": MISSIONX_TOKEN, "expires_in": u64::MAX}))
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(2)
        .mount(&app.mocks.missionx)
        .await;
    let body = one_target("missionx", json!({}));
    for _ in 0..2 {
        let r = &app.create(&body).await["results"]["missionx"];
        assert_eq!(r["status"], "created", "{r}");
    }
}

/// The half-open probe whose token answer once made the call panic: it goes through, and the
/// circuit closes (it used to stay open until restart).
#[tokio::test]
async fn a_probe_with_a_hostile_token_answer_closes_the_circuit() {
    let app = spawn_app_with(|s| {
        let m = &mut s.providers.missionx;
        m.timeout_ms = 300;
        m.circuit_failure_threshold = 1;
        m.circuit_cooldown_ms = 200;
    })
    .await;
    // The first token expires at once; the one fetched by the probe says it lives u64::MAX s.
    token_with(json!({"access_token": MISSIONX_TOKEN, "expires_in": 0}))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.mocks.missionx)
        .await;
    token_with(json!({"access_token": MISSIONX_TOKEN, "expires_in": u64::MAX}))
        .with_priority(2)
        .mount(&app.mocks.missionx)
        .await;
    answer_first_then(
        &app.mocks.missionx,
        Some(PATH),
        created().set_delay(Duration::from_secs(2)),
        1,
        created(),
        2,
    )
    .await;
    let body = one_target("missionx", json!({}));
    let first = &app.create(&body).await["results"]["missionx"];
    assert_eq!(first["error"]["kind"], "timeout", "{first}");
    let open = &app.create(&body).await["results"]["missionx"];
    assert_eq!(open["error"]["kind"], "circuit_open", "{open}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = &app.create(&body).await["results"]["missionx"];
    assert_eq!(probe["status"], "created", "the probe: {probe}");
    let closed = &app.create(&body).await["results"]["missionx"];
    assert_eq!(closed["status"], "created", "the circuit closed: {closed}");
}

/// A token endpoint answering 8 MB: read up to its bound, refused, and the client not sent.
#[tokio::test]
async fn an_oversized_token_answer_is_not_read_whole() {
    let app = spawn_app().await;
    token_with(json!({"access_token": MISSIONX_TOKEN, "padding": "x".repeat(8 << 20)}))
        .mount(&app.mocks.missionx)
        .await;
    Mock::given(path(PATH))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.missionx)
        .await;
    let r = &app.create(&one_target("missionx", json!({}))).await["results"]["missionx"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "invalid_response");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over 65536 bytes"),
        "{r}"
    );
}

/// Without `external_id`, missionX cannot be looked up: a 5xx may have created the client, so
/// it is `unknown`, never `failed` (which would be sent again).
#[tokio::test]
async fn a_5xx_that_cannot_be_looked_up_is_unknown() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"message": "Internal", "code": "INTERNAL", "data": {}})),
        )
        .expect(1)
        .mount(&app.mocks.missionx)
        .await;
    let r = &app.create(&one_target("missionx", json!({}))).await["results"]["missionx"];
    assert_eq!(r["status"], "unknown", "{r}");
    assert_eq!(r["error"]["kind"], "unavailable");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("may have been created"));
}

/// The bearer token echoed in an error is relayed redacted.
#[tokio::test]
async fn an_echoed_token_is_not_relayed() {
    let app = spawn_app().await;
    mount_missionx_token(&app.mocks.missionx).await;
    let echo = format!("token {MISSIONX_TOKEN} is not allowed here");
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": echo, "code": "FORBIDDEN", "data": {"token": MISSIONX_TOKEN}}),
        ))
        .mount(&app.mocks.missionx)
        .await;
    let answer = app.create(&one_target("missionx", json!({}))).await;
    assert!(!answer.to_string().contains(MISSIONX_TOKEN), "{answer}");
    assert_eq!(answer["results"]["missionx"]["error"]["kind"], "forbidden");
}

/// missionX as the tests see it: its row of the harness's table of providers.
pub fn as_tested() -> Fixture {
    Fixture {
        id: ProviderId::Missionx,
        name: "missionx",
        base_path: "/v2",
        create_path: "/v2/clients",
        created_status: 200,
        created_body: || json!({"_id": "6650c0ffee00000000000042", "title": "Nova Consulting Ltd", "customId": null, "emailDomains": ["nova.example"], "departments": [DEPARTMENT]}),
        created_id: Some("6650c0ffee00000000000042"),
        generated_password: None,
        minimal_options: || json!({}),
        secret: ("client_secret", MISSIONX_SECRET),
        toml: |uri| {
            format!(
                "base_url = \"{uri}/v2\"\ntoken_url = \"{uri}/v2/auth/token\"\nclient_id = \"{MISSIONX_CLIENT_ID}\"\norg_id = \"{MISSIONX_ORG}\"\ndepartments = [\"{DEPARTMENT}\"]\n"
            )
        },
        configure: |p, url| {
            let m = &mut p.missionx;
            m.token_url = Url::parse(&format!("{url}/auth/token")).unwrap();
            m.base_url = url;
            m.client_id = Some(MISSIONX_CLIENT_ID.into());
            m.client_secret = Some(SecretString::from(MISSIONX_SECRET));
            m.org_id = Some(MISSIONX_ORG.into());
            m.departments = vec![DEPARTMENT.into()];
        },
        break_credentials: |p| p.missionx.client_secret = Some("wrong".to_owned().into()),
        support: || vec![missionx_token()],
        issued: &[MISSIONX_TOKEN],
        lookup: |found| {
            let clients = if found {
                json!([{"_id": "6650c0ffee00000000000042", "customId": "crm-4711", "title": "Nova Consulting Ltd",
                        "emailDomains": ["nova.example"], "departments": [DEPARTMENT]}])
            } else {
                json!([])
            };
            vec![crate::helpers::listing(
                "/v2/clients",
                json!({"value": clients}),
            )]
        },
        found_id: "6650c0ffee00000000000042",
        duplicate: None,
        wrong_credentials: "unauthorized",
        name_alone: true,
    }
}
