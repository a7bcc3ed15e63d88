//! A target's life, as one pure state machine: [`Life::next`] takes what the last action gave
//! (an [`Event`]) and says what to do next (an [`Action`]): take the adoption guard, look the
//! client up, send the create, wait, or finish with the target's result. It owns every decision
//! about statuses, lookups and resends — creating, adopting (looking up first, or on a
//! conflict), checking a 5xx before sending again, reconciling an unanswered create, reading an
//! id the create does not answer, settling or rechecking an earlier request's target — and does
//! no I/O: the executor in [`super`] does the sends, lookups and waits, and knows no status.
//!
//! Where a target of an earlier request with the same `Idempotency-Key` stands decides how this
//! one starts ([`resume`]).

use std::time::{Duration, SystemTime};

use crate::adapter::Found;
use crate::domain::IfExists;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::resilience::{Attempt, Decision, RetryPolicy};
use crate::results::{TargetResult, TargetStatus};
use crate::secret::Credentials;

use super::lookup::LookupOutcome;
use crate::fleet::Refused;

/// A reconciliation lookup is not started with less time than this left.
pub const MIN_LOOKUP_TIME: Duration = Duration::from_millis(100);

/// What to do at a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Create the client (adopting it first, with `if_exists: adopt`).
    Create,
    /// An earlier request with the same `Idempotency-Key` sent the create at `started` and got
    /// no answer (or was interrupted, its replica gone): find it, or send it again once the
    /// provider has had `settle_s` to act.
    Settle {
        started: SystemTime,
        interrupted: bool,
    },
    /// An earlier request with the same `Idempotency-Key` got a 5xx at `started` (and a lookup
    /// then did not find the client): look again before creating it.
    Recheck { started: SystemTime },
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Create => "create",
            Job::Settle { .. } => "settle",
            Job::Recheck { .. } => "recheck",
        }
    }
}

/// How a target of this request starts, from what an earlier request with the same key left.
#[derive(Debug, Clone)]
pub enum Resume {
    /// Settled already (created or existing): answered from the record, not sent again.
    Settled(Box<TargetResult>),
    /// Still to do.
    Run(Job),
}

/// Where a target stands given the earlier request's `previous` result for it (if any), when
/// that request sent its create (`previous_sent`), and, if it was interrupted before recording
/// (its replica gone), since when (`interrupted`). `now` stands in for an unknown time: later
/// than any send, so that settling waits at least as long.
pub fn resume(
    previous: Option<&TargetResult>,
    previous_sent: Option<SystemTime>,
    interrupted: Option<SystemTime>,
    now: SystemTime,
) -> Resume {
    match previous.map(|r| r.status) {
        Some(TargetStatus::Created | TargetStatus::Existing) => {
            Resume::Settled(Box::new(TargetResult {
                replayed: true,
                ..previous.expect("matched").clone()
            }))
        }
        Some(TargetStatus::Unknown) => Resume::Run(Job::Settle {
            started: previous_sent.unwrap_or(now),
            interrupted: false,
        }),
        _ if interrupted.is_some() => Resume::Run(Job::Settle {
            started: previous_sent.or(interrupted).unwrap_or(now),
            interrupted: true,
        }),
        // A 5xx (or a 3xx, an unasked 1xx) does not prove nothing was created: look before
        // creating again.
        _ if previous.and_then(TargetResult::answered_unsure).is_some() => {
            Resume::Run(Job::Recheck {
                started: previous_sent.unwrap_or(now),
            })
        }
        _ => Resume::Run(Job::Create),
    }
}

/// What the last action gave.
#[derive(Debug)]
pub enum Event {
    /// Nothing yet: the target's first step.
    Began,
    /// The guard of the client's natural key is held, or was refused (another request held it
    /// all along, or the shared store did not answer): nothing was sent.
    Guarded(Result<(), Refused>),
    /// The create was sent (or could not be): its result, read by the adapter.
    Sent(Box<TargetResult>),
    /// A lookup ended.
    LookedUp(LookupOutcome),
    /// The wait is over.
    Waited,
}

/// What to do next.
#[derive(Debug)]
pub enum Action {
    /// Take the guard of the client's natural key (where a create could duplicate, requests for
    /// one client take turns, fleet-wide with Redis); it is held until the target finishes.
    Guard,
    /// Look the client up; `since`: a time before it can have been created.
    LookUp { since: Option<SystemTime> },
    /// Send the create once.
    Send,
    /// Wait this long, then send the create again.
    Wait(Duration),
    /// The target's result.
    Finish(Box<Finished>),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Guard => "guard",
            Action::LookUp { .. } => "look up",
            Action::Send => "send",
            Action::Wait(_) => "wait",
            Action::Finish(_) => "finish",
        }
    }
}

/// How a target finished: its result, and when the create it is about was first sent (what a
/// later lookup needs).
#[derive(Debug, Clone)]
pub struct Finished {
    pub result: TargetResult,
    pub sent: Option<SystemTime>,
    /// Keep the guard (if one is held) until it expires rather than release it: a create whose
    /// fate is unknown may still land, and another request must not look and create meanwhile.
    pub keep_guard: bool,
}

/// The clock and the time left, as the executor sees them before a decision.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: SystemTime,
    /// The time the next step has: the target's timeout, within the request's deadline.
    pub left: Duration,
    /// In `[0, 1]`: scales a retry's backoff ("full jitter").
    pub jitter: f64,
}

/// What is known of the target before it starts.
#[derive(Debug, Clone)]
pub struct TargetProfile {
    pub if_exists: IfExists,
    /// The request gives the client's natural key at this provider (it can be looked up).
    pub findable: bool,
    pub accepts_duplicates: bool,
    pub resolves_id: bool,
    /// `providers.<name>.settle_s`.
    pub settle: Duration,
    pub retry: RetryPolicy,
    /// Credentials the gateway generated for this target.
    pub credentials: Option<Credentials>,
}

/// Where the target is.
#[derive(Debug)]
enum Step {
    Begin,
    Guarding,
    LookingBeforeCreate,
    /// The create was sent; `again`: a settled target's create sent anew.
    Sending {
        again: bool,
    },
    /// A 5xx was answered: is the client there?
    CheckingUnsure {
        result: Box<TargetResult>,
        code: u16,
        again: bool,
    },
    OnConflict {
        conflict: Box<TargetResult>,
        as_status: TargetStatus,
    },
    Reconciling {
        unknown: Box<TargetResult>,
    },
    Resolving {
        created: Box<TargetResult>,
    },
    Settling {
        started: SystemTime,
    },
    Rechecking {
        started: SystemTime,
    },
    Finished,
}

/// One target's life.
#[derive(Debug)]
pub struct Life {
    job: Job,
    profile: TargetProfile,
    step: Step,
    /// Create requests sent so far.
    attempts: u32,
    /// When the create was (first) sent in this request.
    sent: Option<SystemTime>,
}

impl Life {
    pub fn new(job: Job, profile: TargetProfile) -> Self {
        Self {
            job,
            profile,
            step: Step::Begin,
            attempts: 0,
            sent: None,
        }
    }

    /// The next action, given what the last one gave.
    pub fn next(&mut self, event: Event, now: Now) -> Action {
        let step = std::mem::replace(&mut self.step, Step::Finished);
        match (step, event) {
            (Step::Begin, Event::Began) => self.begin(now),
            (Step::Guarding, Event::Guarded(Ok(()))) => self.start(now),
            (Step::Guarding, Event::Guarded(Err(refused))) => self.refused(&refused),
            (Step::LookingBeforeCreate, Event::LookedUp(looked)) => self.adopt(looked, now),
            (Step::Sending { again }, Event::Sent(result)) => self.sent(*result, again, now),
            (Step::Sending { again }, Event::Waited) => {
                self.step = Step::Sending { again };
                Action::Send
            }
            (
                Step::CheckingUnsure {
                    result,
                    code,
                    again,
                },
                Event::LookedUp(looked),
            ) => self.checked_unsure(*result, code, again, looked, now),
            (
                Step::OnConflict {
                    conflict,
                    as_status,
                },
                Event::LookedUp(looked),
            ) => self.finish(on_conflict(*conflict, as_status, looked)),
            (Step::Reconciling { unknown }, Event::LookedUp(looked)) => {
                self.reconciled(*unknown, looked)
            }
            (Step::Resolving { mut created }, Event::LookedUp(looked)) => {
                if let LookupOutcome::Found(found) = looked {
                    created.provider_client_id = Some(found.id);
                }
                self.finish(*created)
            }
            (Step::Settling { started }, Event::LookedUp(looked)) => {
                self.settled(started, looked, now)
            }
            (Step::Rechecking { started }, Event::LookedUp(looked)) => {
                self.rechecked(started, looked, now)
            }
            (step, event) => unreachable!("no transition from {step:?} on {event:?}"),
        }
    }

    /// Whether the job looks the client up and may then create it at a tool that takes
    /// duplicates: then requests for one client take turns.
    fn guarded_job(&self) -> bool {
        let t = &self.profile;
        let looks_then_creates = match self.job {
            Job::Create => t.if_exists == IfExists::Adopt,
            Job::Settle { .. } | Job::Recheck { .. } => true,
        };
        looks_then_creates && t.findable && t.accepts_duplicates
    }

    fn begin(&mut self, now: Now) -> Action {
        if self.guarded_job() {
            self.step = Step::Guarding;
            return Action::Guard;
        }
        self.start(now)
    }

    /// The job's first step once any guard is held.
    fn start(&mut self, now: Now) -> Action {
        match self.job {
            Job::Create if self.profile.if_exists == IfExists::Adopt && self.guarded_job() => {
                self.step = Step::LookingBeforeCreate;
                Action::LookUp { since: None }
            }
            Job::Create => self.send(false, now),
            Job::Settle { started, .. } if !self.profile.findable => self.finish_replayed(
                unsettled(
                    self.job,
                    "the client may have been created; not sent again, and it cannot be looked up without its natural key: check in the provider, then use a new key for the targets still missing",
                ),
                started,
            ),
            Job::Settle { started, .. } => {
                self.step = Step::Settling { started };
                Action::LookUp {
                    since: Some(started),
                }
            }
            Job::Recheck { .. } if !self.profile.findable => self.send(false, now),
            Job::Recheck { started } => {
                self.step = Step::Rechecking { started };
                Action::LookUp {
                    since: Some(started),
                }
            }
        }
    }

    /// The guard was refused: nothing is sent.
    fn refused(&mut self, refused: &Refused) -> Action {
        let why = match refused {
            Refused::Busy => "another request for the same client (on this or another replica) held its turn for as long as this one could wait".to_owned(),
            Refused::Unreachable(e) => format!("the replicas' shared store (Redis) did not answer ({e}), and without it two replicas could create the client twice"),
        };
        match self.job {
            Job::Create => self.finish_unsent(not_sent(
                "could not check whether the client already exists (if_exists: adopt)",
                &why,
            )),
            Job::Settle { started, .. } => self.finish_replayed(
                unsettled(self.job, &format!("not looked up nor sent again: {why}; retry later")),
                started,
            ),
            Job::Recheck { started } => self.finish_replayed(
                not_sent(
                    "not sent again: an earlier attempt (answered with a 5xx) may have created the client",
                    &why,
                ),
                started,
            ),
        }
    }

    fn send(&mut self, again: bool, now: Now) -> Action {
        self.sent = Some(now.at);
        self.step = Step::Sending { again };
        Action::Send
    }

    /// With `adopt`, at a provider that accepts duplicates: the lookup before the create.
    fn adopt(&mut self, looked: LookupOutcome, now: Now) -> Action {
        match looked {
            LookupOutcome::Found(found) => self.finish_unsent(found_as(found, TargetStatus::Existing)),
            LookupOutcome::NotFound => self.send(false, now),
            LookupOutcome::Failed(e) => self.finish_unsent(TargetResult::failed(
                TargetStatus::Failed,
                ProviderError {
                    message: format!(
                        "could not check whether the client already exists (if_exists: adopt); nothing was created: {}",
                        e.message
                    ),
                    ..e
                },
            )),
        }
    }

    /// The create's result. An answer that is neither a success nor a refusal (a 5xx, a 3xx, an
    /// unasked 1xx) does not prove that nothing was created: the client is looked up first, when
    /// it can be.
    fn sent(&mut self, mut result: TargetResult, again: bool, now: Now) -> Action {
        self.attempts += result.attempts;
        result.attempts = self.attempts;
        let Some(code) = result.answered_unsure() else {
            return self.after_send(result, again, now);
        };
        match self.can_look_up(now) {
            Err(why) => self.after_send(result.may_exist(why), again, now),
            Ok(()) => {
                self.step = Step::CheckingUnsure {
                    result: Box::new(result),
                    code,
                    again,
                };
                Action::LookUp { since: self.sent }
            }
        }
    }

    /// After a 5xx: found → `created` (`reconciled`); not found → failed, and a 503 is sent
    /// again like any safe request (within the attempts and the time); the lookup failing →
    /// `unknown`.
    fn checked_unsure(
        &mut self,
        result: TargetResult,
        code: u16,
        again: bool,
        looked: LookupOutcome,
        now: Now,
    ) -> Action {
        match looked {
            LookupOutcome::Found(found) => {
                let found = TargetResult {
                    attempts: self.attempts,
                    credentials: self.profile.credentials.clone(),
                    ..reconciled(found)
                };
                self.finish(found)
            }
            LookupOutcome::Failed(e) => {
                let why = format!("a lookup could not tell ({})", e.message);
                self.after_send(result.may_exist(&why), again, now)
            }
            LookupOutcome::NotFound => {
                let retry_after = result
                    .error
                    .as_ref()
                    .and_then(|e| e.retry_after_s)
                    .map(Duration::from_secs);
                let attempt = Attempt::Answered {
                    status: code,
                    retry_after,
                };
                let decision =
                    self.profile
                        .retry
                        .decide(attempt, self.attempts, now.left, now.jitter, true);
                match (code, decision) {
                    (503, Decision::RetryAfter(pause)) => {
                        self.step = Step::Sending { again };
                        Action::Wait(pause)
                    }
                    _ => self.after_send(result, again, now),
                }
            }
        }
    }

    /// A create's result, 5xx checks done: a conflict is looked up (with `adopt`, or when the
    /// create was sent again: the first one landed after all), an unanswered create is
    /// reconciled, a created client without its id has it read.
    fn after_send(&mut self, result: TargetResult, again: bool, now: Now) -> Action {
        let conflict = result.is_conflict();
        let adopt = self.profile.if_exists == IfExists::Adopt;
        if conflict && (adopt || again) {
            if !self.profile.findable {
                return self.finish(result);
            }
            let as_status = if again {
                TargetStatus::Created
            } else {
                TargetStatus::Existing
            };
            self.step = Step::OnConflict {
                conflict: Box::new(result),
                as_status,
            };
            return Action::LookUp { since: None };
        }
        if result.status == TargetStatus::Unknown {
            return self.look_for(result, now, |unknown| Step::Reconciling {
                unknown: Box::new(unknown),
            });
        }
        if !again
            && result.status == TargetStatus::Created
            && result.provider_client_id.is_none()
            && self.profile.resolves_id
        {
            return self.look_for(result, now, |created| Step::Resolving {
                created: Box::new(created),
            });
        }
        self.finish(result)
    }

    /// Looks up the client whose create was sent, if it can be (and then `step` waits for it);
    /// else finishes with `result`.
    fn look_for(
        &mut self,
        result: TargetResult,
        now: Now,
        step: impl FnOnce(TargetResult) -> Step,
    ) -> Action {
        match self.can_look_up(now) {
            Ok(()) => {
                self.step = step(result);
                Action::LookUp { since: self.sent }
            }
            Err(_) => self.finish(result),
        }
    }

    /// After an unanswered create: found → `created`, `reconciled`; else it stays `unknown`
    /// (the provider may be acting on it yet; a replay with the same key settles it).
    fn reconciled(&mut self, unknown: TargetResult, looked: LookupOutcome) -> Action {
        match looked {
            LookupOutcome::Found(found) => {
                let found = TargetResult {
                    attempts: unknown.attempts,
                    credentials: self.profile.credentials.clone(),
                    ..reconciled(found)
                };
                self.finish(found)
            }
            LookupOutcome::NotFound | LookupOutcome::Failed(_) => self.finish(unknown),
        }
    }

    /// An earlier unanswered create: found → `created`, `reconciled`; not found → sent again
    /// once the provider has had `settle_s` to act, `unknown` (with when to come back) before.
    fn settled(&mut self, started: SystemTime, looked: LookupOutcome, now: Now) -> Action {
        let result = match looked {
            LookupOutcome::Found(found) => reconciled(found),
            LookupOutcome::Failed(e) => unsettled(
                self.job,
                &format!(
                    "the client may have been created; a lookup could not tell ({}), so it was not sent again: retry later",
                    e.message
                ),
            ),
            LookupOutcome::NotFound => match (started + self.profile.settle).duration_since(now.at) {
                Err(_) => return self.send(true, now),
                Ok(wait) => {
                    let mut result = unsettled(
                        self.job,
                        &format!(
                            "the client is not found at the provider yet, which may still be acting on it; sent again only {} s after the first attempt: retry after that",
                            self.profile.settle.as_secs()
                        ),
                    );
                    if let Some(e) = result.error.as_mut() {
                        e.retry_after_s = Some(wait.as_secs().max(1));
                    }
                    result
                }
            },
        };
        self.finish_replayed(result, started)
    }

    /// Before sending a create again after a 5xx: found → `created` (`reconciled`); not found →
    /// created now; the lookup failing → not sent.
    fn rechecked(&mut self, started: SystemTime, looked: LookupOutcome, now: Now) -> Action {
        let result = match looked {
            LookupOutcome::Found(found) => reconciled(found),
            LookupOutcome::NotFound => return self.send(false, now),
            LookupOutcome::Failed(e) => TargetResult::failed(
                TargetStatus::Failed,
                ProviderError {
                    message: format!(
                        "not sent again: a lookup could not tell whether an earlier attempt (answered with a 5xx) created the client ({}); retry later",
                        e.message
                    ),
                    retryable: true,
                    ..e
                },
            ),
        };
        self.finish_replayed(result, started)
    }

    /// Whether a lookup of the sent create can be made now, else why not.
    fn can_look_up(&self, now: Now) -> Result<(), &'static str> {
        if !self.profile.findable {
            Err("it cannot be looked up without its natural key")
        } else if now.left < MIN_LOOKUP_TIME {
            Err("no time was left to look it up")
        } else {
            Ok(())
        }
    }

    /// Finishes with `result`, about the create sent in this request.
    fn finish(&mut self, result: TargetResult) -> Action {
        let sent = self.sent;
        self.done(result, sent)
    }

    /// Finishes without having sent a create.
    fn finish_unsent(&mut self, result: TargetResult) -> Action {
        self.done(result, None)
    }

    /// Finishes with what an earlier request's create (sent at `started`) came to.
    fn finish_replayed(&mut self, mut result: TargetResult, started: SystemTime) -> Action {
        result.replayed = true;
        self.done(result, Some(started))
    }

    fn done(&mut self, mut result: TargetResult, sent: Option<SystemTime>) -> Action {
        self.step = Step::Finished;
        let unknown = result.status == TargetStatus::Unknown;
        if unknown && result.credentials.is_none() {
            // The member may exist with the password the gateway chose: the caller needs it.
            result.credentials = self.profile.credentials.clone();
        }
        Action::Finish(Box::new(Finished {
            result,
            sent,
            keep_guard: unknown && self.attempts > 0,
        }))
    }
}

/// A conflict's lookup: found → `as_status` with its id (`reconciled` when it is a create sent
/// again); else the conflict, with what the lookup said.
fn on_conflict(
    conflict: TargetResult,
    as_status: TargetStatus,
    looked: LookupOutcome,
) -> TargetResult {
    match looked {
        LookupOutcome::Found(found) => TargetResult {
            attempts: conflict.attempts,
            reconciled: as_status == TargetStatus::Created,
            ..found_as(found, as_status)
        },
        LookupOutcome::NotFound => conflict.with_note(
            "the provider refused it as a duplicate, and no client with this key was found by a lookup (it may be elsewhere than the request names, or differ in case)",
        ),
        LookupOutcome::Failed(e) => conflict.with_note(&format!(
            "a lookup could not find the existing client: {}",
            e.message
        )),
    }
}

fn found_as(found: Found, status: TargetStatus) -> TargetResult {
    TargetResult::found(status, found.id, found.record, found.matches)
}

fn reconciled(found: Found) -> TargetResult {
    TargetResult::reconciled(found.id, found.record, found.matches)
}

/// Nothing sent (`what`, because `why`): failed, retryable.
fn not_sent(what: &str, why: &str) -> TargetResult {
    let mut err = ProviderError::new(
        ErrorKind::Unavailable,
        format!("{what}; nothing was sent: {why}"),
    );
    err.retryable = true;
    TargetResult::failed(TargetStatus::Failed, err)
}

/// An earlier request's create not settled here: `unknown`, retryable.
fn unsettled(job: Job, message: &str) -> TargetResult {
    let interrupted = matches!(
        job,
        Job::Settle {
            interrupted: true,
            ..
        }
    );
    let (kind, prefix) = if interrupted {
        (
            ErrorKind::Internal,
            "an earlier attempt (a request with this Idempotency-Key, or the operation's) was interrupted before recording this target",
        )
    } else {
        (
            ErrorKind::Timeout,
            "an earlier attempt (a request with this Idempotency-Key, or the operation's) got no answer from this provider",
        )
    };
    let mut err = ProviderError::new(kind, format!("{prefix}; {message}"));
    err.retryable = true;
    TargetResult::failed(TargetStatus::Unknown, err)
}

#[cfg(test)]
mod tests;
