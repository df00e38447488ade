"""Run a benchmark and keep what it printed as a raw file in docs/bench-results/.

    python -m bench.record NAME -- python -m bench.throughput --n 512

Writes ``docs/bench-results/NAME-YYYY-MM-DD.txt``: the command line, the date, the commit, the
machine (cores, CPU model) and the 1-minute load average before and after, then the command's
own output (stdout and stderr) as it came. Every figure in README.md and docs/ points to such a
file (tests/test_docs.py checks that each table of figures names one). Exits with the command's
status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "bench-results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__.split("\n")[0])
    parser.add_argument("name", help="the raw file's name, without date or extension")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the benchmark's command after --")
    out = RESULTS / f"{args.name}-{dt.date.today().isoformat()}.txt"
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _load()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    header = [
        f"$ {' '.join(command)}",
        f"# {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({_cpu_model()}), commit {_commit()}, "
        f"1-minute load {load_before} before, {_load()} after, exit status {done.returncode}",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + done.stdout)
    sys.stdout.write(done.stdout)
    print(f"raw output: {out.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
