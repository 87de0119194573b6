"""Trajectory matching (``mtt``) against its own initialisation on the demo slice of emoji.

Command (from the repository root; needs the built-in emoji data, see DEVELOPERS.md):

    .venv/bin/python benchmarks/mtt_emoji.py 100     # 100 matching iterations

The slice and protocol are those of ``make demo`` (600 emoji, EfficientNet-Lite0 image and
all-MiniLM-L6-v2 text features, 100 pairs, ``EvalProtocol(seeds=(0, 1, 2))``, final
epoch). ``mtt`` runs shortened: 3 experts of 4 epochs, the given number of iterations,
other settings at their defaults. "init" is the synthetic set before optimisation (the
same random real pairs, L2-normalised), i.e. the random coreset of the same seed. Prints
one JSON line: distillation seconds, the logged matching losses, the learned step sizes,
and the mean test recall of init, mtt and mtt trained with its learned step sizes.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F

from hypervldd.distill import SyntheticSet, prepare_real
from hypervldd.eval import EvalProtocol
from hypervldd.pipeline import distill, evaluate_set, prepare

torch.set_num_threads(1)
feats = prepare("emoji", limit=600, progress=False)
protocol = EvalProtocol(seeds=(0, 1, 2))
cfg = {
    "engine": {"iterations": int(sys.argv[1]), "log_every": 10},
    "experts": {"num_experts": 3, "epochs": 4},
}
t0 = time.perf_counter()
syn = distill(feats["train"], "mtt", 100, seed=0, config=cfg, progress=False)
dt = time.perf_counter() - t0
rd = prepare_real(feats["train"])
src = syn.source_indices
init = SyntheticSet(
    image=F.normalize(rd.pair_image[src], dim=-1),
    text=F.normalize(rd.pair_text[src], dim=-1),
    method="init",
)
out = {
    "distill_s": dt,
    "losses": [round(h["loss"], 3) for h in syn.history if "loss" in h],
    "lrs": {k: float(v) for k, v in syn.learned_lrs.items()},
}
for name, s in (("init", init), ("mtt", syn)):
    out[name] = evaluate_set(s, feats["test"], protocol).mean
out["mtt_learned_lr"] = evaluate_set(syn, feats["test"], protocol.replace(lr_source="learned")).mean
print(json.dumps(out))
