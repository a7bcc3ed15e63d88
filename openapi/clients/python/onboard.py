"""Creates one client in all five providers through the client generated from openapi/openapi.json
by openapi-python-client, and reads the 207 with its types (checked by mypy --strict).

    GATEWAY_URL=http://127.0.0.1:8080 TOKEN=... python3 onboard.py

Exits non-zero unless every provider answers `created` with an id, the same request with
`if_exists: adopt` answers `existing` with the same ids, a body missing a required field is a
typed 422 problem pointing at it, and the request sent with `Prefer: respond-async` is a typed
202 operation that reads back `succeeded`.
"""

import os
import sys
import time
import uuid

from clients_gateway_client import AuthenticatedClient
from clients_gateway_client.api.clients import create_client, get_operation
from clients_gateway_client.models import (
    ChatdashMember,
    ChatdashOptions,
    ClientInput,
    ClockifyOptions,
    ContactInput,
    CreateClientRequest,
    IfExists,
    LuccaOptions,
    MissionxOptions,
    MultiStatus,
    Operation,
    OperationState,
    Outcome,
    PlusvibeOptions,
    PlusvibePermission,
    PlusvibeWorkspace,
    ProblemBody,
    TargetStatus,
    TargetsSchema,
)

PROVIDERS = ["lucca", "clockify", "plusvibe", "chatdash", "missionx"]


def request(suffix: str, if_exists: IfExists) -> CreateClientRequest:
    return CreateClientRequest(
        client=ClientInput(
            name=f"Nova Consulting {suffix}",
            code=f"NOVA-{suffix}",
            external_id=f"crm-{suffix}",
            email="billing@nova.example",
            language="en",
            contact=ContactInput(first_name="Nova", last_name="Smith", email=f"nova.{suffix}@nova.example"),
        ),
        targets=TargetsSchema(
            lucca=LuccaOptions(organization_id=12, owner_id=7),
            clockify=ClockifyOptions(workspace_id="64a687e29ae1f428e7ebe303"),
            plusvibe=PlusvibeOptions(
                workspace_id="65f99a0dd96fae8ab61130c0",
                workspaces=[
                    PlusvibeWorkspace(id="65f99a0dd96fae8ab61130c0", permission=PlusvibePermission.FULL_ACCESS)
                ],
            ),
            chatdash=ChatdashOptions(member=ChatdashMember(login_id=f"nova-{suffix}", name="Nova Smith")),
            missionx=MissionxOptions(departments=["6650c0ffee0000000000abcd"]),
        ),
        if_exists=if_exists,
    )


def ids(answer: MultiStatus, expected: TargetStatus) -> dict[str, str]:
    found: dict[str, str] = {}
    for provider in PROVIDERS:
        result = answer.results[provider]
        if result.status != expected:
            sys.exit(f"{provider}: expected {expected.value}, got {result.status.value}: {result.error}")
        if not isinstance(result.provider_client_id, str) or not result.provider_client_id:
            sys.exit(f"{provider}: no provider_client_id")
        found[provider] = result.provider_client_id
    return found


def main() -> None:
    client = AuthenticatedClient(base_url=os.environ["GATEWAY_URL"], token=os.environ["TOKEN"])
    suffix = uuid.uuid4().hex[:8].upper()

    first = create_client.sync_detailed(
        client=client, body=request(suffix, IfExists.FAIL), idempotency_key=f"onboard-{suffix}"
    )
    if first.status_code != 207 or not isinstance(first.parsed, MultiStatus):
        sys.exit(f"expected 207, got {first.status_code}: {first.content!r}")
    if first.parsed.outcome != Outcome.SUCCEEDED or first.parsed.dry_run:
        sys.exit(f"expected outcome succeeded, got {first.parsed.outcome.value}")
    created = ids(first.parsed, TargetStatus.CREATED)

    again = create_client.sync(client=client, body=request(suffix, IfExists.ADOPT))
    if not isinstance(again, MultiStatus):
        sys.exit(f"expected 207 on adopt, got {again!r}")
    adopted = ids(again, TargetStatus.EXISTING)
    if adopted != created:
        sys.exit(f"adopt found other clients: {adopted} != {created}")

    bad = request(suffix, IfExists.FAIL)
    bad.client.name = ""
    problem = create_client.sync(client=client, body=bad)
    if not isinstance(problem, ProblemBody) or problem.status != 422:
        sys.exit(f"expected a 422 problem, got {problem!r}")
    pointers = [e.pointer for e in problem.errors or []]
    if "/client/name" not in pointers:
        sys.exit(f"expected /client/name among {pointers}")

    later = create_client.sync_detailed(
        client=client, body=request(f"{suffix}-ASYNC", IfExists.FAIL), prefer="respond-async"
    )
    if later.status_code != 202 or not isinstance(later.parsed, Operation):
        sys.exit(f"expected 202, got {later.status_code}: {later.content!r}")
    operation: Operation | ProblemBody | None = later.parsed
    for _ in range(100):
        operation = get_operation.sync(client=client, operation_id=later.parsed.operation_id)
        if not isinstance(operation, Operation):
            sys.exit(f"expected the operation, got {operation!r}")
        if operation.done:
            break
        time.sleep(0.1)
    if not isinstance(operation, Operation) or operation.state != OperationState.SUCCEEDED:
        sys.exit(f"expected the operation succeeded, got {operation!r}")

    print(f"python client: created and adopted in {len(created)} providers: {created}; an operation succeeded")


if __name__ == "__main__":
    main()
