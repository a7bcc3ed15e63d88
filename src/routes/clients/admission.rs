//! Admission of `POST /clients`, decided from the request's headers before anything else is
//! read: the request reserves what it may hold (its body, as declared or at the limit, and one
//! call to every available provider, at that provider's cost as this worker knows its protocol)
//! or is shed with `503 overloaded` and `Retry-After`, its connection closed. The handler gives
//! back what the request turns out not to need once its targets are known.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};

use super::ClientsState;
use crate::middleware::Arrived;
use crate::outbound::Target;
use crate::overload::{Admission, Shed, Ticket};
use crate::problem::ApiError;
use crate::request_id::RequestId;

/// An admitted request's reservation, for the handler.
#[derive(Clone)]
pub struct Admitted(pub Rc<Ticket>);

/// The admission as app data.
#[derive(Clone)]
pub struct Gate(pub Arc<Admission>);

pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let gate = req.app_data::<Gate>().cloned();
    let state = req.app_data::<web::Data<ClientsState>>().cloned();
    let (Some(Gate(admission)), Some(state), true) = (gate, state, req.method() == Method::POST)
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.body_limit as u64;
    let body = declared.map_or(limit, |len| len.min(limit));
    let calls: Vec<u64> = state
        .registry
        .available_targets()
        .map(|t| call_cost(&admission, t))
        .collect();
    let cost = admission.budget().request_cost(body, &calls);
    match admission.admit(cost) {
        Ok(ticket) => {
            req.extensions_mut().insert(Admitted(Rc::new(ticket)));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(why) => {
            let reason = match why {
                Shed::Budget => "the requests in flight fill its memory budget",
                Shed::Memory => "its memory is nearly full",
            };
            let problem = ApiError::Overloaded {
                reason,
                retry_after_s: admission.retry_after_s(),
            }
            .with_request(&RequestId::of(req.request()));
            let response = problem.error_response();
            if let Some(Arrived(at)) = req.extensions().get::<Arrived>() {
                crate::metrics::shed_took(at.elapsed());
            }
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// What one call to `target` may hold, as this worker knows its protocol.
pub fn call_cost(admission: &Admission, target: &Target) -> u64 {
    let costs = &admission.budget().costs;
    if target.speaks_h2() {
        costs.call_h2
    } else {
        costs.call_h1
    }
}

/// Keeps, of what `ticket` reserved, what the request needs now that its body is read and its
/// targets are known.
pub fn keep_for(ticket: &Ticket, body: usize, calls: &[crate::fanout::Call]) {
    let a = ticket.admission();
    let costs: Vec<u64> = calls.iter().map(|c| call_cost(a, &c.target)).collect();
    ticket.keep(a.budget().request_cost(body as u64, &costs));
}
