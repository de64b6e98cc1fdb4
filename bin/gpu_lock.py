"""Write requirements-gpu.lock: requirements.lock with PyPI's CUDA build of torch.

The CPU lock pins ``torch==X+cpu`` (the CPU wheel); on a machine with NVIDIA GPUs the same
versions of everything else go with PyPI's default Linux wheel of torch ``X``, a CUDA build, and
the NVIDIA runtime wheels it depends on. pip resolves that set from PyPI's metadata without
downloading the wheels (``--dry-run --report``), so this runs on a machine without a GPU.

    .venv/bin/python bin/gpu_lock.py        # `make lock` runs it after the CPU lock
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_LOCK, GPU_LOCK = ROOT / "requirements.lock", ROOT / "requirements-gpu.lock"
HEADER = """\
# requirements.lock with PyPI's CUDA build of torch and the NVIDIA wheels it needs (Linux x86-64).
# Made by bin/gpu_lock.py (`make lock`); install with `make setup LOCK=requirements-gpu.lock`.
"""


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.strip().split("==", 1)
            found[normalised(name)] = version
    return found


def gpu_pins(cpu: dict[str, str]) -> dict[str, str]:
    """The CPU pins with torch's local ``+cpu`` dropped, resolved together by pip."""
    wanted = {name: version.split("+")[0] if name == "torch" else version
              for name, version in cpu.items()}
    with tempfile.TemporaryDirectory() as folder:
        requirements, report = Path(folder) / "in.txt", Path(folder) / "report.json"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in wanted.items()))
        subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run",
                        "--ignore-installed", "--quiet", "--report", str(report),
                        "-r", str(requirements)], check=True)
        resolved = json.loads(report.read_text())["install"]
    return {normalised(i["metadata"]["name"]): i["metadata"]["version"] for i in resolved}


def main() -> int:
    cpu = pins(CPU_LOCK.read_text())
    gpu = gpu_pins(cpu)
    drifted = {n: (cpu[n], gpu[n]) for n in cpu if n != "torch" and gpu.get(n) != cpu[n]}
    if drifted:
        print(f"gpu_lock: the CUDA torch moves other pins: {drifted}", file=sys.stderr)
        return 1
    GPU_LOCK.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(gpu.items())))
    added = sorted(set(gpu) - set(cpu))
    print(f"gpu_lock: {GPU_LOCK.name}: torch=={gpu['torch']} and {len(added)} more "
          f"({', '.join(added)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
