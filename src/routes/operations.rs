//! `GET` and `DELETE /clients/operations/{operation_id}`: an asynchronous operation read back,
//! or what it has not sent cancelled; `POST .../notification`: its completion event sent again.
//! Only the caller that created it may see it: anyone else gets 404, as for an operation that
//! does not exist.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::clients::{asynchronous, ClientsState};
use crate::auth::Caller;
use crate::operations::Operation;
use crate::problem::{ApiError, Problem, ProblemBody};
use crate::request_id::RequestId;

/// An operation id as the gateway makes them (a UUID); anything else cannot name one.
fn valid(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Read an asynchronous operation.
///
/// Its state and one result per target; `Retry-After` while it is not done. A password a tool
/// (or the gateway) generated is shown in the first answer after its target is created, then
/// redacted. Only the caller (`sub`) that created the operation may read it: anyone else gets
/// 404.
#[utoipa::path(
    get,
    path = "/clients/operations/{operation_id}",
    tag = "clients",
    operation_id = "getOperation",
    params(("operation_id" = String, Path, description = "The operation's id (the `Location` of its 202)")),
    responses(
        (status = 200, description = "The operation", body = Operation,
            headers(("Retry-After" = u64, description = "While not done: seconds until another read is worth it"))),
        (status = 401, description = "Missing or invalid bearer token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such operation for this caller (or it expired)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The operations store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_operation(
    caller: Caller,
    request_id: RequestId,
    path: web::Path<String>,
    state: web::Data<ClientsState>,
) -> Result<HttpResponse, Problem> {
    let id = path.into_inner();
    let found = match valid(&id) {
        true => state.operations.get(&id, &caller.subject).await,
        false => Ok(None),
    };
    respond(found, &request_id)
}

/// Cancel what an operation has not sent.
///
/// Its `pending` targets become `cancelled`; a target whose create is in flight finishes and is
/// kept. The answer is the operation.
#[utoipa::path(
    delete,
    path = "/clients/operations/{operation_id}",
    tag = "clients",
    operation_id = "cancelOperation",
    params(("operation_id" = String, Path, description = "The operation's id")),
    responses(
        (status = 200, description = "The operation, its pending targets cancelled", body = Operation),
        (status = 401, description = "Missing or invalid bearer token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such operation for this caller (or it expired)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The operations store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_operation(
    caller: Caller,
    request_id: RequestId,
    path: web::Path<String>,
    state: web::Data<ClientsState>,
) -> Result<HttpResponse, Problem> {
    let id = path.into_inner();
    let found = match valid(&id) {
        true => state.operations.cancel(&id, &caller.subject).await,
        false => Ok(None),
    };
    respond(found, &request_id)
}

/// Send an operation's completion event again.
///
/// For an operation that named a webhook (`notify`) and is done, once its event was delivered,
/// stopped by a `410` or given up after 24 h: the event (the same `webhook-id`) is queued again
/// now, with 24 h of retries of its own. The attempts made so far stay under `notification`.
#[utoipa::path(
    post,
    path = "/clients/operations/{operation_id}/notification",
    tag = "clients",
    operation_id = "resendNotification",
    params(("operation_id" = String, Path, description = "The operation's id")),
    responses(
        (status = 202, description = "Queued: the operation, its `notification` pending", body = Operation),
        (status = 401, description = "Missing or invalid bearer token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such operation for this caller (or it expired)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not now (`urn:clients-gateway:problem:notification-not-resendable`): the operation names no webhook, is not done, or its event is being delivered", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The operations store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resend_notification(
    caller: Caller,
    request_id: RequestId,
    path: web::Path<String>,
    state: web::Data<ClientsState>,
) -> Result<HttpResponse, Problem> {
    let id = path.into_inner();
    let found = match valid(&id) {
        true => state.operations.resend(&id, &caller.subject).await,
        false => Ok(None),
    };
    match found {
        Ok(Some(Err(why))) => {
            Err(ApiError::NotificationNotResendable(why).with_request(&request_id))
        }
        Ok(Some(Ok(operation))) => Ok(asynchronous::answer(
            StatusCode::ACCEPTED,
            &operation,
            false,
        )),
        Ok(None) => respond(Ok(None), &request_id),
        Err(e) => respond(Err(e), &request_id),
    }
}

fn respond(
    found: Result<Option<Operation>, crate::operations::OpStoreError>,
    request_id: &RequestId,
) -> Result<HttpResponse, Problem> {
    match found {
        Ok(Some(operation)) => Ok(asynchronous::answer(StatusCode::OK, &operation, false)),
        Ok(None) => Err(ApiError::NotFound.with_request(request_id)),
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "operations store unavailable");
            Err(ApiError::OperationsUnavailable.with_request(request_id))
        }
    }
}
