#!/usr/bin/env python3
"""Counts the atomic read-modify-writes a callgrind profile executed (x86-64
instructions with a `lock` prefix, and `xchg` with memory, which locks
implicitly), per task, by function. Used for benches/PROFILE-NOTES.md.

    python3 benches/callgrind_locked.py TASKS PROFILE

For example:

    TASKWARD_BENCH_WORKERS=1 valgrind --tool=callgrind --dump-instr=yes \\
        --callgrind-out-file=nested.cg $R --filter 'nested_tree/depth4_fanout10/taskward-fn$' --rounds 1
    python3 benches/callgrind_locked.py 111100 nested.cg

TASKS is the number of tasks the profile ran, as for callgrind_groups.py.
The profile must be made with `--dump-instr=yes`, so that it has each
instruction's address; each object it names is disassembled with objdump
(binutils) to find which of them lock.
"""

import collections
import re
import subprocess
import sys


def executed(path):
    """Self counts of each (object, address), and the function of each."""
    names = {"ob": {}, "fn": {}}
    counts = collections.Counter()
    function = {}
    ob = fn = None
    address = 0
    call_line = False

    def name(kind, value):
        m = re.match(r"\((\d+)\)\s*(.*)", value)
        if not m:
            return value
        if m.group(2):
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    with open(path) as profile:
        for line in profile:
            line = line.rstrip("\n")
            if line.startswith("positions:") and line.split()[1:2] != ["instr"]:
                sys.exit(f"{path} has no instruction addresses: make it with valgrind --tool=callgrind --dump-instr=yes")
            if line.startswith("ob="):
                ob = name("ob", line[3:])
            elif line.startswith("fn="):
                fn = name("fn", line[3:])
            elif line.startswith("cob="):
                name("ob", line[4:])
            elif line.startswith("cfn="):
                name("fn", line[4:])
            elif line.startswith("calls="):
                # The next cost line is the call's inclusive cost.
                call_line = True
            elif line and line[0] in "+-*0123456789":
                fields = line.split()
                address = position(fields[0], address)
                if call_line:
                    call_line = False
                elif len(fields) >= 3:
                    counts[(ob, address)] += int(fields[2])
                    function[(ob, address)] = fn
    return counts, function


def position(field, last):
    """An instruction address, absolute or relative to the last one."""
    if field == "*":
        return last
    if field[0] in "+-":
        step = int(field[1:], 0)
        return last + step if field[0] == "+" else last - step
    return int(field, 0)


def locking(objects):
    """The addresses, per object, of the instructions that lock."""
    found = set()
    for ob in objects:
        if not ob or not ob.startswith(("/", "./")):
            continue
        listing = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", ob], capture_output=True, text=True
        ).stdout
        for line in listing.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
            if m and (m.group(2).startswith("lock ") or (m.group(2).startswith("xchg") and "(" in m.group(2))):
                found.add((ob, int(m.group(1), 16)))
    return found


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tasks = float(sys.argv[1])
    counts, function = executed(sys.argv[2])
    locks = locking({ob for ob, _ in counts})
    by_function = collections.Counter()
    for key, n in counts.items():
        if key in locks:
            by_function[function[key]] += n
    print(f"{sum(by_function.values()) / tasks:6.2f}  read-modify-writes per task")
    for fn, n in by_function.most_common():
        if n / tasks >= 0.05:
            print(f"{n / tasks:6.2f}  {fn}")


if __name__ == "__main__":
    main()
