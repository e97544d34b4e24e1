#!/usr/bin/env python3
"""Where a profiled process spent its CPU, by crate: `make profile`'s summary.

    perf_by_crate.py PERF_DATA

Reads `perf report`'s self time per symbol and sums it by the crate the symbol belongs
to (the first path segment of its demangled name; `[kernel]` for the kernel, the
library's name for C code such as libc), then prints the crates and the hottest
symbols, each as a share of the samples.
"""

import re
import subprocess
import sys
from collections import Counter

data = sys.argv[1]
report = subprocess.run(
    ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
     "-g", "none", "--percent-limit", "0"],
    capture_output=True, text=True, check=True,
).stdout

LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")
crates, symbols = Counter(), Counter()
for line in report.splitlines():
    m = LINE.match(line)
    if not m:
        continue
    share, dso, kind, sym = float(m[1]), m[2], m[3], m[4].strip()
    if kind == "k":
        crate = "[kernel]"
    elif not dso.startswith("s3-replicator"):
        crate = dso
    else:
        name = sym.lstrip("<&*")
        name = re.sub(r"^(dyn |mut |impl )", "", name)
        crate = name.split("::", 1)[0] if "::" in name else "(other)"
    crates[crate] += share
    symbols[sym[:110]] += share

print("self time by crate:")
for crate, share in crates.most_common(25):
    print(f"  {share:6.2f}%  {crate}")
print("hottest symbols:")
for sym, share in symbols.most_common(25):
    print(f"  {share:6.2f}%  {sym}")
