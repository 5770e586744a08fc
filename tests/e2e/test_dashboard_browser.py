"""The dashboard in real Chromium against a running controller, API server and local fleet.

One fleet is shared by the tests of this module, which run in order: a release manager
locks, sees a pushed commit wait, unlocks and watches it ship; watches a bad canary fail
live with the failing metric's chart; rolls back to an earlier release; then a viewer sees
every page but every action is refused, in the page and in the API.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from deployer.demo.scenario import GOOD_IMAGE_CACHE
from deployer.fleet.local.procs import free_port_block
from deployer.model import Role
from tests.pipeline_world import FEED_ERRORS, PipelineWorld, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM = os.environ.get("DEPLOYER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
PASSWORD = "a long test password"
LIVE = 90_000  # ms: a release (tests, build, canary bake, two waves) on a busy 2-core machine


class Dashboard:
    """The world plus an API server process and its URL."""

    def __init__(self, world: PipelineWorld, url: str, server: subprocess.Popen[bytes]) -> None:
        self.world, self.url, self.server = world, url, server


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("browser")
    world = PipelineWorld(root, hosts=3, overrides={"rollout.canary_bake": "8s", "rollout.wave_bake": "2s",
                                                     "rollout.waves": ["100%"]})
    server: subprocess.Popen[bytes] | None = None
    try:
        world.service.accounts.add_user(name="rita", role=Role.RELEASE_MANAGER, password=PASSWORD)
        world.service.accounts.add_user(name="vic", role=Role.VIEWER, password=PASSWORD)
        port = free_port_block(1)
        log = open(world.workspace.logs / "api.log", "ab")  # noqa: SIM115 - the child owns it
        server = subprocess.Popen([sys.executable, "-P", "-m", "deployer.cli", "-c", str(world.workspace.config),
                                   "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=world.workspace.root)
        log.close()
        url = f"http://127.0.0.1:{port}"
        wait_until("the API server", lambda: _up(url, server), 30)
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic(rate=40)
        yield Dashboard(world, url, server)
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        world.close()


def _up(url: str, server: subprocess.Popen[bytes]) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"the API server exited with {server.returncode}")
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def sign_in(browser: Browser, dash: Dashboard, name: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # every action is confirmed in the page
    page.goto(f"{dash.url}/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/"))
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#whoami")).to_have_text(name)
    return page


def act(page: Page, form: str, reason: str) -> None:
    page.fill(f"{form} input[name=reason]", reason)
    page.click(f"{form} button")


def test_release_manager_locks_sees_a_commit_wait_unlocks_and_watches_it_ship(browser: Browser,
                                                                              dash: Dashboard) -> None:
    page = sign_in(browser, dash, "rita")
    act(page, "#form-lock", "release freeze for the demo")
    expect(page.locator("#flash")).to_contain_text("pipeline locked")
    expect(page.locator("#lock")).to_contain_text("rita")
    sha, = dash.world.merge(GOOD_IMAGE_CACHE)
    # The page refreshes itself: the new commit shows up waiting, and nothing starts while locked.
    expect(page.locator(f"tr.queued-commit[data-sha='{sha}']")).to_be_visible(timeout=30_000)
    expect(page.locator("#in-flight")).to_contain_text("idle")
    page.screenshot(path=str(SHOTS / "overview-locked.png"), full_page=True)
    time.sleep(2)  # a controller that ignored the lock would have started by now (it polls every second)
    assert dash.world.service.status().active is None
    act(page, "#form-unlock", "freeze over")
    expect(page.locator("#flash")).to_contain_text("pipeline unlocked")
    expect(page.locator("#active-status")).to_be_visible(timeout=30_000)  # in flight, live
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    expect(page.locator("#fleet-version")).to_contain_text(sha[:10], timeout=LIVE)
    expect(page.locator("#queue")).to_contain_text("nothing waits")
    page.goto(f"{dash.url}/fleet")
    expect(page.locator("#hosts tr.host")).to_have_count(3)
    page.screenshot(path=str(SHOTS / "fleet.png"), full_page=True)


def test_release_manager_watches_a_bad_canary_fail_live(browser: Browser, dash: Dashboard) -> None:
    page = sign_in(browser, dash, "rita")
    sha, = dash.world.merge(FEED_ERRORS)
    release_id = wait_until("the bad commit's release", lambda: next(
        (r.id for r in dash.world.service.status(releases=5).releases if r.sha == sha), None), 60)
    page.goto(f"{dash.url}/releases/{release_id}")
    failing = page.locator(".verdict[data-result=fail] .metric[data-class=high]").first
    expect(failing).to_be_visible(timeout=LIVE)
    expect(failing.locator("svg.chart polyline")).to_have_count(2)
    expect(failing.locator(".explanation")).not_to_be_empty()
    expect(page.locator("#release-status")).to_contain_text("rolled_back", timeout=LIVE)
    page.screenshot(path=str(SHOTS / "release-failed-canary.png"), full_page=True)
    page.goto(f"{dash.url}/releases?status=rolled_back")
    expect(page.locator(f"tr.release[data-id='{release_id}']")).to_be_visible()
    page.screenshot(path=str(SHOTS / "releases.png"), full_page=True)


def test_release_manager_rolls_back_to_an_earlier_release(browser: Browser, dash: Dashboard) -> None:
    page = sign_in(browser, dash, "rita")
    first = dash.world.service.releases(kind="bootstrap", limit=1).items[0].release
    page.goto(f"{dash.url}/releases/{first.id}")
    page.check(f"#form-rollback{first.id} input[name=fast]")
    act(page, f"#form-rollback{first.id}", "back to the known-good start")
    expect(page.locator("#flash")).to_contain_text("rolls the fleet back")
    rollback = dash.world.service.releases(kind="rollback", limit=1).items[0].release
    page.goto(f"{dash.url}/releases/{rollback.id}")
    expect(page.locator("#release-status")).to_contain_text("succeeded", timeout=LIVE)
    page.goto(f"{dash.url}/")
    expect(page.locator("#fleet-version")).to_contain_text(first.sha[:10])
    expect(page.locator("#lock")).to_contain_text("rolled back to release")
    assert set(dash.world.fleet_versions().values()) == {first.sha}
    page.goto(f"{dash.url}/audit?kind=rollback_requested")
    expect(page.locator("#audit tr.event")).to_have_count(1)
    expect(page.locator("#audit")).to_contain_text("rita")
    page.screenshot(path=str(SHOTS / "audit.png"), full_page=True)


def test_a_viewer_sees_every_page_but_every_action_is_refused(browser: Browser, dash: Dashboard) -> None:
    page = sign_in(browser, dash, "vic")
    expect(page.locator("#readonly")).to_be_visible()
    for path in ("/releases", "/fleet", "/audit", "/"):
        page.goto(f"{dash.url}{path}")
        expect(page.locator("h1")).to_be_visible()
    before = dash.world.service.status().lock
    act(page, "#form-unlock", "let me through")
    expect(page.locator("#flash")).to_contain_text("refused: vic is a viewer, who may not steer releases")
    assert dash.world.service.status().lock == before
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    api = page.request.post(f"{dash.url}/api/v1/lock", data={"reason": "x"}, headers={"X-CSRF-Token": csrf or ""})
    assert api.status == 403 and "may not" in api.json()["detail"]
    assert page.request.get(f"{dash.url}/api/v1/status").status == 200
