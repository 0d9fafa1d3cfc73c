#!/bin/bash
# ZeroSeg at paper scale on a SLURM cluster: one torchrun per node, c10d rendezvous on the first
# node. Three jobs, each resumable (submit it again after a pre-emption):
#   sbatch examples/slurm_train.sh pack    # crops + 30 ViT-L/14 views per image into shards
#   sbatch examples/slurm_train.sh train   # 80 epochs from the shards
# Paths are examples: PACK and RUN must be on a file system every node sees.
#SBATCH --job-name=zeroseg
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
set -euo pipefail

IMAGES=${IMAGES:-/data/imagenet/train}
PACK=${PACK:-/shared/zeroseg/in1k-pack}
RUN=${RUN:-/shared/zeroseg/runs/paper}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
launch=(torchrun --nnodes "$SLURM_NNODES" --nproc-per-node "$SLURM_GPUS_PER_NODE"
        --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head:29500")

case "${1:-train}" in
  pack)  srun "${launch[@]}" -m zeroseg pack --preset paper --data "$IMAGES" --out "$PACK" --views \
             --no-progress ;;
  train) srun "${launch[@]}" -m zeroseg train --preset paper --out "$RUN" --resume --no-progress \
             "data.shards=$PACK" data.num_workers=8 ;;
  *) echo "usage: $0 pack|train" >&2; exit 2 ;;
esac
