"""The server under test is started by the Rust test `tests/sdks.rs` (the real binary), which
passes its address, an API key and a page to load through the environment."""

import os

import pytest

from driftstack import Client


@pytest.fixture
def client() -> Client:
    url = os.environ.get("DRIFTSTACK_URL")
    key = os.environ.get("DRIFTSTACK_API_KEY")
    if not url or not key:
        pytest.skip("DRIFTSTACK_URL and DRIFTSTACK_API_KEY are set by tests/sdks.rs")
    return Client(key, base_url=url)


@pytest.fixture
def page_url() -> str:
    return os.environ["DRIFTSTACK_PAGE_URL"]
