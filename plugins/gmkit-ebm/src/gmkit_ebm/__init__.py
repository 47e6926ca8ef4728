"""Energy-based models for gmkit: ``ebm`` (CD with Langevin dynamics, DSM or NCE) and ``jem``."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
