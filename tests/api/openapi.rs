//! The gateway's own OpenAPI document: committed, current, served, with Swagger UI.

use clients_gateway::openapi::document;

use crate::helpers::*;

const REGENERATE: &str = "cargo run -- openapi > openapi/openapi.json";

#[test]
fn the_committed_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == document().trim_end(),
        "openapi/openapi.json differs from the document the code generates; rewrite it with `{REGENERATE}`"
    );
}

#[tokio::test]
async fn the_document_and_swagger_ui_are_served() {
    let app = spawn_app().await;
    let served: serde_json::Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: serde_json::Value = serde_json::from_str(&document()).unwrap();
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/clients"]["post"].is_object());
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let page = app
        .http
        .get(format!("{}/swagger-ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
}

/// The request examples are what "Try it out" sends: each must work against the sandbox.
#[tokio::test]
async fn the_request_examples_work_in_the_sandbox() {
    let (address, token, _sandbox) = crate::sandbox::sandbox_app(|_| {}).await;
    let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
    let examples = doc["paths"]["/clients"]["post"]["requestBody"]["content"]["application/json"]
        ["examples"]
        .as_object()
        .unwrap();
    let names: Vec<&str> = examples.keys().map(String::as_str).collect();
    assert_eq!(names, ["adopt", "all_targets", "dry_run", "single_target"]);

    let dry = reqwest::Client::new()
        .post(format!("{address}/clients?dry_run=true"))
        .bearer_auth(&token)
        .json(&examples["dry_run"]["value"])
        .send()
        .await
        .unwrap();
    let dry = assert_207(dry).await;
    assert_eq!(dry["outcome"], "planned");
    assert_eq!(dry["results"].as_object().unwrap().len(), fixtures().len());

    for name in ["all_targets", "single_target"] {
        let answer = crate::sandbox::post(&address, &token, &examples[name]["value"]).await;
        assert_eq!(answer["outcome"], "succeeded", "{name}: {answer}");
    }
    // The same client again, adopted: found everywhere, nothing created.
    let answer = crate::sandbox::post(&address, &token, &examples["adopt"]["value"]).await;
    assert_eq!(answer["outcome"], "succeeded", "adopt: {answer}");
    for (provider, result) in answer["results"].as_object().unwrap() {
        assert_eq!(result["status"], "existing", "{provider}: {result}");
    }
}

#[test]
fn the_response_examples_have_the_documented_shape() {
    let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
    let examples = doc["paths"]["/clients"]["post"]["responses"]["207"]["content"]
        ["application/json"]["examples"]
        .as_object()
        .unwrap();
    let result_fields: Vec<String> = doc["components"]["schemas"]["TargetResult"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for (name, example) in examples {
        let value = &example["value"];
        for key in ["operation_id", "outcome", "dry_run", "results"] {
            assert!(value.get(key).is_some(), "{name} lacks {key}");
        }
        for (provider, result) in value["results"].as_object().unwrap() {
            for key in result.as_object().unwrap().keys() {
                assert!(
                    result_fields.contains(key),
                    "{name}/{provider}: {key} is not documented"
                );
            }
        }
    }
}
