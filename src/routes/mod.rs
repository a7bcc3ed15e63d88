pub mod clients;
pub mod operations;
pub mod ops;

use actix_web::{web, HttpRequest};

use crate::problem::{ApiError, Problem};
use crate::request_id::RequestId;

/// Registers every route. Each resource answers 405 (problem JSON) to other methods.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/clients")
            .wrap(actix_web::middleware::from_fn(clients::admission::admit))
            .route(web::post().to(clients::create_client))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "POST"))),
    );
    cfg.service(
        web::resource("/clients/operations/{operation_id}")
            .route(web::get().to(operations::get_operation))
            .route(web::delete().to(operations::cancel_operation))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "GET, DELETE"))),
    );
    cfg.service(
        web::resource("/clients/operations/{operation_id}/notification")
            .route(web::post().to(operations::resend_notification))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "POST"))),
    );
    configure_ops(cfg);
}

/// The operational routes: liveness, readiness, metrics (also served alone on
/// `server.ops_bind`).
pub fn configure_ops(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(ops::healthz))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "GET"))),
    );
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(crate::metrics::render))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "GET"))),
    );
    cfg.service(
        web::resource("/readyz")
            .route(web::get().to(ops::readyz))
            .default_service(web::to(|req: HttpRequest| not_allowed(req, "GET"))),
    );
}

async fn not_allowed(req: HttpRequest, allow: &'static str) -> Result<&'static str, Problem> {
    Err(ApiError::MethodNotAllowed { allow }.with_request(&RequestId::of(&req)))
}

/// Any path without a route.
pub async fn not_found(req: HttpRequest) -> Result<&'static str, Problem> {
    Err(ApiError::NotFound.with_request(&RequestId::of(&req)))
}
