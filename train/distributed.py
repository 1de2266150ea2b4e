"""Scale-out helpers: under `torchrun --nproc_per_node N` (RANK / WORLD_SIZE / LOCAL_RANK in the
environment) training runs DistributedDataParallel, gloo on CPU and nccl on CUDA. Without those
variables everything degrades to one process (world size 1) and no process group is created."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from aucues.errors import AucuesError


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    enabled: bool = False       # a process group exists (world_size > 1 or launched by torchrun)
    owns_group: bool = False    # we created it, so we destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda":
        if not torch.cuda.is_available():
            raise AucuesError("device 'cuda' requested but no CUDA GPU is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cuda", local_rank % torch.cuda.device_count()) if torch.cuda.is_available() \
        else torch.device("cpu")


def init_distributed(device_pref: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    device = pick_device(device_pref, local)
    if dist.is_available() and dist.is_initialized():  # the caller set it up
        return DistEnv(dist.get_rank(), dist.get_world_size(), local, device, True, False)
    if world <= 1:
        return DistEnv(0, 1, 0, device, False, False)
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise AucuesError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank, world, local, device, True, True)


def cleanup(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.enabled:
        if env.device.type == "cuda":
            dist.barrier(device_ids=[env.device.index])
        else:
            dist.barrier()


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of `t` over ranks (in place; returned for convenience)."""
    if env.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, env: DistEnv, src: int = 0):
    """Rank `src`'s Python object on every rank (e.g. an error message or a decision)."""
    if not env.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel when a process group exists: gradients are averaged across ranks."""
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if env.device.type == "cuda":
        return DDP(model, device_ids=[env.device.index], output_device=env.device.index)
    return DDP(model)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
