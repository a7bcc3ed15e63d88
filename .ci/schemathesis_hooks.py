"""Schemathesis hooks for .ci/api-checks.

An Idempotency-Key names one request: the same key sent again with a different body is refused
(422, documented). A schema cannot say "never reuse a value", and the fuzzer draws short keys such as
"0" again and again, so each valid key it draws is made unique here. Invalid keys are left as drawn,
so the negative checks still see them.
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
