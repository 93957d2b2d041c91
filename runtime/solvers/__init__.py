"""Specialised solver tiers: plain-torch explicit Runge-Kutta loops (runtime.solvers.integrator)
and the choice of tier and gradient mode (runtime.solvers.plan)."""
