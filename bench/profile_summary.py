"""Summarise a py-spy raw profile (collapsed stacks): where the server's samples went.

    python bench/profile_summary.py bench/results/product-profile.txt [TOP]

Prints the share of samples per thread, the functions with the most samples of their own,
and the product's (messaging/, chatsite/) and the libraries' functions by inclusive share.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else frame


def summarise(path: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        is_worker = any("concurrent/futures/thread.py" in frame for frame in frames)
        threads["database thread (sync_to_async)" if is_worker else "event loop"] += samples
        own[frames[-1]] += samples
        # Inclusive time by function, whatever line of it was running.
        for frame in {_function(frame) for frame in frames}:
            inclusive[frame] += samples
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in threads.most_common()]
    out.append("own time:")
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    out.append("inclusive, the product's code:")
    product = [
        (name, n)
        for name, n in inclusive.most_common()
        if "(messaging/" in name or "(chatsite/" in name
    ]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in product[:top]]
    out.append("inclusive, everything:")
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
