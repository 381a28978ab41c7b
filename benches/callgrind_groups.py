#!/usr/bin/env python3
"""Sums callgrind's exclusive instruction counts (Ir) into a few groups and
prints them per task, one column per profile. Used for benches/PROFILE-NOTES.md.

    python3 benches/callgrind_groups.py TASKS a.cg b.cg ...

TASKS is the number of tasks each profile ran (110000 for
`report --filter spawn_join/10000/... --rounds 1`: one warm-up run and ten
runs of 10 000). Needs callgrind_annotate (valgrind) on PATH.
"""

import collections
import re
import subprocess
import sys

GROUPS = [
    ("malloc/free", r"malloc|arena\.c|__rdl_|__rust_alloc|__rust_dealloc"),
    ("memcpy/memset", r"memmove|memcpy|memset"),
    ("HashMap + SipHash", r"sip\.rs|hash_one|hash/mod\.rs|hashbrown|collections/hash"),
    ("tokio-util CancellationToken", r"cancellation_token"),
    ("tokio-util TaskTracker", r"task_tracker"),
    ("tokio Notify", r"sync/notify\.rs"),
    ("tokio sync (mpsc, ...)", r"tokio-1[^/]*/src/sync/"),
    ("tokio runtime (tasks, scheduler)", r"tokio-1"),
    ("locks, futex, threads", r"futex|pthread|lowlevellock|sys/sync|syscall"),
    ("taskward runtime code", r"taskward|/runtime/src/"),
    ("Arc reference counts", r"alloc/src/sync\.rs"),
]


def groups(path):
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sums = collections.Counter()
    total = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if not m:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in name:
            total = count
            continue
        group = next((g for g, pattern in GROUPS if re.search(pattern, name)), "other")
        sums[group] += count
    return total, sums


def main():
    tasks, paths = int(sys.argv[1]), sys.argv[2:]
    results = [groups(p) for p in paths]
    names = [g for g, _ in GROUPS] + ["other"]
    names.sort(key=lambda g: -max(s[g] for _, s in results))
    width = max(len(p) for p in paths) + 2
    print(f"{'Ir per task':<34}" + "".join(f"{p:>{width}}" for p in paths))
    print(f"{'TOTAL':<34}" + "".join(f"{t / tasks:>{width}.0f}" for t, _ in results))
    for g in names:
        if any(s[g] for _, s in results):
            print(f"{g:<34}" + "".join(f"{s[g] / tasks:>{width}.0f}" for _, s in results))


if __name__ == "__main__":
    main()
