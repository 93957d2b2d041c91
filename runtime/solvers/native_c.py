"""The ctypes face of one built native solver (compiler.c_solver documents the C functions):
a forward solve that returns the outputs and the tape of accepted steps, and the reverse pass
over that tape."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import SolverError

_DOUBLES = ctypes.POINTER(ctypes.c_double)
WATCH = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double, ctypes.c_void_p)   # (t, y) -> stop?
STATUS = {1: "max_num_steps exceeded", 2: "underflow in dt", 3: "non-finite values in the state",
          4: "out of memory for the stored steps", 5: "stopped by its watch"}


def _pointer(x: torch.Tensor) -> ctypes.POINTER:
    return ctypes.cast(x.data_ptr(), _DOUBLES)


def _watcher(watch: Callable[[float, torch.Tensor], None], like: torch.Tensor, raised: list) -> Callable:
    """The C callback around `watch`: the state copied into a tensor shaped like `like`; an
    exception is kept in `raised` and stops the solve (it cannot cross the C frames)."""
    count = like.numel()

    def callback(t: float, address: int) -> int:
        try:
            buffer = (ctypes.c_double * count).from_address(address)
            watch(t, torch.frombuffer(buffer, dtype=torch.float64).clone().reshape(like.shape))
            return 0
        except BaseException as err:   # noqa: BLE001 - re-raised by `solve` once C has returned
            raised.append(err)
            return 1
    return callback


@dataclass
class SolveInfo:
    """What a forward solve reports besides its outputs."""

    evaluations: int
    event_time: float
    time_reached: float


class Tape:
    """The C-side record of one solve's accepted steps; freed with this object."""

    def __init__(self, library: "NativeLibrary", handle: int) -> None:
        self.library, self.handle = library, handle

    def free(self) -> None:
        if self.handle:
            self.library.lib.imp_free(self.handle)
            self.handle = 0

    def __del__(self) -> None:
        self.free()


class NativeLibrary:
    """A loaded native solver for `states` states per trajectory and `theta` packed parameters."""

    def __init__(self, lib: ctypes.CDLL, states: int, theta: int) -> None:
        lib.imp_solve.restype = ctypes.c_void_p
        lib.imp_solve.argtypes = [_DOUBLES, _DOUBLES, ctypes.c_int, ctypes.c_int, _DOUBLES, _DOUBLES,
                                  ctypes.c_double, ctypes.c_double, ctypes.c_long, ctypes.c_int, _DOUBLES,
                                  WATCH, ctypes.c_long, ctypes.c_int]
        lib.imp_reverse.restype = None
        lib.imp_reverse.argtypes = [ctypes.c_void_p, _DOUBLES, _DOUBLES, _DOUBLES, _DOUBLES]
        lib.imp_free.restype = None
        lib.imp_free.argtypes = [ctypes.c_void_p]
        sizes = (ctypes.c_int * 2)()
        lib.imp_sizes(sizes)
        if tuple(sizes) != (states, theta):
            raise RuntimeError(f"native solver sizes {tuple(sizes)} differ from the expected {(states, theta)}")
        self.lib, self.states, self.theta = lib, states, theta

    def solve(self, theta: torch.Tensor, y0: torch.Tensor, times: list[float], *, rtol: float, atol: float,
              max_steps: int, until: bool, watch: Callable[[float, torch.Tensor], None] | None = None,
              every: int = 1000, keep: bool = True) -> tuple[torch.Tensor, Tape, SolveInfo]:
        """Outputs (len(times) x y0.shape; one row with `until`), the tape and the report; a
        failed solve raises SolverError worded like torchdiffeq's. `watch(t, y)` is called every
        `every` evaluations (y shaped like y0); an exception it raises stops the solve and is re-raised.
        `keep` keeps the nets' activations for `reverse` (faster reverse pass, more memory)."""
        batch = y0.numel() // self.states
        nout = 1 if until else len(times)
        out = torch.empty((nout, *y0.shape), dtype=torch.float64)
        tout = torch.tensor(times, dtype=torch.float64)
        info = torch.zeros(4, dtype=torch.float64)
        raised: list[BaseException] = []
        callback = WATCH(0) if watch is None else WATCH(_watcher(watch, y0, raised))
        handle = self.lib.imp_solve(_pointer(theta), _pointer(y0), batch, nout, _pointer(tout), _pointer(out),
                                    rtol, atol, min(max_steps, 2 ** 62), int(until), _pointer(info), callback, every,
                                    int(keep))
        tape = Tape(self, handle)
        status, evaluations, event_time, reached = info.tolist()
        if status:
            tape.free()
            if raised:
                raise raised[0]
            raise SolverError(f"{STATUS[int(status)]} near t = {reached:.6g}")
        return out, tape, SolveInfo(int(evaluations), event_time, reached)

    def reverse(self, tape: Tape, theta: torch.Tensor, gout: torch.Tensor,
                like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The adjoints of the initial state and of theta, given the outputs' adjoints."""
        gy0 = torch.zeros_like(like)
        gth = torch.zeros(self.theta, dtype=torch.float64)
        gout = gout.contiguous()
        self.lib.imp_reverse(tape.handle, _pointer(theta), _pointer(gout), _pointer(gy0), _pointer(gth))
        return gy0, gth
