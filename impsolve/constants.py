"""Values the command line and the dsl share, in a module of their own so that `impsolve --help`
imports neither the dsl nor pydantic."""

MAX_SEED = 2**63 - 1   # torch seeds are 64-bit; the CLI and the API accept 0..MAX_SEED
BACKENDS = ("auto", "native", "torch", "torchdiffeq")   # solver tiers (runtime.solvers.plan)
