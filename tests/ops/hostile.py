"""Hostile block-sparse formats (validate=False weights and raw ops with out-of-range indices),
for test_edge_cases.py. Before they were bounds-checked, some aborted the process (torch's
repeat_interleave and bincount read and write out of bounds on such indices), so each case runs
in a child forked from one subprocess: a crash is a status, not a dead test run.

    python tests/ops/hostile.py [case ...]   # one line per case: name, status, message

status 0: a ValueError (its message printed); 1: no error; 2: another exception; < 0: killed
by that signal. The parent never runs an op before forking (OpenMP is not fork-safe)."""

from __future__ import annotations

import os
import sys

import torch

import greenops
from greenops.sparse import BlockSparseWeight

N, K, BLOCK = 48, 64, (16, 32)  # 3 block rows x 2 block columns, all 6 blocks stored


def _parts():
    g = torch.Generator().manual_seed(0)
    w = BlockSparseWeight.from_dense(torch.randn(N, K, generator=g), block=BLOCK)
    return w.values, w.crow_indices.clone(), w.col_indices.clone()


def _weight(crow=None, col=None):
    """bsr_mm through a validate=False weight with the given index edits."""
    values, c, k = _parts()
    for t, edit in ((c, crow), (k, col)):
        for i, v in (edit or {}).items():
            t[i] = v
    w = BlockSparseWeight(values, c, k, (N, K), validate=False)
    greenops.bsr_mm(torch.randn(5, K), w)


def _raw(crow=None, col=None, op="bsr_mm"):
    """The raw op (C++ CPU impl) with the given index edits."""
    values, c, k = _parts()
    for t, edit in ((c, crow), (k, col)):
        for i, v in (edit or {}).items():
            t[i] = v
    x = torch.randn(5, K)
    if op == "bsr_mm":
        torch.ops.greenops.bsr_mm(x, values, c, k)
    else:
        torch.ops.greenops.bsr_sddmm(torch.randn(5, N), x, c, k, *BLOCK)


def _raw_mm_t(block=None, row=None):
    values, c, k = _parts()
    w = BlockSparseWeight(values, c, k, (N, K))
    t_crow, t_blocks = (t.clone() for t in w.transpose)
    if block is not None:
        t_blocks[0, 1] = block
    if row is not None:
        t_blocks[1, 1] = row
    torch.ops.greenops.bsr_mm_t(torch.randn(5, N), values, t_crow, t_blocks)


# name -> (the case, a part of the message it must raise)
CASES = {
    "crow_negative": (lambda: _weight(crow={1: -1}), "crow_indices must not decrease"),
    "crow_beyond_nnz": (lambda: _weight(crow={1: 9}), "crow_indices must not decrease"),
    "crow_not_from_0": (lambda: _weight(crow={0: 1}), "crow_indices must run from 0 to nnz=6"),
    "crow_not_to_nnz": (lambda: _weight(crow={3: 5}), "crow_indices must run from 0 to nnz=6"),
    "crow_decreasing": (lambda: _weight(crow={1: 3, 2: 2}), "must not decrease (row 1: 3 > 2)"),
    "col_negative": (lambda: _weight(col={1: -1}), "col_indices[1] = -1 is out of range"),
    "col_is_k_over_bk": (lambda: _weight(col={1: 2}), "col_indices[1] = 2 is out of range"),
    "col_2_pow_40": (lambda: _weight(col={3: 2**40}), f"col_indices[3] = {2**40} is out of range"),
    "raw_crow_negative": (lambda: _raw(crow={1: -1}), "crow_indices must not decrease"),
    "raw_col_2_pow_40": (lambda: _raw(col={3: 2**40}), "is out of range for K/bk = 2"),
    "raw_sddmm_col": (lambda: _raw(col={0: -5}, op="bsr_sddmm"), "col_indices[0] = -5"),
    "raw_mm_t_block": (lambda: _raw_mm_t(block=6), "greenops.bsr_mm_t"),
    "raw_mm_t_row": (lambda: _raw_mm_t(row=-1), "greenops.bsr_mm_t"),
}


def describe(status: int) -> str:
    if status < 0:
        return f"killed by signal {-status}"
    return {0: "a clear error", 1: "no error raised", 2: "another exception"}.get(status, "?")


def _run_in_child(fn) -> tuple[int, str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, exit without cleanup handlers
        os.close(r)
        code, msg = 1, ""
        try:
            fn()
        except ValueError as e:
            code, msg = 0, f"ValueError: {e}"
        except BaseException as e:  # noqa: BLE001 - reported, not handled
            code, msg = 2, f"{type(e).__name__}: {e}"
        os.write(w, msg.replace("\n", " ")[:2000].encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        status, message = _run_in_child(CASES[name][0])
        print(f"{name}\t{status}\t{message}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
