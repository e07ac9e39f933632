"""A real headless Chromium for the console's tests: Debian's chromium, driven through its chromedriver."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

#: Where Debian puts the browser and its driver (`.ci/bootstrap` installs both).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_chromium(profile: Path) -> webdriver.Chrome:
    """A headless Chromium with a fresh profile that talks to nothing but the pages it is sent to.

    Raises:
        FileNotFoundError: chromium or chromedriver is not installed (run `.ci/bootstrap` as root).
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            raise FileNotFoundError(f"{path} is missing: `bash .ci/bootstrap` as root installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--window-size=1440,1000", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver
