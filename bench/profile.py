"""Where a profiled process spent its samples: ``python -m bench.profile FILE...`` reads py-spy's
raw (collapsed-stack) output and prints the functions with the most samples, by own time and
by time including callees.

    python -m bench quick --systems sphere --profile var/profile
    python -m bench.profile var/profile/room-1000-gateway-*.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1]) + "/"
FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def frames(stack: str) -> list[str]:
    """The stack's frames as ``function (module path)``, outermost first, without line
    numbers (one function is one entry however many lines it sampled on)."""
    out = []
    for raw in stack.split(";"):
        match = FRAME.match(raw.strip())
        if match is None:
            out.append(raw.strip())
            continue
        path = match["file"]
        for marker in ("site-packages/", "python3.11/", ROOT):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        out.append(f"{match['name']} ({path})")
    return out


def summarize(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        chain = frames(stack)
        if chain:
            own[chain[-1]] += n
        for name in set(chain):
            total[name] += n
    return samples, own, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        samples, own, total = summarize(path.read_text().splitlines())
        print(f"== {path.name}: {samples} samples")
        print("-- own time")
        for name, n in own.most_common(args.top):
            print(f"{100 * n / max(1, samples):6.1f}%  {name}")
        print("-- including callees")
        for name, n in total.most_common(args.top):
            print(f"{100 * n / max(1, samples):6.1f}%  {name}")


if __name__ == "__main__":
    main()
