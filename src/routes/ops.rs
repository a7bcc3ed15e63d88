//! Operational endpoints: liveness and readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::idempotency::Store;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Why the gateway is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What readiness depends on.
pub struct Readiness {
    pub store: Arc<dyn Store>,
    /// Set on SIGTERM: the gateway finishes its requests and takes no new traffic.
    pub draining: Arc<AtomicBool>,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        reason: None,
    })
}

/// Readiness: configuration loaded, the idempotency store answers, not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready: draining, or the idempotency store does not answer", body = Health),
    ))]
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    if readiness.draining.load(Ordering::Relaxed) {
        return not_ready("shutting down");
    }
    match readiness.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ready",
            reason: None,
        }),
        Err(e) => not_ready(&e.to_string()),
    }
}

fn not_ready(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(Health {
        status: "not_ready",
        reason: Some(reason.to_owned()),
    })
}
