//! The middleware every request goes through: binds a [`RequestId`] and echoes it, refuses a
//! request head over the [`HeaderLimit`] (431), counts the request in the metrics.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};

use crate::problem::ApiError;
use crate::request_id::{RequestId, X_REQUEST_ID};

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
    let mut response = if head > limit {
        let problem = ApiError::HeadersTooLarge { limit }.with_request(&id);
        req.into_response(problem.error_response())
            .map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
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
