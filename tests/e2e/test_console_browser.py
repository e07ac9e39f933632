"""The operations console in a real headless Chromium, as an operator uses it.

Sign in; watch a job go from queued to succeeded; find a failed job by its error text; redrive one
dead letter and bulk-redrive a filtered set of 1,000; promote and roll back a version; a viewer
cannot act. With TORNADO_CONSOLE_SCREENSHOTS=docs/console the main pages are saved as pictures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import presence_of_element_located
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.browser import start_chromium
from tests.e2e.console_support import OPERATORS, SCREENSHOTS, ConsoleWorld
from tests.e2e.helpers import wait_for_job
from tests.e2e.release_helpers import TASK as RELEASED_TASK
from tests.e2e.release_helpers import code_of
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.jobs import Failure, JobStatus, NewJob
from tornado_core.ports.queue import OutgoingMessage

pytestmark = pytest.mark.timeout(900)


class Browser:
    """A signed-in Chromium on the console, with waits that read what an operator reads."""

    def __init__(self, driver: WebDriver, world: ConsoleWorld) -> None:
        self.driver = driver
        self.world = world

    def open(self, path: str) -> None:
        self.driver.get(self.world.url + path)

    def sign_in(self, name: str) -> None:
        self.driver.delete_all_cookies()
        self.open("/console/login")
        self.driver.find_element(By.ID, "name").send_keys(name)
        self.driver.find_element(By.ID, "password").send_keys(OPERATORS[name][1])
        self.driver.find_element(By.ID, "sign-in").click()
        self.wait_text(By.ID, "signed-in-as", name)

    def find(self, by: str, value: str, *, timeout: float = 30.0) -> WebElement:
        """The element, once the page that has it is there (a click may still be navigating)."""
        element: WebElement = WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            presence_of_element_located((by, value)), f"no {value} on {self.driver.current_url}"
        )
        return element

    def text(self, by: str, value: str) -> str:
        return str(self.find(by, value).text)

    def wait_text(self, by: str, value: str, expected: str, *, timeout: float = 60.0) -> None:
        """Wait until the element shows ``expected`` (the page refreshes itself while live)."""

        def shows(driver: WebDriver) -> bool:
            found = driver.find_elements(by, value)
            return bool(found) and expected in found[0].text

        swapped = (StaleElementReferenceException,)  # the live block was replaced while being read
        WebDriverWait(self.driver, timeout, poll_frequency=0.2, ignored_exceptions=swapped).until(
            shows, f"{value} never showed {expected!r}; page: {self.driver.page_source[:800]}"
        )

    def click(self, by: str, value: str) -> None:
        self.find(by, value).click()

    def screenshot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


@pytest.fixture(scope="module")
def browser(console_world: ConsoleWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield Browser(driver, console_world)
    driver.quit()


@pytest.fixture
def workers(console_world: ConsoleWorld, tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(console_world.env, tmp_path / "logs")
    yield local
    local.stop_all(grace=20)


def _client(world: ConsoleWorld) -> TornadoClient:
    return TornadoClient(world.url, world.token)


def test_an_operator_signs_in_and_watches_a_job_go_from_queued_to_succeeded(
    browser: Browser, console_world: ConsoleWorld, workers: LocalCluster
) -> None:
    job_id = _client(console_world).submit("demo.sleep", {"seconds": 0.5})["id"]
    browser.sign_in("otto.operator")
    browser.open(f"/console/jobs/{job_id}")
    assert browser.text(By.ID, "job-status") == "queued"  # no worker for demo.sleep yet
    workers.start_worker("demo.sleep")
    browser.wait_text(By.ID, "job-status", "succeeded")  # the page refreshed itself: no reload here
    assert "finished" in browser.text(By.ID, "timeline").lower()
    browser.screenshot("job")


def test_an_operator_finds_a_failed_job_by_its_error_text(
    browser: Browser, console_world: ConsoleWorld, workers: LocalCluster
) -> None:
    reason = f"SEFAZ rejected lot {uuid.uuid4().hex[:8]}"
    client = _client(console_world)
    failed = client.submit("demo.fail", {"reason": reason, "retryable": False})["id"]
    others = [
        client.submit("demo.fail", {"reason": "another failure", "retryable": False})["id"] for _ in range(3)
    ]
    workers.start_worker("demo.fail")
    for job_id in [failed, *others]:
        wait_for_job(console_world.services, job_id, JobStatus.DEAD, timeout=60)
    browser.sign_in("otto.operator")
    browser.open("/console/jobs")
    browser.driver.find_element(By.ID, "error-text").send_keys(reason.split()[-1])
    browser.click(By.ID, "search")
    browser.wait_text(By.ID, "matched", "1 matching")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#results tr[data-job]")
    assert [row.get_attribute("data-job") for row in rows] == [failed]
    assert reason in rows[0].text
    browser.screenshot("jobs")
    rows[0].find_element(By.TAG_NAME, "a").click()
    browser.wait_text(By.ID, "job-error", reason)
    assert "NonRetryable" in browser.text(By.ID, "job-error")


def test_an_operator_redrives_one_dead_letter_then_bulk_redrives_a_filtered_1000(
    browser: Browser, console_world: ConsoleWorld
) -> None:
    world = console_world
    version = world.services.registry.get("demo.fail").version
    source = queue_name(world.services.settings.queue_prefix, "demo.fail", version)
    dlq = dead_letter_name(source)
    big, small = f"big-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
    small_jobs = _seed_dead_letters(world, small, 5, source)  # first: the DLQ page lists the oldest 100
    _seed_dead_letters(world, big, 1000, source)
    waiting_before = world.services.queue.depth(source).visible

    browser.sign_in("otto.operator")
    browser.open(f"/console/dead-letters?task=demo.fail&version={version}")
    row = browser.driver.find_element(By.CSS_SELECTOR, f"#letters tr[data-job='{small_jobs[0]}']")
    row.find_element(By.CSS_SELECTOR, "button.redrive").click()
    browser.click(By.ID, "confirm")
    browser.wait_text(By.ID, "notice", f"Redrive done for job {small_jobs[0]}")
    assert world.services.jobs.get(small_jobs[0]).status is JobStatus.QUEUED  # type: ignore[union-attr]

    browser.open(f"/console/jobs?task=demo.fail&status=dead&tenant={big}")
    browser.wait_text(By.ID, "matched", "1,000 matching")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#results tr[data-job]")) == 50  # one page shown
    Select(browser.driver.find_element(By.ID, "bulk-action")).select_by_value("redrive")
    browser.click(By.ID, "bulk-review")
    browser.wait_text(By.ID, "confirm-question", "1,000 jobs match")
    browser.click(By.ID, "confirm")
    browser.wait_text(By.ID, "bulk-status", "succeeded", timeout=120)
    assert browser.text(By.ID, "bulk-done") == "1,000"
    browser.screenshot("bulk-action")

    statuses = {world.services.jobs.get(j).status for j in _job_ids_of(world, big)}  # type: ignore[union-attr]
    assert statuses == {JobStatus.QUEUED}
    assert world.services.queue.depth(source).visible == waiting_before + 1001
    assert world.services.queue.depth(dlq).total >= 4  # the small tenant's other four stay dead
    assert {world.services.jobs.get(j).status for j in small_jobs[1:]} == {JobStatus.DEAD}  # type: ignore[union-attr]
    browser.open("/console/audit?action=jobs.bulk_redrive")
    assert big in browser.text(By.ID, "audit") and "otto.operator" in browser.text(By.ID, "audit")


def test_an_operator_promotes_a_version_and_rolls_it_back(
    browser: Browser, console_world: ConsoleWorld
) -> None:
    world = console_world
    world.cli("release", "deploy", RELEASED_TASK, "1.0.0", *code_of("1.0.0"))
    world.cli("release", "promote", RELEASED_TASK, "1.0.0")
    world.cli("release", "deploy", RELEASED_TASK, "2.0.0", *code_of("2.0.0"))
    browser.sign_in("otto.operator")
    browser.open(f"/console/tasks/{RELEASED_TASK}")
    assert browser.text(By.ID, "current-version") == "1.0.0"
    browser.screenshot("task")
    browser.click(By.ID, "promote-2.0.0")
    browser.wait_text(By.ID, "confirm-question", "to 2.0.0")
    browser.click(By.ID, "confirm")
    browser.wait_text(By.ID, "notice", "Promote done")
    assert browser.text(By.ID, "current-version") == "2.0.0"
    assert _route_current(world) == "2.0.0"

    browser.click(By.ID, "rollback-2.0.0")
    browser.wait_text(By.ID, "confirm-question", "Route demo.release back from 2.0.0")
    browser.click(By.ID, "confirm")
    browser.wait_text(By.ID, "notice", "Roll back started")
    _refresh_until(browser, lambda: browser.text(By.ID, "current-version") == "1.0.0")
    assert _route_current(world) == "1.0.0"
    audit = world.cli("audit", "list", "--actor", "otto.operator").stdout
    assert "release.promote" in audit and "release.rollback" in audit


def test_a_viewer_sees_the_console_but_cannot_act(browser: Browser, console_world: ConsoleWorld) -> None:
    browser.sign_in("vera.viewer")
    browser.open(f"/console/tasks/{RELEASED_TASK}")
    assert not browser.driver.find_elements(By.CSS_SELECTOR, "[id^=promote-], [id^=rollback-]")
    browser.open("/console/jobs?task=demo.fail")
    assert not browser.driver.find_elements(By.ID, "bulk-form")
    browser.open(f"/console/tasks/{RELEASED_TASK}/release?action=promote&version=1.0.0")
    assert browser.text(By.ID, "error-status") == "403"
    assert "viewer role cannot" in browser.text(By.ID, "error-reason")


def test_the_queues_and_figures_pages_show_the_runs(browser: Browser, console_world: ConsoleWorld) -> None:
    browser.sign_in("vera.viewer")
    browser.open("/console/figures?window=1h")
    table = browser.text(By.CSS_SELECTOR, "table.figures")
    assert "demo.sleep" in table and "demo.fail" in table
    browser.screenshot("figures")
    browser.open("/console/queues")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "table.queues tr[data-queue]")
    browser.screenshot("queues")
    browser.open("/console")
    assert RELEASED_TASK in browser.text(By.TAG_NAME, "main")
    browser.screenshot("overview")


def _seed_dead_letters(world: ConsoleWorld, tenant: str, count: int, source: str) -> list[str]:
    """``count`` dead ``demo.fail`` jobs of ``tenant``: rows in the store, messages in the DLQ."""
    services, version = world.services, world.services.registry.get("demo.fail").version
    now = time.time()
    envelopes = [
        Envelope(
            job_id=services.job_ids.new(tenant),
            task="demo.fail",
            version=version,
            tenant=tenant,
            payload={"reason": "ERP timeout", "retryable": False},
            submitted_at=now,
        )
        for _ in range(count)
    ]
    services.jobs.record_queued(
        [
            NewJob(job_id=e.job_id, tenant=tenant, task=e.task, version=version, submitted_at=now)
            for e in envelopes
        ]
    )
    for envelope in envelopes:
        failure = Failure(error_type="NonRetryable", message="ERP timeout")
        services.jobs.record_failure(envelope.job_id, status=JobStatus.DEAD, failure=failure)
    dlq, size = dead_letter_name(source), services.queue.max_send_batch
    for start in range(0, count, size):
        chunk = envelopes[start : start + size]
        assert services.queue.send_batch(dlq, [OutgoingMessage(e.to_json()) for e in chunk]) == [None] * len(
            chunk
        )
    return [e.job_id for e in envelopes]


def _job_ids_of(world: ConsoleWorld, tenant: str) -> list[str]:
    page = world.services.jobs.list(tenant=tenant, task="demo.fail", limit=1000)
    assert page.next_cursor is None
    return [job.job_id for job in page.jobs]


def _route_current(world: ConsoleWorld) -> str | None:
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.releases import PostgresReleaseStore

    pool = PostgresPool(world.env["TORNADO_DATABASE_URL"], max_size=1)
    try:
        route = PostgresReleaseStore(pool).route(RELEASED_TASK)
        return route.current if route else None
    finally:
        pool.close()


def _refresh_until(browser: Browser, condition: Callable[[], bool], *, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, browser.driver.page_source[:1500]
        time.sleep(0.5)
        browser.driver.refresh()
