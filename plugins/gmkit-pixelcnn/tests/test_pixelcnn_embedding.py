"""The ordinal initial embedding: a cosine basis of the level's intensity, used only when asked for."""

import torch
from gmkit_pixelcnn.network import ordinal_embedding

from gmkit_core.data import DataSpec
from gmkit_core.registry import registry


def test_ordinal_embedding_is_a_cosine_basis_with_a_monotone_first_feature():
    table = ordinal_embedding(256, 8).double()
    u = torch.arange(256, dtype=torch.float64) / 255
    for k in range(1, 9):
        torch.testing.assert_close(table[:, k - 1], torch.cos(torch.pi * k * u), atol=1e-6, rtol=0)
    assert (table[1:, 0] < table[:-1, 0]).all()  # strictly decreasing in the level
    # neighbouring levels are closer than distant ones
    assert (table[1] - table[0]).norm() < (table[128] - table[0]).norm()


def test_embed_init_ordinal_sets_every_channel_table_and_random_does_not():
    spec = DataSpec("rgb", "image", (3, 4, 4), levels=64)
    torch.manual_seed(0)
    ordinal = registry.get("model", "pixelcnn", data=spec, hidden=6, layers=2, embed_init="ordinal")
    weight = ordinal.net.embedding.weight.detach()
    expected = ordinal_embedding(64, 8)
    for c in range(3):
        torch.testing.assert_close(weight[c * 64 : (c + 1) * 64], expected)
    random = registry.get("model", "pixelcnn", data=spec, hidden=6, layers=2, embed_init="random")
    assert not torch.allclose(random.net.embedding.weight.detach()[:64], expected, atol=0.1)
