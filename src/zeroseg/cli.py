"""The ``zeroseg`` command line: a thin layer of argparse over the library.

Every handler calls a public function and returns an exit code. Problems with the user's input
(``ZeroSegError``) print one line, ``zeroseg: error: ...``, and exit 2 without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from zeroseg.errors import ZeroSegError, error_line

logger = logging.getLogger("zeroseg")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a ZeroSeg student by distilling a frozen CLIP teacher")
    p.add_argument("--preset", default="tiny", help="preset name (paper, tiny) or YAML path [tiny]")
    p.add_argument("--data", help="folder of training images, searched recursively (data.root)")
    p.add_argument("--out", required=True, help="run directory for config, metrics, checkpoints")
    p.add_argument("--steps", type=int, help="optimiser steps (train.steps; default from epochs)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--dry-run", action="store_true", help="resolve and print the config, then exit")
    _add_progress_and_overrides(p, "experiment config overrides")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from zeroseg.config import config_yaml, load_config
    from zeroseg.training.loop import train

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    config = load_config(args.preset, overrides)
    if args.dry_run:
        print(config_yaml(config), end="")
        return 0
    if not config.data.root and not config.data.shards:
        raise ZeroSegError("no training data: pass --data DIR (or data.root=DIR, data.shards=PACK)")
    history = train(config, args.out, resume=args.resume, progress=not args.no_progress).history
    if history:
        first, last = history[0], history[-1]
        logger.info("loss %.4f -> %.4f over steps %d..%d", first["loss"], last["loss"],
                    first["step"], last["step"])  # fmt: skip
    logger.info("checkpoints in %s", Path(args.out) / "checkpoints")
    return 0


def _add_segment(sub) -> None:
    from zeroseg.benchmark.protocols import PROTOCOLS

    p = sub.add_parser("segment", help="segment images with your own class names")
    p.add_argument("images", nargs="+", help="image files, folders (recursive) or glob patterns")
    p.add_argument("--checkpoint", help="the student: run, checkpoint, release or Hub id")
    p.add_argument("--classes", required=True, help='comma-separated, e.g. "cat, dog, grass"')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--background", action="store_true", help="add a thresholded background class")
    p.add_argument("--bg-threshold", type=float, help="background threshold (bg_threshold) [0.95]")
    p.add_argument("--mode", choices=["whole", "slide"], help="inference mode (mode) [whole]")
    p.add_argument("--short-side", type=int, help="resize short side (short_side) [model's size]")
    p.add_argument("--templates", help="imagenet80, subset7 or simple1 (templates) [imagenet80]")
    p.add_argument("--coco", action="store_true", help="also write coco.json with RLE masks")
    p.add_argument("--protocol", choices=list(PROTOCOLS), help="a protocol's Context settings "
                   "[a readout's own; the student: its release's]")  # fmt: skip
    _add_method(p)
    p.add_argument("--device", default=None, help="cpu, cuda, ... [auto]")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_inference_set(p, "any InferenceConfig field, e.g. --set window=448 (repeatable)")
    p.set_defaults(handler=_run_segment)


def _add_progress_and_overrides(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=what)


def _add_inference_set(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable): InferenceConfig fields, collected in ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=help_text,
    )  # fmt: skip


def _flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``key=value`` overrides for the flags the user gave (attribute name -> config key)."""
    given = [(key, getattr(args, name)) for name, key in flags.items()]
    return [f"{key}={value}" for key, value in given if value is not None]


def _run_segment(args: argparse.Namespace) -> int:
    from zeroseg.apps.segment_files import collect_or_fail, segment_inputs, summary_lines
    from zeroseg.benchmark.protocols import segment_settings
    from zeroseg.config import resolve_config
    from zeroseg.inference.config import InferenceConfig
    from zeroseg.inference.text_queries import parse_class_list

    flags = {
        "bg_threshold": "bg_threshold", "mode": "mode", "short_side": "short_side",
        "templates": "templates",
    }  # fmt: skip
    classes = parse_class_list(args.classes)
    inputs, missing = collect_or_fail(args.images)  # before the model is loaded
    config = resolve_config(
        InferenceConfig,
        overrides=[*_flag_overrides(args, flags), *args.overrides],
        base=segment_settings(args.method, args.protocol, args.checkpoint),
    )
    segmenter = _method_model(args, config, args.device).segmenter
    segmenter.set_vocabulary(classes, background=args.background)
    summary = segment_inputs(
        segmenter, inputs, missing, args.out, coco=args.coco, progress=not args.no_progress
    )
    print("\n".join(summary_lines(summary, args.out)))
    done, skipped = len(summary["images"]), len(summary["skipped"])
    if skipped:
        print(f"zeroseg: {skipped} of {done + skipped} inputs skipped (listed in summary.json)",
              file=sys.stderr)  # fmt: skip
    return 1 if skipped else 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a trained student as a release folder")
    p.add_argument("checkpoint", help="run directory or checkpoint file")
    p.add_argument("--out", required=True, help="release folder (model.safetensors, config.json)")
    p.add_argument("--results", help="a results.json or metrics.json to quote in the model card")
    _add_inference_set(p, "default InferenceConfig field recorded in the release (repeatable)")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from zeroseg.config import resolve_config
    from zeroseg.inference.config import InferenceConfig
    from zeroseg.inference.release import export_release, read_results
    from zeroseg.inference.segmenter import changed_fields

    inference = changed_fields(resolve_config(InferenceConfig, overrides=args.overrides))
    results = read_results(args.results) if args.results else None
    out = export_release(args.checkpoint, args.out, inference=inference, results=results)
    print(f"release written to {out} (model.safetensors, config.json, README.md)")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a web page to segment uploaded images (needs [serve])")
    p.add_argument("--checkpoint", required=True, help="run, checkpoint, release or Hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    p.add_argument("--port", type=int, default=7860, help="port [7860]")
    p.add_argument("--classes", default="", help="class names filled in on the page")
    p.add_argument("--device", default=None, help="cpu, cuda, ... [auto]")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from zeroseg.apps.serve import serve

    if not 0 < args.port < 65536:
        raise ZeroSegError(f"--port must be in 1..65535, got {args.port}")
    serve(args.checkpoint, args.host, args.port, args.device, args.classes)
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="[lab] the whole method in a synthetic world, on a CPU")
    p.add_argument("--out", help="output folder (out_dir) [zeroseg-demo]")
    p.add_argument("--cache", help="teacher cache folder (cache_dir) [~/.cache/zeroseg]")
    p.add_argument("--seed", type=int, help="world and training seed (seed) [0]")
    p.add_argument("--steps", type=int, help="student optimiser steps (steps)")
    p.add_argument("--train-images", type=int, help="training scenes (train_images)")
    p.add_argument("--val-images", type=int, help="validation scenes (val_images)")
    p.add_argument("--train-teacher", action="store_true", default=None,
                   help="train the caption teacher (cached) instead of using the shipped one")  # fmt: skip
    _add_progress_and_overrides(p, "student config overrides")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from zeroseg.config import resolve_config
    from zeroseg.synthetic.demo import DemoConfig, run_demo, summary_lines

    flags = {
        "out": "out_dir", "cache": "cache_dir", "seed": "seed", "steps": "steps",
        "train_images": "train_images", "val_images": "val_images",
        "train_teacher": "train_teacher",
    }  # fmt: skip
    cfg = resolve_config(DemoConfig, overrides=_flag_overrides(args, flags))
    cfg = dataclasses.replace(cfg, student_overrides=tuple(args.overrides))
    metrics = run_demo(cfg, progress=not args.no_progress)
    print("\n".join(summary_lines(metrics, cfg)))
    return 0


def _add_teacher(sub) -> None:
    p = sub.add_parser("teacher", help="[lab] train the synthetic world's caption teacher")
    p.add_argument("--out", required=True, help="folder for teacher.safetensors and teacher.json")
    _add_progress_and_overrides(p, "CaptionCLIPConfig fields")
    p.set_defaults(handler=_run_teacher)


def _run_teacher(args: argparse.Namespace) -> int:
    import json

    from zeroseg.config import resolve_config
    from zeroseg.synthetic.caption_clip import CaptionCLIPConfig, train_caption_clip

    config = resolve_config(CaptionCLIPConfig, overrides=args.overrides)
    weights = train_caption_clip(config, args.out, progress=not args.no_progress)
    meta = json.loads(weights.with_name("teacher.json").read_text())
    print(f"{weights}: zero-shot {meta['zero_shot']}, views {meta['view_accuracy']}")
    return 0


def _add_cache_teacher(sub) -> None:
    p = sub.add_parser("cache-teacher", help="pre-compute the teacher's views of a dataset")
    p.add_argument("--preset", default="tiny", help="preset name or YAML path [tiny]")
    p.add_argument("--data", required=True, help="folder of training images")
    p.add_argument("--cache", required=True, help="cache folder (data.teacher_cache)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="images per chunk file [1024]")
    _add_progress_and_overrides(p, "experiment config overrides")
    p.set_defaults(handler=_run_cache_teacher)


def _run_cache_teacher(args: argparse.Namespace) -> int:
    from zeroseg.config import load_config
    from zeroseg.data.teacher_cache import build_cache

    overrides = [*args.overrides, f"data.root={args.data}", f"data.teacher_cache={args.cache}"]
    config = load_config(args.preset, overrides)
    shape = build_cache(config, progress=not args.no_progress, chunk_rows=args.chunk_rows)
    print(f"{args.cache}: views {tuple(shape)}")
    return 0


def _add_pack(sub) -> None:
    p = sub.add_parser("pack", help="training crops (and teacher views) as WebDataset shards")
    p.add_argument("--preset", default="tiny", help="preset name or YAML path [tiny]")
    p.add_argument("--data", required=True, help="folder of images, or a text file listing them")
    p.add_argument("--out", required=True, help="folder for the shards and manifest.json")
    p.add_argument("--views", action="store_true", help="store the teacher's views in each record")
    p.add_argument("--shard-size", type=int, default=1000, help="records per shard [1000]")
    p.add_argument("--encoding", default="jpeg", choices=["jpeg", "raw"], help="crop storage")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality [95]")
    p.add_argument("--seed", type=int, default=0, help="shuffle of the records before cutting")
    _add_progress_and_overrides(p, "experiment config overrides")
    p.set_defaults(handler=_run_pack)


def _run_pack(args: argparse.Namespace) -> int:
    from zeroseg.config import load_config
    from zeroseg.data.pack import PackOptions, pack

    options = PackOptions(args.shard_size, args.encoding, args.quality, args.seed, args.views)
    config = load_config(args.preset, [*args.overrides, f"data.root={args.data}"])
    manifest = pack(config, args.out, options, progress=not args.no_progress)
    print(f"{args.out}: {manifest['total']} images in {len(manifest['shards'])} shards")
    return 0


def _add_evaluate(sub) -> None:
    from zeroseg.benchmark.protocols import DATASETS, PROTOCOLS
    from zeroseg.benchmark.vocabularies import FLAVOURS

    p = sub.add_parser("evaluate", help="benchmark mIoU with a published protocol")
    p.add_argument("--checkpoint", help="run directory or checkpoint (the student)")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-root", required=True, help="dataset root (e.g. the VOCdevkit folder)")
    p.add_argument("--protocol", choices=list(PROTOCOLS), help="[the method's own]")
    _add_method(p)
    p.add_argument("--vocabulary", choices=list(FLAVOURS), help="class-name flavour")
    p.add_argument("--save-predictions", metavar="DIR", help="write label PNGs here")
    p.add_argument("--out", required=True, help="folder for results.json and results.md")
    p.add_argument("--device", default=None)
    _add_progress_and_overrides(p, "InferenceConfig overrides")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from zeroseg.benchmark.run import run_benchmark

    results = run_benchmark(
        args.dataset, args.data_root, args.out, protocol=args.protocol, method=args.method,
        checkpoint=args.checkpoint, overrides=args.overrides, vocabulary=args.vocabulary,
        teacher_model=args.teacher, teacher_pretrained=args.teacher_pretrained,
        device=args.device, save_predictions=args.save_predictions,
        progress=not args.no_progress,
    )  # fmt: skip
    protocol = results["settings"]["protocol"]
    print(f"{args.dataset} ({protocol}): mIoU {results['miou']:.2f}  -> {Path(args.out)}")
    return 0


def _add_method(p: argparse.ArgumentParser) -> None:
    """``--method`` and the teacher flags of the training-free readouts."""
    from zeroseg.inference.methods import METHODS

    p.add_argument(
        "--method", default="zeroseg", choices=METHODS,
        help="the student (zeroseg) or a training-free readout of the teacher (teacher-dense = "
        "maskclip) [zeroseg]",
    )  # fmt: skip
    p.add_argument("--teacher", help="readouts: open_clip model name [teacher.model default]")
    p.add_argument("--teacher-pretrained", help="readouts: tag or file [teacher.pretrained]")


def _method_model(args: argparse.Namespace, config, device):
    """The ``--method`` segmenter (``zeroseg.inference.methods.build_method``)."""
    from zeroseg.inference.methods import build_method

    return build_method(
        args.method, config, device, args.checkpoint, args.teacher, args.teacher_pretrained
    )


def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="convert or verify a benchmark's files (no mmcv needed)")
    datasets = ["voc", "context", "coco-object", "coco-stuff", "ade", "cityscapes"]
    p.add_argument("dataset", choices=datasets)  # prepare_scenes.PREPARABLE (no torch import)
    p.add_argument("--root", required=True, help="dataset root")
    p.add_argument("--annotations", help="context: Detail API trainval_merged.json")
    p.add_argument("--source", help="coco-object, coco-stuff: folder of raw stuffthingmaps PNGs")
    p.add_argument("--overwrite", action="store_true", help="rewrite converted label files")
    p.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from zeroseg.benchmark.prepare_scenes import prepare_dataset

    prepare_dataset(args.dataset, args.root, args.annotations, args.source, args.overwrite)
    return 0


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="print a resolved config as YAML")
    p.add_argument("preset", nargs="?", default="tiny", help="preset name or YAML path [tiny]")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(handler=_run_config)


def _run_config(args: argparse.Namespace) -> int:
    from zeroseg.config import config_yaml, load_config

    print(config_yaml(load_config(args.preset, args.overrides)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeroseg",
        description="ZeroSeg: open-vocabulary segmentation distilled from a CLIP vision encoder.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (_add_train, _add_cache_teacher, _add_pack, _add_segment, _add_evaluate,
                _add_prepare, _add_export, _add_serve, _add_demo, _add_teacher, _add_config)  # fmt: skip
    for add in commands:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``zeroseg`` and ``python -m zeroseg``; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.handler(args)
    except ZeroSegError as error:
        print(f"zeroseg: error: {error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zeroseg: interrupted", file=sys.stderr)
        return 130


def _setup_logging(verbose: bool) -> None:
    from zeroseg.runtime.distributed import rank_and_world

    rank, _ = rank_and_world()
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


if __name__ == "__main__":
    sys.exit(main())
