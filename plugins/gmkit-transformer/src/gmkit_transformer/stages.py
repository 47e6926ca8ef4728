r"""What the ``latent`` model needs from a stage one, and where the stage one comes from.

A stage one is a registered :class:`~gmkit_core.interfaces.GenerativeModel` over the images
that follows one of two duck-typed contracts (both already met by gmkit-vae's ``vae``,
``beta_vae``, ``iwae`` and gmkit-vqvae's ``vqvae``):

- **Gaussian latent** (:data:`GAUSSIAN`): ``model.encoder(x, None)`` returns
  :math:`q(z \mid x)` as a :class:`~gmkit_core.distributions.Normal` over ``(B, D)``
  (``rsample(generator, sample_shape)``, ``log_prob``, ``entropy``); ``model.decoder(z, None)``
  returns :math:`p(x \mid z)` with ``log_prob(x) -> (B,)`` nats of the stored levels and
  ``sample(generator)``; ``model.config.latent_dim`` is ``D``. Stage two sees vectors ``(D,)``.
- **Code map** (:data:`CODES`): ``model.encode_codes(x) -> (B, h, w)`` int64 codes (a
  deterministic encoder), ``model.decode(k)`` returns :math:`p(x \mid e_k)` (``log_prob``,
  ``sample``, ``mode``), ``model.latent_shape == (h, w)``, ``model.config.codebook_size == K``.
  Stage two sees one-channel ``(1, h, w)`` images with ``K`` levels.

Label-conditional stage ones are not supported (the bound would need the label).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gmkit_core.artifact import build_model, read_run
from gmkit_core.config import config_to_dict, make_config
from gmkit_core.data import DataSpec
from gmkit_core.distributions import Normal
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, likelihood_of
from gmkit_core.registry import registry

__all__ = ["GAUSSIAN", "CODES", "latent_kind", "latent_spec", "from_file", "from_registry", "rebuild", "sha256"]

GAUSSIAN, CODES = "gaussian", "codes"

CONTRACT = (
    "a stage one must be a VAE-like model (encoder(x) -> Normal q(z|x), decoder(z) -> p(x|z), "
    "config.latent_dim) or a VQ-VAE (encode_codes(x), decode(codes), latent_shape, config.codebook_size)"
)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def latent_kind(model: Any, name: str) -> str:
    """:data:`GAUSSIAN` or :data:`CODES` for a stage one that keeps a contract, else a ConfigError naming it."""
    if getattr(model, "conditional", False):
        raise ConfigError(f"model 'latent': stage one '{name}' is label-conditional; use an unconditional one")
    if likelihood_of(model) == "none":
        raise ConfigError(
            f"model 'latent': stage one '{name}' has no likelihood p(x|z) on the levels "
            "(e.g. vqvae with decoder=mse); the pixel bound needs a normalised decoder"
        )
    if all(hasattr(model, a) for a in ("encode_codes", "decode", "latent_shape")):
        return CODES
    if all(hasattr(model, a) for a in ("encoder", "decoder")) and hasattr(model.config, "latent_dim"):
        x = torch.zeros(1, *model.data.shape, dtype=torch.long)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            q = model.encoder(x, None)
        model.train(was_training)
        if isinstance(q, Normal) and q.loc.shape == (1, model.config.latent_dim):
            return GAUSSIAN
    raise ConfigError(f"model 'latent': stage one '{name}' does not keep the contract: {CONTRACT}")


def latent_spec(model: Any, kind: str) -> DataSpec:
    """The data stage two models: vectors ``(D,)`` or code images ``(1, h, w)`` with ``K`` levels."""
    if kind == GAUSSIAN:
        return DataSpec("latents", "vector", (int(model.config.latent_dim),))
    h, w = model.latent_shape
    return DataSpec("codes", "image", (1, h, w), levels=int(model.config.codebook_size))


def _check_data(stage1: DataSpec, data: DataSpec, where: str) -> None:
    if (stage1.kind, tuple(stage1.shape), stage1.levels) != (data.kind, tuple(data.shape), data.levels):
        raise DataError(
            f"model 'latent': stage one {where} was trained on {stage1.kind} {tuple(stage1.shape)} with "
            f"{stage1.levels} levels, but the data '{data.name}' is {data.kind} {tuple(data.shape)} with "
            f"{data.levels} levels"
        )


def from_file(path: str, data: DataSpec) -> tuple[GenerativeModel, dict[str, Any]]:
    """Stage one read from a run file (best weights) and its provenance record."""
    record = read_run(path, weights_only=True)
    spec = DataSpec.from_json(record.data["spec"])
    _check_data(spec, data, f"'{path}'")
    model = build_model(record, record.best)
    info = {
        "source": str(path),
        "sha256": sha256(path),
        "model": record.model,
        "plugin": record.plugin,
        "plugin_version": record.plugin_version,
        "config": record.config,
        "data": record.data,
    }
    return model, info


def from_registry(name: str, options: dict[str, Any], data: DataSpec) -> tuple[GenerativeModel, dict[str, Any]]:
    """A new, untrained stage one and its provenance record (trained in this run)."""
    model = registry.get("model", name, data=data, **options)
    entry = registry.entry("model", name)
    info = {
        "source": "trained in this run",
        "sha256": None,
        "model": name,
        "plugin": entry.plugin,
        "config": config_to_dict(model.config),
        "data": {"spec": data.to_json()},
    }
    return model, info


def rebuild(info: dict[str, Any], data: DataSpec) -> GenerativeModel:
    """A stage one of the architecture recorded in ``info`` (weights to be loaded)."""
    cls = registry.entry("model", info["model"]).load()
    _check_data(DataSpec.from_json(info["data"]["spec"]), data, f"'{info['source']}'")
    return cls(make_config(cls.Config, info["config"], owner=f"stage one '{info['model']}'"), data)


def encode_record(info: dict[str, Any]) -> Tensor:
    """Provenance as a uint8 tensor of its JSON (so the run file's weights carry it)."""
    return torch.tensor(list(json.dumps(info, sort_keys=True).encode()), dtype=torch.uint8)


def decode_record(t: Tensor) -> dict[str, Any]:
    """The inverse of :func:`encode_record`."""
    return dict(json.loads(bytes(t.cpu().tolist()).decode()))
