"""The dashboard in headless Chromium: log in with a key, stay within the key's tenant, filter
runs, read a support-agent run's waterfall and cost, approve a paused tool call and watch the
run finish, see the cost chart and the health page. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import StewardProcess
from tests.e2e.dashboard_support import (
    api,
    chromium_browser,
    screenshot_path,
    start_dashboard_server,
    wait_for,
)

__all__ = ["chromium_browser"]  # a fixture this module uses

pytestmark = pytest.mark.slow


PAGES = ("login", "runs-sorted", "runs", "run-detail", "approval", "thread", "costs", "health")


@pytest.fixture(scope="module", autouse=True)
def fresh_screenshots() -> None:
    """Screenshots of an earlier session must not pass for this one's."""
    for name in PAGES:
        screenshot_path(name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[StewardProcess]:
    process = start_dashboard_server(tmp_path_factory.mktemp("dashboard"), upstream)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin_key(dashboard: StewardProcess) -> str:
    return dashboard.create_key("dashboard-admin")


@pytest.fixture(scope="module")
def other_tenant_key(dashboard: StewardProcess) -> str:
    return dashboard.create_key("other-admin", tenant="other")


@pytest.fixture
def page(chromium_browser: Browser) -> Iterator[Page]:
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Page, server: StewardProcess, key: str) -> None:
    page.goto(f"{server.url}/ui")
    page.fill("#api_key", key)
    page.click("#login")
    expect(page).to_have_url(f"{server.url}/ui/runs")


def support_run(server: StewardProcess, key: str, upstream: str) -> dict[str, Any]:
    UpstreamControl(upstream).script(
        {
            "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 42}}],
            "usage": {"input_tokens": 1200, "output_tokens": 20, "cache_read_tokens": 1000},
        },
        {
            "text": "Order 42 has shipped with DHL.",
            "usage": {"input_tokens": 1300, "output_tokens": 12, "cache_read_tokens": 1000},
        },
    )
    with api(server, key) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        answer = client.post(
            f"/threads/{thread}/runs/wait",
            json={"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
        )
        assert answer.status_code == 200, answer.text
        (run,) = client.get(f"/threads/{thread}/runs").json()
    assert run["status"] == "success", run
    return dict(run)


def test_unauthenticated_visit_gets_the_login_page_and_a_key_logs_in(
    page: Page, dashboard: StewardProcess, admin_key: str
) -> None:
    response = page.goto(f"{dashboard.url}/ui")
    assert response is not None and response.status == 200
    assert "text/html" in response.headers["content-type"]
    expect(page.locator("h1")).to_have_text("Log in")
    page.screenshot(path=screenshot_path("login"))

    page.fill("#api_key", "stw_not_a_real_key_at_all")
    page.click("#login")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")

    page.fill("#api_key", admin_key)
    page.click("#login")
    expect(page).to_have_url(f"{dashboard.url}/ui/runs")
    expect(page.locator("#who")).to_contain_text("tenant default")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "steward_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert admin_key not in cookie["value"]  # the cookie names the key, never carries it


def test_a_forged_or_missing_session_sees_no_page(dashboard: StewardProcess) -> None:
    for path in ("/ui/runs", "/ui/costs", "/ui/health", "/ui/threads"):
        answer = httpx.get(f"{dashboard.url}{path}", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/ui/login")
        forged = httpx.get(
            f"{dashboard.url}{path}",
            cookies={"steward_session": "eyJ4IjoxfQ.c2lnbmF0dXJl"},
            follow_redirects=False,
        )
        assert forged.status_code == 303


def test_another_tenants_run_is_refused(
    page: Page,
    dashboard: StewardProcess,
    admin_key: str,
    other_tenant_key: str,
) -> None:
    with api(dashboard, other_tenant_key) as client:
        theirs = client.post(
            "/runs/wait", json={"assistant_id": "notebook", "input": {"text": "secret-note"}}
        )
        assert theirs.status_code == 200, theirs.text
        their_run = theirs.headers["content-location"].rsplit("/", 1)[-1]

    log_in(page, dashboard, admin_key)
    response = page.goto(f"{dashboard.url}/ui/runs/{their_run}")
    assert response is not None and response.status == 404
    expect(page.locator("#not-found")).to_contain_text("No run")
    page.goto(f"{dashboard.url}/ui/runs?q=secret-note")
    expect(page.locator("#run-rows tr.run")).to_have_count(0)

    # The other tenant's key sees its own run where ours sees nothing.
    page.context.clear_cookies()
    log_in(page, dashboard, other_tenant_key)
    page.goto(f"{dashboard.url}/ui/runs?q=secret-note")
    expect(page.locator("#run-rows tr.run")).to_have_count(1)


def test_runs_are_filtered_sorted_and_paged(
    page: Page, dashboard: StewardProcess, admin_key: str
) -> None:
    with api(dashboard, admin_key) as client:
        for text in ("alpha-filter", "beta-filter", "gamma-filter"):
            done = client.post(
                "/runs/wait", json={"assistant_id": "notebook", "input": {"text": text}}
            )
            assert done.status_code == 200, done.text
        steps = client.post("/runs/wait", json={"assistant_id": "multistep", "input": {"steps": 2}})
        assert steps.status_code == 200, steps.text

    log_in(page, dashboard, admin_key)
    page.fill("input[name=agent]", "notebook")
    page.fill("input[name=q]", "-filter")
    page.click("#apply")
    rows = page.locator("#run-rows tr.run")
    expect(rows).to_have_count(3)
    page.fill("input[name=q]", "beta-filter")
    page.click("#apply")
    expect(rows).to_have_count(1)

    page.goto(f"{dashboard.url}/ui/runs?agent=multistep&status=success")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(1)).to_have_text("multistep")
    page.goto(f"{dashboard.url}/ui/runs?agent=multistep&status=error")
    expect(rows).to_have_count(0)
    page.goto(f"{dashboard.url}/ui/runs?min_cost=abc")
    expect(page.locator("#filter-error")).to_contain_text("min_cost")

    page.goto(f"{dashboard.url}/ui/runs?agent=notebook&min_duration=3600")
    expect(rows).to_have_count(0)
    page.goto(f"{dashboard.url}/ui/runs?agent=notebook&q=-filter&max_duration=3600&max_cost=0")
    expect(rows).to_have_count(3)
    page.goto(f"{dashboard.url}/ui/runs?agent=notebook&since=2099-01-01T00:00")
    expect(rows).to_have_count(0)
    page.goto(f"{dashboard.url}/ui/runs?agent=notebook&q=-filter&until=2099-01-01T00:00")
    expect(rows).to_have_count(3)

    # Sorted by steps, most first: the two-step run leads the notebook runs.
    page.goto(f"{dashboard.url}/ui/runs?sort=steps&order=desc")
    expect(rows.first.locator("td").nth(1)).to_have_text("multistep")
    page.screenshot(path=screenshot_path("runs-sorted"), full_page=True)


def test_runs_are_paged_25_at_a_time(page: Page, dashboard: StewardProcess, admin_key: str) -> None:
    with api(dashboard, admin_key) as client:
        for n in range(27):
            done = client.post(
                "/runs/wait", json={"assistant_id": "notebook", "input": {"text": f"paged {n}"}}
            )
            assert done.status_code == 200, done.text
    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs?q=paged+&sort=created&order=asc")
    rows = page.locator("#run-rows tr.run")
    expect(rows).to_have_count(25)
    expect(page.locator("#prev")).to_have_count(0)
    page.click("#next")
    expect(rows).to_have_count(2)
    expect(page.locator("#next")).to_have_count(0)
    page.click("#prev")
    expect(rows).to_have_count(25)


def test_threads_show_state_and_checkpoints(
    page: Page, dashboard: StewardProcess, admin_key: str, upstream: str
) -> None:
    run = support_run(dashboard, admin_key, upstream)
    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/threads")
    page.click(f"#threads a[href='/ui/threads/{run['thread_id']}']")
    expect(page.locator("#thread-values")).to_contain_text("Order 42 has shipped with DHL.")
    checkpoints = page.locator("#checkpoints tbody tr")
    expect(checkpoints).to_have_count(1)
    expect(checkpoints.first.locator("a")).to_have_attribute("href", f"/ui/runs/{run['run_id']}")
    page.screenshot(path=screenshot_path("thread"), full_page=True)
    response = page.goto(f"{dashboard.url}/ui/threads/not-a-thread")
    assert response is not None and response.status == 404


def test_a_new_run_appears_without_reloading(
    page: Page, dashboard: StewardProcess, admin_key: str
) -> None:
    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs?q=appears-live")
    rows = page.locator("#run-rows tr.run")
    expect(rows).to_have_count(0)
    with api(dashboard, admin_key) as client:
        done = client.post(
            "/runs/wait", json={"assistant_id": "notebook", "input": {"text": "appears-live"}}
        )
        assert done.status_code == 200, done.text
    expect(rows).to_have_count(1, timeout=15_000)  # the page polls; no reload here


def test_support_run_shows_its_waterfall_with_span_count_and_cost(
    page: Page, dashboard: StewardProcess, admin_key: str, upstream: str
) -> None:
    run = support_run(dashboard, admin_key, upstream)
    cost = run["usage"]["cost_usd"]
    assert cost > 0
    with api(dashboard, admin_key) as client:
        spans = client.get(f"/runs/{run['run_id']}/trace").json()["spans"]
    names = sorted(s["name"] for s in spans)
    assert names == sorted(
        [
            "invoke_agent support",
            "chat gpt-4.1-mini",
            "execute_tool lookup_order",
            "chat gpt-4.1-mini",
        ]
    )

    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs?agent=support")
    page.click(f"tr[data-run-id='{run['run_id']}'] a")
    expect(page).to_have_url(f"{dashboard.url}/ui/runs/{run['run_id']}")
    expect(page.locator("#waterfall tr.span")).to_have_count(4)
    expect(page.locator("#span-count")).to_have_text("4 spans")
    expect(page.locator("#run-cost")).to_have_text(f"${cost:.6f}")
    expect(page.locator("#trace-cost")).to_have_text(f"${cost:.6f}")
    expect(page.locator("#waterfall tr.kind-model")).to_have_count(2)
    expect(page.locator("#waterfall tr.kind-tool")).to_contain_text("execute_tool lookup_order")
    # The agent span is the root; the model and tool spans are its children, drawn indented.
    expect(page.locator("#waterfall tr.kind-agent td.depth-0")).to_have_count(1)
    expect(page.locator("#waterfall tr.kind-model td.depth-1")).to_have_count(2)
    expect(page.locator("#run-output")).to_contain_text("Order 42 has shipped with DHL.")
    page.screenshot(path=screenshot_path("run-detail"), full_page=True)


def test_a_running_runs_events_stream_into_its_page(
    page: Page, dashboard: StewardProcess, admin_key: str, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    control.script(
        {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 1001}}]},
        {"text": "Order 1001 was delivered by UPS on the second of November."},
    )
    control.faults(chunk_delay_s=0.15)  # the answer streams for a while
    try:
        log_in(page, dashboard, admin_key)
        with api(dashboard, admin_key) as client:
            started = client.post(
                "/runs", json={"assistant_id": "support", "input": {"message": "Order 1001?"}}
            )
            assert started.status_code == 200, started.text
            run_id = started.json()["run_id"]
        page.goto(f"{dashboard.url}/ui/runs/{run_id}")
        # Whether the page opened mid-run or after it, the run's events arrive in order.
        expect(page.locator("#stream-text")).to_have_text(
            "Order 1001 was delivered by UPS on the second of November.", timeout=30_000
        )
        expect(page.locator("#stream-events")).to_contain_text("tool lookup_order answered")
        expect(page.locator("#stream-state")).to_have_text("ended")
        expect(page.locator("#run-status")).to_have_text("success")
        expect(page.locator("#run-output")).to_contain_text("delivered by UPS")
    finally:
        control.reset()


def test_approving_a_paused_call_from_the_ui_finishes_the_run(
    page: Page, dashboard: StewardProcess, admin_key: str
) -> None:
    with api(dashboard, admin_key) as client:
        started = client.post("/runs", json={"assistant_id": "approver", "input": {"amount": 25}})
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]

        def paused() -> bool:
            run = client.get(f"/runs/{run_id}").json()
            return bool(run["stop_reason"] == "awaiting_approval")

        wait_for(paused, "the approver run to pause")

    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("interrupted")
    panel = page.locator("#approvals .approval.pending")
    expect(panel).to_contain_text("transfer")
    page.screenshot(path=screenshot_path("approval"), full_page=True)
    panel.locator("textarea.arguments").fill('{"amount": 7')  # not JSON: refused, still pending
    panel.locator("button.approve").click()
    expect(page.locator("#decide-error")).to_contain_text("not JSON")
    expect(panel.locator(".approval-status")).to_have_text("pending")
    panel.locator("textarea.arguments").fill('{"amount": 7}')
    panel.locator("input.comment").fill("smaller, please")
    panel.locator("button.approve").click()

    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator("#approvals .approval-status")).to_have_text("approved")
    with api(dashboard, admin_key) as client:
        run = client.get(f"/runs/{run_id}").json()
        (approval,) = client.get(f"/runs/{run_id}/approvals").json()
    assert run["status"] == "success"
    assert run["output"] == {"outcome": "done", "detail": {"transferred": 7}}
    assert approval["status"] == "approved"
    assert approval["comment"] == "smaller, please"
    transfers = [line for line in dashboard.ledger_lines() if line.get("run_id") == run_id]
    assert [line["amount"] for line in transfers if line.get("tool") == "transfer"] == [7]


def test_a_decision_without_the_csrf_token_or_by_a_viewer_is_refused(
    page: Page, dashboard: StewardProcess, admin_key: str
) -> None:
    viewer_key = dashboard.create_key("viewer", role="viewer")
    with api(dashboard, admin_key) as client:
        started = client.post("/runs", json={"assistant_id": "approver", "input": {"amount": 3}})
        run_id = started.json()["run_id"]
        wait_for(lambda: client.get(f"/runs/{run_id}/approvals").json(), "the approval to be asked")
        (approval,) = client.get(f"/runs/{run_id}/approvals").json()

    log_in(page, dashboard, admin_key)
    forged = page.request.post(
        f"{dashboard.url}/ui/runs/{run_id}/approvals/{approval['approval_id']}",
        form={"decision": "approve"},
    )
    assert forged.status == 403

    page.context.clear_cookies()
    log_in(page, dashboard, viewer_key)
    page.goto(f"{dashboard.url}/ui/runs/{run_id}")
    expect(page.locator("#approvals button.approve")).to_have_count(0)
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf
    refused = page.request.post(
        f"{dashboard.url}/ui/runs/{run_id}/approvals/{approval['approval_id']}",
        form={"decision": "approve", "csrf": csrf},
    )
    assert refused.status == 403
    with api(dashboard, admin_key) as client:
        assert client.get(f"/runs/{run_id}/approvals").json()[0]["status"] == "pending"

    # A person who may write rejects it from the page: the tool never runs.
    page.context.clear_cookies()
    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs/{run_id}")
    page.locator("#approvals .approval.pending button.reject").click()
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator("#approvals .approval-status")).to_have_text("rejected")
    expect(page.locator("#run-output")).to_contain_text("refused")
    transfers = [line for line in dashboard.ledger_lines() if line.get("run_id") == run_id]
    assert [line for line in transfers if line.get("tool") == "transfer"] == []


def test_cost_chart_and_health_page(
    page: Page, dashboard: StewardProcess, admin_key: str, upstream: str
) -> None:
    run = support_run(dashboard, admin_key, upstream)
    log_in(page, dashboard, admin_key)
    page.goto(f"{dashboard.url}/ui/runs?sort=cost")
    expect(page.locator("#run-rows tr.run").first.locator("td").nth(1)).to_have_text("support")
    page.screenshot(path=screenshot_path("runs"))
    page.goto(f"{dashboard.url}/ui/costs?by=agent&days=7")
    bars = page.locator("#cost-chart rect.chart-bar")
    expect(bars).to_have_count(7)
    today = bars.last
    assert float(today.get_attribute("data-usd") or 0) >= run["usage"]["cost_usd"]
    expect(page.locator("#cost-groups")).to_contain_text("support")
    cap = page.locator("#caps tr", has_text="tenant_monthly")
    expect(cap).to_contain_text("$1.000000")
    assert float(cap.locator("meter").get_attribute("value") or 0) > 0
    page.screenshot(path=screenshot_path("costs"), full_page=True)
    page.goto(f"{dashboard.url}/ui/costs?by=model&days=7")
    expect(page.locator("#cost-groups")).to_contain_text("gpt-4.1-mini")
    response = page.goto(f"{dashboard.url}/ui/costs?by=colour")
    assert response is not None and response.status == 400

    page.goto(f"{dashboard.url}/ui/health")
    expect(page.locator("#workers tr.fresh")).to_have_count(1)
    expect(page.locator("#queue-depth")).to_have_text("0")
    expect(page.locator("#health-summary .error-rate").first).to_contain_text("/")
    page.screenshot(path=screenshot_path("health"), full_page=True)


def test_assets_are_served_by_steward_itself(dashboard: StewardProcess) -> None:
    for asset in ("dashboard.js", "dashboard.css"):
        answer = httpx.get(f"{dashboard.url}/ui/static/{asset}")
        assert answer.status_code == 200
    page = httpx.get(f"{dashboard.url}/ui").text
    assert "http://" not in page and "https://" not in page  # no CDN, nothing from outside


def test_screenshots_of_every_page_were_saved() -> None:
    """Runs last in this module: the README's images and CI's artifacts come from here."""
    missing = [n for n in PAGES if not screenshot_path(n).exists()]
    assert missing == [], f"no screenshot of {missing}"
    assert all(Path(screenshot_path(n)).stat().st_size > 10_000 for n in PAGES)
