"""Evaluation beyond recall on the built-in data, once each, on the CPU (one thread).

Emoji (all of it unless ``--limit``), frozen EfficientNet-Lite0 / all-MiniLM-L6-v2
features, a ``--method`` coreset (default ``random``) of ``--budget`` (100) pairs against
the full training split, under a reduced feature protocol (``--seeds`` students,
``--epochs`` epochs, lr decay at 2/3):

* fidelity after training (Spearman, Kendall tau-b, top-10 overlap) and on the data
  (pair-bridge orderings, each geometry);
* transfer: the coreset under Euclidean / Poincare heads and width 128 (source: Lorentz,
  linear, width 512); mean excluding the source;
* robustness: recall drop on ``--robust-images`` evenly spaced test images (JPEG 75,
  Gaussian sigma 0.01, PGD eps 2/255 and 0.05 with 10 steps, 4-bit text) for the first
  student;
* zero-shot: emoji groups and subgroups, and Fashion-MNIST classes (``--fashion-limit``
  images per split; a coreset of the same budget), prompt "a photo of a {class}".

Each stage prints its wall time and the growth of the peak resident set. Usage::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_extras.py [--quick]

Results: ``benchmarks/results/eval_extras.csv`` (one line per figure) and
``eval_extras.json`` (everything).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, PeakRSS  # noqa: E402


def _stage(name: str, fn, log: dict):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        out = fn()
    log[name] = {"seconds": time.perf_counter() - t0, "peak_rss_mb": mem.extra_mb}
    print(f"[{name}] {log[name]['seconds']:.1f} s, peak RSS +{mem.extra_mb:.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="emoji base images (default all)")
    ap.add_argument("--method", default="random")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--robust-images", type=int, default=32)
    ap.add_argument("--fashion-limit", type=int, default=300, help="0 skips Fashion-MNIST")
    ap.add_argument("--quick", action="store_true", help="limit 600, 1 seed, 10 epochs")
    ap.add_argument("--out", default=os.path.join(RESULTS, "eval_extras"))
    args = ap.parse_args()
    if args.quick:
        args.limit, args.seeds, args.epochs = 600, 1, 10
        args.robust_images, args.fashion_limit = 16, 100
    torch.set_num_threads(1)

    from hypervldd.eval import EvalProtocol, as_feature_set, evaluate
    from hypervldd.eval.evaluate import score_student, train_students
    from hypervldd.eval.extras import image_subset, load_test_images
    from hypervldd.eval.fidelity import data_fidelity, trained_fidelity
    from hypervldd.eval.robustness import encoder_pixel_fn, robustness
    from hypervldd.eval.transfer import student_variants, transfer
    from hypervldd.eval.zeroshot import class_prompts, labels_from_names, zero_shot
    from hypervldd.pipeline import _load_dataset, build_encoders, distill, prepare

    protocol = EvalProtocol(
        seeds=tuple(range(args.seeds)),
        epochs=args.epochs,
        lr_decay_epochs=(max(1, (2 * args.epochs) // 3),),
    )
    stages: dict = {}
    out: dict = {"args": vars(args), "protocol": protocol.to_dict(), "stages": stages}
    img_enc, txt_enc = build_encoders()
    feats = _stage(
        "features",
        lambda: prepare("emoji", splits=("train", "test"), limit=args.limit, progress=False),
        stages,
    )
    train, test = feats["train"], feats["test"]
    out["data"] = {
        "train_images": train.num_images,
        "train_pairs": train.num_captions,
        "test_images": test.num_images,
        "test_captions": test.num_captions,
    }
    print(out["data"], flush=True)
    syn = _stage("distill", lambda: distill(train, args.method, args.budget, seed=0), stages)
    res_syn = _stage("recall coreset", lambda: evaluate(syn, test, protocol), stages)
    stu_syn = _stage("students coreset", lambda: train_students(syn, protocol), stages)
    # The full-data students are trained once; their recall equals evaluate()'s (final epoch).
    stu_full = _stage("students full", lambda: train_students(train, protocol), stages)
    fs_test = as_feature_set(test)
    per_seed = [score_student(s, fs_test) for s in stu_full]
    full_mean = {k: sum(r[k] for r in per_seed) / len(per_seed) for k in per_seed[0]}
    out["recall"] = {"coreset": res_syn.mean, "full": full_mean}
    print(f"recall mean: coreset {res_syn.mean['mean']:.2f}, full {full_mean['mean']:.2f}")
    fid = _stage(
        "fidelity trained",
        lambda: trained_fidelity(syn, train, test, protocol, reference_students=stu_full),
        stages,
    )
    out["fidelity_trained"] = fid.to_dict()
    print("fidelity trained:", {k: round(v, 4) for k, v in fid.mean.items()})
    dfid = _stage("fidelity data", lambda: data_fidelity(syn, train, test), stages)
    out["fidelity_data"] = dfid.to_dict()
    for geo, m in dfid.per_item.items():
        print(f"fidelity data {geo}:", {k: round(v, 4) for k, v in m.items()})

    targets = student_variants(protocol.student, widths=(128,))
    source = next(iter(targets))
    tr = _stage(
        "transfer",
        lambda: transfer(syn, test, protocol, targets, source=source, results={source: res_syn}),
        stages,
    )
    out["transfer"] = tr.to_dict()
    print(
        "transfer per target (mean recall):",
        {k: round(v["mean"], 2) for k, v in tr.per_target.items()},
    )
    print(f"transfer mean excluding {source}: {tr.mean_excluding_source['mean']:.2f}")

    ds = _load_dataset("emoji", args.limit, False)
    keep, sub = image_subset(fs_test, args.robust_images)
    images = load_test_images(ds.split("test"), keep.tolist(), img_enc)
    rob = {}
    for name, students in (("coreset", stu_syn), ("full", stu_full)):
        rob[name] = _stage(
            f"robustness {name}",
            lambda students=students: robustness(
                students[:1], images, encoder_pixel_fn(img_enc), sub.text, sub.txt2img, seed=0
            ),
            stages,
        ).to_dict()
        print(
            f"robustness {name}: clean {rob[name]['clean']['mean']:.2f}, drops",
            {k: round(v, 2) for k, v in rob[name]["drop"].items()},
            f"mean {rob[name]['mean_drop']:.2f}",
        )
    out["robustness"] = {**rob, "images": len(keep), "captions": sub.num_captions}

    zs = {}
    for col in ("group", "subgroup"):
        labels, names = labels_from_names(test.image_meta[col])
        prompts = class_prompts(names)
        pf = txt_enc.encode_texts(prompts)
        for name, students in (("coreset", stu_syn), ("full", stu_full)):
            r = zero_shot(students, test.image_features, labels, pf, prompts=prompts)
            zs[f"emoji {col} {name}"] = r.to_dict()
            print(
                f"zero-shot emoji {col} ({r.num_classes} classes) {name}: "
                f"{r.accuracy:.2f} +- {r.std:.2f} (chance {r.chance:.2f})"
            )
    if args.fashion_limit:
        fm = _stage(
            "fashion features",
            lambda: prepare(
                "fashion-mnist",
                splits=("train", "test"),
                limit=args.fashion_limit,
                progress=False,
            ),
            stages,
        )
        fsyn = distill(fm["train"], args.method, min(args.budget, fm["train"].num_captions), seed=0)
        labels, names = labels_from_names(fm["test"].image_meta["class_name"])
        prompts = class_prompts(names)
        pf = txt_enc.encode_texts(prompts)
        for name, tr_set in (("coreset", fsyn), ("full", fm["train"])):
            students = train_students(tr_set, protocol)
            r = zero_shot(students, fm["test"].image_features, labels, pf, prompts=prompts)
            zs[f"fashion-mnist class {name}"] = r.to_dict()
            print(
                f"zero-shot fashion-mnist ({r.num_classes} classes) {name}: "
                f"{r.accuracy:.2f} +- {r.std:.2f} (chance {r.chance:.2f})"
            )
    out["zero_shot"] = zs

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=2, default=str)
    rows = [("recall mean", k, v["mean"]) for k, v in out["recall"].items()]
    rows += [("fidelity trained", k, v) for k, v in fid.mean.items() if "_" not in k]
    rows += [
        (f"fidelity data {g}", k, v)
        for g, m in dfid.per_item.items()
        for k, v in m.items()
        if "_" not in k
    ]
    rows += [("transfer", k, v["mean"]) for k, v in tr.per_target.items()]
    rows += [("transfer", "mean excluding source", tr.mean_excluding_source["mean"])]
    rows += [
        (f"robustness {n}", k, v) for n in ("coreset", "full") for k, v in rob[n]["drop"].items()
    ]
    rows += [(f"robustness {n}", "mean drop", rob[n]["mean_drop"]) for n in ("coreset", "full")]
    rows += [("zero-shot", k, v["accuracy"]) for k, v in zs.items()]
    rows += [("seconds", k, v["seconds"]) for k, v in stages.items()]
    rows += [("peak RSS MB", k, v["peak_rss_mb"]) for k, v in stages.items()]
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["measure", "item", "value"])
        w.writerows(rows)
    print(f"written: {args.out}.csv, {args.out}.json")


if __name__ == "__main__":
    main()
