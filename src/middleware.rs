//! The middleware every request goes through: binds a [`RequestId`] and echoes it, refuses a
//! request head over the [`HeaderLimit`] (431), counts the request in the metrics, and runs it in
//! its server span (continuing the caller's `traceparent`, answered back when traces are on).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};
use tracing::Instrument;

use crate::problem::ApiError;
use crate::request_id::{RequestId, X_REQUEST_ID};

const TRACEPARENT: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("traceparent");

/// The largest request head accepted (`server.header_limit_bytes`), as app data.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimit(pub usize);

pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let limit = req.app_data::<HeaderLimit>().map_or(usize::MAX, |l| l.0);
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = crate::gateway_span!(
        "request",
        otel.name = %format_args!("{} {route}", crate::metrics::method_label(method.as_str())),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = crate::metrics::method_label(method.as_str()),
        http.route = route.as_str(),
        http.response.status_code = tracing::field::Empty,
        request_id = id.as_str(),
    );
    crate::telemetry::continue_trace(&span, req.headers());
    let mut response = if head > limit {
        let problem = ApiError::HeadersTooLarge { limit }.with_request(&id);
        req.into_response(problem.error_response())
            .map_into_right_body()
    } else {
        next.call(req)
            .instrument(span.clone())
            .await?
            .map_into_left_body()
    };
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(value) =
        crate::telemetry::traceparent(&span).and_then(|t| HeaderValue::from_str(&t).ok())
    {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    crate::metrics::http_request(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(response)
}
