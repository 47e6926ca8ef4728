"""Data-parallel EMA codebook: two gloo processes, each on half of every global batch, end with the
codebook, counts and sums that one process computes on the whole global batches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from gmkit_vqvae.quantizer import VectorQuantizer

K, D, STEPS, BATCH = 6, 3, 5, 40


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(BATCH, D, generator=g, dtype=torch.float64) * (1 + step) for step in range(STEPS)]


def _quantizer() -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(K, D, "ema", decay=0.8, eps=1e-5, dead_code_window=0).double().train()


def _state(q: VectorQuantizer) -> dict[str, torch.Tensor]:
    return {k: q.state_dict()[k].clone() for k in ("codebook", "counts", "sums", "hits")}


def _one_process(rows: slice) -> dict[str, torch.Tensor]:
    q = _quantizer()
    for z in _batches():
        q(z[rows].requires_grad_())
    return _state(q)


_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from test_vqvae_distributed import BATCH, _batches, _quantizer, _state

    def worker(rank, init, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
        q = _quantizer()
        half = BATCH // 2
        for z in _batches():
            q(z[rank * half:(rank + 1) * half].requires_grad_())  # this process's slice of the global batch
        torch.save(_state(q), f"{out}.{rank}")
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2)
""")


def test_two_process_ema_codebook_equals_one_process_on_the_global_batch(tmp_path) -> None:
    script = tmp_path / "ddp_ema.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), f"file://{tmp_path / 'rendezvous'}", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    whole = _one_process(slice(None))
    first_half = _one_process(slice(0, BATCH // 2))
    for rank in (0, 1):
        state = torch.load(f"{out}.{rank}")
        for key, value in whole.items():
            torch.testing.assert_close(state[key], value, rtol=1e-10, atol=1e-12, msg=f"rank {rank}: {key}")
    # the check has teeth: rank 0's slice alone (what a broadcast of rank 0's statistics gives) differs
    assert not torch.allclose(first_half["codebook"], whole["codebook"], atol=1e-6)
