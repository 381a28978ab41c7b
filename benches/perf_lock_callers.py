#!/usr/bin/env python3
"""Finds who makes glibc's malloc wait for its arena lock, in a perf profile
with call graphs: the samples whose stack holds glibc's internal lock
(`__lll_lock_wait_private`, `__lll_lock_wake_private`), grouped by the
allocator function they went through and its first caller outside the
allocator. Used for benches/PROFILE-NOTES.md (session 18).

    python3 benches/perf_lock_callers.py PERF_DATA [ROWS]

For example, with `R` the `report` binary as in PROFILE-NOTES.md:

    perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -o tree.data \\
        $R --filter 'nested_tree/depth4_fanout10/taskward-fn$' --rounds 15
    python3 benches/perf_lock_callers.py tree.data

The profile needs DWARF call graphs (`--call-graph dwarf`): with frame
pointers, perf stops at glibc's frames and no caller is found. The time a
thread sleeps on the lock is not sampled (`cpu-clock` counts running
time); what is counted is the work of waiting and of waking.
"""

import collections
import re
import subprocess
import sys

LOCK = re.compile(r"__lll_lock_(wait|wake)_private")
# The allocator's entry points, as perf names them in glibc 2.36.
ALLOCATOR = re.compile(
    r"^(__GI___libc_malloc|__GI___libc_free|__libc_malloc|__libc_free|malloc|free|cfree"
    r"|_int_malloc|_int_free|_int_memalign|_mid_memalign|__posix_memalign|posix_memalign"
    r"|malloc_consolidate|tcache_init)\b"
)
# Frames between the allocator and the code that asked for it: Rust's
# allocation and drop glue.
GLUE = re.compile(
    r"alloc::|__rust|__rdl_|core::ptr::drop_in_place<alloc|deallocate|RawVec|drop_slow"
    r"|exchange_malloc|box_new|alloc_impl|dealloc|GlobalAlloc"
)


def perf(command, path, *options):
    """The output of `perf COMMAND -i PATH OPTIONS...`; exits, saying why, if
    perf cannot read the profile."""
    try:
        return subprocess.run(
            ["perf", command, "-i", path, *options], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"perf {command} could not read {path}: {err}")


def check(path):
    """Exits, saying what to do, unless the profile has DWARF call graphs."""
    if "STACK_USER" not in perf("evlist", path, "-v"):
        sys.exit(f"{path} has no DWARF call graphs: record it with perf record --call-graph dwarf")


def stacks(path):
    """Each sample's stack, leaf first, as function names."""
    script = perf("script", path, "-F", "ip,sym")
    for block in script.split("\n\n"):
        frames = [line.split(None, 1) for line in block.strip().splitlines()]
        names = [frame[1] if len(frame) > 1 else frame[0] for frame in frames if frame]
        if names:
            yield names


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    path = sys.argv[1]
    rows = sys.argv[2] if len(sys.argv) == 3 else "20"
    if not rows.isdigit():
        sys.exit(f"ROWS is a number of rows to print, not {rows!r}\n{__doc__}")
    rows = int(rows)
    check(path)
    callers = collections.Counter()
    samples = locked = 0
    for names in stacks(path):
        samples += 1
        if not any(LOCK.search(name) for name in names):
            continue
        locked += 1
        at = next((i for i, name in enumerate(names) if ALLOCATOR.match(name)), None)
        if at is None:
            callers["(no allocator frame) " + " <- ".join(name[:40] for name in names[:3])] += 1
            continue
        # The outermost of the allocator's own frames (malloc, not _int_malloc).
        while at + 1 < len(names) and ALLOCATOR.match(names[at + 1]):
            at += 1
        caller = next((name for name in names[at + 1 :] if not GLUE.search(name)), "?")
        callers[f"{names[at].split()[0]} <- {caller[:110]}"] += 1
    share = 100 * locked / samples if samples else 0
    print(f"{samples} samples, {locked} with glibc's arena lock on the stack ({share:.1f}%)")
    for where, count in callers.most_common(rows):
        print(f"{count:7} {100 * count / samples:5.2f}%  {where}")


if __name__ == "__main__":
    main()
