"""Build and load the native tier's generated C: find a C compiler, build a shared library once
per generated source (cached in the user's cache folder under the hash of the source, the compiler
and the flags; written by an atomic rename), and load it with ctypes.

The compiler is `$IMPSOLVE_CC`, else `$CC`, else `cc` on the PATH. Setting IMPSOLVE_CC to a program
that does not exist simulates a machine without a compiler (every spec then runs on the fallback
tier)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ...dsl.lexing import cache_folder

FLAGS = ("-O3", "-std=c99", "-fPIC", "-shared")
SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"
_loaded: dict[str, ctypes.CDLL] = {}


class BuildError(Exception):
    """The C compiler failed on a generated source (a bug in the generator or the toolchain)."""


def find_compiler() -> list[str] | None:
    """The compiler command (program and its own arguments), or None when none can be run."""
    for variable in ("IMPSOLVE_CC", "CC"):
        value = os.environ.get(variable)
        if value is not None:
            words = shlex.split(value)
            return words if words and shutil.which(words[0]) else None
    found = shutil.which("cc")
    return [found] if found else None


def library_name(source: str, compiler: list[str]) -> str:
    """The cache file's name: the hash of everything that decides the built library."""
    key = "\0".join([source, *compiler, *FLAGS, sys.platform])
    return f"native-{hashlib.sha256(key.encode()).hexdigest()[:24]}{SUFFIX}"


def _compile(source: str, compiler: list[str], target: Path) -> None:
    """Compile into a temporary folder beside `target`, then rename the library into place."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".native-") as work:
        c_file, built = Path(work) / "solver.c", Path(work) / f"solver{SUFFIX}"
        c_file.write_text(source, encoding="utf-8")
        done = subprocess.run([*compiler, *FLAGS, "-o", str(built), str(c_file), "-lm"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"the C compiler failed on a generated solver:\n{done.stderr[-2000:]}")
        os.replace(built, target)


def load(source: str) -> ctypes.CDLL:
    """The library built from `source` (built now unless cached on disk or already loaded)."""
    compiler = find_compiler()
    if compiler is None:
        raise BuildError("no C compiler found")
    name = library_name(source, compiler)
    if name in _loaded:
        return _loaded[name]
    folder = cache_folder()
    if folder is None:   # no writable cache: build into a private temporary folder
        folder = Path(tempfile.mkdtemp(prefix="impsolve-native-"))
    target = folder / name
    if not target.exists():
        _compile(source, compiler, target)
    _loaded[name] = ctypes.CDLL(str(target))
    return _loaded[name]
