"""Settings values: call arguments (`train adam(lr=0.01)`, `identify epochs=3`, `study grid(n=5)`)
and `--set` overrides turned into the validated pydantic models of dsl/options.py."""
from __future__ import annotations

from typing import Callable, Iterable

from pydantic import BaseModel, ValidationError

from . import ast
from .errors import SpecError, did_you_mean
from .options import SETTINGS, OdeOptions

ErrorFactory = Callable[..., SpecError]   # (message, span, hint=None) -> a located SpecError


def literal(expr: ast.Expr, error: ErrorFactory) -> object:
    """A settings value: number, name (string), true/false, or a list of those."""
    if isinstance(expr, ast.Number):
        integral = expr.value.is_integer() and "." not in expr.text and "e" not in expr.text.lower()
        return int(expr.value) if integral else expr.value
    if isinstance(expr, ast.Neg) and isinstance(expr.operand, ast.Number):
        return -literal(expr.operand, error)
    if isinstance(expr, ast.Name):
        return {"true": True, "false": False}.get(expr.id, expr.id)
    if isinstance(expr, ast.Array):
        return [literal(i, error) for i in expr.items]
    raise error("a settings value must be a number, a name, true/false or a list", expr.span)


def call_settings(kind: str, call: ast.Call, error: ErrorFactory) -> BaseModel:
    """`solve ode(...)`, `train adam(...)`, `net f(x): mlp(...)`, `using newton(...)`: the validated options."""
    schema = SETTINGS.get((kind, call.func))
    if schema is None:
        choices = [name for (k, name) in SETTINGS if k == kind]
        raise error(f"unknown {kind} setting '{call.func}'", call.func_span,
                    did_you_mean(call.func, choices) or "choose one of: " + ", ".join(choices))
    if call.args:
        raise error(f"options of {call.func}() are given as name=value", call.args[0].span)
    fields = [f for f in schema.model_fields if f not in ("optimizer", "method") or schema is OdeOptions]
    options = [(kw.name, kw.value, kw.span) for kw in call.kwargs]
    return validate_options(schema, options, f"{call.func}()", call.span, error, fields)


def validate_options(schema: type[BaseModel], options: Iterable[tuple[str, ast.Expr, ast.Span]], owner: str,
                     span: ast.Span, error: ErrorFactory, fields: list[str] | None = None) -> BaseModel:
    """Validate `name=value` options (name, value, span of the pair) against `schema`; `owner` names
    them in messages ("adam()", "identify") and `span` is blamed when no option is."""
    options = list(options)
    fields = list(schema.model_fields) if fields is None else fields
    data = raw_options(options, owner, error, fields)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        option = str(first["loc"][0]) if first["loc"] else ""
        where = next((value.span for name, value, _ in options if name == option), span)
        raise error(f"invalid value for '{option}': {first['msg']}", where) from None


def raw_options(options: Iterable[tuple[str, ast.Expr, ast.Span]], owner: str, error: ErrorFactory,
                fields: list[str] | None = None) -> dict[str, object]:
    """`name=value` options as a dict of literals; unknown (when `fields` is given) or repeated names are errors."""
    data: dict[str, object] = {}
    for name, value, span in options:
        if fields is not None and name not in fields:
            raise error(f"unknown option '{name}' for {owner}", span,
                        did_you_mean(name, fields) or "options: " + ", ".join(fields))
        if name in data:
            raise error(f"option '{name}' is given twice", span)
        data[name] = literal(value, error)
    return data


def override(current: BaseModel, key: str, option: str, raw: str) -> BaseModel:
    """`current` with `option` set from the `--set key=raw` text, validated."""
    if option not in type(current).model_fields:
        raise SpecError(f"unknown option '{option}' in '{key}'", None, filename="--set",
                        hint=did_you_mean(option, type(current).model_fields))
    data = current.model_dump() | {option: parse_cli_value(raw)}
    try:
        return type(current).model_validate(data)
    except ValidationError as err:
        raise SpecError(f"invalid value for {key}: {err.errors()[0]['msg']}", None, filename="--set") from None


def parse_cli_value(raw: str) -> object:
    """A `--set` value: true/false, an int, a float, or the text itself."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
