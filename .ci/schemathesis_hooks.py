"""Schemathesis hooks for .ci/api-checks.

An Idempotency-Key names one request: the same key sent again with a different body is refused
(422, documented). A schema cannot say "never reuse a value", and the fuzzer draws short keys such as
"0" again and again, so each valid key it draws is made unique here. Invalid keys are left as drawn,
so the negative checks still see them.

`notify` names a webhook of the gateway's configuration, and only with `Prefer: respond-async`
(otherwise a documented 422 at /notify): which names a deployment has, and the header it goes
with, are not something a schema can say. A drawn `notify` the schema allows is dropped; other
drawn values (a number, null, an empty or too long string) are left, so the negative checks still
see them. tests/api/webhooks.rs covers
`notify` against real receivers.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[ -~]{1,255}$")


@schemathesis.hook
def map_headers(ctx, headers):
    if headers:
        for name in list(headers):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
                headers[name] = value[:200] + "-" + uuid.uuid4().hex
    return headers


@schemathesis.hook
def map_body(ctx, body):
    notify = body.get("notify") if isinstance(body, dict) else None
    # Only a name the schema allows (1-64 characters): an invalid one stays, and is refused.
    if isinstance(notify, str) and 1 <= len(notify) <= 64:
        del body["notify"]
    return body
