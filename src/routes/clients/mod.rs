//! `POST /clients`: authenticate → read the body → parse → validate every selected target →
//! fan out (or plan, on a dry run) → one 207 Multi-Status answer.

pub mod admission;
pub(crate) mod asynchronous;
pub mod examples;
mod request;
mod response;

pub use asynchronous::RegistryPlanner;
pub use request::{CreateClientRequest, CreateHeaders, CreateQuery};
pub use response::MultiStatus;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::catalog::ProviderId;
use crate::domain::pointer::field_error;
use crate::domain::{IfExists, NewClient};
use crate::fanout::{self, Call, Job};
use crate::field_error::{push, FieldError};
use crate::idempotency::{fingerprint, IdempotencyKey, Store};
use crate::keyed::{self, Keyed, Refusal};
use crate::outbound::Registry;
use crate::problem::{ApiError, Problem, ProblemBody};
use crate::request_id::RequestId;
use crate::results::Outcome;

/// A claim outlives the deadline by this much before another request may take the key over.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// What the handler needs, built once at start.
pub struct ClientsState {
    pub registry: Arc<Registry>,
    pub operations: Arc<crate::operations::Operations>,
    pub body_limit: usize,
    /// How long the body may take to arrive (`server.body_timeout_ms`).
    pub body_timeout: Duration,
    pub deadline: Duration,
    pub store: Arc<dyn Store>,
    /// How long a record is kept.
    pub idempotency_ttl: Duration,
}

/// Create one client in every selected provider.
///
/// The body is validated once, for every selected target, before anything is sent: any fault
/// gives one 422 listing each field at fault, and no provider is called. Otherwise every target is
/// called concurrently and the answer is 207 with a result per target.
///
/// What the chosen targets require of the rest of the body is in the request schema (its `allOf`
/// rules, from each provider): a body the schema accepts is one the gateway accepts, with these
/// exceptions, which depend on the gateway's configuration, not on the body: a provider that is
/// disabled or has no credentials configured cannot be selected (422 at `/targets/<name>`); an
/// organization or workspace that the request omits must be configured (CONFIGURED_DEFAULTS;
/// else 422 at that option); a body over
/// `server.body_limit_bytes` (64 KiB) is refused with 413. One more depends on earlier requests:
/// an `Idempotency-Key` already used with a different body is refused with 422 (and 409 while the
/// first request with that key is still running).
#[utoipa::path(
    post,
    path = "/clients",
    tag = "clients",
    operation_id = "createClient",
    params(CreateQuery, CreateHeaders),
    request_body(content = CreateClientRequest, content_type = "application/json", examples(
        ("all_targets" = (summary = "Every provider", value = json!(examples::all_targets_body()))),
        ("single_target" = (summary = "One provider, with the configured defaults", value = json!(examples::single_target_body()))),
        ("adopt" = (summary = "Adopt the client where it already exists (if_exists: adopt)", value = json!(examples::adopt_body()))),
        ("dry_run" = (summary = "Dry run: send with ?dry_run=true to see the requests without sending them", value = json!(examples::all_targets_body()))),
    )),
    responses(
        (status = 207, description = "Validated and processed: one result per selected target", body = MultiStatus,
            headers(("X-Request-Id" = String, description = "The request id")),
            examples(
                ("all_created" = (summary = "Created everywhere", value = json!(examples::all_created_answer()))),
                ("adopted" = (summary = "if_exists: adopt, the client already everywhere: existing, nothing created", value = json!(examples::adopted_answer()))),
                ("partial" = (summary = "A partial outcome: created, refused, no answer", value = json!(examples::partial_answer()))),
                ("dry_run" = (summary = "A dry run: the planned requests", value = json!(examples::dry_run_answer()))),
            )),
        (status = 200, description = "`Prefer: respond-async` with an `Idempotency-Key` that names an operation already done: that operation", body = crate::operations::Operation,
            headers(("Location" = String, description = "The operation: /clients/operations/{operation_id}"))),
        (status = 202, description = "`Prefer: respond-async`: accepted as an operation, stored before this answer; read it at `Location` (`Preference-Applied: respond-async`). The same `Idempotency-Key` and body name the same operation (200 once it is done)", body = crate::operations::Operation,
            headers(
                ("Location" = String, description = "The operation: /clients/operations/{operation_id}"),
                ("Preference-Applied" = String, description = "respond-async"),
                ("Retry-After" = u64, description = "Seconds until a read is worth it"),
            )),
        (status = 400, description = "Malformed JSON, query or Idempotency-Key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid bearer token", body = ProblemBody, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "RFC 6750 challenge"))),
        (status = 403, description = "The token lacks the required scope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A request with the same Idempotency-Key is still running", body = ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within server.body_timeout_ms; nothing was sent", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 431, description = "Request headers over the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body not sent as JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each with a JSON pointer), or an Idempotency-Key reused with a different body; nothing was sent", body = ProblemBody, content_type = "application/problem+json",
            example = json!(examples::validation_problem())),
        (status = 500, description = "A bug; the request id finds it in the logs", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Nothing was read or sent: the gateway is at its capacity (`urn:clients-gateway:problem:overloaded`, decided from the headers alone; come back after `Retry-After`), or the request has an Idempotency-Key and the idempotency store is unavailable or full", body = ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before sending again (overloaded)"))),
    ),
    security(("bearer" = []))
)]
pub async fn create_client(
    req: HttpRequest,
    caller: Caller,
    request_id: RequestId,
    payload: web::Payload,
    state: web::Data<ClientsState>,
) -> Result<HttpResponse, Problem> {
    let started = Instant::now();
    // Held until the answer is built: what this request reserved in the memory budget.
    let admitted = req.extensions_mut().remove::<admission::Admitted>();
    let fail = |e: ApiError| e.with_request(&request_id);
    let (dry_run, key) = read_head(&req).map_err(fail)?;
    let prefer = asynchronous::Prefer::of(&req);
    let body = read_body_in_time(&req, payload, &state)
        .await
        .map_err(fail)?;
    let asynchronous = prefer.respond_async && state.operations.enabled();
    let (calls, if_exists, notify) = checked(&body, asynchronous, &state).map_err(fail)?;
    if let Some(admission::Admitted(ticket)) = &admitted {
        admission::keep_for(ticket, body.len(), &calls);
    }
    let scoped = key.map(|key| key.scoped(&caller.subject));
    let fingerprint =
        || fingerprint(&serde_json::from_slice(&body).expect("the body parsed above"));
    if asynchronous && !dry_run {
        let handed = asynchronous::Handed {
            notify: notify.as_deref(),
            caller: &caller,
            request_id: &request_id,
            prefer,
            key: scoped,
            fingerprint: fingerprint(),
            body: &body,
            calls,
            deadline: state.deadline,
        };
        return asynchronous::accept(&state.operations, handed).await;
    }
    let keyed = (!dry_run)
        .then_some(scoped)
        .flatten()
        .map(|key| keyed(&state, key, fingerprint()));
    // What the fan-out does not need is not kept while it waits for the providers.
    drop(body);
    let targets = calls
        .iter()
        .map(|c| c.provider.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let deadline = started + state.deadline;
    let answer = run(calls, dry_run, keyed, if_exists, deadline, &request_id).await?;
    log_finished(&answer, &request_id, &caller, &targets, started);
    Ok(HttpResponse::build(StatusCode::MULTI_STATUS).json(answer))
}

/// The body parsed and checked, its `notify` too: its calls, `if_exists` and webhook.
fn checked(
    body: &[u8],
    asynchronous: bool,
    state: &ClientsState,
) -> Result<(Vec<Call>, IfExists, Option<String>), ApiError> {
    let (request, mut unknown) = parse(body)?;
    let if_exists = request.if_exists.unwrap_or_default();
    let webhooks = state.operations.webhooks();
    unknown.extend(check_notify(
        request.notify.as_deref(),
        asynchronous,
        webhooks,
    ));
    let calls = validate(&request, if_exists, unknown, &state.registry)?;
    Ok((calls, if_exists, request.notify))
}

/// `notify` names a configured webhook, and comes with `Prefer: respond-async`.
fn check_notify(
    notify: Option<&str>,
    asynchronous: bool,
    webhooks: &crate::operations::webhooks::Webhooks,
) -> Option<FieldError> {
    let name = notify?;
    if !webhooks.knows(name) {
        let names: Vec<&str> = webhooks.names().collect();
        let detail = match names.is_empty() {
            true => "names no webhook: this gateway has none configured (operations.webhooks)"
                .to_owned(),
            false => format!("names no configured webhook: one of {}", names.join(", ")),
        };
        return Some(FieldError::new("/notify", detail));
    }
    (!asynchronous).then(|| {
        FieldError::new(
            "/notify",
            "applies to asynchronous operations only: send `Prefer: respond-async`",
        )
    })
}

/// A request's key as the store keeps it.
fn keyed(state: &ClientsState, key: String, fingerprint: String) -> Keyed {
    Keyed {
        store: state.store.clone(),
        key,
        fingerprint,
        lease: state.deadline + LEASE_MARGIN,
        ttl: state.idempotency_ttl,
    }
}

/// Plans (a dry run), or runs every target now, under its key when it has one.
async fn run(
    calls: Vec<Call>,
    dry_run: bool,
    keyed: Option<Keyed>,
    if_exists: IfExists,
    deadline: Instant,
    request_id: &RequestId,
) -> Result<MultiStatus, Problem> {
    let (operation_id, results) = match (dry_run, keyed) {
        (true, _) => (crate::ids::v7(), planned(&calls)),
        (false, None) => {
            let done = fanout::fan_out(calls, if_exists, deadline, request_id).await;
            let results = done.into_iter().map(|(p, d)| (p, d.result)).collect();
            (crate::ids::v7(), results)
        }
        // Boxed: a request without a key does not carry the keyed path's (larger) state.
        (false, Some(keyed)) => Box::pin(keyed::run(
            keyed,
            calls,
            if_exists,
            deadline,
            request_id.clone(),
        ))
        .await
        .map_err(|refusal| refused(refusal, request_id).with_request(request_id))?,
    };
    Ok(MultiStatus {
        operation_id,
        outcome: Outcome::of(results.values()),
        dry_run,
        results,
    })
}

/// What a dry run answers: each target's planned requests.
fn planned(calls: &[Call]) -> std::collections::BTreeMap<ProviderId, crate::results::TargetResult> {
    calls
        .iter()
        .map(|c| (c.provider, fanout::planned(&c.target, &c.plan)))
        .collect()
}

/// The body, within `server.body_timeout_ms` and `server.body_limit_bytes`.
async fn read_body_in_time(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ClientsState,
) -> Result<web::BytesMut, ApiError> {
    tokio::time::timeout(
        state.body_timeout,
        read_body(req, payload, state.body_limit),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout {
        ms: state.body_timeout.as_millis(),
    })?
}

/// The query (`dry_run`), the `Idempotency-Key` and the content type, checked before the body is
/// read.
fn read_head(req: &HttpRequest) -> Result<(bool, Option<IdempotencyKey>), ApiError> {
    let query = web::Query::<CreateQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let mut keys = req.headers().get_all("idempotency-key");
    let key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(v), None) => Some(IdempotencyKey::parse(v.as_bytes()).map_err(ApiError::BadRequest)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "the request has more than one Idempotency-Key header: send one key".into(),
            ))
        }
    };
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok((query.dry_run, key))
}

/// Why a keyed request was refused, as a problem.
fn refused(refusal: Refusal, request_id: &RequestId) -> ApiError {
    match refusal {
        Refusal::InFlight => ApiError::IdempotencyInFlight,
        Refusal::Mismatch => ApiError::IdempotencyMismatch,
        Refusal::Full => ApiError::StoreFull,
        Refusal::Store(e) => {
            tracing::error!(request_id = %request_id, error = %e, "idempotency store unavailable");
            ApiError::StoreUnavailable
        }
    }
}

/// The request's one log line.
fn log_finished(
    answer: &MultiStatus,
    request_id: &RequestId,
    caller: &Caller,
    targets: &str,
    started: Instant,
) {
    let per_target: Vec<String> = answer
        .results
        .iter()
        .map(|(p, r)| match &r.error {
            Some(e) => format!(
                "{p}={}:{}/{}ms",
                r.status.as_str(),
                e.kind.as_str(),
                r.duration_ms
            ),
            None => format!("{p}={}/{}ms", r.status.as_str(), r.duration_ms),
        })
        .collect();
    let replayed = answer.results.values().filter(|r| r.replayed).count();
    tracing::info!(
        request_id = %request_id,
        trace_id = crate::telemetry::trace_id(),
        caller = %crate::telemetry::printable(&caller.subject),
        operation_id = %answer.operation_id,
        targets = %targets,
        outcome = answer.outcome.as_str(),
        results = %per_target.join(","),
        replayed,
        dry_run = answer.dry_run,
        duration_ms = started.elapsed().as_millis() as u64,
        "clients request finished"
    );
}

fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(mime)) => {
            mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        }
        _ => false,
    }
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Most unknown fields reported in one answer.
const MAX_UNKNOWN_FIELDS: usize = 32;

/// JSON syntax faults are 400; a well-formed body of the wrong shape is 422 with a pointer. An
/// unknown field does not hide the body's other faults: it is reported, taken out, and the body
/// read again (the request and its unknown fields, which validation lists with the rest).
fn parse(body: &[u8]) -> Result<(CreateClientRequest, Vec<FieldError>), ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::MalformedJson("the body is empty".into())),
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "",
                "the body must be a JSON object with `client` and `targets`",
            )]))
        }
        Some(_) => {}
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let typed: Result<CreateClientRequest, _> = serde_path_to_error::deserialize(&mut de);
    let first = match typed {
        Ok(request) => {
            de.end()
                .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            return Ok((request, Vec::new()));
        }
        Err(e) if !e.inner().is_data() => {
            return Err(ApiError::MalformedJson(e.inner().to_string()))
        }
        Err(e) => field_error("", e.path(), &e.inner().to_string()),
    };
    if first.detail != UNKNOWN_FIELD {
        return Err(ApiError::Validation(vec![first]));
    }
    without_unknown_fields(body)
}

const UNKNOWN_FIELD: &str = "unknown field";

/// The body read with every unknown field taken out, and those fields' faults.
fn without_unknown_fields(body: &[u8]) -> Result<(CreateClientRequest, Vec<FieldError>), ApiError> {
    let mut value = request::strict_value(body).map_err(|e| ApiError::Validation(vec![e]))?;
    let mut unknown: Vec<FieldError> = Vec::new();
    loop {
        let fault = match serde_path_to_error::deserialize::<_, CreateClientRequest>(&value) {
            Ok(request) => return Ok((request, unknown)),
            Err(e) => field_error("", e.path(), &e.inner().to_string()),
        };
        if fault.detail != UNKNOWN_FIELD
            || unknown.len() >= MAX_UNKNOWN_FIELDS
            || !remove_at(&mut value, &fault.pointer)
        {
            unknown.push(fault);
            return Err(ApiError::Validation(unknown));
        }
        unknown.push(fault);
    }
}

/// Removes the member at `pointer` from `value`; whether it was there.
fn remove_at(value: &mut serde_json::Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    value
        .pointer_mut(parent)
        .and_then(serde_json::Value::as_object_mut)
        .is_some_and(|object| object.remove(&key).is_some())
}

/// Validates the client and every selected target; builds every provider request or none.
fn validate(
    request: &CreateClientRequest,
    if_exists: IfExists,
    unknown: Vec<FieldError>,
    registry: &Registry,
) -> Result<Vec<Call>, ApiError> {
    let mut errors = unknown;
    let client = NewClient::parse(request.client.as_ref(), &mut errors);
    let mut calls = Vec::new();
    match request.targets.as_ref().map(|t| &t.0) {
        None => errors.push(FieldError::new(
            "/targets",
            format!(
                "is required: select at least one of {}",
                ProviderId::known()
            ),
        )),
        Some(t) if t.is_empty() => errors.push(FieldError::new(
            "/targets",
            format!("select at least one of {}", ProviderId::known()),
        )),
        Some(targets) => {
            // By name, whatever the body's order: one body, one answer.
            let mut targets: Vec<_> = targets.iter().collect();
            targets.sort_unstable_by_key(|(name, _)| name.as_str());
            for (name, options) in targets {
                let planned = plan(name, options, client.as_ref(), if_exists, registry);
                match planned {
                    Ok(Some(call)) => calls.push(call),
                    Ok(None) => {}
                    Err(e) => errors.extend(e),
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(calls);
    }
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert(e.pointer.clone()));
    Err(ApiError::Validation(errors))
}

/// The call to the target `name` with its `options`; `None` when the client itself is invalid
/// (its faults are reported already).
fn plan(
    name: &str,
    options: &serde_json::Value,
    client: Option<&NewClient>,
    if_exists: IfExists,
    registry: &Registry,
) -> Result<Option<Call>, Vec<FieldError>> {
    let pointer = push("/targets", name);
    let Some(provider) = ProviderId::parse(name) else {
        return Err(vec![FieldError::new(
            pointer,
            format!("unknown target; known targets: {}", ProviderId::known()),
        )]);
    };
    let target = registry
        .get(provider)
        .map_err(|why| vec![FieldError::new(&pointer, why.0.clone())])?;
    if !options.is_object() {
        return Err(vec![FieldError::new(
            pointer,
            "must be an object of the provider's options (`{}` for the defaults)",
        )]);
    }
    let Some(client) = client else {
        return Ok(None);
    };
    let plan = target
        .adapter
        .plan(client, options, &target.options_at, if_exists)?;
    Ok(Some(Call {
        provider,
        target: target.clone(),
        plan,
        job: Job::Create,
        retry: None,
    }))
}
