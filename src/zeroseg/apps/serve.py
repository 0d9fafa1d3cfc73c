"""``zeroseg serve``: a web page to segment an uploaded image with class names typed by the user.

The page (gradio, the field's convention; the optional ``serve`` extra) takes an image, class names
(commas between classes, ``|`` between synonyms: ``cat | kitten, dog, grass``), a background toggle
and its threshold, and shows the overlay with a legend, the region of each segment token, a summary
of the classes found, and a download of the label PNG (palette indices, as ``zeroseg segment``
writes). ``segment_for_page`` does the work and needs no web stack; ``build_app`` lays out the page.

Made to stay up under use (``PageLimits``): an upload over ``max_upload_bytes`` or
``max_pixels`` (checked from the file's header, before it is decoded), more than ``max_classes``
classes or a name longer than ``max_name_chars`` is a one-line message on the page; at most
``queue_size`` requests wait (one runs at a time: the model uses every core); the label PNGs are
kept in one temporary folder, only the newest ``keep_files`` of them, and gradio's own copies of
uploads and answers are deleted once older than ``cache_seconds``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zeroseg.apps.visualize import overlay, save_label_png, segment_regions
from zeroseg.data.images import open_rgb, to_tensor
from zeroseg.errors import ZeroSegError, first_line
from zeroseg.inference.text_queries import parse_class_list

EXTRA_HINT = 'zeroseg serve needs the web extra: pip install "zeroseg[serve]"'
PAGE_TITLE = "zeroseg: open-vocabulary segmentation"


@dataclass(frozen=True)
class PageLimits:
    """What one request may ask for, and how much the page keeps (see the module's docstring)."""

    max_upload_bytes: int = 20 << 20
    max_pixels: int = 16_000_000
    max_classes: int = 256
    max_name_chars: int = 100
    queue_size: int = 16
    keep_files: int = 32
    cache_seconds: int = 300

    def check_classes(self, classes: list) -> None:
        if len(classes) > self.max_classes:
            raise ZeroSegError(
                f"{len(classes)} classes; this page takes at most {self.max_classes}"
            )
        for entry in classes:
            for name in [entry] if isinstance(entry, str) else entry:
                if len(name) > self.max_name_chars:
                    raise ZeroSegError(
                        f"class name {name[:20]!r}... has {len(name)} characters; this page takes "
                        f"at most {self.max_name_chars}"
                    )


def read_upload(image, limits: PageLimits) -> Image.Image:
    """The uploaded image (a file path, as the page passes it, or a PIL image) as RGB, within the
    page's limits; a one-line error for anything else."""
    if image is None:
        raise ZeroSegError("upload an image first")
    if isinstance(image, str | Path):
        size = os.path.getsize(image) if os.path.isfile(image) else 0
        if size > limits.max_upload_bytes:
            raise ZeroSegError(
                f"the upload is {size / 2**20:.1f} MB; this page takes at most "
                f"{limits.max_upload_bytes / 2**20:.0f} MB"
            )
        try:
            return open_rgb(image, max_pixels=limits.max_pixels)
        except ZeroSegError as error:  # the message names the server's temporary path: not shown
            text = str(error).replace(f"image {image}", "the upload").replace(str(image), "it")
            raise ZeroSegError(text) from None
    if image.width * image.height > limits.max_pixels:
        raise ZeroSegError(
            f"the image is {image.width}x{image.height}; this page takes at most "
            f"{limits.max_pixels / 1e6:.0f} MP"
        )
    return image.convert("RGB")


class RecentFiles:
    """Paths of the answers' files, oldest first; past ``keep`` the oldest are deleted."""

    def __init__(self, keep: int) -> None:
        self.keep, self.paths, self.lock = keep, list[Path](), threading.Lock()

    def add(self, path: Path) -> None:
        with self.lock:
            self.paths.append(path)
            while len(self.paths) > self.keep:
                self.paths.pop(0).unlink(missing_ok=True)


@dataclass
class PageResult:
    """What the page shows for one request."""

    overlay: Image.Image
    regions: Image.Image | None
    label_png: Path
    summary: str


def segment_for_page(
    segmenter,
    image: Image.Image | str | Path | None,
    classes: str,
    background: bool,
    threshold: float,
    out_dir: Path,
    limits: PageLimits | None = None,
) -> PageResult:
    """Segment ``image`` (a PIL image or the uploaded file's path) with the typed classes; write
    the label PNG into ``out_dir``.

    The shared segmenter is not changed: each request works on a copy with its own vocabulary.
    """
    limits = limits or PageLimits()
    rgb = read_upload(image, limits)
    if len(classes or "") > limits.max_classes * (limits.max_name_chars + 2):
        raise ZeroSegError(f"the class list is {len(classes)} characters long; too long")
    names = parse_class_list(classes or "")
    limits.check_classes(names)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ZeroSegError(f"the background threshold {threshold!r} is not a number") from None
    if not 0 <= threshold <= 1:
        raise ZeroSegError(f"the background threshold must be within 0..1, got {threshold}")
    request = segmenter.with_config(bg_threshold=threshold)
    request.set_vocabulary(names, background=bool(background))
    result = request.predict(to_tensor(rgb))
    labels = result.labels.cpu().numpy().astype(np.int64)
    label_png = Path(out_dir) / f"labels_{uuid.uuid4().hex[:12]}.png"
    save_label_png(labels, label_png)
    scale = display_scale(rgb.width)
    big = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    regions = None
    if result.segment_ids is not None:
        segment_names = [result.class_names[int(c)] for c in result.segment_classes.cpu()]
        segments = _repeat(result.segment_ids.cpu().numpy(), scale)
        regions = segment_regions(big, segments, segment_names)
    shown = overlay(big, _repeat(labels, scale), result.class_names)
    return PageResult(shown, regions, label_png, _summary(labels, result))


def display_scale(width: int, least: int = 256) -> int:
    """Integer factor that shows a small picture at least ``least`` pixels wide."""
    return max(1, -(-least // max(width, 1)))


def _repeat(array: np.ndarray, scale: int) -> np.ndarray:
    return array.repeat(scale, 0).repeat(scale, 1) if scale > 1 else array


def _summary(labels: np.ndarray, result) -> str:
    values, counts = np.unique(labels, return_counts=True)
    rows = ["| class | area |", "|---|---|"]
    order = np.argsort(-counts)
    rows += [
        f"| {result.class_names[int(values[i])]} | {counts[i] / labels.size:.1%} |" for i in order
    ]
    return "\n".join(rows)


def _import_gradio():
    """gradio, with its usage analytics off; a one-line error naming the extra when missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ZeroSegError(EXTRA_HINT) from None
    return gradio


def _one_line_failures(gr, preprocess):
    """gradio's image input's ``preprocess``, whose failures (a file that is no image) are one
    line (an instance attribute: subclassing a component makes gradio write a ``.pyi`` file)."""

    def wrapped(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - PIL's many ways to refuse a file
            reason = (
                "not an image file" if isinstance(error, UnidentifiedImageError)
                else first_line(error)
            )  # fmt: skip
            raise gr.Error(
                f"cannot read the upload as an image: {reason}", print_exception=False
            ) from None

    return wrapped


def build_app(segmenter, default_classes: str = "", limits: PageLimits | None = None):
    """The gradio Blocks page around ``segmenter`` (its config gives the default threshold)."""
    gr = _import_gradio()
    limits = limits or PageLimits()
    out_dir = Path(tempfile.mkdtemp(prefix="zeroseg-serve-"))
    recent = RecentFiles(limits.keep_files)

    def run(image, classes, background, threshold):
        try:
            page = segment_for_page(
                segmenter, image, classes, background, threshold, out_dir, limits
            )
        except ZeroSegError as error:
            raise gr.Error(str(error), print_exception=False) from None
        recent.add(page.label_png)
        return page.overlay, page.regions, str(page.label_png), page.summary

    delete = (max(1, limits.cache_seconds // 4), limits.cache_seconds)
    with gr.Blocks(title=PAGE_TITLE, delete_cache=delete) as app:
        gr.Markdown(
            f"## {PAGE_TITLE}\nUpload an image, type class names (commas between classes, `|` "
            "between synonyms), press **Segment**."
        )
        with gr.Row():
            with gr.Column():
                # a path: the upload's size is checked from its header before it is decoded
                image = gr.Image(type="filepath", label="image", elem_id="zs-image")
                image.preprocess = _one_line_failures(gr, image.preprocess)  # type: ignore[method-assign]
                classes = gr.Textbox(
                    value=default_classes, label="classes", elem_id="zs-classes",
                    placeholder="cat | kitten, dog, grass",
                )  # fmt: skip
                background = gr.Checkbox(label="background class", elem_id="zs-background")
                threshold = gr.Slider(
                    0, 1, value=segmenter.config.bg_threshold, step=0.01,
                    label="background threshold", elem_id="zs-threshold",
                )  # fmt: skip
                submit = gr.Button("Segment", variant="primary", elem_id="zs-submit")
            with gr.Column():
                shown = gr.Image(label="segmentation", format="png", elem_id="zs-overlay")
                regions = gr.Image(label="segment tokens", format="png", elem_id="zs-regions")
                label_png = gr.File(label="label PNG", elem_id="zs-label-png")
                summary = gr.Markdown(elem_id="zs-summary")
        submit.click(
            run, [image, classes, background, threshold], [shown, regions, label_png, summary],
            api_name="segment",
        )  # fmt: skip
    app.queue(max_size=limits.queue_size, default_concurrency_limit=1)
    return app


def serve(
    checkpoint: str,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    default_classes: str = "",
    block: bool = True,
    limits: PageLimits | None = None,
):
    """Load the model and start the page; returns the gradio app (running) when not ``block``."""
    from zeroseg.inference.segmenter import Segmenter

    _import_gradio()  # fail before loading a model
    limits = limits or PageLimits()
    segmenter = Segmenter.from_checkpoint(checkpoint, device=device)
    app = build_app(segmenter, default_classes, limits)
    app.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
        quiet=not block, max_file_size=limits.max_upload_bytes,
    )  # fmt: skip
    return app
