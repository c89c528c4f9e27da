"""Membership-inference attacks: oracle and null populations, hand-computed LiRA/RMIA, vectorization, bad input."""
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from memlens import MemlensInputError, MemlensWarning, Population
from memlens.attacks import (
    ATTACKS,
    AttackResult,
    attack_all_targets,
    calibrated_loss_attack,
    lira,
    load_external,
    loss_attack,
    population_from_logits,
    population_from_signals,
    rmia,
    shadow_attack,
)
from memlens.data import make_masks
from memlens.evaluation import auc_null_stderr


def _signals(phi):
    """Binary-consistent signals from a stable logit: p = sigmoid(phi), loss = -log p."""
    phi = np.asarray(phi, dtype=np.float64)
    return {"logit": phi, "loss": np.logaddexp(0.0, -phi), "correct": (phi > 0).astype(np.float64)}


def _population(separation, *, K=16, n=300, m=200, noise=0.3, seed=0, balanced=True):
    rng = np.random.default_rng(seed)
    masks = make_masks(K, n, p=0.5, seed=seed, balanced=balanced)
    base = rng.uniform(-1, 1, n)
    phi = base + np.where(masks, separation, -separation) + noise * rng.normal(size=(K, n))
    phi_test = rng.uniform(-1, 1, m) - separation + noise * rng.normal(size=(K, m))
    return Population(masks, {"train": _signals(phi), "test": _signals(phi_test)},
                      labels={"train": rng.integers(0, 3, n), "test": rng.integers(0, 3, m)})


@pytest.fixture(scope="module")
def oracle():
    return _population(3.0)


@pytest.fixture(scope="module")
def null():
    return _population(0.0, noise=1.0, seed=1)


VARIANTS = [
    ("loss", {}),
    ("calibrated_loss", {}),
    ("lira", {}),
    ("lira", {"online": False}),
    ("lira", {"fix_variance": True}),
    ("lira", {"online": False, "fix_variance": True}),
    ("lira", {"estimator": "median"}),
    ("rmia", {}),
    ("rmia", {"online": False, "gamma": 2.0}),
    ("rmia", {"z_split": "train"}),
    ("shadow", {}),
]


@pytest.mark.parametrize("name,kw", VARIANTS)
def test_every_attack_is_perfect_on_an_oracle(oracle, name, kw):
    res = ATTACKS[name](oracle, target=3, **kw)
    assert isinstance(res, AttackResult)
    assert res.scores.shape == (oracle.n_train,)
    assert res.n_undefined == 0
    np.testing.assert_array_equal(res.labels, oracle.masks[3])
    assert res.auc == 1.0
    assert res.tpr_at(0.01) == 1.0


@pytest.mark.parametrize("name,kw", VARIANTS)
def test_every_attack_is_chance_when_signals_ignore_membership(null, name, kw):
    res = ATTACKS[name](null, target=5, **kw)
    se = auc_null_stderr(int(res.labels.sum()), int((~res.labels).sum()))
    assert abs(res.auc - 0.5) < 4 * se, (res.name, res.auc, se)


def test_rmia_offline_with_gamma_one_saturates_but_stays_near_perfect(oracle):
    # scores are fractions of z: a non-member above every z ties with the members at 1.0 (documented)
    res = rmia(oracle, target=3, online=False)
    assert set(np.unique(res.scores[res.labels])) == {1.0}
    tied = int(np.sum(res.scores[~res.labels] == 1.0))
    assert res.auc == pytest.approx(1 - 0.5 * tied / np.sum(~res.labels))
    assert res.auc > 0.95


# ------------------------------------------------------------------------------------------- LiRA by hand
@pytest.fixture(scope="module")
def tiny():
    # 7 models x 3 examples; target row 0
    masks = np.array([[1, 0, 1],
                      [1, 1, 0],
                      [0, 1, 1],
                      [1, 0, 0],
                      [0, 0, 1],
                      [1, 1, 0],
                      [0, 1, 1]], dtype=bool)
    phi = np.array([[2.0, -1.0, 0.5],
                    [1.5, 0.3, -0.7],
                    [-0.2, 1.1, 1.4],
                    [2.5, -0.4, -1.0],
                    [0.1, -0.9, 0.9],
                    [1.0, 1.7, -0.2],
                    [-0.6, 0.8, 2.2]])
    return Population(masks, {"train": _signals(phi)})


def _groups(pop, target, i):
    rows = np.arange(pop.n_models) != target
    v = pop.signal("train", "logit").astype(np.float64)[rows, i]
    m = pop.masks[rows, i]
    return v[m], v[~m]


def test_lira_online_equals_scipy_gaussian_likelihood_ratio(tiny):
    res = lira(tiny, target=0)
    phi_t = tiny.signal("train", "logit").astype(np.float64)[0]
    for i in range(3):
        vin, vout = _groups(tiny, 0, i)
        expect = (stats.norm.logpdf(phi_t[i], vin.mean(), vin.std(ddof=1))
                  - stats.norm.logpdf(phi_t[i], vout.mean(), vout.std(ddof=1)))
        assert res.scores[i] == pytest.approx(expect, rel=1e-9, abs=1e-9)
        assert res.details["mu_in"][i] == pytest.approx(vin.mean())
        assert res.details["sd_out"][i] == pytest.approx(vout.std(ddof=1))


def test_lira_offline_is_one_sided_upper_tail(tiny):
    res = lira(tiny, target=0, online=False)
    phi_t = tiny.signal("train", "logit").astype(np.float64)[0]
    for i in range(3):
        _, vout = _groups(tiny, 0, i)
        expect = -stats.norm.logsf(phi_t[i], vout.mean(), vout.std(ddof=1))
        assert res.scores[i] == pytest.approx(expect, rel=1e-9)
    # one-sided: a target value far *below* the OUT mean is not evidence of membership
    z = (phi_t - res.details["mu_out"]) / res.details["sd_out"]
    assert np.all(np.argsort(res.scores) == np.argsort(z))


def test_lira_fixed_variance_uses_one_pooled_variance(tiny):
    phi_t = tiny.signal("train", "logit").astype(np.float64)[0]
    ss, dof = 0.0, 0
    for i in range(3):
        for g in _groups(tiny, 0, i):
            ss += ((g - g.mean()) ** 2).sum()
            dof += g.size - 1
    sd = np.sqrt(ss / dof)
    res = lira(tiny, target=0, fix_variance=True)
    off = lira(tiny, target=0, online=False, fix_variance=True)
    ss_out = sum(((g - g.mean()) ** 2).sum() for g in (_groups(tiny, 0, i)[1] for i in range(3)))
    sd_out = np.sqrt(ss_out / sum(_groups(tiny, 0, i)[1].size - 1 for i in range(3)))
    for i in range(3):
        vin, vout = _groups(tiny, 0, i)
        expect = stats.norm.logpdf(phi_t[i], vin.mean(), sd) - stats.norm.logpdf(phi_t[i], vout.mean(), sd)
        assert res.scores[i] == pytest.approx(expect, rel=1e-9)
        assert off.scores[i] == pytest.approx(-stats.norm.logsf(phi_t[i], vout.mean(), sd_out), rel=1e-9)


def test_lira_median_estimator(tiny):
    res = lira(tiny, target=0, estimator="median")
    phi_t = tiny.signal("train", "logit").astype(np.float64)[0]
    for i in range(3):
        vin, vout = _groups(tiny, 0, i)
        sd_in = np.sqrt(((vin - np.median(vin)) ** 2).sum() / (vin.size - 1))
        sd_out = np.sqrt(((vout - np.median(vout)) ** 2).sum() / (vout.size - 1))
        expect = (stats.norm.logpdf(phi_t[i], np.median(vin), sd_in)
                  - stats.norm.logpdf(phi_t[i], np.median(vout), sd_out))
        assert res.scores[i] == pytest.approx(expect, rel=1e-9)


def test_calibrated_loss_by_hand(tiny):
    res = calibrated_loss_attack(tiny, target=0)
    loss = tiny.signal("train", "loss").astype(np.float64)
    rows = np.arange(7) != 0
    for i in range(3):
        out = loss[rows, i][~tiny.masks[rows, i]]
        assert res.scores[i] == pytest.approx(-(loss[0, i] - out.mean()), rel=1e-6)
    np.testing.assert_allclose(loss_attack(tiny, target=0).scores, -loss[0])


# ------------------------------------------------------------------------------------------- RMIA by hand
def _rmia_brute(pop, target, *, online, a, gamma):
    p = np.exp(-pop.signal("train", "loss").astype(np.float64))
    pz = np.exp(-pop.signal("test", "loss").astype(np.float64))
    refs = np.arange(pop.n_models) != target
    out = np.empty(pop.n_train)
    ratio_z = []
    for j in range(pz.shape[1]):
        mean = pz[refs, j].mean()
        pzm = mean if online else 0.5 * ((1 + a) * mean + 1 - a)
        ratio_z.append(pz[target, j] / pzm)
    for i in range(pop.n_train):
        m = pop.masks[refs, i]
        pin, pout = p[refs, i][m].mean(), p[refs, i][~m].mean()
        px = 0.5 * (pin + pout) if online else 0.5 * ((1 + a) * pout + 1 - a)
        rx = p[target, i] / px
        out[i] = np.mean([rx / rz >= gamma for rz in ratio_z])
    return out


@pytest.mark.parametrize("online,a,gamma", [(True, 0.3, 1.0), (False, 0.3, 1.0), (False, 0.6, 2.0)])
def test_rmia_equals_brute_force_pairwise_ratios(online, a, gamma):
    pop = _population(0.7, K=9, n=40, m=25, noise=0.8, seed=4)
    res = rmia(pop, target=2, online=online, offline_a=a, gamma=gamma)
    np.testing.assert_allclose(res.scores, _rmia_brute(pop, 2, online=online, a=a, gamma=gamma))


# ------------------------------------------------------------------------------------------- all targets
@pytest.mark.parametrize("name,kw", [("loss", {}), ("calibrated_loss", {}), ("lira", {}),
                                     ("lira", {"online": False, "fix_variance": True}), ("rmia", {}),
                                     ("rmia", {"online": False})])
def test_all_targets_vectorized_equals_one_at_a_time(name, kw):
    pop = _population(0.5, K=12, n=80, m=30, noise=1.0, seed=2)
    every = attack_all_targets(pop, name, **kw)
    assert every.scores.shape == (12, 80)
    np.testing.assert_array_equal(every.labels, pop.masks)
    for t in range(12):
        single = ATTACKS[name](pop, target=t, **kw)
        np.testing.assert_allclose(every.results[t].scores, single.scores, rtol=1e-10, atol=1e-10)
        assert every.results[t].name == single.name
    agg = every.aggregate
    assert agg.auc.shape == (12,) and agg.tpr.shape == (12, 2)
    assert agg.mean_auc == pytest.approx(np.mean([r.auc for r in every.results]))


def test_all_targets_accepts_a_callable_and_a_subset_of_targets(oracle):
    def attack(pop, *, target):
        return loss_attack(pop, target=target, signal="logit")

    res = attack_all_targets(oracle, attack, targets=[0, 5])
    assert list(res.targets) == [0, 5]
    assert res.aggregate.mean_auc == 1.0
    lean = attack_all_targets(oracle, "lira", targets=[1, 2], keep_details=False)
    assert lean.results[0].details == {} and lean.aggregate.n_targets == 2


def test_explicit_references_equal_a_sub_population():
    pop = _population(0.5, K=10, n=60, m=20, noise=1.0, seed=3)
    refs = [1, 2, 3, 4, 5, 6]
    sub = pop.select([0, *refs])
    for fn, kw in [(lira, {}), (lira, {"online": False}), (rmia, {}), (calibrated_loss_attack, {})]:
        a = fn(pop, target=0, references=refs, **kw)
        b = fn(sub, target=0, **kw)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-10, equal_nan=True)
        assert a.params["n_reference"] == b.params["n_reference"] == 6


def test_attack_result_metrics_use_defined_scores():
    scores = np.array([0.9, np.nan, 0.2, 0.7, 0.4])
    labels = np.array([True, True, False, True, False])
    res = AttackResult("x", scores, labels, 0)
    assert res.n_undefined == 1
    d = np.isfinite(scores)
    assert res.auc == roc_auc_score(labels[d], scores[d])
    assert res.summary()["n_undefined"] == 1


def test_shadow_attack_with_a_custom_classifier(oracle):
    from sklearn.linear_model import LogisticRegression

    res = shadow_attack(oracle, target=1, classifier=LogisticRegression(), by_class=False, features=["loss"])
    assert res.auc == 1.0
    assert res.params["classifier"] == "LogisticRegression" and res.params["n_attack_models"] == 1


# ------------------------------------------------------------------------------------------- bad input
def test_target_out_of_range_is_a_clear_error(oracle):
    for bad in (16, -1, 2.5, True):
        with pytest.raises(MemlensInputError, match="target"):
            lira(oracle, target=bad)
    with pytest.raises(MemlensInputError, match="targets|target"):
        attack_all_targets(oracle, "loss", targets=[0, 99])
    with pytest.raises(MemlensInputError, match="references must not contain the target"):
        lira(oracle, target=0, references=[0, 1, 2])
    with pytest.raises(MemlensInputError, match="attack must be one of"):
        attack_all_targets(oracle, "nope")
    with pytest.raises(MemlensInputError, match="z_split"):
        rmia(oracle, target=0, z_split="canary")
    with pytest.raises(MemlensInputError, match="signal"):
        lira(oracle, target=0, signal="nope")
    broken = oracle.signal("train", "logit").copy()
    broken[2, 7] = np.nan
    with pytest.raises(MemlensInputError, match="NaN or infinite"):
        lira(Population(oracle.masks, {"train": {"logit": broken}}), target=0)


def test_examples_without_out_models_are_nan_with_a_warning():
    pop = _population(1.0, K=6, n=20, m=10, seed=5)
    masks = pop.masks.copy()
    masks[:, 0] = True          # example 0: IN for every model
    masks[:, 1] = False         # example 1: OUT for every model
    masks[1:3, 2] = True        # example 2: only models 1, 2 IN
    masks[3:, 2] = False
    pop = Population(masks, {s: dict(d) for s, d in pop.signals.items()})
    for fn, kw in [(lira, {}), (lira, {"online": False}), (rmia, {}), (rmia, {"online": False}),
                   (calibrated_loss_attack, {})]:
        with pytest.warns(MemlensWarning, match="NaN"):
            res = fn(pop, target=0, **kw)
        assert np.isnan(res.scores[0])
        assert np.isfinite(res.scores[3:]).all()
        if fn is lira and kw.get("online", True) or fn is rmia and kw.get("online", True):
            assert np.isnan(res.scores[1])
    # per-example variance with a single IN reference (example 2 for target 1): NaN + a hint to fix the variance
    with pytest.warns(MemlensWarning, match="fix_variance"):
        res = lira(pop, target=1)
    assert np.isnan(res.scores[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemlensWarning)
        assert np.isfinite(lira(pop, target=1, fix_variance=True).scores[2])


def test_one_reference_model():
    pop = _population(2.0, K=2, n=200, m=50, noise=0.3, seed=6, balanced=False)
    with pytest.warns(MemlensWarning, match="no OUT reference"):
        off = lira(pop, target=0, online=False, fix_variance=True)  # falls back to the total variance
    assert "total variance" in off.params["variance"]
    assert off.n_undefined == int(pop.masks[1].sum())                # no OUT reference where model 1 is IN
    assert off.auc == 1.0
    with pytest.warns(MemlensWarning, match="needs an OUT reference"):
        r = rmia(pop, target=0, online=False, gamma=2.0)
    assert r.params["n_reference"] == 1 and r.auc == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- external
def test_population_from_signals_matches_the_population(oracle):
    tr = {k: v for k, v in oracle.signals["train"].items()}
    te = {k: v for k, v in oracle.signals["test"].items()}
    ext = population_from_signals({k: v[4] for k, v in tr.items()},
                                  {k: np.delete(v, 4, axis=0) for k, v in tr.items()},
                                  target_mask=oracle.masks[4], reference_masks=np.delete(oracle.masks, 4, axis=0),
                                  target_test={k: v[4] for k, v in te.items()},
                                  reference_test={k: np.delete(v, 4, axis=0) for k, v in te.items()},
                                  labels=oracle.labels["train"])
    assert ext.n_models == 16 and ext.provenance["target_rows"] == [0]
    for fn in (lira, rmia):
        np.testing.assert_allclose(fn(ext, target=0).scores, fn(oracle, target=4).scores, rtol=1e-12)


def test_population_from_signals_rejects_mismatched_shapes():
    rng = np.random.default_rng(0)
    t, r = rng.normal(size=50), rng.normal(size=(4, 50))
    masks = rng.random((4, 50)) < 0.5
    with pytest.raises(MemlensInputError, match=r"reference_masks must have shape \(n_ref=4, n=50\)"):
        population_from_signals(t, r, target_mask=t > 0, reference_masks=masks[:, :49])
    with pytest.raises(MemlensInputError, match=r"reference\['logit'\] must have shape"):
        population_from_signals(t, r[:, :49], target_mask=t > 0, reference_masks=masks)
    with pytest.raises(MemlensInputError, match="target_mask must have shape"):
        population_from_signals(t, r, target_mask=(t > 0)[:10], reference_masks=masks)
    with pytest.raises(MemlensInputError, match="NaN"):
        population_from_signals(np.r_[np.nan, t[1:]], r, target_mask=t > 0, reference_masks=masks)
    with pytest.raises(MemlensInputError, match="same signals"):
        population_from_signals({"loss": t}, {"logit": r}, target_mask=t > 0, reference_masks=masks)
    with pytest.warns(MemlensWarning, match="unknown"):
        pop = population_from_signals(t, r, reference_masks=masks)
    with pytest.warns(MemlensWarning, match="undefined"):
        assert np.isnan(lira(pop, target=0, fix_variance=True).auc)


def test_load_external_logits_layout(tmp_path):
    rng = np.random.default_rng(7)
    n_ref, n, C, n_test = 6, 40, 4, 15
    y, y_test = rng.integers(0, C, n), rng.integers(0, C, n_test)
    masks = make_masks(n_ref + 1, n, p=0.5, seed=1, balanced=False)
    logits = rng.normal(size=(n_ref + 1, n, C)) + 4.0 * masks[..., None] * np.eye(C)[y][None]
    logits_test = rng.normal(size=(n_ref + 1, n_test, C))
    np.save(tmp_path / "target_logits.npy", logits[0])
    np.save(tmp_path / "reference_logits.npy", logits[1:])
    np.save(tmp_path / "labels.npy", y)
    np.save(tmp_path / "target_mask.npy", masks[0])
    np.save(tmp_path / "reference_masks.npy", masks[1:])
    np.save(tmp_path / "test_target_logits.npy", logits_test[0])
    np.save(tmp_path / "test_reference_logits.npy", logits_test[1:])
    np.save(tmp_path / "test_labels.npy", y_test)
    pop = load_external(tmp_path)
    direct = population_from_logits(logits[0], logits[1:], y, target_mask=masks[0], reference_masks=masks[1:],
                                    target_test_logits=logits_test[0], reference_test_logits=logits_test[1:],
                                    test_labels=y_test)
    assert pop.n_models == n_ref + 1 and set(pop.signals) == {"train", "test"}
    np.testing.assert_array_equal(pop.signal("train", "logit"), direct.signal("train", "logit"))
    np.testing.assert_array_equal(pop.labels["train"], y)
    assert rmia(pop, target=0).auc > 0.9
    np.save(tmp_path / "reference_masks.npy", masks[1:, :-1])
    with pytest.raises(MemlensInputError, match="reference_masks must have shape"):
        load_external(tmp_path)


def test_load_external_signal_layout_and_missing_files(tmp_path):
    rng = np.random.default_rng(8)
    masks = rng.random((5, 30)) < 0.5
    loss = rng.exponential(size=(5, 30))
    np.save(tmp_path / "target_loss.npy", loss[0])
    np.save(tmp_path / "target_mask.npy", masks[0])
    with pytest.raises(MemlensInputError, match="reference_masks.npy"):
        load_external(tmp_path)
    np.save(tmp_path / "reference_masks.npy", masks[1:])
    with pytest.raises(MemlensInputError, match="reference_loss.npy"):
        load_external(tmp_path)
    np.save(tmp_path / "reference_loss.npy", loss[1:])
    pop = load_external(tmp_path)
    np.testing.assert_allclose(loss_attack(pop, target=0).scores, -loss[0].astype(np.float32))
    with pytest.raises(MemlensInputError, match="folder"):
        load_external(tmp_path / "target_loss.npy")


# ------------------------------------------------------------------------------------------- real population
@pytest.mark.slow
def test_literature_ordering_on_digits_mlps():
    """LiRA and RMIA far above the loss attack at low FPR; RMIA already strong with two reference models."""
    from memlens.data import load_dataset
    from memlens.train import train_population

    data = load_dataset("digits")
    masks = make_masks(65, len(data.y_train), p=0.5, seed=0, balanced=True)
    pop = train_population(data, model="mlp", masks=masks, seed=0)
    targets = np.arange(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemlensWarning)
        loss = attack_all_targets(pop, "loss", targets=targets).aggregate
        lira_on = attack_all_targets(pop, "lira", targets=targets).aggregate
        rmia_few = attack_all_targets(pop.select(np.arange(3)), "rmia", online=False, targets=[0, 1, 2]).aggregate
    assert lira_on.pooled_tpr[0] > 3 * loss.pooled_tpr[0]
    assert lira_on.mean_auc > loss.mean_auc + 0.05
    assert rmia_few.mean_auc > loss.mean_auc + 0.03
