"""``zeroseg serve``: the page's work without a browser, and end to end in headless Chromium.

The browser test drives the system's Chromium (Debian's ``chromium`` package; ``.ci/run`` installs
it) through Playwright: upload an image, type classes, submit, download the label PNG, and compare
it with the Python API's labels for the same image. Without the browser or the ``serve`` extra it
skips and says what is missing.
"""

import os
import shutil
import socket
import sys

import numpy as np
import pytest
from PIL import Image

from zeroseg import Segmenter
from zeroseg.apps.serve import segment_for_page
from zeroseg.cli import main
from zeroseg.data.images import load_image
from zeroseg.inference.release import export_release

CLASSES = "red | crimson, green, blue sky"
API_CLASSES = [["red", "crimson"], "green", "blue sky"]


@pytest.fixture(scope="module")
def release(tiny_run, tmp_path_factory):
    return export_release(tiny_run, tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    array = np.zeros((60, 90, 3), np.uint8)
    array[:, :45] = (200, 30, 30)
    array[30:, 45:] = (30, 180, 40)
    array[:30, 45:] = (70, 120, 230)
    Image.fromarray(array).save(path)
    return path


def _api_labels(release, photo, background, threshold):
    segmenter = Segmenter.from_pretrained(release, device="cpu").with_config(bg_threshold=threshold)
    segmenter.set_vocabulary(API_CLASSES, background=background)
    return segmenter.predict(load_image(photo)).labels.numpy()


def test_page_work_matches_the_api(release, photo, tmp_path):
    segmenter = Segmenter.from_pretrained(release, device="cpu")
    image = Image.open(photo)
    page = segment_for_page(segmenter, image, CLASSES, True, 0.5, tmp_path)
    labels = np.asarray(Image.open(page.label_png))
    assert np.array_equal(labels, _api_labels(release, photo, True, 0.5))
    assert (
        page.overlay.width >= 256
        and page.regions is not None
        and "| class | area |" in page.summary
    )
    assert segmenter.vocabulary is None  # each request works on a copy


def test_serve_without_the_extra_names_it(monkeypatch, release, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--checkpoint", str(release)]) == 2
    err = capsys.readouterr().err
    assert 'pip install "zeroseg[serve]"' in err and "Traceback" not in err


def _chromium() -> str | None:
    names = (
        os.environ.get("ZEROSEG_CHROMIUM", ""),
        "chromium",
        "chromium-browser",
        "google-chrome",
    )
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(300)
def test_browser_round_trip(release, photo, tmp_path):
    pytest.importorskip("gradio", reason="the serve extra (gradio) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    from zeroseg.apps.serve import serve

    port = _free_port()
    app = serve(str(release), port=port, device="cpu", block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=browser_path, args=["--no-sandbox"]
            )
            page = browser.new_page(accept_downloads=True)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#zs-image input[type=file]").set_input_files(str(photo))
            page.locator("#zs-classes textarea").fill(CLASSES)
            page.locator("#zs-background input[type=checkbox]").check()
            page.locator("#zs-threshold input[type=number]").fill("0.5")
            page.locator("#zs-threshold input[type=number]").press("Enter")
            assert page.locator("#zs-threshold input[type=number]").input_value() == "0.5"
            page.locator("#zs-submit").click()
            page.wait_for_selector("#zs-overlay img", timeout=60_000)
            link = page.locator("#zs-label-png a[download]")
            link.wait_for(timeout=60_000)
            with page.expect_download() as download:
                link.click()
            saved = tmp_path / "labels.png"
            download.value.save_as(saved)
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    labels = np.asarray(Image.open(saved))
    assert labels.shape == (60, 90)
    assert np.array_equal(labels, _api_labels(release, photo, True, 0.5))
    # the threshold typed on the page mattered: the default would have given other labels
    assert not np.array_equal(labels, _api_labels(release, photo, True, 0.95))


def test_the_page_refuses_what_is_over_its_limits_in_one_line(release, photo, tmp_path):
    from zeroseg.apps.serve import PageLimits, RecentFiles
    from zeroseg.errors import ZeroSegError

    segmenter = Segmenter.from_pretrained(release, device="cpu")
    limits = PageLimits(max_upload_bytes=50_000, max_pixels=100_000, max_classes=3,
                        max_name_chars=10)  # fmt: skip
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)
    big = tmp_path / "big.bmp"
    Image.new("RGB", (200, 100)).save(big)  # 60 kB
    cases = {
        "over the limit of 0 MP": (bomb, CLASSES, 0.5),
        "this page takes at most 0 MB": (big, CLASSES, 0.5),
        "at most 0 MP": (Image.new("RGB", (400, 400)), CLASSES, 0.5),
        "at most 3": (photo, "a, b, c, d", 0.5),
        "at most 10": (photo, "a, abcdefghijklmnop", 0.5),
        "within 0..1": (photo, CLASSES, 5),
        "upload an image first": (None, CLASSES, 0.5),
    }
    for words, (image, classes, threshold) in cases.items():
        with pytest.raises(ZeroSegError, match=words) as caught:
            segment_for_page(segmenter, image, classes, True, threshold, tmp_path, limits)
        assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    page = segment_for_page(segmenter, str(photo), CLASSES, True, 0.5, tmp_path, limits)
    recent = RecentFiles(keep=2)
    kept = [tmp_path / f"{i}.png" for i in range(4)]
    for path in kept:
        path.write_bytes(b"x")
        recent.add(path)
    assert [p.exists() for p in kept] == [False, False, True, True] and page.label_png.exists()
