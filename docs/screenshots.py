"""Screenshots of the demo for the docs, from Debian's Chromium (run after ``make demo``).

    .venv/bin/python docs/screenshots.py            # writes docs/images/07..09-*.png
    .venv/bin/python docs/screenshots.py dashboard  # writes docs/images/03-airloop-dashboard.png

Logs in to the embedded stack with the password in ``.airloop/stack/secrets.json`` and
captures: the asset graph around ``flights.drift`` (monitor -> drift -> train -> challenger ->
promote -> champion, with the event that started a retrain), the Dags list after the demo, and
MLflow's registered model with its aliases. The airloop view inside the Airflow UI comes from
``tests/system/test_ui_browser.py`` (``AIRLOOP_DOCS_SCREENSHOTS=1``).

``card PATH`` needs no stack: it captures the *How the model decides* section of the model card
at PATH (``benchmarks/explain_card.py --card PATH`` writes one from real trainings) into
``docs/images/12-card-explanations.png``.

``dashboard`` needs no stack: it builds the dashboard tests' lake (``tests/dashboard_world.py``,
about a minute), renders the flights dashboard with plotly.js inlined, and captures the whole
page once the charts are drawn."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]  # fmt: skip


def main() -> None:
    from playwright.sync_api import sync_playwright

    from devstack.api import AirflowClient
    from devstack.stack import Stack

    stack = Stack(home=ROOT / ".airloop" / "stack")
    drift = next(
        a
        for a in AirflowClient.for_stack(stack).request("GET", "/api/v2/assets")["assets"]
        if a["name"] == "flights.drift"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(stack.api_url)
        page.locator("input[name=username]").fill(stack.username)
        page.locator("input[name=password]").fill(stack.password)
        page.locator("button[type=submit]").click()
        page.get_by_role("link", name="airloop").wait_for()
        shots = {
            "07-asset-graph-drift": f"{stack.api_url}/assets/{drift['id']}",
            "08-dags-after-demo": f"{stack.api_url}/dags?tags=flights",
            "09-mlflow-model-aliases": "http://127.0.0.1:5000/#/models/flights",
        }
        for name, url in shots.items():
            page.goto(url)
            page.wait_for_load_state("load")
            time.sleep(6)  # the UI fetches, then graphs and charts animate in
            if "5000" in url:  # MLflow 3.17 opens an assistant panel over the page: close it
                close = page.get_by_role("button", name="Close")
                if close.count():
                    close.first.click()
                    time.sleep(1)
            page.screenshot(path=str(IMAGES / f"{name}.png"))
            print("wrote", IMAGES / f"{name}.png")
        browser.close()


def dashboard() -> None:
    from playwright.sync_api import sync_playwright

    from airloop.dashboard_view import model_html
    from include.dashboard import gather_dashboard
    from tests.dashboard_world import MODEL, build_world

    with tempfile.TemporaryDirectory(prefix="airloop-screenshot-") as folder:
        world = build_world(Path(folder))
        page_file = Path(folder) / "dashboard.html"
        page_file.write_text(model_html(gather_dashboard(world.lake, MODEL, None), plotly_src=None, days=90))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(page_file.as_uri())
            page.locator("#performance-chart .main-svg").first.wait_for()
            time.sleep(1)
            page.screenshot(path=str(IMAGES / "03-airloop-dashboard.png"), full_page=True)
            browser.close()
    print("wrote", IMAGES / "03-airloop-dashboard.png")


def card(path: Path) -> None:
    from playwright.sync_api import sync_playwright

    target = IMAGES / "12-card-explanations.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.goto(path.resolve().as_uri())
        page.locator("section", has_text="How the model decides").screenshot(path=str(target))
        browser.close()
    print("wrote", target)


if __name__ == "__main__":
    if sys.argv[1:2] == ["card"]:
        card(Path(sys.argv[2]))
    else:
        dashboard() if sys.argv[1:] == ["dashboard"] else main()
