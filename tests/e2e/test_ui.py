"""The Prefect UI, looked at in a real browser (Debian's chromium, headless, through its chromedriver): the
deployments page shows a branch's deployment with the tags flowops gives it, and a production run shows its
artifact, the table of rows loaded per file. The screenshots it takes are the README's (FLOWOPS_SCREENSHOTS=DIR
keeps them there)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flowops.render.branches import branch_slug
from tests.helpers import api, run_id

ECOMMERCE = "ecommerce-events-e2e"  # the e2e copy's flow name (tests/e2e/conftest.py)

BRANCH = "feature/ui-check"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    """Headless chromium; required where FLOWOPS_REQUIRE_BROWSER_TESTS is set (CI installs it), else skipped."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = f"no {' or '.join(missing)}: apt-get install chromium chromium-driver"
        if os.environ.get("FLOWOPS_REQUIRE_BROWSER_TESTS"):
            pytest.fail(f"browser tests are required here (FLOWOPS_REQUIRE_BROWSER_TESTS) but: {message}")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # root in a container: no sandbox; no GPU; nothing fetched from the internet (component updates, sync)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1300",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def page_text_with(driver, url: str, *expected: str) -> str:
    """Open `url` and wait until the page's text holds every `expected` string; return that text."""
    driver.get(url)
    return wait_for_text(driver, *expected)


def wait_for_text(driver, *expected: str, timeout: float = 60) -> str:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body() -> str:
        return driver.find_element(By.TAG_NAME, "body").text

    try:
        WebDriverWait(driver, timeout).until(lambda _: all(text in body() for text in expected))
    except TimeoutException:
        raise AssertionError(f"{driver.current_url} never showed {expected}; it showed:\n{body()[:2000]}") from None
    return body()


def click_tab(driver, label: str, timeout: float = 60) -> None:
    """Click the page's tab `label` (Prefect's UI tabs are `li.p-tab` elements), once it is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    tab = (By.XPATH, f"//li[contains(@class, 'p-tab')][normalize-space()='{label}']")
    WebDriverWait(driver, timeout).until(expected_conditions.element_to_be_clickable(tab)).click()


def search(driver, text: str, timeout: float = 60) -> None:
    """Type `text` into the page's search box."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    box = (By.XPATH, "//input[contains(translate(@placeholder, 'S', 's'), 'search')]")
    WebDriverWait(driver, timeout).until(expected_conditions.element_to_be_clickable(box)).send_keys(text)


def open_card(driver, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    card = (By.XPATH, f"//*[normalize-space(text())='{text}']")
    WebDriverWait(driver, timeout).until(expected_conditions.element_to_be_clickable(card)).click()


def keep_screenshot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), f"no screenshot {name}"
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if os.environ.get("FLOWOPS_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["FLOWOPS_SCREENSHOTS"]) / name)


def test_the_ui_shows_branch_deployments_with_their_tags_and_a_runs_artifact_table(
    browser, ecommerce_repo, prefect_server, sample_month, table_name, tmp_path
):
    pool = f"ui-{table_name[-8:]}"
    ecommerce_repo.bootstrap(pool, "production", "staging")
    ecommerce_repo.deploy("main", "--work-pool", pool)
    ecommerce_repo.deploy(BRANCH, "--work-pool", pool)
    with ecommerce_repo.worker(pool):
        result = ecommerce_repo.flowops(
            "run", f"{ECOMMERCE}/production", "--param", f'sources=["{sample_month.as_uri()}"]',
            "--param", f"table={table_name}", "--wait", "--timeout", "240",
        )  # fmt: skip
    assert result.stdout.rstrip().endswith(": Completed"), result.stdout
    flow_run = run_id(result.stdout)

    branch_deployment = f"staging-{branch_slug(BRANCH)}"
    # the server holds other tests' deployments too, over more than one page: search for the branch's
    page_text_with(browser, f"{prefect_server.ui_url}/deployments", "Deployments")
    search(browser, branch_slug(BRANCH))
    wait_for_text(browser, branch_deployment)
    keep_screenshot(browser, tmp_path, "ui-deployments.png")
    # the list folds tags into "+6"; the deployment's own page lists them
    deployment = api(prefect_server.api_url, f"deployments/name/{ECOMMERCE}/{branch_deployment}")
    page_text_with(
        browser,
        f"{prefect_server.ui_url}/deployments/deployment/{deployment['id']}",
        f"branch:{branch_slug(BRANCH)}",
        "env:staging",
        f"project:{ecommerce_repo.project}",
    )
    keep_screenshot(browser, tmp_path, "ui-branch-deployment.png")

    page_text_with(browser, f"{prefect_server.ui_url}/runs/flow-run/{flow_run}", "Artifacts", "Completed")
    click_tab(browser, "Artifacts")
    wait_for_text(browser, "ecommerce-events-load", "Rows per file")
    open_card(browser, "ecommerce-events-load")  # the run's artifact, rendered on a page of its own
    artifact = wait_for_text(browser, "E-commerce events load", sample_month.name, "50,000", "Total: 50,000 rows")
    assert "rows loaded" in artifact
    keep_screenshot(browser, tmp_path, "ui-flow-run-artifact.png")
