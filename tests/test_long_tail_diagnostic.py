"""The long-tail diagnostic: planted subpopulations are found, the Zipf fit recovers its exponent, and the audit
writes the block, the columns and the section."""
import json

import numpy as np
import pytest

from memlens._validation import MemlensInputError
from memlens.audits.long_tail import long_tail_diagnostic
from memlens.cli.main import main


def _blobs(sizes, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X, cl = [], []
    for j, m in enumerate(sizes):
        center = rng.normal(scale=20.0, size=d)
        X.append(center + rng.normal(scale=0.1, size=(m, d)))
        cl += [j] * m
    return np.vstack(X), np.array(cl)


def test_planted_subpopulations_and_memorization_by_size():
    sizes = [1] * 6 + [2] * 4 + [10] * 5
    X, cl = _blobs(sizes)
    y = np.zeros(len(cl), dtype=int)
    true_size = np.array(sizes)[cl]
    mem = (true_size == 1).astype(float)                      # exactly the singletons are memorized
    d = long_tail_diagnostic(X, y, mem, n_subpopulations=len(sizes), n_components=6)
    np.testing.assert_array_equal(d.size, true_size)          # the clusters are the planted subpopulations
    s = d.summary
    assert s["n_subpopulations"] == len(sizes) and s["n_singletons"] == 6
    b = {x["l"]: x for x in s["buckets"]}
    assert b["1"]["mean_memorization"] == 1.0 and b["1"]["fraction_memorized"] == 1.0
    assert b["2"]["mean_memorization"] == 0.0 and b["9-16"]["n_examples"] == 50
    assert s["spectrum"] == {"1": 6, "2": 4, "10": 5}
    # the cost of not fitting: models that never fit the singletons pay tau_1 for each (Feldman 2020, Thm 2.3)
    from memlens.tasks.long_tail import tau, zipf_prior

    d2 = long_tail_diagnostic(X, y, mem, n_subpopulations=len(sizes), n_components=6, in_accuracy=1.0 - mem)
    b2 = {x["l"]: x for x in d2.summary["buckets"]}
    t1 = tau(zipf_prior(len(sizes), exponent=d2.summary["zipf_exponent"]), n=len(X), ell=1)
    assert b2["1"]["errn"] == 6 and b2["1"]["cost_of_not_fitting"] == pytest.approx(6 * t1)
    assert b2["2"]["cost_of_not_fitting"] == 0 and d2.summary["cost_of_not_fitting_total"] == pytest.approx(6 * t1)
    assert s["spearman_prediction_vs_memorization"] > 0.6     # 0.70: a 0/1 memorization against 1, 1/2, 1/10
    # errn counts subpopulations: a cluster of 10 all unfitted is one unfitted subpopulation (cost tau_10), half of a
    # pair is half of one (0.5 tau_2); the theorem's errn counts each distinct point seen l times once
    acc = np.ones(len(cl))
    acc[cl == 14] = 0.0                                        # the last cluster of 10
    acc[np.flatnonzero(cl == 6)[0]] = 0.0                      # one example of the first pair
    d3 = long_tail_diagnostic(X, y, mem, n_subpopulations=len(sizes), n_components=6, in_accuracy=acc)
    b3 = {x["l"]: x for x in d3.summary["buckets"]}
    prior = zipf_prior(len(sizes), exponent=d3.summary["zipf_exponent"])
    assert b3["2"]["errn"] == pytest.approx(0.5) and b3["9-16"]["errn"] == pytest.approx(1.0)
    assert b3["2"]["cost_of_not_fitting"] == pytest.approx(0.5 * tau(prior, n=len(X), ell=2))
    assert b3["9-16"]["cost_of_not_fitting"] == pytest.approx(tau(prior, n=len(X), ell=10))


def test_zipf_fit_recovers_the_exponent():
    sizes = np.maximum(1, np.round(200 * np.arange(1, 41) ** -1.2)).astype(int)
    X, cl = _blobs(sizes.tolist(), seed=1)
    d = long_tail_diagnostic(X, np.zeros(len(cl), int), np.zeros(len(cl)), n_subpopulations=len(sizes),
                             n_components=6)
    if d.summary["n_subpopulations"] == len(sizes):           # k-means found every blob
        assert d.summary["zipf_exponent"] == pytest.approx(1.2, abs=0.15)
    assert d.summary["tau_1_times_n"] > 0


def test_bad_shapes_are_refused():
    with pytest.raises(MemlensInputError, match="must agree"):
        long_tail_diagnostic(np.zeros((5, 2)), np.zeros(4), np.zeros(5))


def test_audit_long_tail(data_file, tmp_path, capsys):
    out = tmp_path / "lt"
    assert main(["audit", "--data", str(data_file), "--models", "8", "--no-attacks", "--long-tail", "--out", str(out),
                 "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())["long_tail"]
    assert sum(b["n_examples"] for b in s["buckets"]) == 240
    assert "subpopulation_size" in (out / "examples.csv").read_text().splitlines()[0]
    assert "long tail of this data" in (out / "report.html").read_text()
    capsys.readouterr()
    assert main(["show", str(out)]) == 0 and "subpopulations of size 1" in capsys.readouterr().out


def test_reproduction_on_fashion_mnist(tmp_path):
    out = tmp_path / "ltd"
    assert main(["reproduce", "long-tail-diagnostic", "--quick", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    for space in ("features", "penultimate"):
        single, large = r["singleton_vs_large_mean_memorization"][space]
        assert single > large               # rare subpopulations are memorized more (0.49 vs 0.09 at seed 0)
    assert "hidden layer" in r["long_tail"]["penultimate"]["representation"]
    assert (out / "long_tail_buckets.png").stat().st_size > 10_000 and (out / "README.md").exists()


def test_penultimate_features_of_a_module_and_an_mlp():
    import torch

    from memlens.audits.long_tail import representation
    from memlens.data import from_arrays
    from memlens.train import MLPConfig
    from memlens.train.torch_module import penultimate_features

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    X = np.random.default_rng(0).standard_normal((7, 12)).astype(np.float32)
    H = penultimate_features(net, X, input_shape=(1, 3, 4), rows=3)
    with torch.no_grad():
        want = torch.relu(net[1](torch.as_tensor(X))).numpy()
    np.testing.assert_allclose(H, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(MemlensInputError, match="no nn.Linear"):
        penultimate_features(torch.nn.Sequential(torch.nn.Flatten()), X, input_shape=(12,))
    rng = np.random.default_rng(1)
    ds = from_arrays(rng.standard_normal((60, 4)), rng.integers(0, 2, 60), rng.standard_normal((10, 4)),
                     rng.integers(0, 2, 10), name="tiny")
    H, what = representation(ds, space="penultimate", config=MLPConfig(hidden=(6,), epochs=2), seed=0)
    assert H.shape == (60, 6) and H.min() >= 0 and "hidden layer (6 units)" in what


@pytest.mark.parametrize("args,needle", [
    (["--long-tail-space", "penultimate"], "--long-tail"),
    (["--long-tail", "--long-tail-space", "penultimate"], "no"),            # logreg has no hidden layer
])
def test_long_tail_space_refused_before_work(tmp_path, capsys, args, needle):
    out = tmp_path / "x"
    assert main(["audit", "--dataset", "digits", "--models", "4", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "--long-tail-space" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_long_tail_space_checks():
    from memlens.audits.long_tail import check_long_tail_space
    from memlens.train import MLPConfig, make_model_config

    assert check_long_tail_space("penultimate", "mlp", MLPConfig()) == "penultimate"
    assert check_long_tail_space("features", "logreg", make_model_config("logreg")) == "features"
    with pytest.raises(MemlensInputError, match="has none"):
        check_long_tail_space("penultimate", "mlp", MLPConfig(hidden=()))
    with pytest.raises(MemlensInputError, match="long_tail_space must be one of"):
        check_long_tail_space("pixels", "mlp", MLPConfig())


def test_audit_long_tail_in_the_penultimate_layer(tmp_path):
    out = tmp_path / "lt"
    assert main(["audit", "--dataset", "digits", "--model", "mlp", "--models", "8", "--no-attacks", "--long-tail",
                 "--long-tail-space", "penultimate", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())["long_tail"]
    assert "hidden layer" in s["representation"] and sum(b["n_examples"] for b in s["buckets"]) == 1347
