"""An agent's session through the official MCP Python SDK over streamable HTTP (tests/mcp.rs).

Usage: agent_http.py MCP_URL API_KEY SITE_URL
Signs in to the test site's form by refs from snapshots, checks what a model would read, and
prints one JSON line: {"rest_calls": N} (the tool calls that reached the REST API).
"""

import asyncio
import base64
import json
import re
import struct
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

URL, KEY, SITE = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
EXPECTED_TOOLS = {
    "session_create", "session_list", "session_release", "navigate", "back", "forward",
    "reload", "snapshot", "click", "type", "press_key", "hover", "select_option", "scroll",
    "screenshot", "extract", "wait_for", "downloads", "handoff",
}


def text_of(result):
    return "\n".join(c.text for c in result.content if c.type == "text")


def ref(snapshot, pattern):
    m = re.search(r"\[(e\d+)\] " + pattern, snapshot)
    assert m, f"no element /{pattern}/ in the snapshot:\n{snapshot}"
    return m.group(1)


async def main():
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {KEY}"})
    rest_calls = 0
    async with streamable_http_client(URL, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            init = await s.initialize()
            assert init.server_info.name == "driftstack", init
            listed = await s.list_tools()
            names = {t.name for t in listed.tools}
            assert EXPECTED_TOOLS <= names, f"missing tools: {EXPECTED_TOOLS - names}"
            for t in listed.tools:
                assert t.input_schema["type"] == "object", t
                assert t.description, t

            async def call(name, ok=True, rest=True, **args):
                nonlocal rest_calls
                result = await s.call_tool(name, args)
                rest_calls += 1 if rest else 0
                assert bool(result.is_error) != ok, f"{name} {args}: {text_of(result)}"
                return result

            created = await call("session_create")
            sid = created.structured_content["session_id"]
            assert sid.startswith("ses_"), created
            opened = await call("navigate", session_id=sid, url=f"{SITE}/signin")
            assert "HTTP 200" in text_of(opened), text_of(opened)

            snap = text_of(await call("snapshot", session_id=sid))
            assert 'heading "Sign in" level=1' in snap, snap
            email = ref(snap, r'textbox "Email"')
            password = ref(snap, r'textbox "Password"')
            plan = ref(snap, r'combobox')
            button = ref(snap, r'button "Sign in"')

            await call("type", session_id=sid, ref=email, text="agent@example.com")
            await call("type", session_id=sid, ref=password, text="hunter2-secret")
            await call("select_option", session_id=sid, ref=plan, value="team")
            snap = text_of(await call("snapshot", session_id=sid))
            assert f'[{email}] textbox "Email" value="agent@example.com"' in snap, snap
            assert "hunter2" not in snap, "a password's value reached the model"
            assert f"[{email}]" in snap and f"[{button}]" in snap, "refs stay stable"

            # Mistakes an agent makes come back as tool errors it can act on.
            bad = await call("click", ok=False, rest=False, session_id=sid, ref="not-a-ref")
            assert bad.structured_content["code"] == "validation_failed", bad
            stale = await call("click", ok=False, session_id=sid, ref="e9999", timeout_ms=500)
            assert stale.structured_content["code"] == "action_failed", stale
            assert "take a new snapshot" in text_of(stale), text_of(stale)

            await call("click", session_id=sid, ref=button)
            await call("wait_for", session_id=sid, text="Signed in as")
            snap = text_of(await call("snapshot", session_id=sid))
            assert 'heading "Welcome back" level=1' in snap, snap
            assert "Signed in as agent@example.com on team" in snap, snap

            shot = await call("screenshot", session_id=sid)
            images = [c for c in shot.content if c.type == "image"]
            assert len(images) == 1 and images[0].mime_type == "image/png", shot
            png = base64.b64decode(images[0].data)
            assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
            width, height = struct.unpack(">II", png[16:24])
            assert (width, height) == (1280, 720), (width, height)

            md = text_of(await call("extract", session_id=sid))
            assert "# Welcome back" in md, md
            assert f"[Next]({SITE}/two)" in md, md

            await call("back", session_id=sid)
            snap = text_of(await call("snapshot", session_id=sid))
            assert 'heading "Sign in"' in snap, snap

            refused = await call("navigate", ok=False, session_id=sid, url="http://10.255.255.1/")
            assert refused.structured_content["code"] == "egress_denied", refused

            await call("session_release", session_id=sid)
            gone = await call("snapshot", ok=False, session_id=sid)
            assert gone.structured_content["code"] in ("session_ended", "session_not_found"), gone
    print(json.dumps({"rest_calls": rest_calls, "session_id": sid}))


asyncio.run(main())
