"""``zeroseg serve`` in a real browser: start-up time, time to an answer, and a screenshot.

Starts the page for a model (``zeroseg demo`` exports its student as ``zeroseg-demo/model``) on
localhost, opens it in the system's headless Chromium through Playwright, uploads a validation
scene of the demo world, types its classes, submits and waits for the overlay, then saves a
screenshot (the README's ``docs/serve.png``) and prints the timings.

    python benchmarks/serve_page.py --checkpoint zeroseg-demo/model --screenshot docs/serve.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from zeroseg.runtime.machine import describe
from zeroseg.synthetic.scenes import CLASS_NAMES, generate_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="zeroseg-demo/model")
    parser.add_argument("--port", type=int, default=7877)
    parser.add_argument("--seed", type=int, default=0, help="the demo's world seed")
    parser.add_argument("--index", type=int, default=3, help="validation scene index")
    parser.add_argument("--classes", default=", ".join(CLASS_NAMES))
    parser.add_argument("--screenshot", default="docs/serve.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from zeroseg.apps.serve import serve

    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.png"
        Image.fromarray(generate_scene(args.seed + 1, args.index).image).save(scene)
        started = time.perf_counter()
        app = serve(args.checkpoint, port=args.port, device="cpu", block=False)
        start_seconds = time.perf_counter() - started
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{args.port}/")
                page.locator("#zs-image input[type=file]").set_input_files(str(scene))
                page.locator("#zs-classes textarea").fill(args.classes)
                clicked = time.perf_counter()
                page.locator("#zs-submit").click()
                page.wait_for_selector("#zs-overlay img", timeout=60_000)
                page.locator("#zs-label-png a[download]").wait_for(timeout=60_000)
                answer_seconds = time.perf_counter() - clicked
                page.wait_for_timeout(500)
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.screenshot, full_page=True)
                browser.close()
        finally:
            app.close()
    print(f"machine: {describe(torch.device('cpu'))}")
    print(f"page up in {start_seconds:.1f} s (model loaded, server started); answer shown "
          f"{answer_seconds:.2f} s after Segment was pressed; screenshot {args.screenshot}")  # fmt: skip


if __name__ == "__main__":
    main()
