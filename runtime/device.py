"""Resolve the user's --device and --dtype choices."""
from __future__ import annotations

import torch

from .errors import RunError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("CUDA was requested but no CUDA device is available", "use --device cpu or auto",
                       exit_code=2)
    try:
        return torch.device(name)
    except RuntimeError:
        raise RunError(f"unknown device '{name}'", "use auto, cpu or cuda", exit_code=2) from None


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise RunError(f"unknown dtype '{name}'", "use float64 or float32", exit_code=2)
    return DTYPES[name]
