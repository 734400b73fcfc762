"""A Hugging Face model folder on disk: config.json and the weights (model.safetensors, or
shards listed in model.safetensors.index.json), read and written without the hub."""

from __future__ import annotations

import json
import os

import torch

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A folder that is not a checkpoint greenops can read, with what is wrong."""


def read_config(folder: str) -> dict:
    path = os.path.join(folder, CONFIG)
    if not os.path.isfile(path):
        raise CheckpointError(f"greenops.hf: {folder} has no {CONFIG} (not a model folder)")
    with open(path) as f:
        return json.load(f)


def read_tensors(folder: str) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors files (one file, or the index's shards)."""
    from safetensors.torch import load_file

    single, index = os.path.join(folder, WEIGHTS), os.path.join(folder, INDEX)
    if os.path.isfile(single):
        return load_file(single)
    if os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out: dict[str, torch.Tensor] = {}
        for shard in shards:
            out.update(load_file(os.path.join(folder, shard)))
        return out
    found = [n for n in os.listdir(folder) if n.endswith((".bin", ".pt", ".pth"))]
    hint = (
        f" (found {', '.join(found)}: pickled weights are not read, convert them)" if found else ""
    )
    raise CheckpointError(f"greenops.hf: {folder} has neither {WEIGHTS} nor {INDEX}{hint}")


def write(folder: str, config: dict, tensors: dict[str, torch.Tensor]) -> None:
    """config.json and model.safetensors (tensors made contiguous and unshared: safetensors
    stores no aliases; a tied weight is written once, under its first name)."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    seen: dict[tuple, str] = {}
    out = {}
    for name, t in tensors.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if t.numel() and key in seen:
            continue  # tied to seen[key]: the loader ties it again
        seen[key] = name
        out[name] = t.detach().cpu().contiguous()
    save_file(out, os.path.join(folder, WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(folder, CONFIG), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=str)
