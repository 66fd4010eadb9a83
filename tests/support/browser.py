"""Debian's Chromium driven by Playwright, for the dashboard's tests: no browser download."""

import contextlib
import shutil

from support.engines import need
from support.harness import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


@contextlib.contextmanager
def chromium():
    """A headless Chromium (the system's), closed afterwards; the tests skip, saying why, without it."""
    path = need(shutil.which("chromium"), "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(None, "playwright", "make venv (the dev extra installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
