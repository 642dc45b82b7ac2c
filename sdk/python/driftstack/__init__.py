"""A thin client for the Driftstack API (standard library only).

    from driftstack import Client

    ds = Client("ds_live_…", base_url="http://127.0.0.1:8080")
    session = ds.sessions.create()
    ds.sessions.navigate(session["id"], "https://example.com")
    png = ds.sessions.capture(session["id"], format="png")
    ds.sessions.release(session["id"])

Answers are the API's JSON objects as dicts. Errors are `DriftstackError` (an RFC 9457 problem:
`status`, `code`, `detail`, field-level `errors`). GETs, DELETEs and POSTs (which get an
automatic `Idempotency-Key`) are retried on 429/503 after `retry-after` and on connection errors.
Every method maps to one route of `openapi.json`; `tests/test_spec.py` checks that they exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, Iterator, List, Mapping, Optional

__all__ = ["Client", "DriftstackError", "verify_webhook", "WebhookVerificationError"]
__version__ = "0.1.0"


class DriftstackError(Exception):
    """A problem answer (`application/problem+json`) or a transport failure (`status` 0)."""

    def __init__(self, status: int, problem: Mapping[str, Any]):
        self.status = status
        self.problem = dict(problem)
        self.code: Optional[str] = problem.get("code")
        self.detail: str = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        self.errors: Dict[str, str] = dict(problem.get("errors") or {})
        super().__init__(f"{status} {self.code or ''}: {self.detail}".strip())


class Client:
    """One API key (or dashboard token) against one Driftstack server."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "http://127.0.0.1:8080",
        timeout: float = 120.0,
        max_retries: int = 3,
        page_size: int = 100,
    ):
        self.api_key = api_key
        self.page_size = page_size
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.sessions = Sessions(self)
        self.profiles = Profiles(self)
        self.usage = Usage(self)
        self.webhooks = Webhooks(self)

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Optional[Mapping[str, Any]] = None,
        query: Optional[Mapping[str, Any]] = None,
        raw: bool = False,
        content: Optional[bytes] = None,
    ) -> Any:
        """Sends one request; returns the decoded JSON (or bytes with `raw`). `content` sends raw
        bytes instead of a JSON body (file uploads; not idempotent)."""
        url = self.base_url + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs, doseq=True)
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if content is not None:
            data = content
            headers["Content-Type"] = "application/octet-stream"
        elif method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        attempt = 0
        while True:
            attempt += 1
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                    if raw:
                        return payload
                    if not payload:
                        return None
                    return json.loads(payload)
            except urllib.error.HTTPError as err:
                payload = err.read()
                try:
                    problem = json.loads(payload) if payload else {}
                except ValueError:
                    problem = {"title": payload[:200].decode(errors="replace")}
                if err.code in (429, 503) and attempt <= self.max_retries:
                    time.sleep(_retry_after(err.headers.get("retry-after"), attempt))
                    continue
                raise DriftstackError(err.code, problem) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                if attempt <= self.max_retries:
                    time.sleep(_retry_after(None, attempt))
                    continue
                raise DriftstackError(0, {"title": "connection failed", "detail": str(err)}) from None

    def paginate(self, path: str, query: Optional[Mapping[str, Any]] = None) -> Iterator[Dict[str, Any]]:
        """Every item of a cursor-paginated list, fetching pages of `page_size` as needed."""
        params = dict(query or {})
        params["limit"] = self.page_size
        while True:
            page = self.request("GET", path, query=params)
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]


def _retry_after(value: Optional[str], attempt: int) -> float:
    try:
        return min(float(value), 60.0) if value is not None else min(0.5 * 2 ** (attempt - 1), 8.0)
    except ValueError:
        return 1.0


def _path(template: str, **ids: str) -> str:
    for name, value in ids.items():
        template = template.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
    return template


def _body(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class Sessions:
    """Browser sessions: create, drive over REST, capture, release."""

    def __init__(self, client: Client):
        self._c = client

    def create(self, **options: Any) -> Dict[str, Any]:
        """`POST /v1/sessions`. Options as in the API: `profile_id`, `persist`, `viewport`,
        `user_agent`, `locale`, `timezone`, `timeout_seconds`, `idle_timeout_seconds`, `block`,
        `extra_headers`, `proxy`, `record`, `record_options`. The answer's `connect_url` is for Playwright's
        `chromium.connect_over_cdp` and Puppeteer's `connect`."""
        return self._c.request("POST", "/v1/sessions", _body(**options))

    def get(self, session_id: str) -> Dict[str, Any]:
        """`GET /v1/sessions/{id}`."""
        return self._c.request("GET", _path("/v1/sessions/{id}", id=session_id))

    def list(self, status: Optional[str] = None) -> Iterator[Dict[str, Any]]:
        """`GET /v1/sessions`, newest first; `status="live"` for live ones only."""
        return self._c.paginate("/v1/sessions", {"status": status})

    def navigate(self, session_id: str, url: str, wait_until: Optional[str] = None,
                 timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/navigate`."""
        return self._c.request("POST", _path("/v1/sessions/{id}/navigate", id=session_id),
                               _body(url=url, wait_until=wait_until, timeout_ms=timeout_ms))

    def actions(self, session_id: str, actions: List[Mapping[str, Any]],
                timeout_ms: Optional[int] = None) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/actions`: click, type, press, select, scroll, hover, evaluate…"""
        return self._c.request("POST", _path("/v1/sessions/{id}/actions", id=session_id),
                               _body(actions=list(actions), timeout_ms=timeout_ms))

    def wait(self, session_id: str, timeout_ms: int, **condition: Any) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/wait`: `selector`/`state`, `navigation` or `network_idle`."""
        return self._c.request("POST", _path("/v1/sessions/{id}/wait", id=session_id),
                               _body(timeout_ms=timeout_ms, **condition))

    def capture(self, session_id: str, format: str = "png", **options: Any) -> bytes:
        """`POST /v1/sessions/{id}/capture`: the bytes (PNG, JPEG, WebP, PDF, HTML or text)."""
        return self._c.request("POST", _path("/v1/sessions/{id}/capture", id=session_id),
                               _body(format=format, **options), raw=True)

    def downloads(self, session_id: str) -> Iterator[Dict[str, Any]]:
        """`GET /v1/sessions/{id}/downloads`: the session's downloads, oldest first."""
        return self._c.paginate(_path("/v1/sessions/{id}/downloads", id=session_id))

    def download(self, session_id: str, download_id: str) -> bytes:
        """`GET /v1/sessions/{id}/downloads/{download_id}`: a completed download's bytes."""
        return self._c.request("GET", _path("/v1/sessions/{id}/downloads/{download_id}",
                                            id=session_id, download_id=download_id), raw=True)

    def logs(self, session_id: str, type: Optional[str] = None) -> Iterator[Dict[str, Any]]:
        """`GET /v1/sessions/{id}/logs`: the session's log entries (`console`, `page`, `network`,
        `cdp`, or all when `type` is None), oldest first."""
        return self._c.paginate(_path("/v1/sessions/{id}/logs", id=session_id),
                                {"type": type} if type else None)

    def har(self, session_id: str) -> Dict[str, Any]:
        """`GET /v1/sessions/{id}/har`: the session's network log as a HAR 1.2 document."""
        return self._c.request("GET", _path("/v1/sessions/{id}/har", id=session_id))

    def recording(self, session_id: str) -> List[Dict[str, Any]]:
        """`GET /v1/sessions/{id}/recording`: a recorded session's rrweb events so far."""
        return self._c.request("GET", _path("/v1/sessions/{id}/recording", id=session_id))

    def last_frame(self, session_id: str) -> bytes:
        """`GET /v1/sessions/{id}/last-frame`: a JPEG of the page as the ended session ended."""
        return self._c.request("GET", _path("/v1/sessions/{id}/last-frame", id=session_id),
                               raw=True)

    def set_recording(self, session_id: str, record: bool) -> Dict[str, Any]:
        """`PATCH /v1/sessions/{id}`: pauses (False) or resumes (True) the session's recording."""
        return self._c.request("PATCH", _path("/v1/sessions/{id}", id=session_id),
                               {"record": record})

    def create_live_link(self, session_id: str, mode: str = "view",
                         expires_in_seconds: Optional[int] = None) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/live-links`: a one-time URL to the session's live view
        (`view` or `interact`) to send to a person or embed in an iframe."""
        return self._c.request("POST", _path("/v1/sessions/{id}/live-links", id=session_id),
                               _body(mode=mode, expires_in_seconds=expires_in_seconds))

    def revoke_live_link(self, session_id: str, link_id: str) -> None:
        """`DELETE /v1/sessions/{id}/live-links/{link_id}`: the link stops working; its viewers
        are disconnected."""
        self._c.request("DELETE", _path("/v1/sessions/{id}/live-links/{link_id}",
                                        id=session_id, link_id=link_id))

    def hand_off(self, session_id: str, reason: str, mode: Optional[str] = None,
                 timeout_seconds: Optional[int] = None) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/handoff`: hands the session to a person; send them the
        answer's `live_url` (the `session.handoff.requested` webhook carries it too)."""
        return self._c.request("POST", _path("/v1/sessions/{id}/handoff", id=session_id),
                               _body(reason=reason, mode=mode, timeout_seconds=timeout_seconds))

    def complete_handoff(self, session_id: str) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/handoff/complete`: ends the handoff from the API."""
        return self._c.request("POST", _path("/v1/sessions/{id}/handoff/complete", id=session_id))

    def wait_for_handoff(self, session_id: str, timeout_seconds: float = 900) -> None:
        """`POST /v1/sessions/{id}/wait` with `{"handoff": "completed"}`, repeated until the
        person clicks Done (or `timeout_seconds` pass: `DriftstackError` `timeout`). An expired
        handoff raises `DriftstackError` `handoff_expired`."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            left = deadline - time.monotonic()
            step = int(max(0.1, min(left, 120)) * 1000)
            try:
                self.wait(session_id, step, handoff="completed")
                return
            except DriftstackError as err:
                if err.code != "timeout" or time.monotonic() >= deadline:
                    raise

    def upload(self, session_id: str, filename: str, content: bytes) -> Dict[str, Any]:
        """`POST /v1/sessions/{id}/uploads`: places `content` in the session as `filename`."""
        return self._c.request("POST", _path("/v1/sessions/{id}/uploads", id=session_id),
                               query={"filename": filename}, content=content)

    def release(self, session_id: str) -> Dict[str, Any]:
        """`DELETE /v1/sessions/{id}`: ends the session (a persisted profile is saved)."""
        return self._c.request("DELETE", _path("/v1/sessions/{id}", id=session_id))


class Profiles:
    """Persistent browser identities and their snapshots."""

    def __init__(self, client: Client):
        self._c = client

    def create(self, name: str, fingerprint: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """`POST /v1/profiles`."""
        return self._c.request("POST", "/v1/profiles", _body(name=name, fingerprint=fingerprint))

    def list(self) -> Iterator[Dict[str, Any]]:
        """`GET /v1/profiles`."""
        return self._c.paginate("/v1/profiles")

    def get(self, profile_id: str) -> Dict[str, Any]:
        """`GET /v1/profiles/{id}`."""
        return self._c.request("GET", _path("/v1/profiles/{id}", id=profile_id))

    def update(self, profile_id: str, **fields: Any) -> Dict[str, Any]:
        """`PATCH /v1/profiles/{id}`: `name`, `fingerprint`."""
        return self._c.request("PATCH", _path("/v1/profiles/{id}", id=profile_id), _body(**fields))

    def delete(self, profile_id: str) -> Any:
        """`DELETE /v1/profiles/{id}` (with its snapshots)."""
        return self._c.request("DELETE", _path("/v1/profiles/{id}", id=profile_id))

    def clone(self, profile_id: str, name: Optional[str] = None) -> Dict[str, Any]:
        """`POST /v1/profiles/{id}/clone`."""
        return self._c.request("POST", _path("/v1/profiles/{id}/clone", id=profile_id), _body(name=name))

    def snapshot(self, profile_id: str, name: Optional[str] = None) -> Dict[str, Any]:
        """`POST /v1/profiles/{id}/snapshots`: captures the current state (or the live session's)."""
        return self._c.request("POST", _path("/v1/profiles/{id}/snapshots", id=profile_id), _body(name=name))

    def snapshots(self, profile_id: str) -> Iterator[Dict[str, Any]]:
        """`GET /v1/profiles/{id}/snapshots`."""
        return self._c.paginate(_path("/v1/profiles/{id}/snapshots", id=profile_id))

    def delete_snapshot(self, profile_id: str, snapshot_id: str) -> Any:
        """`DELETE /v1/profiles/{id}/snapshots/{sid}`."""
        return self._c.request("DELETE", _path("/v1/profiles/{id}/snapshots/{sid}", id=profile_id, sid=snapshot_id))

    def restore(self, profile_id: str, snapshot_id: str) -> Dict[str, Any]:
        """`POST /v1/profiles/{id}/snapshots/{sid}/restore`."""
        return self._c.request("POST", _path("/v1/profiles/{id}/snapshots/{sid}/restore", id=profile_id, sid=snapshot_id))


class Usage:
    """Meters of the current period against the tier's caps."""

    def __init__(self, client: Client):
        self._c = client

    def get(self) -> Dict[str, Any]:
        """`GET /v1/usage`."""
        return self._c.request("GET", "/v1/usage")

    def check_feature(self, feature: str) -> Dict[str, Any]:
        """`GET /v1/usage/features/{feature}/check`."""
        return self._c.request("GET", _path("/v1/usage/features/{feature}/check", feature=feature))


class Webhooks:
    """Endpoints, the event catalog, the delivery log and replays."""

    def __init__(self, client: Client):
        self._c = client

    def create_endpoint(self, url: str, event_types: Optional[List[str]] = None,
                        description: Optional[str] = None) -> Dict[str, Any]:
        """`POST /v1/webhooks/endpoints`; the answer holds the signing `secret`, shown once."""
        return self._c.request("POST", "/v1/webhooks/endpoints",
                               _body(url=url, event_types=event_types, description=description))

    def endpoints(self) -> Iterator[Dict[str, Any]]:
        """`GET /v1/webhooks/endpoints`."""
        return self._c.paginate("/v1/webhooks/endpoints")

    def get_endpoint(self, endpoint_id: str) -> Dict[str, Any]:
        """`GET /v1/webhooks/endpoints/{id}`."""
        return self._c.request("GET", _path("/v1/webhooks/endpoints/{id}", id=endpoint_id))

    def update_endpoint(self, endpoint_id: str, **fields: Any) -> Dict[str, Any]:
        """`PATCH /v1/webhooks/endpoints/{id}`: `url`, `description`, `event_types`, `enabled`."""
        return self._c.request("PATCH", _path("/v1/webhooks/endpoints/{id}", id=endpoint_id), _body(**fields))

    def delete_endpoint(self, endpoint_id: str) -> Any:
        """`DELETE /v1/webhooks/endpoints/{id}`."""
        return self._c.request("DELETE", _path("/v1/webhooks/endpoints/{id}", id=endpoint_id))

    def rotate_secret(self, endpoint_id: str, grace_seconds: Optional[int] = None) -> Dict[str, Any]:
        """`POST /v1/webhooks/endpoints/{id}/rotate-secret`."""
        return self._c.request("POST", _path("/v1/webhooks/endpoints/{id}/rotate-secret", id=endpoint_id),
                               _body(grace_seconds=grace_seconds))

    def send_test(self, endpoint_id: str) -> Dict[str, Any]:
        """`POST /v1/webhooks/endpoints/{id}/test`."""
        return self._c.request("POST", _path("/v1/webhooks/endpoints/{id}/test", id=endpoint_id))

    def event_types(self) -> Any:
        """`GET /v1/webhooks/events`: the catalog."""
        return self._c.request("GET", "/v1/webhooks/events")

    def deliveries(self, **filters: Any) -> Iterator[Dict[str, Any]]:
        """`GET /v1/webhooks/deliveries`: `status`, `endpoint_id`, `event_type`, `since`, `until`."""
        return self._c.paginate("/v1/webhooks/deliveries", filters)

    def get_delivery(self, delivery_id: str) -> Dict[str, Any]:
        """`GET /v1/webhooks/deliveries/{id}` with every attempt."""
        return self._c.request("GET", _path("/v1/webhooks/deliveries/{id}", id=delivery_id))

    def replay(self, delivery_id: str) -> Dict[str, Any]:
        """`POST /v1/webhooks/deliveries/{id}/replay` (same `webhook-id`)."""
        return self._c.request("POST", _path("/v1/webhooks/deliveries/{id}/replay", id=delivery_id))

    def replay_all(self, since: str, until: Optional[str] = None, status: Optional[List[str]] = None,
                   endpoint_id: Optional[str] = None) -> Dict[str, Any]:
        """`POST /v1/webhooks/replay`: every failed/dead delivery in a time range."""
        return self._c.request("POST", "/v1/webhooks/replay",
                               _body(since=since, until=until, status=status, endpoint_id=endpoint_id))


class WebhookVerificationError(Exception):
    """The webhook's signature or timestamp did not check out."""


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes,
                   tolerance_seconds: int = 300, now: Optional[float] = None) -> Dict[str, Any]:
    """Checks a delivery's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`) with the endpoint's `whsec_…` secret and returns the parsed event.
    Any of several space-separated signatures may match (during a secret rotation)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"]
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook headers") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("the timestamp is too old or too new")
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)
    raise WebhookVerificationError("no signature matches")
