"""Schemathesis hooks for tests/schemathesis.rs.

A client sends a fresh Idempotency-Key with every new request; the fuzzer draws keys from a small
space and would reuse one with a different body, which the server rightly refuses (422
idempotency_key_reused). Well-formed keys get a unique suffix; malformed ones are left alone so
the server's refusal of them is still tested.
"""

import re
import uuid

import schemathesis

WELL_FORMED = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook("map_headers")
def fresh_idempotency_keys(ctx, headers):
    if headers:
        for name in list(headers):
            if name.lower() == "idempotency-key" and isinstance(headers[name], str) and WELL_FORMED.match(headers[name]):
                headers[name] = (headers[name][:200] + "-" + uuid.uuid4().hex)[:255]
    return headers
