//! `GET` and `DELETE /clients/operations/{operation_id}`: an asynchronous operation read back,
//! or what it has not sent cancelled. Only the caller that created it may see it: anyone else
//! gets 404, as for an operation that does not exist.

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
