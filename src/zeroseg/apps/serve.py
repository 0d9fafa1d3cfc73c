"""``zeroseg serve``: a web page to segment an uploaded image with class names typed by the user.

The page (gradio, the field's convention; the optional ``serve`` extra) takes an image, class names
(commas between classes, ``|`` between synonyms: ``cat | kitten, dog, grass``), a background toggle
and its threshold, and shows the overlay with a legend, the region of each segment token, a summary
of the classes found, and a download of the label PNG (palette indices, as ``zeroseg segment``
writes). ``segment_for_page`` does the work and needs no web stack; ``build_app`` lays out the page.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zeroseg.apps.visualize import overlay, save_label_png, segment_regions
from zeroseg.data.images import to_tensor
from zeroseg.errors import ZeroSegError
from zeroseg.inference.text_queries import parse_class_list

EXTRA_HINT = 'zeroseg serve needs the web extra: pip install "zeroseg[serve]"'
PAGE_TITLE = "zeroseg: open-vocabulary segmentation"


@dataclass
class PageResult:
    """What the page shows for one request."""

    overlay: Image.Image
    regions: Image.Image | None
    label_png: Path
    summary: str


def segment_for_page(
    segmenter, image: Image.Image, classes: str, background: bool, threshold: float, out_dir: Path
) -> PageResult:
    """Segment ``image`` with the typed classes; write the label PNG into ``out_dir``.

    The shared segmenter is not changed: each request works on a copy with its own vocabulary.
    """
    if image is None:
        raise ZeroSegError("upload an image first")
    names = parse_class_list(classes or "")
    request = segmenter.with_config(bg_threshold=float(threshold))
    request.set_vocabulary(names, background=bool(background))
    rgb = image.convert("RGB")
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


def build_app(segmenter, default_classes: str = ""):
    """The gradio Blocks page around ``segmenter`` (its config gives the default threshold)."""
    gr = _import_gradio()
    out_dir = Path(tempfile.mkdtemp(prefix="zeroseg-serve-"))

    def run(image, classes, background, threshold):
        try:
            page = segment_for_page(segmenter, image, classes, background, threshold, out_dir)
        except ZeroSegError as error:
            raise gr.Error(str(error)) from None
        return page.overlay, page.regions, str(page.label_png), page.summary

    with gr.Blocks(title=PAGE_TITLE) as app:
        gr.Markdown(
            f"## {PAGE_TITLE}\nUpload an image, type class names (commas between classes, `|` "
            "between synonyms), press **Segment**."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", label="image", elem_id="zs-image")
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
            run, [image, classes, background, threshold], [shown, regions, label_png, summary]
        )
    return app


def serve(
    checkpoint: str,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    default_classes: str = "",
    block: bool = True,
):
    """Load the model and start the page; returns the gradio app (running) when not ``block``."""
    from zeroseg.inference.segmenter import Segmenter

    _import_gradio()  # fail before loading a model
    segmenter = Segmenter.from_checkpoint(checkpoint, device=device)
    app = build_app(segmenter, default_classes)
    app.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
        quiet=not block,
    )  # fmt: skip
    return app
