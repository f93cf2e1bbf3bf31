"""The web console in headless Chromium (Debian's `chromium` and `chromium-driver`, which scripts/setup installs),
driven by Selenium, against an in-process server over an empty lake with two tenants (no Spark)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from jobs.shells.http import make_server, running
from jobs.spec import Config
from sample_lake import empty_deployment

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artefacts" / "console"
# org → (token, sandboxes)
TENANTS = {"orgA": ("token-a", ["prod"]), "orgB": ("token-b", ["prod"])}
LAPTOP, PHONE = (1366, 900), (390, 844)
# Nothing leaves 127.0.0.1: no updates, sync, field trials or QUIC probes.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def auth(org: str = "orgA") -> dict[str, str]:
    return {"Authorization": f"Bearer {TENANTS[org][0]}", "x-api-key": "browser-tests",
            "x-gw-ims-org-id": org, "x-sandbox-name": "prod"}


@pytest.fixture(scope="session")
def console_config(tmp_path_factory) -> Config:
    return empty_deployment(tmp_path_factory.mktemp("console-lake"), TENANTS)


@pytest.fixture(scope="session")
def base_url(console_config) -> Iterator[str]:
    with running(make_server(console_config, port=0, log_level="warning")) as url:
        yield url


@pytest.fixture(scope="session")
def api(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run ./scripts/setup (it installs Debian's chromium and "
                    "chromium-driver)")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={LAPTOP[0]},{LAPTOP[1]}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to find Content-Security-Policy refusals
    # The driver's path is given, so Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Console:
    """The browser on the console: sign in, open a page, wait for what it shows, keep a screenshot."""

    def __init__(self, driver: WebDriver, base_url: str):
        self.driver, self.base_url = driver, base_url

    def start(self) -> None:
        self.driver.set_window_size(*LAPTOP)
        self.driver.get(f"{self.base_url}/console")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(f"{self.base_url}/console")

    def sign_in(self, org: str = "orgA", token: str | None = None) -> None:
        self.start()
        form = self.wait_for("#sign-in")
        self.type("#token", token or TENANTS[org][0])
        self.type("#org", org)
        self.type("#sandbox", "prod")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def type(self, selector: str, text: str) -> None:
        field = self.wait_for(selector)
        field.clear()
        field.send_keys(text)

    def open(self, route: str) -> None:
        self.driver.execute_script("location.hash = arguments[0]", route)

    def find(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait_for(self, selector: str, text: str | None = None, seconds: float = 15) -> WebElement:
        """The first visible element at `selector` (whose text holds `text`, if given)."""
        def found(driver: WebDriver) -> WebElement | bool:
            for element in driver.find_elements(By.CSS_SELECTOR, selector):
                if element.is_displayed() and (text is None or text in element.text):
                    return element
            return False
        # A page redraws what it polls: an element found a moment ago may be gone.
        element = WebDriverWait(self.driver, seconds, poll_frequency=0.1,
                                ignored_exceptions=[StaleElementReferenceException]).until(
            found, f"nothing at {selector!r}" + (f" showing {text!r}" if text else ""))
        assert isinstance(element, WebElement)
        return element

    def until(self, condition: Callable[[], bool], message: str, seconds: float = 15) -> None:
        WebDriverWait(self.driver, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
                      ).until(lambda _driver: condition(), message)

    def screenshot(self, name: str) -> None:
        """The page at laptop and phone width, as build/test-artefacts/console/NAME-laptop.png and -phone.png."""
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        for width, size in (("laptop", LAPTOP), ("phone", PHONE)):
            self.driver.set_window_size(*size)
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(size[0], max(size[1], min(int(height) + 120, 3000)))
            self.driver.save_screenshot(str(ARTEFACTS / f"{name}-{width}.png"))
        self.driver.set_window_size(*LAPTOP)


@pytest.fixture
def console(browser, base_url) -> Console:
    return Console(browser, base_url)
