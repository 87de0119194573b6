"""Build hypervldd._C from csrc/: C++ always, CUDA when nvcc and a CUDA torch are present.

The install never fails because of the toolchain. If the CUDA build fails the
C++-only extension is tried; if that fails too, the package installs without
an extension and runs on its PyTorch reference (``hypervldd.backend_info()``
says which backend is active and why).

Environment:
    HYPERVLDD_NO_EXTENSION=1   skip the extension entirely
    HYPERVLDD_NO_CUDA=1        build the C++ extension only
    TORCH_CUDA_ARCH_LIST       CUDA architectures (default "8.0;9.0")
    CUDA_HOME                  toolkit root (found from nvcc when unset)
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _log(msg: str) -> None:
    print(f"hypervldd setup: {msg}", file=sys.stderr)


def _is_toolkit(root: str | None) -> bool:
    return bool(root) and os.path.isfile(os.path.join(root, "include", "cuda_runtime.h"))


def find_cuda_home() -> str | None:
    """The real CUDA toolkit root, or None.

    ``nvcc`` on PATH may be a wrapper script; torch would then guess CUDA_HOME
    from the wrapper's folder and fail to link (``cannot find -lcudart``). Ask
    nvcc itself: its dry run prints ``TOP=<toolkit>/bin/..``.
    """
    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if _is_toolkit(env):
        return env
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        out = subprocess.run(
            [nvcc, "-dryrun", "-x", "cu", os.devnull, "-c", "-o", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
        text = out.stdout + out.stderr
        m = re.search(r"TOP=(\S+)", text)
        if m and _is_toolkit(os.path.realpath(m.group(1))):
            return os.path.realpath(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    candidate = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    return candidate if _is_toolkit(candidate) else None


def extensions_and_cmdclass():
    if os.environ.get("HYPERVLDD_NO_EXTENSION"):
        _log("HYPERVLDD_NO_EXTENSION set: installing without the compiled extension")
        return [], {}
    try:
        import torch
    except ImportError:
        _log("torch is not importable at build time: installing without the extension")
        return [], {}

    cuda_home = None
    if torch.version.cuda is not None and not os.environ.get("HYPERVLDD_NO_CUDA"):
        cuda_home = find_cuda_home()
        if cuda_home:
            os.environ["CUDA_HOME"] = cuda_home
            # Without a visible GPU torch cannot guess the arch list and crashes.
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    # Must come after CUDA_HOME is set: cpp_extension reads it at import time.
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    cpp_sources = sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp"))) + ["csrc/ops.cpp"]
    cuda_sources = sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    cxx_flags = ["-O3", "-g0"]
    if sys.platform != "win32":
        cxx_flags.append("-fopenmp")
    # Test hook: HYPERVLDD_BREAK_BUILD=1 makes every compile fail, to check
    # that the install still succeeds without the extension.
    if os.environ.get("HYPERVLDD_BREAK_BUILD"):
        cxx_flags.append("-DHYPERVLDD_BREAK_BUILD")
    include_dirs = [os.path.join(HERE, "csrc", "include")]

    def cpp_ext():
        return CppExtension(
            "hypervldd._C",
            cpp_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"] if sys.platform != "win32" else [],
        )

    if cuda_home and cuda_sources:
        _log(
            f"building C++ and CUDA kernels (CUDA_HOME={cuda_home}, "
            f"archs {os.environ['TORCH_CUDA_ARCH_LIST']})"
        )
        ext = CUDAExtension(
            "hypervldd._C",
            cpp_sources + cuda_sources,
            include_dirs=include_dirs,
            define_macros=[("HYPERVLDD_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"] if sys.platform != "win32" else [],
        )
        ext._hypervldd_fallback = cpp_ext  # type: ignore[attr-defined]
    else:
        why = "no CUDA build of torch" if torch.version.cuda is None else "nvcc not found"
        if os.environ.get("HYPERVLDD_NO_CUDA"):
            why = "HYPERVLDD_NO_CUDA set"
        _log(f"building the C++ kernels only ({why})")
        ext = cpp_ext()

    class SafeBuildExtension(BuildExtension):
        """Never fail the install: fall back to C++ only, then to no extension."""

        def build_extension(self, ext):  # noqa: ANN001
            try:
                super().build_extension(ext)
                return
            except Exception as err:  # noqa: BLE001 - any toolchain failure
                _log(f"building {ext.name} failed: {err}")
            fallback = getattr(ext, "_hypervldd_fallback", None)
            if fallback is not None:
                _log("retrying with the C++ kernels only")
                try:
                    super().build_extension(fallback())
                    return
                except Exception as err:  # noqa: BLE001
                    _log(f"the C++-only build failed too: {err}")
            _log("installing without the compiled extension; the PyTorch reference will be used")
            # Drop it from the outputs so that the wheel does not expect its file.
            self.extensions = [e for e in self.extensions if e.name != ext.name]

    return [ext], {"build_ext": SafeBuildExtension.with_options(use_ninja=True)}


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__
    ext_modules, cmdclass = extensions_and_cmdclass()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
