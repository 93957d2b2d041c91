#!/usr/bin/env python
"""Run the front end's reliability suites and print their figures as a Markdown table.

    python tools/reliability_report.py            # the default runs (about 2 minutes)
    python tools/reliability_report.py --long     # also the long fuzz runs (pytest -m slow)
    python tools/reliability_report.py --from DIR # only format figures written earlier to DIR

It runs tests/test_security.py, tests/test_fuzz.py and tests/test_golden_errors.py with
IMPSOLVE_RELIABILITY_DIR set to a folder, where the tests write their figures as JSON
(security.json, fuzz.json, golden.json), and prints:

- injection payloads, their placements in the grammar's slots, placements rejected with a
  located error, harmless ones accepted, payloads executed (0);
- calls of eval/exec/compile/sympify/parse_expr/lambdify on spec text while the specs in specs/
  load, compile and run (0), and the source lint's hits outside the one exec of generated code (0);
- fuzz inputs (grammar-based and mutations), tracebacks (0), SpecErrors without a location (0),
  the largest parse+check time;
- the number of golden errors.

Other suites can add rows: any other `<name>.json` in the folder holding {"rows": {figure: value}}
is printed too. The rows of the runtime's reliability suite (kill/resume campaign, NaN handling,
reproducible hashes; tests/test_reliability.py) are placeholders until it writes runtime.json
there; `--with-runtime` runs that suite in the same pytest call.

Exit status: 0 when the suites passed and every figure that must be 0 is 0, else 1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["tests/test_security.py", "tests/test_fuzz.py", "tests/test_golden_errors.py"]
RUNTIME_SUITE = "tests/test_reliability.py"
RUNTIME_PLACEHOLDERS = ["kill/resume campaign", "NaN handling", "reproducible hashes"]


def run_suites(folder: Path, long: bool, with_runtime: bool) -> tuple[int, str]:
    """Run the suites with the figures going to `folder`; (exit status, pytest's last line)."""
    env = dict(os.environ, IMPSOLVE_RELIABILITY_DIR=str(folder))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES]
    if with_runtime:
        command.append(RUNTIME_SUITE)
    if long:
        command += ["-m", "slow or not slow"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-2000:])
    return done.returncode, lines[-1] if lines else done.stderr.strip()[-200:]


def load(folder: Path, name: str) -> dict:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def rows(folder: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(figure, value, source) rows, and the figures that must be 0 but are not."""
    out: list[tuple[str, str, str]] = []
    bad: list[str] = []

    def row(figure: str, value, source: str, zero: bool = False) -> None:
        missing = value is None
        out.append((figure, "not measured" if missing else str(value), source))
        if zero and not missing and value != 0:
            bad.append(figure)

    security, fuzz, golden = load(folder, "security"), load(folder, "fuzz"), load(folder, "golden")
    source = "tests/test_security.py"
    if "payloads" in security:
        row("injection payloads (hostile + bare identifiers)",
            f"{security['payloads']} ({security['hostile_payloads']} hostile)", source)
        row("slots of the grammar they are placed in", security["slots"], source)
        row("placements rejected with a file:line:col SpecError", security["rejected"], source)
        row("placements accepted as harmless specs (same generated code)", security["harmless_accepted"], source)
        row("payloads executed (sentinel file created)", security["executed"], source, zero=True)
    else:
        row("injection payloads", None, source)
    guards = {k: v for k, v in security.items() if k.startswith("eval_guard.")}
    if guards:
        row(f"eval/exec/compile/sympify/parse_expr/lambdify calls on spec text ({len(guards)} specs "
            "loaded, compiled, run)", sum(v["violations"] for v in guards.values()), source, zero=True)
    if "lint_hits_outside_allowed" in security:
        row(f"source lint: evaluation calls besides the exec of generated code ({security['lint_files']} files)",
            security["lint_hits_outside_allowed"], source, zero=True)

    source = "tests/test_fuzz.py"
    campaigns = {k: v for k, v in fuzz.items() if isinstance(v, dict)}
    for name, figures in campaigns.items():
        row(f"fuzz inputs, {name} (checked OK / lowered)",
            f"{figures.get('inputs', 0)} ({figures.get('checked', 0)} / {figures.get('lowered', 0)})", source)
    if campaigns:
        row("fuzz tracebacks (exceptions other than SpecError)",
            sum(f.get("tracebacks", 0) for f in campaigns.values()), source, zero=True)
        row("fuzz SpecErrors without line:col or with a Lark name",
            sum(f.get("bad errors", 0) for f in campaigns.values()), source, zero=True)
        row("max parse+check time per input (limit 1 s)",
            f"{max(f.get('max parse+check seconds', 0) for f in campaigns.values()):.3f} s", source)
    else:
        row("fuzz inputs", None, source)
    row("golden errors (exact rendered messages)", golden.get("golden errors"), "tests/test_golden_errors.py")

    runtime = load(folder, "runtime").get("rows", {})
    for figure in RUNTIME_PLACEHOLDERS:   # PLACEHOLDER rows: filled once the runtime suite writes runtime.json
        row(figure, runtime.get(figure, "placeholder (runtime suite)"), RUNTIME_SUITE)
    for figure, value in runtime.items():
        if figure not in RUNTIME_PLACEHOLDERS:
            row(figure, value, RUNTIME_SUITE)
    for path in sorted(folder.glob("*.json")):
        if path.stem not in ("security", "fuzz", "golden", "runtime"):
            for figure, value in json.loads(path.read_text()).get("rows", {}).items():
                row(figure, value, path.stem)
    return out, bad


def table(entries: list[tuple[str, str, str]]) -> str:
    lines = ["| figure | value | measured by |", "|---|---:|---|"]
    lines += [f"| {figure} | {value} | `{source}` |" for figure, value, source in entries]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long", action="store_true", help="also run the long fuzz campaigns (-m slow)")
    parser.add_argument("--with-runtime", action="store_true", help=f"also run {RUNTIME_SUITE}")
    parser.add_argument("--from", dest="folder", type=Path, help="format the figures already in this folder")
    args = parser.parse_args(argv)
    status, summary = 0, "not run (figures read from a folder)"
    with tempfile.TemporaryDirectory(prefix="impsolve-reliability-") as temporary:
        folder = args.folder or Path(temporary)
        if args.folder is None:
            status, summary = run_suites(folder, args.long, args.with_runtime)
        entries, bad = rows(folder)
    print("## impsolve front end: reliability and security\n")
    print(table(entries))
    print(f"\npytest: {summary}")
    if bad:
        print("\nNOT ZERO: " + "; ".join(bad))
    return 1 if status or bad else 0


if __name__ == "__main__":
    sys.exit(main())
