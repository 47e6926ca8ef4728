"""The trainer's speed options on the gated PixelCNN (dropout inside compiled bf16 kernels)."""

import torch

from gmkit_core.training.run import train


def test_compiled_bf16_training_stays_finite_and_matches_eager(tmp_path):
    """torch 2.13's vectorised CPU bf16 kernels gave NaN here at the first step; the trainer avoids them."""
    runs = {}
    for compiled in (False, True):
        runs[compiled] = train(
            "pixelcnn",
            "digits",
            tmp_path / f"{compiled}.h5",
            steps=4,
            quiet=True,
            pictures=False,
            overrides={"layers": 1},
            train_overrides={"eval_every": 0, "batch_size": 32, "compile": compiled, "precision": "bf16"},
        )
    eager, compiled_run = (runs[k].run.model.state_dict() for k in (False, True))
    for key, value in eager.items():
        assert torch.isfinite(compiled_run[key].float()).all(), key
        assert torch.allclose(value.float(), compiled_run[key].float(), atol=1e-4), key
