"""Run by test_two_node.py under torchrun: train from a pack, then write this rank's weights
digest and the source names of the samples its first epoch reads."""

import hashlib
import json
import sys
from pathlib import Path

import torch

from zeroseg.config import load_config
from zeroseg.data.training_data import pack_stream
from zeroseg.runtime.distributed import DistInfo, rank_and_world
from zeroseg.training.loop import train

if __name__ == "__main__":
    shards, run, out = sys.argv[1:4]
    overrides = [f"data.shards={shards}", "train.steps=3", "optim.micro_batch_size=4"]
    config = load_config("tiny", [*overrides, "optim.batch_size=8"])
    result = train(config, run, progress=False)
    rank, world = rank_and_world()
    digest = hashlib.sha256()
    for name, tensor in sorted(result.student.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    keys = pack_stream(config, DistInfo(rank, world)).keys(0)
    record = {"rank": rank, "weights": digest.hexdigest(), "keys": keys, "steps": result.steps}
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    torch.distributed.destroy_process_group() if torch.distributed.is_initialized() else None
