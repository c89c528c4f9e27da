"""`memlens audit --model ridge|kernel-ridge|logreg --loo`: closed-form populations and leave-one-out memorization."""
import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

import memlens.train
from memlens import Population
from memlens._random import model_seeds
from memlens._validation import MemlensInputError
from memlens.audits.image import audit_masks, run_audit
from memlens.cli.main import load_npz_dataset, main
from memlens.measures import loo_memorization, memorization
from memlens.train import closed_form_loo, make_model_config, standardized_features, train_population

N_MODELS, SHARD = 8, 3  # shards of 3, 3, 2 models


def _args(data_file, out, model, *extra):
    return ["audit", "--data", str(data_file), "--model", model, "--models", str(N_MODELS), "--shard-size",
            str(SHARD), "--out", str(out), "--no-progress", "--no-attacks", *extra]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _col(rows, name):
    return np.array([float(r[name]) for r in rows])


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _loo_kwargs(model):
    cfg = make_model_config(model).to_dict()
    kw = {"standardize": cfg["standardize"]}
    if model == "logreg":
        kw["C"] = cfg["C"]
    else:
        kw["alpha"] = cfg["alpha"]
    if model == "kernel-ridge":
        kw.update(kernel=cfg["kernel"], gamma=cfg["gamma"])
    return kw


@pytest.fixture(scope="module")
def runs(data_file, tmp_path_factory):
    """One CLI audit with --loo per closed-form / ALO model: {model: run directory}."""
    base = tmp_path_factory.mktemp("loo")
    out = {}
    for model in ("ridge", "kernel-ridge", "logreg"):
        out[model] = base / model
        assert main(_args(data_file, out[model], model, "--loo")) == 0
    return out


@pytest.mark.parametrize("model", ["ridge", "kernel-ridge", "logreg"])
def test_cli_loo_columns_equal_direct_computation(runs, data_file, model):
    out = runs[model]
    rows = _rows(out / "examples.csv")
    assert list(rows[0])[-4:] == ["loo_memorization", "loo_margin_memorization", "loo_margin", "loo_loss"]
    ds = load_npz_dataset(data_file)
    res = closed_form_loo(ds, model=model, **_loo_kwargs(model))
    mem = loo_memorization(res, signal="correct")
    margin = loo_memorization(res, signal="margin")
    sig = res.signals("loo")
    np.testing.assert_array_equal(_col(rows, "loo_memorization"), mem.scores)
    np.testing.assert_allclose(_col(rows, "loo_margin_memorization"), margin.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_col(rows, "loo_margin"), sig["margin"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_col(rows, "loo_loss"), sig["loss"], rtol=1e-5, atol=1e-6)
    # the subset estimate is still the Feldman-Zhang estimate of the saved population
    pop = Population.load(out / "population")
    assert pop.n_models == N_MODELS
    fz = memorization(pop).scores
    np.testing.assert_allclose(_col(rows, "memorization"), fz, rtol=1e-5, atol=1e-6, equal_nan=True)

    s = json.loads((out / "summary.json").read_text())
    b = s["loo"]
    assert s["model"] == model and b["model"] == model
    assert b["method"] == ("approximate" if model == "logreg" else "exact")
    assert b["seconds"] > 0
    loo_memo, fz_memo = mem.scores >= 0.25, np.nan_to_num(fz, nan=-1) >= 0.25
    assert b["n_memorized_loo"] == int(loo_memo.sum()) > 0
    assert b["n_memorized_subset"] == int(fz_memo.sum()) == s["n_memorized"]
    assert b["n_memorized_both"] == int((loo_memo & fz_memo).sum())
    ok = np.isfinite(fz)
    a = b["agreement"]["loo_memorization_vs_subset"]
    assert a["n"] == int(ok.sum())
    assert a["pearson"] == pytest.approx(pearsonr(mem.scores[ok], fz[ok]).statistic, abs=1e-9)
    assert a["spearman"] == pytest.approx(spearmanr(mem.scores[ok], fz[ok]).statistic, abs=1e-9)
    a = b["agreement"]["loo_margin_memorization_vs_subset"]
    assert a["spearman"] == pytest.approx(spearmanr(margin.scores[ok], fz[ok]).statistic, abs=1e-9)
    # both estimators find mostly the same examples: positive agreement even with 8 models
    assert b["agreement"]["loo_memorization_vs_subset"]["pearson"] > 0.2
    top = b["most_memorized"]
    assert np.all(np.diff(mem.scores[top]) <= 0) and mem.scores[top[0]] == mem.scores.max()
    assert b["full_fit_train_accuracy"] == pytest.approx(res.train_accuracy)
    assert b["loo_accuracy"] == pytest.approx(res.loo_accuracy)

    page = (out / "report.html").read_text()
    assert "<h2>Leave-one-out memorization</h2>" in page
    assert 'alt="leave-one-out vs subset memorization"' in page
    assert 'alt="most leave-one-out-memorized examples"' in page
    assert ("approximately" in page) == (model == "logreg")


def test_ridge_population_equals_sklearn_refits(data_file):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge

    ds = load_npz_dataset(data_file)
    rng = np.random.default_rng(3)
    n = ds.n_train
    masks = np.ones((4, n), dtype=bool)
    masks[0, rng.choice(n, 3, replace=False)] = False      # few left out: leave-k-out Woodbury
    masks[1, rng.choice(n, 72, replace=False)] = False     # 70% subset
    masks[2] = False
    masks[2, rng.choice(n, 40, replace=False)] = True      # small subset: direct Gram
    masks[3, rng.choice(n, 150, replace=False)] = False
    Xtr, Xte = standardized_features(ds)
    Y = np.eye(ds.n_classes)[ds.y_train]
    for model in ("ridge", "kernel-ridge"):
        pop = train_population(ds, model=model, masks=masks, seed=5, model_offset=2)
        assert pop.provenance["backend"] == "closed-form"
        routes = pop.provenance["convergence"]["routes"]
        assert sum(v > 0 for v in routes.values()) >= 2, routes   # more than one exact route exercised
        np.testing.assert_array_equal(pop.seeds, model_seeds(5, 4, start=2))
        for k in range(masks.shape[0]):
            if model == "ridge":
                est = Ridge(alpha=1.0).fit(Xtr[masks[k]], Y[masks[k]])
            else:
                gamma = pop.provenance["params"]["gamma"]
                est = KernelRidge(alpha=1.0, kernel="rbf", gamma=gamma).fit(Xtr[masks[k]], Y[masks[k]])
            for split, X, y in (("train", Xtr, ds.y_train), ("test", Xte, ds.y_test)):
                f = est.predict(X)
                fy = f[np.arange(len(y)), y]
                other = np.where(np.eye(ds.n_classes, dtype=bool)[y], -np.inf, f).max(1)
                np.testing.assert_allclose(pop.signal(split, "margin")[k], fy - other, atol=1e-6, rtol=0)
                np.testing.assert_allclose(pop.signal(split, "logit")[k], fy - other, atol=1e-6, rtol=0)
                sq = 0.5 * ((f - np.eye(ds.n_classes)[y]) ** 2).sum(1)
                np.testing.assert_allclose(pop.signal(split, "loss")[k], sq, atol=1e-6, rtol=1e-6)
                decided = np.abs(fy - other) > 1e-5      # ties at float32 precision are not compared
                np.testing.assert_array_equal(pop.signal(split, "correct")[k][decided], (fy > other)[decided])


def test_closed_form_population_refusals(data_file):
    ds = load_npz_dataset(data_file)
    masks = audit_masks(2, ds.n_train, subset_ratio=0.7, seed=0)
    with pytest.raises(MemlensInputError, match="backend='torch'"):
        train_population(ds, model="ridge", masks=masks, backend="sklearn")
    with pytest.raises(MemlensInputError, match="closed form"):
        train_population(ds, model="kernel-ridge", masks=masks, dp=memlens.train.DPConfig(epsilon=8.0))
    with pytest.raises(MemlensInputError, match="kernel must be"):
        make_model_config("kernel-ridge", kernel="poly")


def test_resume_reuses_shards_without_loo(runs, data_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(runs["ridge"], out)      # a finished ridge run made with --loo
    before = _rows(out / "examples.csv")
    shard_files = sorted((out / "population" / "shards").glob("*.npz"))
    kept = {p.name: p.read_bytes() for p in shard_files if p.name != "shard-00001.npz"}
    shard_files[1].unlink()   # as if the run was killed while writing shard 1

    calls = []
    real = memlens.train.train_population

    def counting(*args, **kwargs):
        calls.append(kwargs["model_offset"])
        return real(*args, **kwargs)

    monkeypatch.setattr(memlens.train, "train_population", counting)
    # --loo reads the dataset and the model config only: not part of the run's identity, so resuming without it
    # is the same run
    assert main(_args(data_file, out, "ridge", "--resume")) == 0
    assert calls == [SHARD]          # only the missing shard's rows were refitted
    s = json.loads((out / "summary.json").read_text())
    assert s["shards_trained"] == 1 and s["shards_reused"] == 2 and "loo" not in s
    for name, data in kept.items():
        assert (out / "population" / "shards" / name).read_bytes() == data
    after = _rows(out / "examples.csv")
    # the refitted shard is exactly the same (closed form: deterministic), so the estimate is unchanged
    np.testing.assert_array_equal(_col(after, "memorization"), _col(before, "memorization"))
    assert "loo_memorization" in before[0] and "loo_memorization" not in after[0]

    # another model (or another model config) is another run: resume is refused and nothing changes
    hashes = _hashes(out)
    assert main(_args(data_file, out, "kernel-ridge", "--resume")) == 2
    assert _hashes(out) == hashes


@pytest.mark.parametrize("extra, needle", [
    (["--model", "mlp", "--loo"], "ridge, kernel-ridge, logreg"),
    (["--model", "logreg", "--loo", "--dp-epsilon", "8"], "--loo"),
    (["--model", "ridge", "--dp-epsilon", "8"], "closed form"),
    (["--model", "kernel-ridge", "--loo", "--dp-epsilon", "8"], "closed form"),
    (["--model", "lasso", "--loo"], "--model must be one of logreg, mlp, ridge, kernel-ridge"),
])
def test_bad_combinations_refused_with_nothing_written(data_file, tmp_path, capsys, extra, needle):
    out = tmp_path / "new"
    args = ["audit", "--data", str(data_file), "--models", "4", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memlens: error: ") and "\n" not in err and needle in err, err
    assert not out.exists()


def test_bad_loo_refused_before_an_existing_run_is_touched(runs, data_file, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs["kernel-ridge"], out)
    ds = load_npz_dataset(data_file)
    hashes = _hashes(out)
    with pytest.raises(MemlensInputError, match="loo must be True or False"):
        run_audit(dataset=ds, model="ridge", n_models=2, out=out, overwrite=True, loo="yes")
    with pytest.raises(MemlensInputError, match="ridge, kernel-ridge, logreg"):
        run_audit(dataset=ds, model="mlp", n_models=2, shard_size=2, out=out, resume=True, loo=True)
    assert _hashes(out) == hashes


@pytest.mark.parametrize("model", ["ridge", "kernel-ridge"])
def test_closed_form_shards_equal_one_fit(data_file, model):
    """Shards fitted one after the other (the kernel factorization reused from the cache) equal one call over all
    rows, bit for bit, and equal a call with a cold cache."""
    import memlens.train.closed_form as cf

    ds = load_npz_dataset(data_file)
    masks = audit_masks(7, ds.n_train, subset_ratio=0.7, seed=1)
    cf._KERNEL_CACHE.clear()
    whole = train_population(ds, model=model, masks=masks, seed=0)
    parts = [train_population(ds, model=model, masks=masks[a:b], seed=0, model_offset=a) for a, b in ((0, 3), (3, 7))]
    joined = Population.concat(parts)
    cf._KERNEL_CACHE.clear()
    cold = train_population(ds, model=model, masks=masks[3:7], seed=0, model_offset=3)
    np.testing.assert_array_equal(joined.seeds, whole.seeds)
    for split in ("train", "test"):
        for name in ("logit", "loss", "correct", "margin"):
            np.testing.assert_array_equal(joined.signal(split, name), whole.signal(split, name))
            np.testing.assert_array_equal(cold.signal(split, name), whole.signal(split, name)[3:])


def test_kernel_ridge_too_large_for_memory_refused(data_file, tmp_path, monkeypatch, capsys):
    import memlens.audits.loo

    # 240 training and 80 test rows need 8 * 240 * (3 * 240 + 80) bytes = 1.5 MB: pretend the machine has 2 MB
    monkeypatch.setattr(memlens.audits.loo, "physical_memory", lambda: 2 * 10**6)
    out = tmp_path / "kr"
    assert main(_args(data_file, out, "kernel-ridge", "--loo")) == 2
    err = capsys.readouterr().err
    assert "--model 'kernel-ridge' needs the 240 x 240 kernel matrix" in err and "--model ridge" in err
    assert not out.exists()
    monkeypatch.setattr(memlens.audits.loo, "physical_memory", lambda: 4 * 10**6)
    memlens.audits.loo.check_kernel_memory(240, 80)   # fits in half of 4 MB
