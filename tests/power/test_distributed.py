"""Two real processes (gloo) on simulated devices: rank 0's cap is the job's cap, and the
energy windows are reduced across ranks."""

import textwrap

from ranks import run_two_ranks

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch.distributed as dist
    import greenops.power as power
    from greenops.power import distributed

    rank = int(sys.argv[1])
    dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=2)
    dev = power.devices([rank])[0]
    limit = distributed.agree(150.0 if rank == 0 else 200.0)  # rank 0 decides
    meter = power.EnergyMeter([dev])
    with power.cap(limit, [dev], mode="hardware"):
        seen = dev.limit_w()
        with meter.window("job") as m:
            for _ in range(10 * (rank + 1)):  # rank 1 works twice as long
                dev.run_step()
    total = distributed.reduce(m)
    print(json.dumps({"rank": rank, "limit": seen, "own_j": m.energy_j, "own_s": m.time_s,
                      "total_j": total.energy_j, "total_s": total.time_s,
                      "restored": dev.limit_w()}))
    dist.destroy_process_group()
""")


def test_rank0_cap_is_broadcast_and_energy_is_reduced(tmp_path):
    outs = run_two_ranks(WORKER, tmp_path)
    r0, r1 = outs
    assert r0["limit"] == r1["limit"] == 150.0  # rank 1 asked for 200 W but follows rank 0
    assert r0["restored"] == r1["restored"] == 250.0
    for r in outs:
        assert r["total_j"] == r0["own_j"] + r1["own_j"]
        assert r["total_s"] == max(r0["own_s"], r1["own_s"]) == r1["own_s"]
