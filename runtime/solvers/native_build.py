"""Build and load the native tier's generated C: find a C compiler, build a shared library once
per generated source (cached in the user's cache folder under the hash of the sources, the
compiler, the flags and the CPU; written by an atomic rename), and load it with ctypes.

The kernel (right-hand side and nets) is built with -O3 -ffast-math -march=native, so that the
nets' loops vectorise with libm's vector functions; the solver with -O3 alone (IEEE step control
and non-finite checks). A compiler that refuses -march=native builds the kernel without it.

The compiler is `$IMPSOLVE_CC`, else `$CC`, else `cc` on the PATH. Setting IMPSOLVE_CC to a program
that does not exist simulates a machine without a compiler (every spec then runs on the fallback
tier)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from ...compiler.c_codegen import CSource
from ...dsl.lexing import cache_folder

COMMON = ("-O3", "-std=c99", "-fPIC")
KERNEL_FLAGS = (("-ffast-math", "-march=native"), ("-ffast-math",))   # tried in this order
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


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """What -march=native depends on: the machine, and on Linux the CPU model and its flags."""
    identity = [platform.machine(), sys.platform]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                identity.append(line)
                if len(identity) == 4:
                    break
    except OSError:
        pass
    return "\n".join(identity)


def library_name(source: CSource, compiler: list[str]) -> str:
    """The cache file's name: the hash of everything that decides the built library."""
    key = "\0".join([source.kernel, source.solver, *compiler, *COMMON, repr(KERNEL_FLAGS), cpu_identity()])
    return f"native-{hashlib.sha256(key.encode()).hexdigest()[:24]}{SUFFIX}"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _compile(source: CSource, compiler: list[str], target: Path) -> None:
    """Compile both units into a temporary folder beside `target`, then rename the library into place."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".native-") as work:
        folder = Path(work)
        (folder / "kernel.c").write_text(source.kernel, encoding="utf-8")
        (folder / "solver.c").write_text(source.solver, encoding="utf-8")
        kernel = folder / "kernel.o"
        for flags in KERNEL_FLAGS:
            done = _run([*compiler, *COMMON, *flags, "-c", "-o", str(kernel), str(folder / "kernel.c")])
            if done.returncode == 0:
                break
        else:
            raise BuildError(f"the C compiler failed on a generated solver:\n{done.stderr[-2000:]}")
        built = folder / f"solver{SUFFIX}"
        done = _run([*compiler, *COMMON, "-shared", "-o", str(built), str(folder / "solver.c"), str(kernel), "-lm"])
        if done.returncode != 0:
            raise BuildError(f"the C compiler failed on a generated solver:\n{done.stderr[-2000:]}")
        os.replace(built, target)


def load(source: CSource) -> ctypes.CDLL:
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
    try:
        library = ctypes.CDLL(str(target))
    except OSError:   # a damaged cache file: build it again
        _compile(source, compiler, target)
        library = ctypes.CDLL(str(target))
    _loaded[name] = library
    return library
