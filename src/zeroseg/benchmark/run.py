"""One benchmark run, as ``zeroseg evaluate`` does it: a protocol's settings, the dataset, the class
names, the method's segmenter, and ``evaluate`` writing ``results.json``/``results.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def run_benchmark(
    dataset: str,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    protocol: str | None = None,
    method: str = "zeroseg",
    checkpoint: str | Path | None = None,
    overrides: Sequence[str] = (),
    vocabulary: str | None = None,
    teacher_model: str | None = None,
    teacher_pretrained: str | None = None,
    device: str | None = None,
    save_predictions: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``method`` on ``dataset`` under ``protocol``; returns the results dict.

    Args:
        dataset: a benchmark name (``zeroseg.benchmark.protocols.DATASETS``).
        data_root: the dataset's root folder.
        out_dir: where ``results.json`` and ``results.md`` go.
        protocol: a protocol name (``zeroseg.benchmark.protocols.PROTOCOLS``); None: the
            method's own (``default_protocol``: a readout's, else ``zeroseg``).
        method: ``zeroseg`` or a readout (``zeroseg.inference.methods.METHODS``).
        checkpoint: the student (or, for a readout, whose teacher to use).
        overrides: ``key=value`` ``InferenceConfig`` fields over the protocol's.
        vocabulary: class-name flavour (None: the protocol's).
        device: "cpu", "cuda", ... (None: auto).
    """
    from zeroseg.benchmark.datasets import build_dataset
    from zeroseg.benchmark.evaluation import benchmark_settings, evaluate
    from zeroseg.benchmark.protocols import default_protocol, protocol_config
    from zeroseg.benchmark.vocabularies import load_vocabulary
    from zeroseg.config import resolve_config
    from zeroseg.inference.config import InferenceConfig
    from zeroseg.inference.methods import build_method
    from zeroseg.runtime.distributed import init_distributed, select_device

    chosen = "--protocol" if protocol is not None else "the method's default"
    protocol = protocol if protocol is not None else default_protocol(method)
    base, flavour = protocol_config(protocol, dataset)
    config = resolve_config(InferenceConfig, overrides=list(overrides), base=base)
    names = load_vocabulary(dataset, vocabulary or flavour)
    data = build_dataset(dataset, data_root)
    torch_device = select_device(device or "auto")
    init_distributed(torch_device)
    model = build_method(
        method, config, torch_device, checkpoint, teacher_model, teacher_pretrained
    )
    settings = benchmark_settings(
        protocol, dataset, model.segmenter.config, names, checkpoint=model.checkpoint,
        teacher=model.teacher, method=method, protocol_from=chosen,
    )  # fmt: skip
    return evaluate(
        model.segmenter, data, out_dir=out_dir, vocabulary=names, settings=settings,
        save_predictions=save_predictions, progress=progress,
    )  # fmt: skip
