"""Start-up time of the command line (issue 16): `impsolve --help` and `impsolve check SPEC`.

Runs each command `--repeat` times in fresh interpreters, interleaved (help, check, help, check, ...)
so machine noise hits all alike, with bytecode caching on (this machine's environment may set
PYTHONDONTWRITEBYTECODE: it is removed for the children), and prints the median wall time and the
median user CPU time of each, with the load average before and after. Targets: --help < 0.3 s,
check < 0.5 s.

With `--against REV` it also runs `check` from the git revision REV (exported to a temporary
folder), interleaved with this working tree's; both are then run as `python -c ...` from a package
tree laid out as pyproject's package-dir does, without the editable install's finder.

    python benchmarks/startup.py                     # 10 runs each, specs/zermelo.imp
    python benchmarks/startup.py --repeat 20 --spec specs/cartpole_lqr.imp
    python benchmarks/startup.py --against main      # before/after, interleaved
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("dsl", "compiler", "runtime")   # impsolve.<name> lives in <name>/ (pyproject's package-dir)
# Runs impsolve.cli.main from PYTHONPATH's package tree, not from the editable install.
RUN_CLI = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
           "from impsolve.cli import main; sys.exit(main(sys.argv[1:]))")

Command = tuple[list[str], dict[str, str]]


def _environment(**extra: str) -> dict[str, str]:
    """The children's environment: the caller's, with bytecode caching allowed, plus `extra`."""
    env = dict(os.environ, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time_once(command: Command, cwd: Path) -> tuple[float, float]:
    """Wall and user CPU seconds of one run of `command` (which must exit 0)."""
    argv, env = command
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    user = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return wall, user


def measure(commands: dict[str, Command], repeat: int, cwd: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Per command, the wall and user times of `repeat` interleaved runs (after one untimed warm-up
    run each, which also writes the bytecode caches); the order is reversed every other round."""
    for command in commands.values():
        _time_once(command, cwd)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in commands}
    for k in range(repeat):
        for name in (list(commands) if k % 2 == 0 else list(reversed(commands))):
            wall, user = _time_once(commands[name], cwd)
            times[name][0].append(wall)
            times[name][1].append(user)
    return times


def package_tree(source: Path, into: Path) -> Path:
    """A folder holding `impsolve/` as installed from the source tree `source` (symbolic links)."""
    package = into / "impsolve"
    package.mkdir(parents=True)
    for entry in (source / "impsolve").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in SUBPACKAGES:
        (package / name).symlink_to(source / name)
    return into


def exported(revision: str, into: Path) -> Path:
    """The files of git revision `revision`, extracted into `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--spec", default="specs/zermelo.imp", help="spec for `check` (default specs/zermelo.imp)")
    parser.add_argument("--against", metavar="REV", help="also time `check` of this git revision, interleaved")
    args = parser.parse_args(argv)
    spec = str((ROOT / args.spec).resolve())
    with tempfile.TemporaryDirectory(prefix="impsolve-startup-") as folder:
        work = Path(folder)
        if args.against:
            python = [sys.executable, "-c", RUN_CLI, "check", spec]
            commands = {f"check ({args.against})": (python, _environment(PYTHONPATH=str(
                            package_tree(exported(args.against, work / "source"), work / "before")))),
                        "check (this tree)": (python, _environment(PYTHONPATH=str(package_tree(ROOT, work / "after"))))}
        else:
            script = Path(sys.executable).with_name("impsolve")   # the installed command, as a user runs it
            cli = [str(script)] if script.exists() else [sys.executable, "-m", "impsolve.cli"]
            commands = {"--help": ([*cli, "--help"], _environment()), "check": ([*cli, "check", spec], _environment())}
        load_before = os.getloadavg()[0]
        times = measure(commands, args.repeat, work)
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; {args.repeat} runs each")
    for name, (walls, users) in times.items():
        print(f"impsolve {name:<20} wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
              f"user CPU median {statistics.median(users):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
