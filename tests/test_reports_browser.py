"""The HTML report in a real browser: Debian's Chromium, headless, driven by Playwright
(which never downloads a browser of its own here). Offline: the page is set directly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from reports import render_html
from reports.weekly import build
from reports.weeks import Week
from tests.test_reports_weekly import AFTER, TZ, WEEK, known_week

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is needed for the browser tests (.ci/run installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def screenshot(browser: Browser, html: str, png: Path, width: int = 900) -> dict[str, float]:
    page = browser.new_page(viewport={"width": width, "height": 1000})
    try:
        page.set_content(html)
        page.screenshot(path=str(png), full_page=True)
        return {
            "scripts": page.evaluate("document.scripts.length"),
            "overflow": page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            ),
            "bar_width": page.locator("td[bgcolor]").first.bounding_box()["width"]  # type: ignore[index]
            if page.locator("td[bgcolor]").count()
            else 0,
        }
    finally:
        page.close()


def colours(png: Path) -> tuple[int, float]:
    """(distinct colours, share of the commonest) of a screenshot."""
    image = Image.open(png).convert("RGB")
    counts = image.getcolors(maxcolors=image.width * image.height) or []
    return len(counts), max(n for n, _ in counts) / (image.width * image.height)


def test_report_renders_in_chromium_and_is_not_blank(browser: Browser, tmp_path: Path) -> None:
    config = known_week(tmp_path / "store")
    png = tmp_path / "report.png"
    facts = screenshot(browser, render_html.render(build(config, WEEK, now=AFTER)), png)
    assert facts["scripts"] == 0
    assert facts["bar_width"] > 20  # the chart bars have real width
    distinct, commonest = colours(png)
    assert distinct > 100  # text, bars in several colours, tiles, borders
    assert commonest < 0.9  # not one flat colour
    assert Image.open(png).height > 2000  # every section rendered


def test_report_fits_a_phone_and_an_empty_week_still_renders(
    browser: Browser, tmp_path: Path
) -> None:
    config = known_week(tmp_path / "store")
    facts = screenshot(
        browser, render_html.render(build(config, WEEK, now=AFTER)), tmp_path / "p.png", 390
    )
    assert facts["overflow"] <= 0  # no sideways scrolling on a phone
    empty = render_html.render(build(config, Week(2026, 30, TZ), now=AFTER))
    screenshot(browser, empty, tmp_path / "empty.png")
    distinct, commonest = colours(tmp_path / "empty.png")
    assert distinct > 20 and commonest < 0.95
