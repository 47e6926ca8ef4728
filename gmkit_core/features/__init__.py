"""Feature extractors for sample-quality metrics: a registry kind, ``feature``.

Built in: ``points`` (vector data: the points themselves), ``digits`` (a small
conv classifier trained on the digits train split, shipped with the package),
``pixels`` (block-averaged intensities of any images, no weights),
``inception`` (the FID Inception-v3 from a local weights file). A classifier
for other labelled images is trained by ``gmkit features fit`` and passed as
its ``.h5`` file. :func:`resolve` turns the ``--features`` text into one.
"""

from __future__ import annotations

from pathlib import Path

from ..data import DataSpec
from ..errors import ConfigError, DataError, NotRegisteredError
from .base import FIT_HINT, FeatureExtractor, file_sha256

__all__ = ["FeatureExtractor", "resolve", "default_name", "file_sha256"]


def default_name(spec: DataSpec) -> str:
    """``points`` for vector data, ``digits`` for images."""
    return "points" if spec.kind == "vector" else "digits"


def resolve(text: str | None, spec: DataSpec) -> FeatureExtractor:
    """``--features`` value -> an extractor checked against ``spec``.

    ``None``: the default for the data (:func:`default_name`); ``NAME``: a registered
    extractor; ``NAME:PATH`` (e.g. ``inception:/models/pt_inception-2015-12-05.pth``):
    a registered extractor built from a file; ``F.h5``: a classifier written by
    ``gmkit features fit``.
    """
    from ..registry import registry

    text = text or default_name(spec)
    name, sep, arg = text.partition(":")
    if not sep and Path(text).suffix in (".h5", ".hdf5"):
        from .classifier import ClassifierFeatures

        extractor: FeatureExtractor = ClassifierFeatures(text)
    else:
        try:
            registry.entry("feature", name)
        except NotRegisteredError as exc:
            if Path(text).exists():
                raise ConfigError(f"--features {text}: a feature file must end in .h5; {FIT_HINT}") from None
            raise ConfigError(f"--features {text}: {exc}; or give F.h5 from `gmkit features fit`") from None
        extractor = registry.get("feature", name, **({"path": arg} if sep else {}))
    if not isinstance(extractor, FeatureExtractor):
        raise DataError(f"feature '{name}' did not build a FeatureExtractor (got {type(extractor).__name__})")
    extractor.check(spec)
    return extractor
