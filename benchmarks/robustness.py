"""Bad inputs through the command line: every case ends in a result or a one-line error, nothing lost.

Runs ``zeroseg`` in-process on a table of inputs a user might give (images of every kind and
breakage, class lists, checkpoints and releases that are wrong, config overrides out of range) and
classifies each outcome:

- correct result: exit status 0 and the expected outputs present (label PNG of the input's size);
- clean error: exit status 1 or 2 and standard error ending in one ``zeroseg: ...`` line, no
  traceback;
- crash: any exception escaping ``main``, a traceback, or a result where an error was due;
- files lost: a file that was in the output folder before the command and changed or vanished,
  or a temporary file left behind.

    python benchmarks/robustness.py            # prints the table; exit status 1 on any crash
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zeroseg.cli import main

GOOD_ARRAY = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)


@dataclass
class Case:
    group: str
    name: str
    argv: Callable[[Path], list[str]]  # from the case's own folder
    expect: str  # "result" or "error"
    prepare: Callable[[Path], None] = lambda folder: None
    # a Python API call instead of a command (argv unused): returns normally or raises
    call: Callable[[Path], object] | None = None
    # what must hold afterwards besides the exit status (e.g. no half-written run folder)
    check: Callable[[Path], str | None] = lambda folder: None  # a problem, or None


def _png(path: Path, img: Image.Image) -> None:
    img.save(path, format="PNG")


def image_cases(run: Path) -> list[Case]:
    """Images: good ones of unusual kinds, broken ones, wrong kinds of path."""
    makers: dict[str, tuple[Callable[[Path], None], str]] = {
        "rgb.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY)), "result"),
        "grey.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY[..., 0])), "result"),
        "grey16.png": (
            lambda p: _png(p, Image.fromarray(GOOD_ARRAY[..., 0].astype(np.uint16) * 257)),
            "result",
        ),
        "float.tiff": (
            lambda p: Image.fromarray(GOOD_ARRAY[..., 0].astype(np.float32) / 255).save(p),
            "result",
        ),
        "cmyk.jpg": (
            lambda p: Image.fromarray(GOOD_ARRAY).convert("CMYK").save(p, "JPEG"),
            "result",
        ),
        "palette.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY).convert("P")), "result"),
        "la.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY[..., 0]).convert("LA")), "result"),
        "rgba.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY).convert("RGBA")), "result"),
        "one.png": (lambda p: _png(p, Image.new("RGB", (1, 1))), "result"),
        "thin.png": (lambda p: _png(p, Image.new("RGB", (2000, 1), (9, 9, 9))), "result"),
        "tall.png": (lambda p: _png(p, Image.new("RGB", (1, 2000), (9, 9, 9))), "result"),
        "webp.webp": (lambda p: Image.fromarray(GOOD_ARRAY).save(p, "WEBP"), "result"),
        "bmp.bmp": (lambda p: Image.fromarray(GOOD_ARRAY).save(p, "BMP"), "result"),
        "name with spaces ü 日本.png": (lambda p: _png(p, Image.fromarray(GOOD_ARRAY)), "result"),
        "empty.png": (lambda p: p.write_bytes(b""), "error"),
        "truncated.jpg": (lambda p: p.write_bytes(_jpeg()[:150]), "error"),
        "truncated_half.jpg": (lambda p: p.write_bytes(_jpeg()[: len(_jpeg()) // 2]), "error"),
        "truncated.png": (lambda p: p.write_bytes(_png_bytes()[:80]), "error"),
        "text.png": (lambda p: p.write_text("not an image"), "error"),
        "html.jpg": (lambda p: p.write_text("<html>404</html>"), "error"),
        "zeros.jpg": (lambda p: p.write_bytes(bytes(4096)), "error"),
        "bomb.png": (lambda p: _png(p, Image.new("1", (12000, 12000))), "error"),
        "folder.png": (lambda p: p.mkdir(), "error"),
        "missing.png": (lambda p: None, "error"),
    }
    cases = []
    for name, (make, expect) in makers.items():

        def argv(folder: Path, name=name) -> list[str]:
            return ["segment", str(folder / name), "--checkpoint", str(run), "--classes", "a, b",
                    "--out", str(folder / "out"), "--no-progress"]  # fmt: skip

        cases.append(Case("images", name, argv, expect, lambda f, m=make, n=name: m(f / n)))
    return cases


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(GOOD_ARRAY).save(buffer, "JPEG")
    return buffer.getvalue()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(GOOD_ARRAY).save(buffer, "PNG")
    return buffer.getvalue()


def class_cases(run: Path) -> list[Case]:
    lists = {
        "empty": ("", "error"), "spaces": ("   ", "error"), "commas": (" , , ", "error"),
        "duplicate": ("cat, dog, cat", "error"), "case duplicate": ("Cat, cat", "error"),
        "empty synonym": ("cat |, dog", "error"), "bar only": ("|", "error"),
        "one": ("cat", "result"), "synonyms": ("cat | kitten, dog", "result"),
        "unicode": ("猫, собака, café", "result"), "emoji": ("🐱, 🐶", "result"),
        "long name": ("a " * 200 + "cat, dog", "result"),
        "300 classes": (", ".join(f"class {i}" for i in range(300)), "result"),
        "1000 classes": (", ".join(f"thing {i}" for i in range(1000)), "result"),
        "newlines": ("cat\ndog\n", "result"), "trailing comma": ("cat, dog,", "error"),
    }  # fmt: skip
    cases = []
    for name, (text, expect) in lists.items():

        def argv(folder: Path, text=text) -> list[str]:
            return ["segment", str(folder / "x.png"), "--checkpoint", str(run), "--classes", text,
                    "--out", str(folder / "out"), "--no-progress", "--templates", "simple1"]  # fmt: skip

        cases.append(Case("class lists", name, argv, expect,
                          lambda f: _png(f / "x.png", Image.fromarray(GOOD_ARRAY))))  # fmt: skip
    return cases


def checkpoint_cases(run: Path, release: Path) -> list[Case]:
    latest = sorted((run / "checkpoints").glob("step_*.pt"))[-1]

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("touch pickle-ran",))

    def other_architecture(folder: Path) -> None:
        state = torch.load(latest, weights_only=True)
        state["config"]["seg_head"]["width"] = 32
        torch.save(state, folder / "ckpt.pt")

    makers = {
        "missing": lambda f: None,
        "empty folder": lambda f: (f / "ckpt.pt").mkdir(),
        "truncated": lambda f: (f / "ckpt.pt").write_bytes(latest.read_bytes()[:1000]),
        "text": lambda f: (f / "ckpt.pt").write_text("hello"),
        "foreign": lambda f: torch.save({"weights": torch.zeros(3)}, f / "ckpt.pt"),
        "pickled code": lambda f: torch.save({"model": RunsCode(), "config": {}}, f / "ckpt.pt"),
        "other architecture": other_architecture,
        "flipped byte": lambda f: _flipped(latest, f / "ckpt.pt"),
        "release without config": lambda f: _release_without(release, f / "ckpt.pt", "config.json"),
        "release without weights": lambda f: _release_without(release, f / "ckpt.pt", "model.safetensors"),
        "release bad weights": lambda f: _release_broken(release, f / "ckpt.pt"),
        "hub id offline": lambda f: None,
    }  # fmt: skip
    cases = []
    for name, make in makers.items():

        def argv(folder: Path, name=name) -> list[str]:
            target = "someone/not-cached" if name == "hub id offline" else str(folder / "ckpt.pt")
            return ["segment", str(folder / "x.png"), "--checkpoint", target, "--classes", "a",
                    "--out", str(folder / "out"), "--no-progress"]  # fmt: skip

        def prepare(folder: Path, make=make) -> None:
            _png(folder / "x.png", Image.fromarray(GOOD_ARRAY))
            make(folder)

        cases.append(Case("checkpoints", name, argv, "error", prepare))
    return cases


def _flipped(source: Path, target: Path) -> None:
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    sidecar = source.with_name(source.name + ".sha256")
    target.with_name(target.name + ".sha256").write_text(sidecar.read_text())


def _release_without(release: Path, target: Path, missing: str) -> None:
    import shutil

    shutil.copytree(release, target)
    (target / missing).unlink()


def _release_broken(release: Path, target: Path) -> None:
    import shutil

    shutil.copytree(release, target)
    (target / "model.safetensors").write_bytes(b"\x00" * 64)


def override_cases(data: Path) -> list[Case]:
    train = {
        "mask ratio 1.0": "encoder.mask_ratio=1.0", "mask ratio 1.5": "encoder.mask_ratio=1.5",
        "mask ratio -0.5": "encoder.mask_ratio=-0.5", "batch 0": "optim.batch_size=0",
        "batch -4": "optim.batch_size=-4", "micro-batch 0": "optim.micro_batch_size=0",
        "checkpoint_every 0": "train.checkpoint_every=0", "steps -5": "train.steps=-5",
        "lr nan": "optim.base_lr=nan", "lr inf": "optim.base_lr=.inf",
        "unknown key": "train.nope=1", "unknown section": "nope.x=1", "no equals": "encoder",
        "wrong type": "optim.batch_size=many", "list for int": "optim.batch_size=[1]",
        "bad matching": "loss.matching=closest", "device cuda:7": "train.device=cuda:7",
        "device tpu": "train.device=tpu", "grids empty": "teacher.grids=[]",
        "negative weight": "loss.dense_weight=-1", "keep -1": "train.keep_checkpoints=-1",
        "teacher file missing": "teacher.pretrained=/nowhere/teacher.pt",
        "encoder init missing": "encoder.init_checkpoint=/nowhere/mae.pth",
        "bad yaml": "loss.matching=[unclosed", "grids without 1": "teacher.grids=[2,3]",
        "grids repeated": "teacher.grids=[1,2,2]", "dense size -1": "teacher.dense_size=-1",
        "gradient x": "loss.dense_gradient=x", "workers -1": "data.num_workers=-1",
    }  # fmt: skip
    cases = []
    for name, override in train.items():

        def argv(folder: Path, override=override) -> list[str]:
            return ["train", "--preset", "tiny", "--data", str(data), "--out", str(folder / "out"),
                    "--no-progress", override]  # fmt: skip

        cases.append(Case("training overrides", name, argv, "error"))
    inference = {
        "window 0": "window=0", "stride > window": "stride=99", "threshold 2": "bg_threshold=2",
        "mode x": "mode=x", "pamr -1": "pamr_steps=-1", "templates x": "templates=nope",
        "short side -1": "short_side=-1", "top-k -2": "top_k_classes=-2",
    }  # fmt: skip
    return cases + [
        Case(
            "inference overrides",
            name,
            lambda f, o=o, d=data: [
                "segment",
                str(next(d.rglob("*.png"))),
                "--checkpoint",
                "unused",
                "--classes",
                "a",
                "--out",
                str(f / "out"),
                "--set",
                o,
                "--set",
                "window=8" if "stride" in o else "mode=whole",
            ],
            "error",
        )  # fmt: skip
        for name, o in inference.items()
    ]


def _copy_then(source: Path, target: Path, breakage: Callable[[Path], None]) -> None:
    import shutil

    shutil.copytree(source, target)
    breakage(target)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_json(path: Path, change: dict) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


def cache_and_pack_cases(data: Path, cache: Path, shards: Path) -> list[Case]:
    """Teacher caches and packs that are stale, truncated, altered or not what they claim."""
    subset = data.parent / "images-subset"
    breakages = {
        "cache": {
            "for another grid": (lambda c: None, ["teacher.grids=[1,3]"]),
            "for another teacher": (lambda c: None, ["teacher.seed=7"]),
            "for another image list": (lambda c: None, [f"data.root={subset}"]),
            "chunk with a flipped bit": (lambda c: _flip(c / "views-00000.npy"), []),
            "chunk truncated": (lambda c: _cut(c / "views-00000.npy"), []),
            "chunk missing": (lambda c: (c / "views-00000.npy").unlink(), []),
            "meta not JSON": (lambda c: (c / "meta.json").write_text("{"), []),
            "meta a list": (lambda c: (c / "meta.json").write_text("[]"), []),
            "of another layout": (lambda c: _edit_json(c / "meta.json", {"layout": "v0"}), []),
            "a file, not a folder": (lambda c: None, ["data.teacher_cache=" + str(data / "0.png")]),
        },
        "pack": {
            "shard with a flipped bit": (lambda p: _flip(p / "shard-000000.tar"), []),
            "shard truncated": (lambda p: _cut(p / "shard-000001.tar"), []),
            "shard missing": (lambda p: (p / "shard-000000.tar").unlink(), []),
            "manifest missing": (lambda p: (p / "manifest.json").unlink(), []),
            "manifest not JSON": (lambda p: (p / "manifest.json").write_text("{"), []),
            "manifest of another format": (
                lambda p: _edit_json(p / "manifest.json", {"format": "x"}), []),
            "manifest without shards": (lambda p: _edit_json(p / "manifest.json", {"shards": []}), []),
            "manifest counts wrong": (lambda p: _edit_json(p / "manifest.json", {
                "shards": [{**e, "count": e["count"] + 1}
                           for e in json.loads((p / "manifest.json").read_text())["shards"]]}), []),
            "incomplete": (lambda p: _edit_json(p / "manifest.json", {"complete": False}), []),
            "views of another teacher": (lambda p: None, ["teacher.grids=[1,3]"]),
            "crops of another size": (lambda p: None, ["encoder.image_size=32"]),
            "with a teacher cache too": (lambda p: None, [f"data.teacher_cache={cache}"]),
            "with dense targets": (lambda p: None, ["loss.dense_weight=1"]),
            "nowhere": (lambda p: None, ["data.shards=/nowhere/pack"]),
        },
    }  # fmt: skip
    cases = []
    for kind, table in breakages.items():
        source = cache if kind == "cache" else shards
        for name, (breakage, extra) in table.items():

            def argv(folder: Path, kind=kind, extra=extra) -> list[str]:
                where = (
                    [f"data.root={data}", f"data.teacher_cache={folder / 'cache'}"]
                    if kind == "cache" else [f"data.shards={folder / 'cache'}"]
                )  # fmt: skip
                return ["train", "--preset", "tiny", "--out", str(folder / "out"), "--steps", "1",
                        "--no-progress", *where, *extra, "data.num_workers=1"]  # fmt: skip

            def prepare(folder: Path, source=source, breakage=breakage) -> None:
                _copy_then(source, folder / "cache", breakage)

            cases.append(Case(f"teacher caches and packs: {kind}", name, argv, "error", prepare))
    return cases


def _broken_folder(data: Path, folder: Path, bad: int) -> Path:
    """A copy of the training images with ``bad`` corrupt files and one decompression bomb."""
    import shutil

    target = folder / "images"
    shutil.copytree(data, target)
    for i in range(bad):
        (target / f"{i}b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.new("1", (12000, 12000)).save(target / "bomb.png")
    return target


def _no_half_written_run(folder: Path) -> str | None:
    out = folder / "out"
    left = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    stray = [name for name in left if name not in ("keep.txt", "skipped_images.json")]
    return f"a half-written run folder: {stray}" if stray else None


def _skipped_listed(count: int, where: str, exact: bool = True) -> Callable[[Path], str | None]:
    """``where`` lists ``count`` unreadable images (with ``exact=False``: 1..count, those the
    run's few steps drew)."""

    def check(folder: Path) -> str | None:
        path = folder / where
        if not path.is_file():
            return f"{where} missing"
        listed = json.loads(path.read_text())
        found = listed["count"] if "count" in listed else len(listed.get("skipped", []))
        ok = found == count if exact else 1 <= found <= count
        return None if ok else f"{where} lists {found} images, not {count}"

    return check


def reliability_cases(data: Path, run: Path) -> list[Case]:
    """Issue 23's held-out failures: devices, run folders, epochs, bad training images."""
    cuda = "result" if torch.cuda.is_available() else "error"

    def segment(device: str) -> Callable[[Path], list[str]]:
        return lambda f: ["segment", str(f / "x.png"), "--checkpoint", str(run), "--classes",
                          "a, b", "--out", str(f / "out"), "--no-progress", "--device", device]  # fmt: skip

    def train(*extra: str, data_of=lambda f: data) -> Callable[[Path], list[str]]:
        return lambda f: ["train", "--preset", "tiny", "--data", str(data_of(f)), "--out",
                          str(f / "out"), "--no-progress", *extra]  # fmt: skip

    def x_png(folder: Path) -> None:
        _png(folder / "x.png", Image.fromarray(GOOD_ARRAY))

    broken = lambda f: f / "images"  # noqa: E731
    group = "devices, run folders, epochs, bad training images"
    return [
        Case(group, "segment --device bogus", segment("bogus"), "error", x_png),
        Case(group, "segment --device cuda", segment("cuda"), cuda, x_png),
        Case(
            group,
            "train --out below /proc",
            lambda f: [
                "train",
                "--data",
                str(data),
                "--out",
                "/proc/zeroseg/run",
                "--steps",
                "1",
                "--no-progress",
            ],
            "error",
        ),  # fmt: skip
        Case(
            group,
            "train optim.epochs=0, no --steps",
            train("optim.epochs=0"),
            "error",
            check=_no_half_written_run,
        ),  # fmt: skip
        Case(
            group,
            "train: 2 corrupt images and a bomb among 16",
            train("--steps", "2", data_of=broken),
            "result",
            lambda f: _broken_folder(data, f, 2),
            check=_skipped_listed(3, "out/skipped_images.json", exact=False),
        ),  # fmt: skip
        Case(
            group,
            "train: bad images past data.max_bad_images",
            train("--steps", "2", "data.max_bad_images=2", "data.num_workers=0", data_of=broken),
            "error",
            lambda f: _broken_folder(data, f, 16),
            check=_no_half_written_run,
        ),  # fmt: skip
        Case(
            group,
            "cache-teacher: 2 corrupt images and a bomb",
            lambda f: [
                "cache-teacher",
                "--data",
                str(f / "images"),
                "--cache",
                str(f / "out" / "cache"),
                "--no-progress",
            ],
            "result",
            lambda f: _broken_folder(data, f, 2),
            check=_skipped_listed(3, "out/cache/meta.json"),
        ),  # fmt: skip
    ]


def api_cases(run: Path) -> list[Case]:
    """``Segmenter.set_vocabulary`` and ``predict`` given what a user might pass."""
    from zeroseg import Segmenter

    segmenter = Segmenter.from_checkpoint(run, device="cpu")
    good = torch.from_numpy(GOOD_ARRAY).permute(2, 0, 1).float() / 255
    vocabularies = {
        "set_vocabulary(5)": (5, "error"), "set_vocabulary('cat, dog')": ("cat, dog", "error"),
        "set_vocabulary([1, 2])": ([1, 2], "error"), "set_vocabulary([])": ([], "error"),
        "set_vocabulary(['cat', None])": (["cat", None], "error"),
        "set_vocabulary([['cat', 'kitten'], 'dog'])": ([["cat", "kitten"], "dog"], "result"),
    }  # fmt: skip
    images = {
        "predict 0-pixel image": (torch.zeros(3, 0, 0), "error"),
        "predict image with NaN": (good.clone().fill_(float("nan")), "error"),
        "predict image with inf": (good.clone().fill_(float("inf")), "error"),
        "predict uint8 0..255": ((good * 255).to(torch.uint8), "error"),
        "predict int64": (good.long(), "error"),
        "predict float 0..255": (good * 255, "error"),
        "predict mean/std normalised": ((good - 0.45) / 0.25, "error"),
        "predict (H, W, 3)": (good.permute(1, 2, 0), "error"),
        "predict batched (1, 3, H, W)": (good[None], "error"),
        "predict numpy array": (GOOD_ARRAY, "error"),
        "predict float16": (good.half(), "result"),
        "predict float64": (good.double(), "result"),
    }  # fmt: skip

    def vocabulary(names) -> Callable[[Path], object]:
        return lambda f: segmenter.with_config().set_vocabulary(names)

    def predict(image) -> Callable[[Path], object]:
        def call(folder: Path) -> object:
            model = segmenter.with_config()
            model.set_vocabulary(["a", "b"])
            return model.predict(image)

        return call

    group = "Python API (set_vocabulary, predict)"
    return [
        *(Case(group, name, lambda f: [], expect, call=vocabulary(names))
          for name, (names, expect) in vocabularies.items()),
        *(Case(group, name, lambda f: [], expect, call=predict(image))
          for name, (image, expect) in images.items()),
    ]  # fmt: skip


def run_api_case(case: Case, folder: Path) -> dict:
    """A Python call: a result, or a one-line ``ZeroSegError``; anything else is a crash."""
    from zeroseg.errors import ZeroSegError

    assert case.call is not None
    folder.mkdir(parents=True)
    crashed, detail = None, "returned"
    try:
        case.call(folder)
        outcome = "correct result" if case.expect == "result" else "crash"
        crashed = None if case.expect == "result" else "a result where an error was due"
    except ZeroSegError as error:
        detail = str(error)
        one_line = "\n" not in detail and detail
        outcome = "clean error" if case.expect == "error" and one_line else "crash"
        crashed = None if outcome == "clean error" else f"an error where a result was due: {detail}"
    except BaseException as error:  # noqa: BLE001 - a crash is what this counts
        outcome, crashed = "crash", f"{type(error).__name__}: {str(error)[:200]}"
    return {"group": case.group, "case": case.name, "outcome": outcome, "files_lost": False,
            "detail": crashed or detail}  # fmt: skip


def run_case(case: Case, folder: Path) -> dict:
    if case.call is not None:
        return run_api_case(case, folder)
    folder.mkdir(parents=True)
    case.prepare(folder)
    out = folder / "out"
    if not case.group.startswith(("training overrides", "teacher caches")):  # train makes its own
        out.mkdir(exist_ok=True)
        (out / "keep.txt").write_text("the user's file")
    stdout, stderr = io.StringIO(), io.StringIO()
    crashed = None
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(case.argv(folder))
    except SystemExit as exit_:  # argparse
        code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException as error:  # noqa: BLE001 - a crash is what this counts
        code, crashed = None, f"{type(error).__name__}: {str(error)[:200]}"
    err = stderr.getvalue().strip()
    last = err.splitlines()[-1] if err else ""
    own_out = case.group.startswith(("training overrides", "teacher caches"))
    lost = not (out / "keep.txt").is_file() and not own_out
    lost = lost or bool(list(folder.rglob("*.tmp"))) or (folder / "pickle-ran").exists()
    problem = case.check(folder)
    if crashed or "Traceback" in err:
        outcome = "crash"
    elif problem is not None:
        outcome, crashed = "crash", problem
    elif code == 0:
        made = (
            any(p.suffix == ".png" for p in out.rglob("*.png")) or case.argv(folder)[0] != "segment"
        )
        ok = case.expect == "result" and made
        outcome = "correct result" if ok else "crash"
        crashed = None if ok else "a result where an error was due"
    elif code in (1, 2) and last.startswith("zeroseg: "):
        outcome = "clean error" if case.expect == "error" else "crash"
        crashed = None if case.expect == "error" else f"an error where a result was due: {last}"
    else:
        outcome, crashed = "crash", f"exit status {code}, stderr {last!r}"
    return {"group": case.group, "case": case.name, "outcome": outcome, "files_lost": lost,
            "detail": crashed or last}  # fmt: skip


def build_fixtures(root: Path) -> tuple[Path, Path, Path, Path, Path]:
    """A folder of training images (and a subset of it), a tiny trained run and its release, a
    complete teacher cache and a pack with views of the images."""
    from zeroseg.config import load_config
    from zeroseg.data.pack import PackOptions, pack
    from zeroseg.inference.release import export_release
    from zeroseg.training.loop import train

    data = root / "images"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    subset = root / "images-subset"
    subset.mkdir()
    for i in range(8):
        (subset / f"{i}.png").write_bytes((data / f"{i}.png").read_bytes())
    run, cache = root / "run", root / "cache"
    overrides = [f"data.root={data}", "train.steps=2", f"data.teacher_cache={cache}"]
    train(load_config("tiny", overrides), run, progress=False)
    shards = root / "shards"
    pack(load_config("tiny", [f"data.root={data}"]), shards, PackOptions(5, views=True), False)
    return data, run, export_release(run, root / "release"), cache, shards


def all_cases(data: Path, run: Path, release: Path, cache: Path, shards: Path) -> list[Case]:
    return [*image_cases(run), *class_cases(run), *checkpoint_cases(run, release),
            *override_cases(data), *cache_and_pack_cases(data, cache, shards),
            *reliability_cases(data, run), *api_cases(run)]  # fmt: skip


def main_() -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fixtures = build_fixtures(root)
        cwd = os.getcwd()
        rows = []
        for index, case in enumerate(all_cases(*fixtures)):
            folder = root / f"case{index:03d}"
            os.chdir(root)
            try:
                rows.append(run_case(case, folder))
            finally:
                os.chdir(cwd)
    from zeroseg.runtime.machine import describe

    print(f"machine: {describe(torch.device('cpu'))}")
    print("| group | inputs | correct results | clean errors | crashes | files lost |")
    print("|---|---|---|---|---|---|")
    groups = sorted({r["group"] for r in rows}, key=[r["group"] for r in rows].index)
    for group in [*groups, "all"]:
        sel = [r for r in rows if group in ("all", r["group"])]
        count = {
            k: sum(r["outcome"] == k for r in sel)
            for k in ("correct result", "clean error", "crash")
        }
        print(f"| {group} | {len(sel)} | {count['correct result']} | {count['clean error']} | "
              f"{count['crash']} | {sum(r['files_lost'] for r in sel)} |")  # fmt: skip
    for row in rows:
        if row["outcome"] == "crash" or row["files_lost"]:
            print(f"CRASH {row['group']} / {row['case']}: {row['detail']}")
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
    return 1 if any(r["outcome"] == "crash" or r["files_lost"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main_())
