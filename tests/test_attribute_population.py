"""Attribute inference on a population: the ``attribute`` signal recorded while training, attribute memorization,
the audit's --sensitive-column (memlens.train.label_queries, memlens.attacks.attribute)."""
import json

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.attacks.attribute import attribute_inference, attribute_memorization
from memlens.cli.main import main
from memlens.data import from_arrays
from memlens.train import AttributeQueries, FitFunction, train_population
from memlens.train.label_queries import attribute_signal


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 40, 5))
    X[:, 0] = rng.random(n + 40) < 0.3                    # the sensitive binary column, independent of the label
    y = (X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return from_arrays(X[:n], y[:n], X[n:], y[n:], name="attr", feature_names=[f"f{j}" for j in range(5)])


def lookup(X, y, seed):
    """Memorizes its training rows exactly: the row's label if the query is a training row, else no opinion."""
    Xt, yt = np.asarray(X), np.asarray(y)

    def predict(Z):
        d2 = ((np.asarray(Z)[:, None, :] - Xt[None]) ** 2).sum(-1)
        j = d2.argmin(1)
        out = np.zeros((len(Z), 3))
        hit = d2[np.arange(len(Z)), j] < 1e-9
        out[hit, yt[j[hit]]] = 10.0
        return out
    return predict


def ignores_training(X, y, seed):
    W = np.random.default_rng(7).standard_normal((X.shape[1], 3))
    return lambda Z: np.asarray(Z) @ W


def test_signal_equals_the_single_model_attack():
    ds = _data()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 3))

    def proba(Z):
        z = Z @ W
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    q = AttributeQueries(column=0)
    sig = attribute_signal(lambda Z: np.stack([Z @ W, -(Z @ W)]), ds.X_train, ds.y_train, queries=q, n_models=2)
    one = attribute_inference(proba, ds.X_train, ds.y_train, column=0, prior="population")
    np.testing.assert_array_equal(sig[0].astype(bool), one.correct)
    no_prior = attribute_signal(lambda Z: (Z @ W)[None], ds.X_train, ds.y_train,
                                queries=AttributeQueries(column=0, prior=False), n_models=1)
    np.testing.assert_array_equal(no_prior[0].astype(bool),
                                  attribute_inference(proba, ds.X_train, ds.y_train, column=0).correct)


def test_planted_memorizer_and_null_model():
    ds = _data()
    masks = np.random.default_rng(2).random((12, ds.n_train)) < 0.5
    q = AttributeQueries(column=0)
    pop = train_population(ds, model=FitFunction(lookup), masks=masks, attribute_queries=q)
    assert pop.provenance["attribute_queries"]["column"] == 0
    A = pop.signal("train", "attribute")
    assert np.all(A[masks] == 1.0)                                     # members: always guessed right
    res = attribute_memorization(pop, ds.X_train[:, 0], column="f0")
    s = res.summary
    assert s["members"]["accuracy"] == 1.0
    assert s["nonmembers"]["accuracy"] == pytest.approx(s["nonmembers"]["baseline"])   # no opinion: the prior
    assert s["members"]["advantage"] > 0.2
    minority = ds.X_train[:, 0] != 0                                   # the baseline guesses 0, wrong for these
    ok = np.isfinite(res.memorization)
    np.testing.assert_allclose(res.memorization[ok & minority], 1.0)
    np.testing.assert_allclose(res.memorization[ok & ~minority], 0.0)
    null = train_population(ds, model=FitFunction(ignores_training), masks=masks, attribute_queries=q)
    n = attribute_memorization(null, ds.X_train[:, 0])
    assert np.all(n.memorization[np.isfinite(n.memorization)] == 0.0)   # the same model IN and OUT
    assert n.summary["n_high"] == 0
    # the noise floor (memberships permuted among the models) of the high count: far below the memorizer's with 32
    # models, 0 for the null model
    from memlens.measures import noise_floor

    masks32 = np.random.default_rng(3).random((32, ds.n_train)) < 0.5
    big = train_population(ds, model=FitFunction(lookup), masks=masks32, attribute_queries=q)
    hi = attribute_memorization(big, ds.X_train[:, 0]).summary["n_high"]
    floor = noise_floor(masks32, big.signal("train", "attribute"), signal="attribute").n_memorized
    assert hi > 3 * (floor + 1)
    assert noise_floor(masks, null.signal("train", "attribute"), signal="attribute").n_memorized == 0


def test_refusals():
    ds = _data()
    masks = np.ones((2, ds.n_train), dtype=bool)
    masks[0, 0] = masks[1, 1] = False
    with pytest.raises(MemlensInputError, match="distinct values"):
        train_population(ds, model="logreg", masks=masks, attribute_queries=AttributeQueries(column=1))
    with pytest.raises(MemlensInputError, match="below 5"):
        train_population(ds, model="logreg", masks=masks, attribute_queries=AttributeQueries(column=9))
    pop = train_population(ds, model="logreg", masks=masks)
    with pytest.raises(MemlensInputError, match="attribute"):
        attribute_memorization(pop, ds.X_train[:, 0])


def test_audit_sensitive_column_by_name(tmp_path, capsys):
    ds = _data(n=200)
    f = tmp_path / "d.npz"
    np.savez(f, X_train=ds.X_train, y_train=ds.y_train, X_test=ds.X_test, y_test=ds.y_test,
             feature_names=np.array(ds.feature_names))
    out = tmp_path / "a"
    assert main(["audit", "--data", str(f), "--model", "mlp", "--models", "8", "--sensitive-column", "f0",
                 "--no-attacks", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())["attribute"]
    assert s["column"] == "f0" and 0 <= s["members"]["accuracy"] <= 1 and s["n_high_noise_floor"] >= 0
    assert "attribute_memorization" in (out / "examples.csv").read_text().splitlines()[0]
    assert "Attribute inference" in (out / "report.html").read_text()
    capsys.readouterr()
    assert main(["show", str(out)]) == 0 and "attribute inference" in capsys.readouterr().out
    for args, needle in ((["--sensitive-column", "nope"], "not a feature name"),
                         (["--sensitive-column", "1"], "distinct values"),
                         (["--attribute-no-prior"], "--sensitive-column"),
                         (["--sensitive-column", "0", "--model", "ridge"], "closed form")):
        bad = tmp_path / "bad"
        assert main(["audit", "--data", str(f), "--models", "4", "--out", str(bad), *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1 and not bad.exists()
