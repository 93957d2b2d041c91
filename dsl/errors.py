"""SpecError: every mistake in a spec, located at file:line:col with the line and a caret."""
from __future__ import annotations

import difflib
from typing import Iterable

from .ast import Span


class SpecError(Exception):
    """A user error in a spec. `str()` gives the full, located message."""

    def __init__(self, message: str, span: Span | None, source: str = "", filename: str = "<spec>",
                 hint: str | None = None) -> None:
        self.message = message
        self.span = span
        self.source = source
        self.filename = filename
        self.hint = hint
        super().__init__(self.render())

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def located(self, source: str, filename: str) -> "SpecError":
        """The same error attached to a source text (for errors raised before it was known)."""
        return SpecError(self.message, self.span, source, filename, self.hint)

    def render(self) -> str:
        """`file:line:col: error: message`, then the source line with a caret under the span, and the hint."""
        if self.span is None:
            text = f"{self.filename}: error: {self.message}"
        else:
            text = f"{self.filename}:{self.span.line}:{self.span.column}: error: {self.message}"
            lines = self.source.split("\n")  # as the lexer counts lines: not splitlines(), which also splits at \f
            if 0 < self.span.line <= len(lines) and lines[self.span.line - 1].strip():
                line = lines[self.span.line - 1].rstrip("\r")
                shown = "".join(c if c.isprintable() or c == "\t" else "?" for c in line[:200])
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                caret_col = min(self.span.column - 1, len(shown))
                width = max(1, min(width, len(shown) - caret_col))
                pad = "".join("\t" if c == "\t" else " " for c in shown[:caret_col])
                gutter = f"{self.span.line:>5} | "
                more = " ..." if len(line) > 200 else ""
                text += f"\n{gutter}{shown}{more}\n{' ' * (len(gutter) - 2)}| {pad}{'^' * width}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return None
    quoted = [f"'{c}'" for c in close]
    return "did you mean " + (", ".join(quoted[:-1]) + " or " if len(quoted) > 1 else "") + quoted[-1] + "?"
