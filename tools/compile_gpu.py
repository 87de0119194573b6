"""Compile every Triton GPU kernel ahead of time for sm_80 and sm_90 (A100, H100).

No GPU is needed: Triton lowers each kernel to PTX and assembles it with the ptxas it
ships, for the target given. This checks what the interpreter cannot: that the kernels
compile for real GPUs (tl.dot shapes and precisions, float64 dots, register limits).
By default every kernel is compiled for both targets and both dtypes, for the Lorentz
manifold (the largest epilogue and slow path) and the first autotune configuration:
24 compiles of about 70 s each on a loaded 2-core machine. ``--full`` compiles every
manifold and every autotune configuration (432 compiles). Exits non-zero on any
failure. Run: ``python tools/compile_gpu.py [--full] [--only=KERNEL] [--arch=80|90]``
(``make gpu-compile``).
"""

from __future__ import annotations

import itertools
import os
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
# Kernels must be compiled, not interpreted.
os.environ.pop("TRITON_INTERPRET", None)


def _signature(fn, dtype: str, constexprs: dict) -> dict:  # noqa: ANN001
    """Argument types: pointers to ``dtype`` (float64 for the float64 row data and
    scalars, int64 for positives), int32 sizes and strides."""
    f64_ptrs = {"xr64", "yr64", "c_ptr", "tau_ptr", "gs_ptr", "sgd_ptr", "invt_ptr"}
    i64_ptrs = {"pos_ptr"}
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in f64_ptrs:
            sig[name] = "*fp64"
        elif name in i64_ptrs:
            sig[name] = "*i64"
        elif name.endswith("_ptr") or name in ("xr0", "xr1", "yr0", "yr1"):
            sig[name] = f"*{dtype}"
        else:
            sig[name] = "i32"
    return sig


def main(argv: list[str]) -> int:
    full = "--full" in argv
    only = [a.split("=", 1)[1] for a in argv if a.startswith("--only=")]
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from hypervldd.kernels.triton import contrastive, pairwise, row_stats

    kernels = {
        "pairwise_fwd": (pairwise._pairwise_fwd, {}),
        "pairwise_bwd": (pairwise._pairwise_bwd, {"BD": 64}),
        "lse_pass": (contrastive._lse_pass, {"HAS_POS": True}),
        "contrastive_bwd": (contrastive._contrastive_bwd, {"BD": 64, "SWAP": True}),
        "row_stats_fwd": (row_stats._row_stats_fwd, {"HAS_V": True, "HAS_RANK": True, "BKV": 16}),
        "row_stats_bwd": (
            row_stats._row_stats_bwd,
            {"BD": 64, "SWAP": True, "HAS_V": True, "HAS_RANK": True, "BKV": 16},
        ),
    }
    failed = 0
    archs = (80, 90)
    for a in argv:
        if a.startswith("--arch="):
            archs = (int(a.split("=", 1)[1]),)
    for (name, (tuner, extra)), arch in itertools.product(kernels.items(), archs):
        if only and name not in only:
            continue
        fn = tuner.fn
        target = GPUTarget("cuda", arch, 32)
        configs = tuner.configs if full else tuner.configs[:1]
        manifolds = (0, 1, 2) if full else (0,)
        for cfg, (dtype, prec, is64), man in itertools.product(
            configs, (("fp32", "tf32x3", False), ("fp64", "ieee", True)), manifolds
        ):
            consts = {"MAN": man, "IS64": is64, "PREC": prec, **extra, **cfg.kwargs}
            sig = _signature(fn, dtype, consts)
            t0 = time.perf_counter()
            try:
                triton.compile(
                    ASTSource(fn, sig, consts),
                    target=target,
                    options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages},
                )
                ok = "ok"
            except Exception as err:  # noqa: BLE001  (report every failure, then exit 1)
                failed += 1
                ok = f"FAILED: {type(err).__name__}: {str(err)[:2000]}"
            print(
                f"compile_gpu: {name} sm_{arch} {dtype} man={man} {cfg.kwargs} "
                f"warps={cfg.num_warps}: {ok} ({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
