"""Peak memory for ``gmkit bench``: a known allocation raises the peak by its size, and a reset forgets it."""

import sys

import pytest
import torch

from gmkit_core.memory import peak_mib, reset_peak

cpu = torch.device("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is Linux's VmHWM")
def test_cpu_peak_sees_an_allocation_and_resets():
    assert reset_peak(cpu)
    before = peak_mib(cpu)
    block = torch.ones(64 * 2**20)  # 256 MiB of float32, touched
    during = peak_mib(cpu)
    del block
    assert before is not None and during is not None
    assert during - before >= 250
    assert reset_peak(cpu)
    after = peak_mib(cpu)
    assert after is not None and after < during - 200


def test_devices_without_a_peak_say_so():
    assert not reset_peak(torch.device("meta")) and peak_mib(torch.device("meta")) is None


def test_speed_options_time_each_setting_against_fp32():
    from gmkit_core.bench import format_speed, speed_options

    rows = speed_options(["independent"], "moons:200", steps=3, warmup=1, settings=("fp32", "bf16"))
    assert [r["setting"] for r in rows] == ["fp32", "bf16"] and rows[0]["speedup"] == 1.0
    assert all(isinstance(r["cpu_s_per_step"], float) for r in rows)  # a difference of CPU times: noisy sign
    assert "| independent | bf16 |" in format_speed(rows, "moons:200")
