"""The peer job written the way the peer tools structure it: one scikit-learn fit per model, then the attacks.

    python benchmarks/peer_loop.py --models 17 --out /tmp/peer.json

A target and 16 reference models of L2 logistic regression on digits (each on a random 70% subset, as
``memlens audit``'s masks), then per-example membership scores for the target: the loss attack, offline and
online LiRA (Carlini et al. 2022; Gaussian fits of the logit-scaled confidence over the reference models) and
RMIA's pairwise likelihood ratio (Zarifzadeh et al. 2024, gamma = 1, the population = the test split), each
with its AUC. It is the job ML Privacy Meter's and LeakPro's demos run (train shadow/reference models in a
loop, then score), with the same objective and tolerance as memlens's logistic regression, so ``user_path.py``
can time it beside ``memlens audit`` as whole processes, imports included. It is not any peer's own code.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

t_start = time.perf_counter()
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

t_imported = time.perf_counter()


def _phi(p_true: np.ndarray) -> np.ndarray:
    p = np.clip(p_true, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    rng = np.random.default_rng(args.seed)
    n, k = len(ytr), args.models
    masks = np.zeros((k, n), dtype=bool)
    for row in masks:
        row[rng.choice(n, round(0.7 * n), replace=False)] = True
    t0 = time.perf_counter()
    p_train = np.empty((k, n))
    p_test = np.empty((k, len(yte)))
    for m in range(k):                          # one fit per model, as the peers' training loops
        clf = LogisticRegression(C=1.0, tol=1e-6, max_iter=10_000).fit(Xtr[masks[m]], ytr[masks[m]])
        p_train[m] = clf.predict_proba(Xtr)[np.arange(n), ytr]
        p_test[m] = clf.predict_proba(Xte)[np.arange(len(yte)), yte]
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    member = masks[0]
    conf, ref = _phi(p_train[0]), _phi(p_train[1:])
    ref_in = np.where(masks[1:], ref, np.nan)
    ref_out = np.where(~masks[1:], ref, np.nan)
    mu_out, sd_out = np.nanmean(ref_out, 0), np.nanstd(ref_out, 0, ddof=1) + 1e-6
    mu_in, sd_in = np.nanmean(ref_in, 0), np.nanstd(ref_in, 0, ddof=1) + 1e-6
    scores = {
        "loss": np.log(np.clip(p_train[0], 1e-12, None)),
        "lira_offline": norm.logcdf(conf, mu_out, sd_out),
        "lira_online": norm.logpdf(conf, mu_in, sd_in) - norm.logpdf(conf, mu_out, sd_out),
    }
    # RMIA: Pr(x|target) / mean over references, against the same ratio on population points z (the test split)
    ratio_x = p_train[0] / p_train[1:].mean(0)
    ratio_z = p_test[0] / p_test[1:].mean(0)
    scores["rmia"] = (ratio_x[:, None] / ratio_z[None, :] >= 1.0).mean(1)
    # an example with fewer than two IN (or OUT) references has no Gaussian fit: scored by the other side alone
    # (offline) or, where that is undefined too, left out of the AUC, as memlens leaves NaN scores out
    scores["lira_online"] = np.where(np.isfinite(scores["lira_online"]), scores["lira_online"],
                                     scores["lira_offline"])
    aucs = {}
    for name, s in scores.items():
        ok = np.isfinite(s)
        aucs[name] = float(roc_auc_score(member[ok], s[ok]))
    t_attacks = time.perf_counter() - t0
    res = {"models": k, "n_train": n, "train_s": t_train, "attack_s": t_attacks, "import_s": t_imported - t_start,
           "auc": aucs, "target_test_acc": float(np.mean(p_test[0] > 0.5))}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
