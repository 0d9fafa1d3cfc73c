"""The machine a measurement ran on, in words (printed with every benchmark figure)."""

from __future__ import annotations

import os
import platform

import torch


def describe(device: torch.device) -> str:
    """GPU name, or CPU model, core count and torch threads; with the torch version."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"CPU {cpu} x{os.cpu_count()} (torch threads {torch.get_num_threads()}), torch {torch.__version__}"
