"""Jupyter display of a Result: a table (objective, checks, values) and the run's figures."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures(out_dir: str | None) -> str:
    if not out_dir or not Path(out_dir).is_dir():
        return ""
    images = []
    for png in sorted(Path(out_dir).glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        images.append(f'<figure style="display:inline-block"><img src="data:image/png;base64,{data}" width="360">'
                      f"<figcaption>{html.escape(png.name)}</figcaption></figure>")
    return "".join(images)


def result_html(result: Any) -> str:
    """HTML for a Result: summary line, checks table, values table, embedded PNG figures."""
    objective = result.objective
    title = (f"<b>{html.escape(result.problem)}</b>: {objective.sense} {html.escape(objective.expr)} = "
             f"{objective.final:.8g} ({result.steps} steps, {result.wall_time_s:.1f} s, {result.status})")
    checks = _table([("PASS" if c.passed else "FAIL", c.name, f"{c.value:.8g}", f"{c.reference:.8g}",
                      f"{c.error:.3g}", "" if c.tolerance is None else f"{c.tolerance:g}") for c in result.checks],
                    ("", "expect", "value", "reference", "error", "tol"))
    values = _table([(name, f"{v:.8g}") for name, v in result.values.items()], ("value", ""))
    return f"<div>{title}{checks}{values}{_figures(result.out_dir)}</div>"
