#!/usr/bin/env python3
"""Code bytes of an ELF by the source file each instruction was compiled from.

Reads `llvm-objdump -d -l` (line tables from the release profile's debug info, which never
reaches flash) and charges every instruction to the file of the nearest preceding line
comment: inlined code counts where it was written, so `result.rs` is the `Result` plumbing
(`?`, `ok_or`, `map_err`) inlined all over the runtime. Data (`.rodata`) is not counted.

    cargo build --release --target thumbv7em-none-eabihf --no-default-features --features w8a8
    python3 by-source.py target/thumbv7em-none-eabihf/release/size-probe [TOP]
"""
import collections
import re
import subprocess
import sys


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    top = int(sys.argv[2]) if len(sys.argv) == 3 else 25
    out = subprocess.run(
        ["llvm-objdump", "-d", "-l", "--no-show-raw-insn", sys.argv[1]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    insn = re.compile(r"^\s*([0-9a-f]+):\s")
    line = re.compile(r"^; (/\S+):\d+")
    sizes = collections.Counter()
    current, prev = "?", None
    for text in out.splitlines():
        m = line.match(text)
        if m:
            current = m.group(1)
            continue
        m = insn.match(text)
        if not m:
            continue
        addr = int(m.group(1), 16)
        if prev is not None:
            step = addr - prev[0]
            # Thumb instructions are 2 or 4 bytes; a larger step is a gap or literal pool.
            sizes[prev[1]] += step if 0 < step <= 4 else 2
        prev = (addr, current)
    # One name per file, whether the line tables point into /rustc/<hash> or rust-src.
    by_file = collections.Counter()
    for path, n in sizes.items():
        short = re.sub(r"^(/rustc/[0-9a-f]+|.*/rustlib/src/rust)/", "", path)
        short = re.sub(r"^.*?/(runtime|kernels)/src/", r"\1/src/", short)
        by_file[short] += n
    print(f"{sum(by_file.values())} code bytes")
    for short, n in by_file.most_common(top):
        print(f"{n:7} {short}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
