"""What every benchmark here prints alongside its numbers: medians and where the files live."""

from __future__ import annotations

import statistics
from pathlib import Path


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fs_type(path: Path) -> str:
    """The filesystem a path lives on (from /proc/mounts), so a tmpfs run is visible."""
    try:
        best = ("", "?")
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mnt, fstype, *_ = line.split()
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(
                best[0]
            ):
                best = (mnt, fstype)
        return best[1]
    except OSError:
        return "?"
