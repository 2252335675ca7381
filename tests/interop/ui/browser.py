"""Headless Chromium (Debian's chromium + chromium-driver) for the UI's view tests, with the
browser console collected so a test can say "no console error"."""
import os
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT

ARTIFACTS = os.path.join(ROOT, "artifacts", "ui")
DOC_IMAGES = os.path.join(ROOT, "docs", "images")
CHROMIUM = os.environ.get("CHROMIUM_BIN", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", shutil.which("chromedriver") or "/usr/bin/chromedriver")


def make_driver(width=1400, height=900):
    assert os.path.exists(CHROMEDRIVER), "chromium-driver is not installed (scripts/test installs it)"
    os.makedirs(ARTIFACTS, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The machine may be loaded (other engineers' builds): generous, as a deadline, not a sleep.
    driver.set_page_load_timeout(90)
    driver.set_script_timeout(90)
    return driver


def wait(driver, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def console_errors(driver):
    """Console errors and uncaught exceptions since the last call (the log is drained)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shot(driver, name, doc=False):
    """Saves artifacts/ui/NAME; with MESHTRACE_UPDATE_DOC_IMAGES=1 also docs/images/NAME."""
    path = os.path.join(ARTIFACTS, name)
    driver.save_screenshot(path)
    if doc and os.environ.get("MESHTRACE_UPDATE_DOC_IMAGES") == "1":
        os.makedirs(DOC_IMAGES, exist_ok=True)
        shutil.copyfile(path, os.path.join(DOC_IMAGES, name))
    return path


def dataset(driver, key):
    return driver.execute_script(f"return document.documentElement.dataset.{key}")


def light_theme(driver):
    driver.execute_script("try { localStorage.setItem('meshtrace.theme', 'light') } catch (e) {}")


def boxes(driver, css):
    """Client rectangles of the matching elements, in one script."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => { const r = e.getBoundingClientRect();"
        " return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; })", css)


def overlapping(a, b, slack=0.5):
    return a["x0"] + slack < b["x1"] and b["x0"] + slack < a["x1"] and a["y0"] + slack < b["y1"] and b["y0"] + slack < a["y1"]
