"""Every method names its route in its docstring (`METHOD /path`); each must exist in the
committed openapi.json, so the client cannot drift from the contract unnoticed."""

import inspect
import json
import pathlib
import re

import driftstack

SPEC = json.loads((pathlib.Path(__file__).resolve().parents[3] / "openapi.json").read_text())
ROUTE = re.compile(r"`(GET|POST|PATCH|DELETE|PUT) (/v1/[^`]*)`")


def test_every_documented_route_is_in_the_spec():
    found = 0
    for cls in (driftstack.Sessions, driftstack.Profiles, driftstack.Usage, driftstack.Webhooks):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_"):
                continue
            routes = ROUTE.findall(fn.__doc__ or "")
            assert routes, f"{cls.__name__}.{name} names no route"
            for method, path in routes:
                ops = SPEC["paths"].get(path)
                assert ops and method.lower() in ops, f"{method} {path} is not in openapi.json"
                found += 1
    assert found >= 30
