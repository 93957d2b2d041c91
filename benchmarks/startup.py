"""Start-up time of the command line (issue 16): `impsolve --help` and `impsolve check SPEC`.

Runs each command `--repeat` times in fresh interpreters, interleaved (help, check, help, check, ...)
so machine noise hits both alike, with bytecode caching on (this machine's environment may set
PYTHONDONTWRITEBYTECODE: it is removed for the children), and prints the median wall time and the
median user CPU time of each, with the load average before and after. Targets: --help < 0.3 s,
check < 0.5 s.

    python benchmarks/startup.py                     # 10 runs each, specs/zermelo.imp
    python benchmarks/startup.py --repeat 20 --spec specs/cartpole_lqr.imp
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _environment() -> dict[str, str]:
    """The children's environment: the caller's, with bytecode caching allowed."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and user CPU seconds of one run of `argv` (which must exit 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    user = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return wall, user


def measure(commands: dict[str, list[str]], repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per command, the wall and user times of `repeat` interleaved runs (after one untimed warm-up
    run each, which also writes the bytecode caches)."""
    env = _environment()
    for argv in commands.values():
        _time_once(argv, env)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            wall, user = _time_once(argv, env)
            times[name][0].append(wall)
            times[name][1].append(user)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--spec", default="specs/zermelo.imp", help="spec for `check` (default specs/zermelo.imp)")
    args = parser.parse_args(argv)
    script = Path(sys.executable).with_name("impsolve")   # the installed command, as a user runs it
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "impsolve.cli"]
    commands = {"--help": [*cli, "--help"], "check": [*cli, "check", args.spec]}
    load_before = os.getloadavg()[0]
    times = measure(commands, args.repeat)
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; {args.repeat} runs each")
    for name, (walls, users) in times.items():
        print(f"impsolve {name:<7} wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
              f"user CPU median {statistics.median(users):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
