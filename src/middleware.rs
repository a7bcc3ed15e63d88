//! The middleware every request goes through: binds a [`RequestId`] and echoes it, refuses a
//! request head over the [`HeaderLimit`] (431), counts the request in the metrics, and runs it in
//! its server span (continuing the caller's `traceparent`, answered back when traces are on).
//!
//! It also keeps the request's body stream until the answer is written ([`HeldPayload`]): an
//! answer sent before the body was read whole (a refusal) then closes the connection, so that a
//! caller that keeps sending a body it was refused holds nothing. Under memory pressure
//! ([`Pressure`]) every answer closes its connection (no keep-alive offered).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::HeaderValue;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, ResponseError};
use futures_util::Stream;
use tracing::Instrument;

use crate::overload::Admission;

use crate::problem::ApiError;
use crate::request_id::{RequestId, X_REQUEST_ID};

const TRACEPARENT: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("traceparent");

/// The largest request head accepted (`server.header_limit_bytes`), as app data.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimit(pub usize);

/// When the request's head had been read (the time a shed answer takes is measured from it).
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub std::time::Instant);

/// The memory account, as app data: under pressure, answers close their connection.
#[derive(Clone)]
pub struct Pressure(pub Arc<Admission>);

pub async fn request_id(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let held = hold_payload(&mut req);
    let pressure = req.app_data::<Pressure>().cloned();
    let mut response = answer(req, next).await?;
    if pressure.is_some_and(|Pressure(a)| a.pressed()) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response.map_body(|_, body| match held {
        Some(payload) => HeldPayload {
            body: body.boxed(),
            _payload: payload,
        }
        .boxed(),
        None => body.boxed(),
    }))
}

async fn answer<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    let started = std::time::Instant::now();
    req.extensions_mut().insert(id.clone());
    req.extensions_mut().insert(Arrived(started));
    let method = req.method().clone();
    let limit = req.app_data::<HeaderLimit>().map_or(usize::MAX, |l| l.0);
    let head = head_size(&req);
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
    answered(&span, &mut response);
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

/// The request head's size: every header's name and value, with their separators.
fn head_size(req: &ServiceRequest) -> usize {
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

/// The server span's status, and the `traceparent` answered when traces are on.
fn answered<B>(span: &tracing::Span, response: &mut ServiceResponse<B>) {
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(value) =
        crate::telemetry::traceparent(span).and_then(|t| HeaderValue::from_str(&t).ok())
    {
        response.headers_mut().insert(TRACEPARENT, value);
    }
}

/// The request's body stream, shared between the handler (through [`Forward`]) and the answer.
type Shared = Rc<RefCell<Payload>>;

/// Gives the handler a stream that reads the request's body, and keeps the body itself.
fn hold_payload(req: &mut ServiceRequest) -> Option<Shared> {
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        return None;
    }
    let shared = Rc::new(RefCell::new(payload));
    req.set_payload(Payload::Stream {
        payload: Box::pin(Forward(shared.clone())),
    });
    Some(shared)
}

/// The request's body, read through the shared stream.
struct Forward(Shared);

impl Stream for Forward {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// An answer's body that keeps the request's body stream until it is written: the server then
/// sees a body not read to its end and closes the connection after the answer, instead of
/// reading (and discarding) whatever the caller keeps sending.
struct HeldPayload {
    body: BoxBody,
    _payload: Shared,
}

impl MessageBody for HeldPayload {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
