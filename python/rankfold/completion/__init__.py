"""Matrix completion by alternating minimization: ``ALS`` (explicit ratings
and implicit feedback; exact, conjugate-gradient and iALS++ subspace solvers)."""

from .als import ALS

__all__ = ["ALS"]
