"""Fixtures for the dashboard's browser tests: one `steward dev` whose model calls go to the
wire-compatible upstream (so runs have real prices), Debian's chromium driven by Playwright,
and screenshots saved under `artifacts/screenshots/` for CI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, StewardProcess, make_process

CHROMIUM = os.environ.get("STEWARD_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def require_chromium() -> str:
    """The browser's path; a machine without it fails the tests (never skips them)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"chromium is missing at {CHROMIUM}: run scripts/ensure-services "
            "(it installs Debian's chromium package)"
        )
    return CHROMIUM


def start_dashboard_server(home: Path, upstream: str) -> StewardProcess:
    process = make_process(
        home,
        STEWARD_MODEL="openai:gpt-4.1-mini",
        OPENAI_API_KEY="sk-test-openai",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
        STEWARD_METRICS_TOKEN="scrape-token-for-tests",
        # Webhooks to a port nobody listens on fail fast, twice, for the delivery metrics.
        STEWARD_WEBHOOK_SECRET="whsec_"
        + base64.b64encode(b"dashboard-test-webhook-secret-32").decode(),
        STEWARD_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        STEWARD_WEBHOOK_MAX_ATTEMPTS="2",
        STEWARD_WEBHOOK_BACKOFF_BASE_S="0.1",
        STEWARD_WEBHOOK_BACKOFF_CAP_S="0.2",
        # A cap the cost page shows the use of.
        STEWARD_GATEWAY=json.dumps({"caps": {"tenant_monthly_usd": 1.0}}),
    )
    process.start()
    return process


def api(server: StewardProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=60)


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout_s`.

    A bound on waiting for an event, not an assertion about how fast it happens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()
