"""A fake Linux powercap tree of real files, in the kernel's layout and units: zone
directories under devices/virtual/powercap/intel-rapl/, flat symlinks to each zone under the
root (as /sys/class/powercap has them), energy in µJ, limits in µW, windows in µs."""

import os


def zone(
    root,
    name,
    zname,
    energy_uj=0,
    range_uj=262143328850,
    limit_uw=None,
    max_uw=None,
    window_us=999424,
    parent=None,
):
    base = os.path.join(root, "devices", "virtual", "powercap", "intel-rapl")
    path = os.path.join(base, parent, name) if parent else os.path.join(base, name)
    os.makedirs(path, exist_ok=True)
    files = {"name": zname, "energy_uj": energy_uj, "max_energy_range_uj": range_uj, "enabled": 1}
    if limit_uw is not None:
        files.update(
            constraint_0_name="long_term",
            constraint_0_power_limit_uw=limit_uw,
            constraint_0_time_window_us=window_us,
            constraint_1_name="short_term",
            constraint_1_power_limit_uw=int(limit_uw * 1.2),
            constraint_1_time_window_us=2440,
        )
        if max_uw is not None:
            files["constraint_0_max_power_uw"] = max_uw
    for k, v in files.items():
        with open(os.path.join(path, k), "w") as f:
            f.write(f"{v}\n")
    os.symlink(os.path.relpath(path, root), os.path.join(root, name))
    return path


def server(root, sockets=2, dram=True):
    """A two-socket Intel server: package-N with core and (optionally) dram subzones; package
    limits 205 W (max 270 W)."""
    paths = {}
    for s in range(sockets):
        pkg = f"intel-rapl:{s}"
        paths[pkg] = zone(
            root,
            pkg,
            f"package-{s}",
            energy_uj=1_000_000 * (s + 1),
            limit_uw=205_000_000,
            max_uw=270_000_000,
        )
        paths[f"{pkg}:0"] = zone(root, f"{pkg}:0", "core", energy_uj=500_000, parent=pkg)
        if dram:
            paths[f"{pkg}:1"] = zone(root, f"{pkg}:1", "dram", energy_uj=200_000, parent=pkg)
    return paths


def write(path, name, value):
    """Replaces a file's value atomically (sysfs reads never see a half-written value)."""
    tmp = os.path.join(path, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{value}\n")
    os.replace(tmp, os.path.join(path, name))


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return int(f.read())
