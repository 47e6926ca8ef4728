"""Hook implementations: cheap to import (no torch), targets named as strings."""

import gmkit_core

GMKIT_API = 2  # the gmkit core API this plugin targets


@gmkit_core.hookimpl
def gmkit_register_models(register):
    register(
        "independent",
        "gmkit_example.model:Independent",
        family="example",
        description="independent dimensions: categorical per pixel, or diagonal Gaussian for vectors",
    )
