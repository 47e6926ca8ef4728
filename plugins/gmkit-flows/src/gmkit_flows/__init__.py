"""gmkit-flows: normalizing flows (NICE, RealNVP, Glow, MAF/IAF, neural spline flows) for gmkit.

Transforms follow :class:`gmkit_core.interfaces.Transform` (``forward(x) -> (y, ladj)``,
``inverse(y) -> (x, ladj)``) and compose with :class:`gmkit_core.transforms.Compose`.
Models, priors and transforms are registered by name through :mod:`gmkit_flows.plugin`.
"""

__version__ = "0.1.0"
