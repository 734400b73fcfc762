"""torch.distributed jobs: each rank controls the GPU(s) it uses; decisions that must agree
(the cap of a synchronous job) are made on one rank and broadcast; energy is reduced.

    limit = distributed.agree(my_choice)          # rank 0's value, on every rank
    with power.cap(limit, power.devices([local_rank])):
        with meter.window("epoch") as m:
            train()
    total = distributed.reduce(m)                 # energy summed over ranks, time the max

Works with any initialized process group (gloo on CPU, nccl on GPUs); without one, both
functions return their argument unchanged.
"""

from __future__ import annotations

from .meter import Measurement


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def agree(value, src: int = 0, group=None):
    """Rank `src`'s `value` on every rank (any picklable value)."""
    dist = _dist()
    if dist is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def reduce(m: Measurement, group=None) -> Measurement:
    """One measurement for the whole job: energy summed over the devices of every rank (a
    device seen by two ranks counts once), time the longest rank's."""
    dist = _dist()
    if dist is None:
        return m
    parts: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, (m.time_s, m.energy_by_device_j, m.simulated), group=group)
    energy: dict[str, float] = {}
    for _, by_device, _ in parts:
        for uuid, e in by_device.items():
            energy[uuid] = max(e, energy.get(uuid, e))
    return Measurement(m.name, max(p[0] for p in parts), energy, any(p[2] for p in parts))
