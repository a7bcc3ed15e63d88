//! What `POST /clients` answers once a request passed validation: 207 Multi-Status.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::ProviderId;
use crate::results::{Outcome, TargetResult};

/// The answer to every `POST /clients` that passed validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultiStatus {
    /// Identifies this operation (a UUIDv7).
    pub operation_id: uuid::Uuid,
    pub outcome: Outcome,
    pub dry_run: bool,
    /// One result per selected target, keyed by provider.
    #[schema(value_type = BTreeMap<String, TargetResult>)]
    pub results: BTreeMap<ProviderId, TargetResult>,
}
