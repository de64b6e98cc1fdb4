"""Run a command as if on an x86-64-v2 CPU (SSE4.2, no AVX): every library that picks its kernels
by the CPU's vector extensions is held to its SSE4.2 path.

- Embree (the synth ray caster): its ISA is set through the device config string, which embreex
  never passes, so ``embree_isa.c`` is compiled and LD_PRELOADed to pass it;
- numpy: its AVX2 and AVX-512 dispatch targets are disabled (``NPY_DISABLE_CPU_FEATURES``);
- OpenBLAS: its Nehalem (SSE4.2) kernels (``OPENBLAS_CORETYPE``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
# numpy's dispatch targets above the x86-64-v2 baseline (numpy 2.x names; unknown ones are ignored).
NUMPY_ABOVE_V2 = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR AVX2 FMA3 AVX512F AVX512_SKX"
EMBREE_SSE42_ANNOUNCEMENT = "embree_isa: device config isa=sse4.2"


def embree_library() -> Path:
    """The libembree4 bundled with embreex (its name carries a build hash)."""
    import embreex

    libraries = sorted((Path(embreex.__file__).parent.parent / "embreex.libs").glob("libembree4*"))
    if not libraries:
        raise FileNotFoundError("embreex.libs/libembree4* not found beside embreex")
    return libraries[0]


def x86_64_v2_environment(build_dir: Path) -> dict[str, str]:
    """Environment variables that hold Embree, numpy and OpenBLAS to SSE4.2 kernels."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise FileNotFoundError("no C compiler (cc or gcc) to build tests/helpers/embree_isa.c")
    shim = build_dir / "embree_isa.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(shim), str(HERE / "embree_isa.c"), "-ldl"],
        check=True,
    )
    return {
        "LD_PRELOAD": str(shim),
        "LONGVIE_EMBREE_LIBRARY": str(embree_library()),
        "LONGVIE_EMBREE_CONFIG": "isa=sse4.2",
        "NPY_DISABLE_CPU_FEATURES": NUMPY_ABOVE_V2,
        "OPENBLAS_CORETYPE": "Nehalem",
    }
