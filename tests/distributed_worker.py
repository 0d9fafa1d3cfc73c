"""Run by test_distributed.py under torchrun: train, then save this rank's student weights."""

import sys
from pathlib import Path

import torch

from zeroseg.config import load_config
from zeroseg.training.loop import train

if __name__ == "__main__":
    data, run, out = sys.argv[1:4]
    config = load_config("tiny", [f"data.root={data}", "train.steps=2", "optim.micro_batch_size=4"])
    result = train(config, run, progress=False)
    rank = (
        torch.distributed.get_rank()
        if torch.distributed.is_initialized()
        else int(__import__("os").environ["RANK"])
    )
    torch.save(result.student.state_dict(), Path(out) / f"rank{rank}.pt")
