"""The page in a real browser: Debian's headless Chromium driven by selenium.

Runs when ``EINDERIV_BROWSER_TESTS=1`` (``.ci/run`` sets it and installs ``chromium``,
``chromium-driver`` and the ``test`` extra (selenium)). Then a missing browser, driver
or selenium is a FAILURE that says what to install, never a silent pass; without
the variable the tests are reported as skipped with that reason, so a plain
``pytest`` works on a machine without a browser. Nothing is downloaded: the driver
is the system's ``chromedriver`` (selenium's own driver manager is not used).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from web_server import running

LINREG = "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n"
ENABLED = os.environ.get("EINDERIV_BROWSER_TESTS") == "1"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000"]

pytestmark = pytest.mark.skipif(
    not ENABLED, reason="BROWSER TESTS NOT RUN: set EINDERIV_BROWSER_TESTS=1 (with Debian's "
                        "chromium and chromium-driver and pip install -e '.[test]'; "
                        ".ci/run does this) to run the page in headless Chromium")


def _find(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"EINDERIV_BROWSER_TESTS=1 but no {names[0]} on PATH: apt-get install -y "
                f"chromium chromium-driver", pytrace=False)


def make_driver(profile: str) -> Any:
    """Headless Chromium with a fresh profile, driven through the system chromedriver."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("EINDERIV_BROWSER_TESTS=1 but selenium is missing: pip install -e "
                    "'.[test]'", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options,
                            service=Service(executable_path=_find("chromedriver")))


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[Any, str]]:
    with running(workers=2, time_limit=20.0) as base, tempfile.TemporaryDirectory() as profile:
        driver = make_driver(profile)
        try:
            yield driver, base
        finally:
            driver.quit()


def _wait(driver: Any, condition: Any, what: str, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout).until(lambda d: condition(d))
    except Exception as exc:
        text = driver.find_element("id", "error").text
        raise AssertionError(f"timed out waiting for {what}; the page's error box: {text!r}; "
                             f"status: {driver.find_element('id', 'status').text!r}") from exc


def _text(driver: Any, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _type(driver: Any, element_id: str, text: str) -> None:
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(text)


def test_typing_the_linear_regression_loss(browser):
    driver, base = browser
    driver.get(base + "/")
    _type(driver, "shapes", "")
    _type(driver, "wrt", "theta")
    _type(driver, "expr", LINREG)  # no Enter: the page updates as one types (debounced)
    _wait(driver, lambda d: _text(d, "matrix-text") == "2/n X^T (X theta - Y)",
          "the matrix form")
    assert _text(driver, "index-text") == "2*X[a,d]*(X[a,b]*theta[b] - Y[a])/n"
    for box in ("input-tex", "index-tex", "matrix-tex"):  # rendered by KaTeX, not raw LaTeX
        rendered = driver.find_elements("css selector", f"#{box} .katex .katex-html")
        assert rendered and rendered[0].is_displayed(), box
    assert "\\frac" not in _text(driver, "matrix-tex")
    assert "free indices: (d)" in _text(driver, "free")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query)
    assert query["expr"] == [LINREG] and query["wrt"] == ["theta"]  # the state is in the URL
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe  # no script error, no refused font or style, no 404


def test_a_malformed_expression_shows_the_caret(browser):
    driver, base = browser
    driver.get(base + "/?expr=x%5Bi%5D&wrt=x")
    _wait(driver, lambda d: _text(d, "index-text") != "", "the first result")
    _type(driver, "expr", "x[i] + * y[i]\n")
    _wait(driver, lambda d: d.find_element("id", "error").is_displayed(), "the error box")
    lines = _text(driver, "error").splitlines()
    assert lines[0].startswith("ParseError: unexpected '*'"), lines
    assert lines[1].strip() == "x[i] + * y[i]" and lines[2].strip() == "^"
    assert lines[2].index("^") == lines[1].index("*")  # the caret under the '*'


def test_a_shared_url_shows_the_same_result(browser):
    driver, base = browser
    driver.get(base + "/")
    example = "//nav[@id='examples']/button[contains(., 'dZ/dW')]"
    _wait(driver, lambda d: d.find_elements("xpath", example), "the examples")
    driver.find_element("xpath", example).click()
    _wait(driver, lambda d: _text(d, "compressed-text") == "A[b]", "the structure report")
    shared = driver.current_url
    index = _text(driver, "index-text")
    assert "expr=" in shared and "shapes=" in shared
    assert driver.find_element("id", "heat").size["height"] > 20
    driver.find_element("css selector", "#tabs [data-backend=torch]").click()
    assert "import torch" in driver.find_element("id", "code").get_attribute("textContent")
    with tempfile.TemporaryDirectory() as profile:
        other = make_driver(profile)  # another browser opens the link
        try:
            other.get(shared)
            _wait(other, lambda d: _text(d, "index-text") == index, "the shared result")
            assert _text(other, "compressed-text") == "A[b]"
            assert other.find_element("id", "expr").get_attribute("value") == "W[j,i]*A[j]"
        finally:
            other.quit()
