//! What `check-config` accepts is what the gateway starts with, and nothing is silently
//! ignored: every value the start would refuse is refused by check-config too, environment
//! values are read as their key's type (a secret verbatim), and no secret is shown.

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn refused(config_rest: &str, env: &[(&str, &str)]) -> String {
    let (_dir, config) = binary_config_file(free_port(), config_rest);
    let out = check_config(&config, env);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "check-config accepted {config_rest:?} {env:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    text
}

#[test]
fn check_config_refuses_what_the_start_would_refuse() {
    for (rest, names) in [
        (
            "[telemetry]\nlog_level = \"info,[[[\"\n",
            "telemetry.log_level",
        ),
        ("ops_bind = \"not-an-address\"\n", "server.ops_bind"),
        ("ops_bind = \"127.0.0.1\"\n", "server.ops_bind"),
        ("ops_bind = \"127.0.0.1:99999\"\n", "server.ops_bind"),
        ("[idempotency]\nttl_s = 5\n", "idempotency.ttl_s"),
    ] {
        let text = refused(rest, &[]);
        assert!(text.contains(names), "{rest:?}: {text}");
    }
    // ops_bind on bind's own port, or the unspecified address on it.
    let port = free_port();
    for ops in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let (_dir, config) = binary_config_file(port, &format!("ops_bind = \"{ops}\"\n"));
        let out = check_config(&config, &[]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && text.contains("server.ops_bind"),
            "{ops}: {text}"
        );
    }
    let text = refused("", &[("CLIENTS_GATEWAY__SERVER__BIND", "not-an-address")]);
    assert!(text.contains("server.bind"), "{text}");
}

#[test]
fn environment_overrides_that_set_nothing_are_refused() {
    for (name, value) in [
        ("CLIENTS_GATEWAY__SERVER____BIND", "127.0.0.1:1"),
        ("CLIENTS_GATEWAY__SERVER__BND", "127.0.0.1:1"),
        ("CLIENTS_GATEWAY__PROVIDERS__ACME__API_KEY", "k"),
    ] {
        let text = refused("", &[(name, value)]);
        assert!(text.contains(name), "{name}: {text}");
    }
}

#[test]
fn a_secret_from_the_environment_is_never_shown() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, config) = binary_config_file(free_port(), "");
    // Not UTF-8: refused, naming the variable only.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
        .args(["check-config", "--config"])
        .arg(&config)
        .env(
            "CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__API_KEY",
            std::ffi::OsStr::from_bytes(b"s3cr\xffet-value"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__API_KEY"),
        "{text}"
    );
    assert!(
        !text.contains("s3cr") && !text.contains("et-value"),
        "{text}"
    );
    // A number in the file where a secret goes: refused without its value.
    let text = refused("[providers.clockify]\napi_key = 31415926535\n", &[]);
    assert!(text.contains("providers.clockify.api_key"), "{text}");
    assert!(!text.contains("31415926535"), "{text}");
}

/// A secret of digits, or with quotes and spaces, set through the environment is taken verbatim:
/// the provider receives exactly it, the gateway verifies tokens with exactly it.
#[tokio::test]
async fn secrets_from_the_environment_are_taken_verbatim() {
    let clockify = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/api/v1/workspaces/{CLOCKIFY_WORKSPACE}/clients"
        )))
        .and(header("x-api-key", "31415926535"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})))
        .expect(1)
        .mount(&clockify)
        .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\nworkers = 1\n[providers.clockify]\nbase_url = \"{}/api\"\nworkspace_id = \"{CLOCKIFY_WORKSPACE}\"\n",
            clockify.uri()
        ),
    );
    let jwt_key = " \"quoted key of more than 32 bytes\" ";
    let mut child = start_binary_with(
        &config,
        port,
        None,
        &[
            (
                "CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__API_KEY",
                "31415926535",
            ),
            ("CLIENTS_GATEWAY__AUTH__HS256_SECRET", jwt_key),
        ],
    )
    .await;
    let token = clients_gateway::auth::mint(
        &secrecy::SecretString::from(jwt_key),
        &Default::default(),
        "verbatim",
        "clients:write",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let (status, answer) = post_keyed(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        &token,
        None,
        &one_target("clockify", json!({})),
    )
    .await;
    terminate(&mut child).await;
    assert_eq!(
        status, 207,
        "the key as written verifies the token: {answer}"
    );
    assert_eq!(
        answer["results"]["clockify"]["status"], "created",
        "{answer}"
    );
}

#[test]
fn a_memory_budget_above_the_memory_there_is_is_not_believed() {
    let (_dir, config) = binary_config_file(free_port(), "memory_budget_mb = 1048576\n");
    let out = check_config(&config, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("is above the memory there is"), "{text}");
    assert!(!text.contains("memory limit 1048576 MiB"), "{text}");
}

#[test]
fn a_token_the_gateway_would_refuse_is_not_minted() {
    let (_dir, config) = binary_config_file(free_port(), "");
    for args in [
        vec!["--sub", ""],
        vec!["--sub", " "],
        vec!["--sub", "x", "--scope", ""],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
            .arg("token")
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
