"""The 8gaussians mode measure on hand-made sample sets."""

from __future__ import annotations

import math

import torch
from gmkit_gan.modes import EIGHT_GAUSSIANS_STD, eight_gaussian_centres, mode_report


def test_centres_match_the_toy_data() -> None:
    from gmkit_core.data import load

    x = load("8gaussians", "train").x.double()
    report = mode_report(x)
    assert report.modes_covered == 8
    # 3 sigma per coordinate in 2D holds P(chi2_2 <= 9) = 1 - exp(-4.5) of a Gaussian's mass
    assert abs(report.high_quality - (1 - math.exp(-4.5))) < 0.005
    assert min(report.counts) > 1100


def test_hand_made_samples() -> None:
    centres = eight_gaussian_centres()
    near = centres.repeat_interleave(10, 0) + torch.tensor([0.5, 0.0], dtype=torch.float64) * EIGHT_GAUSSIANS_STD
    far = centres[:1] + torch.tensor([[3.1 * EIGHT_GAUSSIANS_STD, 0.0]], dtype=torch.float64)
    x = torch.cat([near, torch.zeros(20, 2, dtype=torch.float64), far])  # 80 good, 20 at the origin, 1 just outside
    report = mode_report(x)
    assert report.counts == (10,) * 8 and report.n == 101
    assert report.high_quality == 80 / 101
    assert mode_report(x[10:]).modes_covered == 7
    assert report.covered(11) == 0


def test_doctest_and_command_line(tmp_path, capsys) -> None:
    import doctest
    import json

    import gmkit_gan.modes as modes

    from gmkit_core.training import train

    assert doctest.testmod(modes).failed == 0
    train(
        "gan",
        "8gaussians:256",
        tmp_path / "r.h5",
        steps=2,
        overrides={"hidden": (8,), "eval_samples": 20},
        train_overrides={"batch_size": 64, "threads": 1},
        quiet=True,
        pictures=False,
    )
    modes.main([str(tmp_path / "r.h5"), "-n", "50"])
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 50 and len(out["counts"]) == 8 and 0 <= out["high_quality"] <= 1
