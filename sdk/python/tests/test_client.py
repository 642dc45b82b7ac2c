"""The Python client against a running Driftstack (see conftest.py)."""

import http.server
import json
import threading
import time

import pytest

from driftstack import Client, DriftstackError, WebhookVerificationError, verify_webhook


def test_quickstart_gives_a_png(client, page_url):
    session = client.sessions.create()
    assert session["connect_url"].startswith("ws://")
    loaded = client.sessions.navigate(session["id"], page_url)
    assert loaded["status"] == 200
    clicked = client.sessions.actions(session["id"], [{"type": "evaluate", "expression": "document.title"}])
    assert clicked["results"][0]["value"]
    png = client.sessions.capture(session["id"], format="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    closed = client.sessions.release(session["id"])
    assert closed["status"] == "closed"
    assert any(s["id"] == session["id"] for s in client.sessions.list())


def test_an_upload_reaches_a_file_input(client, page_url):
    session = client.sessions.create()
    try:
        client.sessions.navigate(session["id"], page_url)
        client.sessions.actions(session["id"], [{"type": "evaluate", "expression":
            "document.body.insertAdjacentHTML('beforeend', '<input id=f type=file>')"}])
        up = client.sessions.upload(session["id"], "hello.txt", b"hi from python")
        assert up["id"].startswith("upl_") and up["size"] == 14
        done = client.sessions.actions(session["id"], [
            {"type": "set_files", "selector": "#f", "uploads": [up["id"]]},
            {"type": "evaluate", "expression": "document.querySelector('#f').files[0].text()"},
        ])
        assert done["results"][1]["value"] == "hi from python"
        assert list(client.sessions.downloads(session["id"])) == []
        client.sessions.actions(session["id"], [{"type": "evaluate", "expression":
            "console.log('from python')"}])
        for _ in range(50):
            said = [e["data"]["text"] for e in client.sessions.logs(session["id"], type="console")]
            if "from python" in said:
                break
            time.sleep(0.2)
        assert "from python" in said
        assert client.sessions.har(session["id"])["log"]["version"] == "1.2"
        with pytest.raises(DriftstackError) as err:
            client.sessions.recording(session["id"])
        assert err.value.code == "recording_not_found"
    finally:
        client.sessions.release(session["id"])


def test_problems_are_typed_errors(client):
    session = client.sessions.create()
    try:
        with pytest.raises(DriftstackError) as err:
            client.sessions.navigate(session["id"], "not a url")
        assert err.value.status == 422
        assert err.value.code == "validation_failed"
        assert "url" in err.value.errors
    finally:
        client.sessions.release(session["id"])
    with pytest.raises(DriftstackError) as err:
        client.sessions.get("ses_00000000000000000000000000000000")
    assert err.value.status == 404


def test_profiles_snapshots_and_pagination(client):
    small = Client(client.api_key, base_url=client.base_url, page_size=2)
    created = [client.profiles.create(f"py {i}") for i in range(5)]
    ids = {p["id"] for p in created}
    listed = [p["id"] for p in small.profiles.list()]
    assert ids <= set(listed)
    assert len(listed) == len(set(listed)), "no item twice across pages"

    p = created[0]
    snap = client.profiles.snapshot(p["id"], name="first")
    assert snap["name"] == "first"
    assert [s["id"] for s in client.profiles.snapshots(p["id"])] == [snap["id"]]
    restored = client.profiles.restore(p["id"], snap["id"])
    assert restored["id"] == p["id"]
    clone = client.profiles.clone(p["id"], name="py clone")
    assert clone["name"] == "py clone"
    assert client.profiles.update(clone["id"], name="renamed")["name"] == "renamed"
    client.profiles.delete_snapshot(p["id"], snap["id"])
    for x in created + [clone]:
        client.profiles.delete(x["id"])


def test_usage(client):
    usage = client.usage.get()
    assert {"sessions", "session_minutes", "api_calls", "data_transfer_bytes"} <= set(usage["meters"])


class _Receiver(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["content-length"]))
        _Receiver.seen.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_arrive_signed_and_verify(client):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        endpoint = client.webhooks.create_endpoint(url, event_types=["profile.created"])
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        profile = client.profiles.create("hooked")
        deadline = time.time() + 20
        while not _Receiver.seen and time.time() < deadline:
            time.sleep(0.1)
        assert _Receiver.seen, "the event arrives"
        headers, body = _Receiver.seen[0]
        event = verify_webhook(secret, headers, body)
        assert event["type"] == "profile.created"
        assert event["data"]["profile_id"] == profile["id"]
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, body + b" ")
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, body, now=time.time() + 3600)
        deliveries = list(client.webhooks.deliveries(endpoint_id=endpoint["id"]))
        assert deliveries and deliveries[0]["event_id"] == headers.get("webhook-id", headers.get("Webhook-Id"))
        client.webhooks.replay(deliveries[0]["id"])
        client.webhooks.delete_endpoint(endpoint["id"])
        client.profiles.delete(profile["id"])
    finally:
        server.shutdown()


class _Flaky(http.server.BaseHTTPRequestHandler):
    calls = []

    def do_POST(self):  # noqa: N802
        _Flaky.calls.append(self.headers.get("idempotency-key"))
        if len(_Flaky.calls) == 1:
            self.send_response(503)
            self.send_header("retry-after", "0")
            self.send_header("content-type", "application/problem+json")
            self.end_headers()
            self.wfile.write(json.dumps({"title": "busy", "status": 503, "code": "service_unavailable"}).encode())
            return
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "ses_x"}')

    def log_message(self, *args):
        pass


def test_posts_retry_on_503_with_the_same_idempotency_key():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = Client("ds_test_x", base_url=f"http://127.0.0.1:{server.server_address[1]}")
        assert c.sessions.create()["id"] == "ses_x"
        assert len(_Flaky.calls) == 2
        assert _Flaky.calls[0] and _Flaky.calls[0] == _Flaky.calls[1]
    finally:
        server.shutdown()


def test_a_recorded_session_replays_and_pauses(client, page_url):
    session = client.sessions.create(record=True)
    try:
        assert session["recording"]["state"] == "recording"
        client.sessions.navigate(session["id"], page_url)
        events = []
        for _ in range(50):
            events = client.sessions.recording(session["id"])
            if any(e["type"] == 2 for e in events):
                break
            time.sleep(0.2)
        assert any(e["type"] == 2 for e in events), "a full snapshot"
        paused = client.sessions.set_recording(session["id"], False)
        assert paused["recording"]["state"] == "paused"
    finally:
        client.sessions.release(session["id"])


def test_an_ended_session_gives_its_last_frame(client, page_url):
    session = client.sessions.create()
    with pytest.raises(DriftstackError) as live:
        client.sessions.last_frame(session["id"])
    assert live.value.status == 409 and live.value.code == "session_live"
    client.sessions.navigate(session["id"], page_url)
    client.sessions.release(session["id"])
    jpeg = b""
    for _ in range(50):
        try:
            jpeg = client.sessions.last_frame(session["id"])
            break
        except DriftstackError as err:
            assert err.code == "frame_not_found", err
            time.sleep(0.2)
    assert jpeg[:3] == b"\xff\xd8\xff", "a JPEG"


def test_a_handoff_is_completed_and_waited_for(client, page_url):
    session = client.sessions.create()
    try:
        client.sessions.navigate(session["id"], page_url)
        link = client.sessions.create_live_link(session["id"], mode="view", expires_in_seconds=120)
        assert "/live/lvt_" in link["url"] and link["mode"] == "view"
        client.sessions.revoke_live_link(session["id"], link["id"])
        handoff = client.sessions.hand_off(session["id"], "solve the captcha", timeout_seconds=300)
        assert handoff["state"] == "requested" and "/live/lvt_" in handoff["live_url"]
        assert client.sessions.get(session["id"])["status"] == "waiting_for_human"
        with pytest.raises(DriftstackError) as err:
            client.sessions.wait_for_handoff(session["id"], timeout_seconds=0.5)
        assert err.value.code == "timeout"
        done = client.sessions.complete_handoff(session["id"])
        assert done["status"] == "active" and done["handoff"]["state"] == "completed"
        client.sessions.wait_for_handoff(session["id"], timeout_seconds=5)
    finally:
        client.sessions.release(session["id"])
