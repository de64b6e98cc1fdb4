"""The GPU install: requirements-gpu.lock is the CPU lock with CUDA torch, and pip can resolve it.

The second test asks PyPI (the one network this project's machines reach) to resolve the lock
without downloading the wheels, as `make setup LOCK=requirements-gpu.lock` would install it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bin"))

from gpu_lock import CPU_LOCK, GPU_LOCK, pins


def test_the_gpu_lock_pins_what_the_cpu_lock_pins_but_a_cuda_torch():
    cpu, gpu = pins(CPU_LOCK.read_text()), pins(GPU_LOCK.read_text())
    assert cpu["torch"].endswith("+cpu") and gpu["torch"] == cpu["torch"].removesuffix("+cpu")
    assert {n: v for n, v in gpu.items() if n in cpu and n != "torch"} == {
        n: v for n, v in cpu.items() if n != "torch"}, "run `make lock`: the locks drifted apart"
    added = set(gpu) - set(cpu)
    assert {"triton", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-nccl-cu13"} <= added


def test_pip_resolves_the_gpu_lock_to_pypis_cuda_torch(tmp_path):
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run",
                    "--ignore-installed", "--quiet", "--disable-pip-version-check",
                    "--report", str(report), "-r", str(GPU_LOCK)], check=True, timeout=600)
    installed = {i["metadata"]["name"].lower(): i for i in json.loads(report.read_text())["install"]}
    torch = installed["torch"]
    assert "+cpu" not in torch["download_info"]["url"]
    needs = " ".join(torch["metadata"].get("requires_dist", []))
    assert "cuda-toolkit[cublas" in needs and "nvidia-cudnn" in needs
    assert len(installed) == len(pins(GPU_LOCK.read_text()))  # the lock is complete
