//! The life of a target as a table: a job and what is known of the target, the events each
//! action gives, the actions taken and the result finished with. The rows follow the paths the
//! API tests take through the real server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::adapter::Found;
use crate::fleet::Refused;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::secret::Credentials;

const T0: SystemTime = UNIX_EPOCH;
const LEFT: Duration = Duration::from_secs(5);

fn at(s: u64) -> SystemTime {
    T0 + Duration::from_secs(1_000_000 + s)
}

fn profile() -> TargetProfile {
    TargetProfile {
        if_exists: IfExists::Fail,
        findable: true,
        accepts_duplicates: false,
        resolves_id: false,
        settle: Duration::from_secs(60),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        credentials: None,
    }
}

fn adopting(accepts_duplicates: bool) -> TargetProfile {
    TargetProfile {
        if_exists: IfExists::Adopt,
        accepts_duplicates,
        ..profile()
    }
}

fn created(id: Option<&str>) -> TargetResult {
    TargetResult {
        provider_status: Some(201),
        provider_client_id: id.map(str::to_owned),
        attempts: 1,
        ..TargetResult::new(TargetStatus::Created)
    }
}

fn answered(status: u16, kind: ErrorKind, retry_after_s: Option<u64>) -> TargetResult {
    let mut err = ProviderError::new(kind, format!("answered {status}"));
    err.provider_status = Some(status);
    err.retry_after_s = retry_after_s;
    let mut result = TargetResult::failed(TargetStatus::Failed, err);
    result.attempts = 1;
    result
}

fn unanswered() -> TargetResult {
    let mut result = TargetResult::failed(
        TargetStatus::Unknown,
        ProviderError::new(ErrorKind::Timeout, "no answer within 5000 ms"),
    );
    result.attempts = 1;
    result
}

fn not_sent() -> TargetResult {
    TargetResult::failed(
        TargetStatus::Failed,
        ProviderError::new(
            ErrorKind::Unavailable,
            "every connection was busy; nothing was sent",
        ),
    )
}

fn found() -> Event {
    Event::LookedUp(LookupOutcome::Found(Found::new(
        "found-7".into(),
        json!({"id": "found-7"}),
    )))
}

fn not_found() -> Event {
    Event::LookedUp(LookupOutcome::NotFound)
}

fn lookup_failed() -> Event {
    Event::LookedUp(LookupOutcome::Failed(ProviderError::new(
        ErrorKind::Unavailable,
        "the list is down",
    )))
}

fn sent(result: TargetResult) -> Event {
    Event::Sent(Box::new(result))
}

/// Feeds `events` (one after each action), at the clock `clock` with `left` for every step; the
/// actions taken, in words, and the result.
fn drive(
    job: Job,
    profile: TargetProfile,
    events: Vec<Event>,
    clock: SystemTime,
    left: Duration,
) -> (Vec<String>, Finished) {
    let mut life = Life::new(job, profile);
    let mut events = events.into_iter();
    let mut taken = Vec::new();
    let mut event = Event::Began;
    loop {
        let now = Now {
            at: clock,
            left,
            jitter: 1.0,
        };
        let action = life.next(event, now);
        taken.push(match &action {
            Action::LookUp { since: None } => "look up".to_owned(),
            Action::LookUp { since: Some(t) } if *t == clock => "look up since sent".to_owned(),
            Action::LookUp { since: Some(_) } => "look up since started".to_owned(),
            Action::Wait(d) => format!("wait {} ms", d.as_millis()),
            other => other.name().to_owned(),
        });
        if let Action::Finish(done) = action {
            assert!(events.next().is_none(), "events left over: {taken:?}");
            return (taken, *done);
        }
        event = events
            .next()
            .unwrap_or_else(|| panic!("no event after {taken:?}"));
    }
}

fn run(job: Job, profile: TargetProfile, events: Vec<Event>) -> (Vec<String>, Finished) {
    drive(job, profile, events, at(0), LEFT)
}

fn message(done: &Finished) -> &str {
    &done.result.error.as_ref().expect("an error").message
}

fn steps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_create_answered_is_finished() {
    let (taken, done) = run(Job::Create, profile(), vec![sent(created(Some("1")))]);
    assert_eq!(taken, steps(&["send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert_eq!(done.sent, Some(at(0)));
    assert!(!done.result.replayed);
}

#[test]
fn an_id_the_create_does_not_answer_is_read_by_a_lookup() {
    let resolving = TargetProfile {
        resolves_id: true,
        ..profile()
    };
    let (taken, done) = run(
        Job::Create,
        resolving.clone(),
        vec![sent(created(None)), found()],
    );
    assert_eq!(taken, steps(&["send", "look up since sent", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert_eq!(done.result.provider_client_id.as_deref(), Some("found-7"));
    assert!(!done.result.reconciled);

    let (_, done) = run(
        Job::Create,
        resolving.clone(),
        vec![sent(created(None)), lookup_failed()],
    );
    assert_eq!(
        done.result.status,
        TargetStatus::Created,
        "created all the same"
    );
    assert_eq!(done.result.provider_client_id, None);

    let (taken, _) = drive(
        Job::Create,
        resolving,
        vec![sent(created(None))],
        at(0),
        Duration::from_millis(50),
    );
    assert_eq!(taken, steps(&["send", "finish"]), "no time left to look");
}

#[test]
fn an_unanswered_create_is_reconciled_by_a_lookup() {
    let with_password = TargetProfile {
        credentials: Some(Credentials {
            login: "nova".into(),
            password: "generated-password".to_owned().into(),
        }),
        ..profile()
    };
    let (taken, done) = run(
        Job::Create,
        with_password.clone(),
        vec![sent(unanswered()), found()],
    );
    assert_eq!(taken, steps(&["send", "look up since sent", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(done.result.reconciled);
    assert_eq!(done.result.attempts, 1);
    assert!(done.result.credentials.is_some(), "the gateway's password");

    let (_, done) = run(
        Job::Create,
        with_password,
        vec![sent(unanswered()), not_found()],
    );
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(
        done.result.credentials.is_some(),
        "an unknown target keeps the password it may have been created with"
    );

    let unfindable = TargetProfile {
        findable: false,
        ..profile()
    };
    let (taken, done) = run(Job::Create, unfindable, vec![sent(unanswered())]);
    assert_eq!(taken, steps(&["send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Unknown);
}

#[test]
fn a_5xx_is_looked_up_before_anything_is_sent_again() {
    // A 500 not found: failed, not sent again.
    let (taken, done) = run(
        Job::Create,
        profile(),
        vec![
            sent(answered(500, ErrorKind::Unavailable, None)),
            not_found(),
        ],
    );
    assert_eq!(taken, steps(&["send", "look up since sent", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert_eq!(done.result.attempts, 1);

    // A 503 not found: sent again after a backoff, like any safe request.
    let (taken, done) = run(
        Job::Create,
        profile(),
        vec![
            sent(answered(503, ErrorKind::Unavailable, None)),
            not_found(),
            Event::Waited,
            sent(created(Some("2"))),
        ],
    );
    assert_eq!(
        taken,
        steps(&[
            "send",
            "look up since sent",
            "wait 100 ms",
            "send",
            "finish"
        ])
    );
    assert_eq!(done.result.status, TargetStatus::Created);
    assert_eq!(done.result.attempts, 2);
    assert_eq!(done.sent, Some(at(0)), "the first send's time");

    // Its Retry-After is honoured.
    let (taken, _) = run(
        Job::Create,
        profile(),
        vec![
            sent(answered(503, ErrorKind::Unavailable, Some(1))),
            not_found(),
            Event::Waited,
            sent(created(Some("2"))),
        ],
    );
    assert_eq!(taken[2], "wait 1000 ms");

    // A redirect proves nothing either.
    let (taken, _) = run(
        Job::Create,
        profile(),
        vec![
            sent(answered(303, ErrorKind::InvalidResponse, None)),
            found(),
        ],
    );
    assert_eq!(taken, steps(&["send", "look up since sent", "finish"]));

    // Found: it was created after all.
    let (_, done) = run(
        Job::Create,
        profile(),
        vec![sent(answered(502, ErrorKind::Unavailable, None)), found()],
    );
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(done.result.reconciled);
}

#[test]
fn a_503_is_sent_again_within_the_attempts_only() {
    let once = TargetProfile {
        retry: RetryPolicy {
            max_attempts: 1,
            ..profile().retry
        },
        ..profile()
    };
    let (taken, done) = run(
        Job::Create,
        once,
        vec![
            sent(answered(503, ErrorKind::Unavailable, None)),
            not_found(),
        ],
    );
    assert_eq!(taken, steps(&["send", "look up since sent", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);
}

#[test]
fn a_5xx_no_lookup_can_settle_may_have_created_the_client() {
    let (taken, done) = run(
        Job::Create,
        profile(),
        vec![
            sent(answered(500, ErrorKind::Unavailable, None)),
            lookup_failed(),
            not_found(),
        ],
    );
    assert_eq!(
        taken,
        steps(&["send", "look up since sent", "look up since sent", "finish"]),
        "unknown, then reconciled like any unanswered create"
    );
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(
        message(&done).contains("the client may have been created (a lookup could not tell (the list is down)): not sent again"),
        "{}",
        message(&done)
    );

    let unfindable = TargetProfile {
        findable: false,
        ..profile()
    };
    let (taken, done) = run(
        Job::Create,
        unfindable,
        vec![sent(answered(500, ErrorKind::Unavailable, None))],
    );
    assert_eq!(taken, steps(&["send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(message(&done).contains("without its natural key"));
}

#[test]
fn a_conflict_fails_unless_adopting() {
    let (taken, done) = run(
        Job::Create,
        profile(),
        vec![sent(answered(400, ErrorKind::Conflict, None))],
    );
    assert_eq!(taken, steps(&["send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);

    let (taken, done) = run(
        Job::Create,
        adopting(false),
        vec![sent(answered(400, ErrorKind::Conflict, None)), found()],
    );
    assert_eq!(taken, steps(&["send", "look up", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Existing);
    assert_eq!(done.result.provider_client_id.as_deref(), Some("found-7"));
    assert!(!done.result.reconciled);
    assert_eq!(done.result.attempts, 1);

    let (_, done) = run(
        Job::Create,
        adopting(false),
        vec![sent(answered(400, ErrorKind::Conflict, None)), not_found()],
    );
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert!(message(&done).contains("no client with this key was found by a lookup"));
}

#[test]
fn adopting_at_a_provider_that_accepts_duplicates_looks_first_in_turn() {
    let (taken, done) = run(
        Job::Create,
        adopting(true),
        vec![Event::Guarded(Ok(())), found()],
    );
    assert_eq!(taken, steps(&["guard", "look up", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Existing);
    assert_eq!(done.sent, None, "nothing was sent");
    assert_eq!(done.result.attempts, 0);

    let (taken, done) = run(
        Job::Create,
        adopting(true),
        vec![
            Event::Guarded(Ok(())),
            not_found(),
            sent(created(Some("9"))),
        ],
    );
    assert_eq!(taken, steps(&["guard", "look up", "send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);

    let (_, done) = run(
        Job::Create,
        adopting(true),
        vec![Event::Guarded(Ok(())), lookup_failed()],
    );
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert!(message(&done).starts_with("could not check whether the client already exists"));
    assert_eq!(done.sent, None);

    let unfindable = TargetProfile {
        findable: false,
        ..adopting(true)
    };
    let (taken, _) = run(Job::Create, unfindable, vec![sent(created(Some("9")))]);
    assert_eq!(
        taken,
        steps(&["send", "finish"]),
        "no key: no guard, no lookup"
    );
}

#[test]
fn settling_an_earlier_unanswered_create() {
    let settle = |started| Job::Settle {
        started,
        interrupted: false,
    };
    // Found: created, reconciled, from the earlier request.
    let (taken, done) = drive(settle(at(0)), profile(), vec![found()], at(10), LEFT);
    assert_eq!(taken, steps(&["look up since started", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(done.result.reconciled && done.result.replayed);
    assert_eq!(done.sent, Some(at(0)));

    // Not found, too recent: still unknown, with when to come back.
    let (_, done) = drive(settle(at(0)), profile(), vec![not_found()], at(10), LEFT);
    assert_eq!(done.result.status, TargetStatus::Unknown);
    let err = done.result.error.as_ref().unwrap();
    assert_eq!(err.retry_after_s, Some(50));
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(done.result.replayed);

    // Not found, settled: sent again; a conflict now means the first one landed after all.
    let (taken, done) = drive(
        settle(at(0)),
        profile(),
        vec![
            not_found(),
            sent(answered(400, ErrorKind::Conflict, None)),
            found(),
        ],
        at(61),
        LEFT,
    );
    assert_eq!(
        taken,
        steps(&["look up since started", "send", "look up", "finish"])
    );
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(done.result.reconciled && !done.result.replayed);
    assert_eq!(done.sent, Some(at(61)));

    // The lookup failing: not sent again.
    let (_, done) = drive(
        settle(at(0)),
        profile(),
        vec![lookup_failed()],
        at(100),
        LEFT,
    );
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(message(&done).contains("a lookup could not tell (the list is down)"));

    // Without a natural key: never sent again.
    let unfindable = TargetProfile {
        findable: false,
        ..profile()
    };
    let (taken, done) = drive(settle(at(0)), unfindable, vec![], at(100), LEFT);
    assert_eq!(taken, steps(&["finish"]));
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(message(&done).contains("cannot be looked up without its natural key"));
}

#[test]
fn settling_an_interrupted_request_says_so() {
    let job = Job::Settle {
        started: at(0),
        interrupted: true,
    };
    let (_, done) = drive(job, profile(), vec![not_found()], at(10), LEFT);
    let err = done.result.error.as_ref().unwrap();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err
        .message
        .starts_with("an earlier attempt (a request with this Idempotency-Key, or the operation's) was interrupted"));
}

#[test]
fn rechecking_an_earlier_5xx() {
    let job = Job::Recheck { started: at(0) };
    let (taken, done) = drive(job, profile(), vec![found()], at(5), LEFT);
    assert_eq!(taken, steps(&["look up since started", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(done.result.reconciled && done.result.replayed);

    let (taken, done) = drive(
        job,
        profile(),
        vec![not_found(), sent(created(Some("3")))],
        at(5),
        LEFT,
    );
    assert_eq!(taken, steps(&["look up since started", "send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);
    assert!(!done.result.replayed);

    let (_, done) = drive(job, profile(), vec![lookup_failed()], at(5), LEFT);
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert!(done.result.error.as_ref().unwrap().retryable);
    assert!(message(&done).starts_with("not sent again"));

    let unfindable = TargetProfile {
        findable: false,
        ..profile()
    };
    let (taken, _) = drive(job, unfindable, vec![sent(created(Some("3")))], at(5), LEFT);
    assert_eq!(taken, steps(&["send", "finish"]));
}

/// At a tool that accepts duplicates, every job that looks the client up and may then create
/// it takes the guard first; a refused guard sends nothing.
#[test]
fn where_a_create_could_duplicate_the_guard_comes_first() {
    let duplicates = TargetProfile {
        accepts_duplicates: true,
        ..profile()
    };
    let settle = Job::Settle {
        started: at(0),
        interrupted: false,
    };
    let recheck = Job::Recheck { started: at(0) };
    let busy = || Event::Guarded(Err(Refused::Busy));
    let down = || Event::Guarded(Err(Refused::Unreachable("no answer within 1000 ms".into())));

    // Settling: in turn, then the lookup and (settled) the create sent again.
    let (taken, done) = drive(
        settle,
        duplicates.clone(),
        vec![
            Event::Guarded(Ok(())),
            not_found(),
            sent(created(Some("4"))),
        ],
        at(61),
        LEFT,
    );
    assert_eq!(
        taken,
        steps(&["guard", "look up since started", "send", "finish"])
    );
    assert_eq!(done.result.status, TargetStatus::Created);
    // Rechecking: in turn, then the lookup.
    let (taken, done) = drive(
        recheck,
        duplicates.clone(),
        vec![Event::Guarded(Ok(())), found()],
        at(5),
        LEFT,
    );
    assert_eq!(taken, steps(&["guard", "look up since started", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Created);

    // Refused: nothing looked up, nothing sent, retryable; each job says what it could not do.
    let (taken, done) = run(Job::Create, adopting(true), vec![down()]);
    assert_eq!(taken, steps(&["guard", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert_eq!(done.sent, None);
    let err = done.result.error.as_ref().unwrap();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.retryable);
    assert!(err.message.contains("nothing was sent") && err.message.contains("Redis"));
    let (_, done) = run(Job::Create, adopting(true), vec![busy()]);
    assert!(message(&done).contains("another request for the same client"));

    let (taken, done) = drive(settle, duplicates.clone(), vec![busy()], at(61), LEFT);
    assert_eq!(taken, steps(&["guard", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Unknown, "still unsettled");
    assert!(done.result.replayed);
    assert_eq!(done.sent, Some(at(0)), "the earlier send is kept");

    let (taken, done) = drive(recheck, duplicates.clone(), vec![down()], at(5), LEFT);
    assert_eq!(taken, steps(&["guard", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert!(message(&done).starts_with("not sent again"));

    // A tool that refuses duplicates needs no guard: its conflict answers.
    let (taken, _) = drive(settle, profile(), vec![found()], at(61), LEFT);
    assert_eq!(taken, steps(&["look up since started", "finish"]));
}

/// A create sent under the guard whose fate is unknown keeps the guard until it expires; any
/// other ending releases it.
#[test]
fn an_unknown_create_keeps_the_guard() {
    let (_, done) = run(
        Job::Create,
        TargetProfile {
            findable: false,
            ..adopting(true)
        },
        vec![sent(unanswered())],
    );
    assert_eq!(done.result.status, TargetStatus::Unknown);
    assert!(done.keep_guard);
    let (_, done) = run(
        Job::Create,
        adopting(true),
        vec![
            Event::Guarded(Ok(())),
            not_found(),
            sent(created(Some("9"))),
        ],
    );
    assert!(!done.keep_guard);
    let settle = Job::Settle {
        started: at(0),
        interrupted: false,
    };
    let duplicates = TargetProfile {
        accepts_duplicates: true,
        ..profile()
    };
    let (_, done) = drive(
        settle,
        duplicates,
        vec![Event::Guarded(Err(Refused::Busy))],
        at(61),
        LEFT,
    );
    assert!(!done.keep_guard, "nothing was sent here");
}

#[test]
fn what_was_not_sent_is_failed_without_a_lookup() {
    let (taken, done) = run(Job::Create, profile(), vec![sent(not_sent())]);
    assert_eq!(taken, steps(&["send", "finish"]));
    assert_eq!(done.result.status, TargetStatus::Failed);
    assert_eq!(done.result.attempts, 0);
}

#[test]
fn a_target_resumes_where_the_earlier_request_left_it() {
    let now = at(100);
    let job = |r: Resume| match r {
        Resume::Run(job) => Some(job),
        Resume::Settled(_) => None,
    };
    for status in [TargetStatus::Created, TargetStatus::Existing] {
        let previous = TargetResult::new(status);
        match resume(Some(&previous), Some(at(1)), None, now) {
            Resume::Settled(r) => assert!(r.replayed && r.status == status),
            Resume::Run(job) => panic!("{status:?} is settled, not {job:?}"),
        }
    }
    let unknown = unanswered();
    assert_eq!(
        job(resume(Some(&unknown), Some(at(1)), None, now)),
        Some(Job::Settle {
            started: at(1),
            interrupted: false
        })
    );
    assert_eq!(
        job(resume(Some(&unknown), None, None, now)),
        Some(Job::Settle {
            started: now,
            interrupted: false
        }),
        "an unknown send time: from now, later than any"
    );
    let refused = answered(400, ErrorKind::Validation, None);
    assert_eq!(
        job(resume(Some(&refused), Some(at(1)), None, now)),
        Some(Job::Create)
    );
    let five_hundred = answered(500, ErrorKind::Unavailable, None);
    assert_eq!(
        job(resume(Some(&five_hundred), Some(at(1)), None, now)),
        Some(Job::Recheck { started: at(1) })
    );
    let redirected = answered(303, ErrorKind::InvalidResponse, None);
    assert_eq!(
        job(resume(Some(&redirected), Some(at(1)), None, now)),
        Some(Job::Recheck { started: at(1) })
    );
    assert_eq!(job(resume(None, None, None, now)), Some(Job::Create));
    assert_eq!(
        job(resume(None, None, Some(at(50)), now)),
        Some(Job::Settle {
            started: at(50),
            interrupted: true
        }),
        "an interrupted request: settled from when it started"
    );
    assert_eq!(
        job(resume(Some(&refused), Some(at(1)), Some(at(50)), now)),
        Some(Job::Settle {
            started: at(1),
            interrupted: true
        })
    );
}
