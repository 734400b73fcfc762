"""Benchmarks run with pytest-benchmark: `pytest bench/ --benchmark-only`.

Each benchmark id is `<impl>` inside a group per shape, so pytest-benchmark's table puts our
kernel beside the baselines timed in the same run."""

import torch

torch.set_num_threads(torch.get_num_threads())  # pin the pool size before the first timing
