"""Compile every CUDA source in csrc/cuda with nvcc, for sm_80 and sm_90.

CI has nvcc but no GPU: the kernels cannot run there, but they must compile.
This is independent of setup.py's fallbacks, which would otherwise hide a
broken .cu file behind a successful C++-only install. Exits non-zero on any
failure.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)


def main() -> int:
    from setup import find_cuda_home  # the same toolkit discovery as the install

    cuda_home = find_cuda_home()
    if cuda_home is None:
        print("compile_cuda: no CUDA toolkit found (nvcc missing)", file=sys.stderr)
        return 1
    from torch.utils.cpp_extension import include_paths

    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    sources = sorted(glob.glob(os.path.join(HERE, "csrc", "cuda", "*.cu")))
    if not sources:
        print("compile_cuda: no .cu sources", file=sys.stderr)
        return 1
    incs = include_paths() + [
        os.path.join(HERE, "csrc", "include"),
        sysconfig.get_paths()["include"],
    ]
    incs.append(os.path.join(cuda_home, "include"))
    flags = [
        "-std=c++20",
        "-O3",
        "-DTORCH_EXTENSION_NAME=_C",
        "-D_GLIBCXX_USE_CXX11_ABI=1",
        "--expt-relaxed-constexpr",
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90,code=sm_90",
        "-Xcompiler",
        "-fPIC",
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            cmd = [nvcc, "-c", src, "-o", obj, *flags, *[f"-I{i}" for i in incs]]
            res = subprocess.run(cmd, capture_output=True, text=True)
            ok = res.returncode == 0 and os.path.getsize(obj) > 0
            print(f"compile_cuda: {os.path.relpath(src, HERE)}: {'ok' if ok else 'FAILED'}")
            if not ok:
                failed += 1
                print(res.stdout[-4000:], res.stderr[-4000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
