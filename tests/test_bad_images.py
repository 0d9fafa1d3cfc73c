"""Images users actually have: each one is read as displayed or refused in one line naming it."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from zeroseg.cli import main
from zeroseg.data.images import open_rgb
from zeroseg.errors import ZeroSegError


def _jpeg_bytes(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


GRADIENT = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
RGB = np.stack([GRADIENT, GRADIENT[::-1], np.full_like(GRADIENT, 90)], -1)


def _exif_rotated() -> bytes:
    img = Image.fromarray(RGB)  # 40 wide, 30 high as stored
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def _bomb() -> bytes:
    return _png(Image.new("1", (12000, 12000)))  # 144 MP, a few kB on disk


GOOD = {  # name -> (bytes, expected displayed (width, height), check of the pixels or None)
    "plain.png": (_png(Image.fromarray(RGB)), (40, 30), None),
    "cmyk.jpg": (None, (40, 30), None),
    "grey16.png": (_png(Image.fromarray(GRADIENT.astype(np.uint16) * 257)), (40, 30), "scaled"),
    "float.tiff": (None, (40, 30), "scaled"),
    "palette.png": (_png(Image.fromarray(RGB).convert("P")), (40, 30), None),
    "la.png": (_png(Image.fromarray(GRADIENT).convert("LA")), (40, 30), None),
    "rgba.png": (None, (40, 30), "white"),
    "exif_rotated.jpg": (_exif_rotated(), (30, 40), None),
    "one pixel ü.png": (_png(Image.new("RGB", (1, 1), (10, 20, 30))), (1, 1), None),
    "thin.png": (_png(Image.new("RGB", (1000, 1), (200, 10, 10))), (1000, 1), None),
}
BAD = {  # name -> (bytes or a maker, text the one-line error must contain)
    "empty.png": (b"", "cannot read image"),
    "truncated.jpg": (_jpeg_bytes(RGB)[:200], "cannot read image"),
    "truncated.png": (_png(Image.fromarray(RGB))[:60], "cannot read image"),
    "text.jpg": (b"this is not an image\n" * 5, "cannot read image"),
    "bomb.png": (_bomb(), "MP"),
}


def _write_all(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _, _) in GOOD.items():
        if name == "float.tiff":
            Image.fromarray(GRADIENT.astype(np.float32) / 255).save(folder / name)
        elif name == "cmyk.jpg":
            Image.fromarray(RGB).convert("CMYK").save(folder / name, format="JPEG")
        elif name == "rgba.png":
            rgba = np.zeros((30, 40, 4), np.uint8)
            rgba[..., 3] = 0  # fully transparent black
            Image.fromarray(rgba).save(folder / name)
        else:
            (folder / name).write_bytes(data)
    for name, (data, _) in BAD.items():
        (folder / name).write_bytes(data)
    (folder / "folder.png").mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return _write_all(tmp_path_factory.mktemp("zoo") / "my photos")


@pytest.mark.parametrize("name", list(GOOD))
def test_good_images_are_read_as_displayed(zoo, name):
    img = open_rgb(zoo / name)
    assert img.mode == "RGB" and img.size == GOOD[name][1]
    check = GOOD[name][2]
    array = np.asarray(img)
    if check == "scaled":  # a 16-bit or float gradient keeps its range (not clipped to white)
        assert array[..., 0].min() <= 2 and array[..., 0].max() >= 253
        assert len(np.unique(array[..., 0])) > 20
    if check == "white":
        assert (array == 255).all()


@pytest.mark.parametrize("name", [*BAD, "folder.png", "missing.png"])
def test_bad_images_are_one_line_errors_naming_the_file(zoo, name):
    with pytest.raises(ZeroSegError) as info:
        open_rgb(zoo / name)
    message = str(info.value)
    assert name in message and "\n" not in message
    if name in BAD:
        assert BAD[name][1] in message


def test_exif_orientation_is_applied(zoo):
    shown = np.asarray(open_rgb(zoo / "exif_rotated.jpg")).astype(int)
    # orientation 6 turns the stored picture 90 degrees clockwise: red rose left to right, so now
    # it rises top to bottom
    expected = np.rot90(RGB, k=-1).astype(int)
    assert shown.shape == expected.shape and np.abs(shown - expected).mean() < 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(_png(Image.fromarray(RGB)))
    path.chmod(0)
    with pytest.raises(ZeroSegError, match="locked.png"):
        open_rgb(path)


def test_segment_a_folder_of_them_all(zoo, tmp_path, tiny_run, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(zoo), "--checkpoint", str(tiny_run), "--classes", "a, b",
                 "--out", str(out), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == len(GOOD)
    assert {s["path"].rsplit("/", 1)[-1] for s in summary["skipped"]} == set(BAD)
    for record in summary["images"]:
        assert Image.open(out / record["output"]).size == (record["width"], record["height"])
