"""Versions: the distribution's and the plugin API's.

``API_VERSION`` is the contract plugins declare as ``GMKIT_API`` in their hook
module. It changes only when a hook signature or an interface changes in a way
that breaks existing plugins.
"""

__version__ = "0.2.0"
API_VERSION = 2
