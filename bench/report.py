"""The report page's size and render time in Debian's chromium, against a blank page in the same browser.

Run after `make demo` (it reads demo-out/ and ./mlruns):  .venv/bin/python bench/report.py [--loads 5]

Prints: the time `pltv report` takes to build the page, the page's size, and the median time chromium takes
to load and paint it (navigation to two animation frames after the load event) beside the same for a blank
page (the browser's floor), and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _load_times(browser, path: Path, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load")
        page.evaluate(PAINTED)
        times.append(time.perf_counter() - started)
        page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=str(ROOT / "demo-out"), help="the demo's output folder")
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    demo = Path(args.demo)
    if not (demo / "ledger.duckdb").exists():
        sys.exit(f"no {demo / 'ledger.duckdb'}: run `make demo` first")
    from activation.report_page import ReportOptions, write_report
    from pltv.config import SourceConfig

    options = ReportOptions(
        source=SourceConfig(path=str(ROOT / "data" / "sample")),
        ledger_path=demo / "ledger.duckdb",
        tracking_uri=f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}",
        spec_path=demo / "eventspec.json",
    )
    started = time.perf_counter()
    _, out = write_report(options, demo / "report.html")
    build = time.perf_counter() - started
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        blank = Path(tmp) / "blank.html"
        blank.write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>blank</title></head><body></body></html>"
        )
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            _load_times(browser, out, 1)  # warm the browser's caches and processes once
            page_times = _load_times(browser, out, args.loads)
            blank_times = _load_times(browser, blank, args.loads)
        finally:
            browser.close()
    page_s, blank_s = statistics.median(page_times), statistics.median(blank_times)
    print(f"build (pltv report, in process): {build:.2f} s")
    print(f"page: {out} {out.stat().st_size / 1e6:.2f} MB ({out.stat().st_size:,} bytes; limit 2 MB)")
    print(f"chromium load+paint, median of {args.loads}: page {page_s:.3f} s (max {max(page_times):.3f} s; "
          f"limit 2 s), blank page {blank_s:.3f} s, ratio {page_s / blank_s:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
