"""Data and small models shared by the calibration tests (a module of its own: a conftest
cannot be imported by name, tests/conftest.py says why)."""

import torch
from torch import nn


def correlated(n, K, seed=0, outliers=()):
    """n rows of K features with strong correlations (x = z A + noise), as real activations
    have; `outliers`: channels scaled up 30x (the activation outliers SmoothQuant targets)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(K, K, generator=g) / K**0.5
    x = torch.randn(n, K, generator=g) @ A + 0.1 * torch.randn(n, K, generator=g)
    for c in outliers:
        x[:, c] *= 30
    return x


class PreLN(nn.Module):
    """x -> LN -> (q, k, v) summed; LN -> up -> GELU -> down: every Linear input is the
    output of a LayerNorm or Linear that feeds nothing else (foldable), except `down`."""

    def __init__(self, K=64):
        super().__init__()
        self.ln = nn.LayerNorm(K)
        self.q, self.k, self.v = nn.Linear(K, K), nn.Linear(K, K), nn.Linear(K, K)
        self.ln2 = nn.LayerNorm(K)
        self.up, self.down = nn.Linear(K, 2 * K), nn.Linear(2 * K, K)

    def forward(self, x):
        h = self.ln(x)
        x = x + self.q(h) * self.k(h).sigmoid() + self.v(h)
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))


class PostLN(nn.Module):
    """A LayerNorm whose output feeds a Linear *and* the residual (BERT's layout): folding a
    scale into it would change the model."""

    def __init__(self, K=64):
        super().__init__()
        self.ln = nn.LayerNorm(K)
        self.fc = nn.Linear(K, K)

    def forward(self, x):
        h = self.ln(x)
        return h + self.fc(h)
