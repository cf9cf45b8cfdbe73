"""Where a test run's time went: per-module totals and the slowest tests, from the file that
tests/conftest.py writes when SPARKASR_TEST_DURATIONS names it (one line per test phase); several
files (one per pytest process) are read as one run."""

from __future__ import annotations

import sys
from collections import defaultdict


def main(paths: list, top: int = 15) -> None:
    modules: dict = defaultdict(float)
    tests: dict = defaultdict(float)
    for path in paths:
        with open(path) as fh:
            for line in fh:
                seconds, _phase, nodeid = line.rstrip("\n").split("\t")[:3]
                modules[nodeid.split("::", 1)[0]] += float(seconds)
                tests[nodeid] += float(seconds)
    print(f"{sum(modules.values()):.0f} s in {len(tests)} tests; by module:")
    for name, s in sorted(modules.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {s:7.1f} s  {name}")
    print("slowest tests:")
    for name, s in sorted(tests.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {s:7.1f} s  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
