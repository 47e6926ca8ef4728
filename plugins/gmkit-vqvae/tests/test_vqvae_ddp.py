"""Stage 1 leaves the stage-2 prior without gradients, so DDP must look for unused parameters."""

from __future__ import annotations

import torch
from gmkit_vqvae.model import VQVAE

import gmkit_core as gm
from gmkit_core.data import Batch, DataSpec


def test_stage_one_leaves_the_prior_unused_and_the_class_says_so() -> None:
    torch.manual_seed(0)
    model = gm.registry.get(
        "model",
        "vqvae",
        data=DataSpec("digits", "image", (1, 8, 8), levels=17),
        hidden=16,
        res_blocks=1,
        codebook_size=8,
        code_dim=4,
        downsample=2,
        prior="pixelcnn",
        prior_options=("hidden=8", "layers=2"),
    ).train()
    model.loss(Batch(torch.randint(0, 17, (4, 1, 8, 8))))["loss"].backward()
    unused = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert unused == {"prior_model"}
    assert VQVAE.ddp_find_unused_parameters is True
