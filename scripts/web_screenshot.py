"""Regenerate docs/img/web.png: the page of ``einderiv serve`` in headless Chromium.

    python scripts/web_screenshot.py [--out docs/img/web.png]

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium (the
``test`` extra (selenium)); nothing is downloaded. The page shows the notes'
linear-regression loss with the steps open, as a link to it would.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from einderiv.web import make_server

ROOT = Path(__file__).resolve().parents[1]
STATE = {"expr": "(X[a,b]*theta[b] - Y[a])*(X[a,c]*theta[c] - Y[a])/n", "wrt": "theta",
         "shapes": "X=n,d"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1200,900"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "web.png"))
    args = parser.parse_args()
    httpd = make_server("127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/?{urllib.parse.urlencode(STATE)}"
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in FLAGS + [f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(
            executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"))
        try:
            driver.get(url)
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element("id", "matrix-text").text == "2/n X^T (X theta - Y)")
            driver.execute_script("document.getElementById('steps-box').open = true;")
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1200, min(int(height) + 40, 2400))
            WebDriverWait(driver, 10).until(
                lambda d: d.execute_script("return document.fonts.status") == "loaded")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
            httpd.shutdown()
            httpd.server_close()
            httpd.pool.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
