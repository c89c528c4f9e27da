"""Reconstruction attacks (sign attack, coordinate ascent), the information bound, and the Brown et al.
reproductions."""
import json
import math

import numpy as np
import pytest
import torch

from memlens import MemlensInputError, MemlensWarning
from memlens.attacks.reconstruction import coordinate_ascent, log_prob_scorer, sign_attack
from memlens.measures.information import binary_entropy, fano_bits, information_lower_bound


def _planted(d, n_goals=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=(n_goals, d)) * rng.uniform(0.2, 1.0, size=(n_goals, d))


def _tiny_net(d, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(d, 16)), rng.normal(size=(16, n_classes))

    def score(X, labels):
        z = np.tanh(X @ A) @ B
        z = z - z.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return lp[np.arange(len(X)), labels]
    return score


# ----------------------------------------------------------------------------------- planted vector: exact recovery

def test_sign_attack_recovers_a_planted_vector_exactly():
    d = 64
    w = _planted(d)[0]
    res = sign_attack(lambda X: X @ w, d=d, repeats=5, seed=1)
    assert res.reconstruction.shape == (1, d) and res.reconstruction.dtype == np.int8
    assert np.array_equal(res.reconstruction[0], np.sign(w))
    assert res.n_queries.tolist() == [2 * 5 * d] and res.method == "sign-uninformed"
    assert res.errors(np.sign(w)).sum() == 0 and res.error_rate(w)[0] == 0.0


@pytest.mark.parametrize("selection", ["ordered", "random-permutation", "greedy"])
def test_coordinate_ascent_recovers_planted_vectors_exactly(selection):
    d, T = 48, 5
    P = _planted(d, T, seed=2)
    score = lambda X, labels: np.einsum("bd,bd->b", X, P[labels])  # noqa: E731  <x, planted goal vector>
    res = coordinate_ascent(score, d=d, goals=np.arange(T), selection=selection, seed=3)
    assert np.array_equal(res.reconstruction, np.sign(P))
    assert res.converged.all()
    assert np.allclose(res.scores, np.abs(P).sum(axis=1))
    if selection != "greedy":
        # a linear score: one epoch fixes every wrong bit, the second sees no improvement
        assert res.n_epochs.tolist() == [2] * T and res.n_queries.tolist() == [1 + 2 * d] * T


def test_informed_sign_attack_uses_the_sampler_and_recovers_the_planted_vector():
    d, T = 40, 3
    P = _planted(d, T, seed=4)
    calls = []

    def sampler(targets, rng):
        calls.append(np.asarray(targets).copy())
        return rng.choice([-1.0, 1.0], size=(len(targets), d))

    res = sign_attack(lambda X, labels: np.einsum("bd,bd->b", X, P[labels]), d=d, goals=[0, 1, 2],
                      adversary="informed", sampler=sampler, repeats=3, batch_size=50, seed=0)
    assert np.array_equal(res.reconstruction, np.sign(P)) and res.method == "sign-informed"
    seen = np.concatenate(calls)
    assert np.array_equal(np.bincount(seen), [3 * d] * T)  # one base point per (repeat, coordinate)


def test_sign_attack_on_a_trained_log_probability_model_that_stores_the_vector():
    # a softmax model whose goal logit is <x, planted> and the other logits are 0
    d, C = 50, 4
    w = _planted(d, seed=5)[0]
    lin = torch.nn.Linear(d, C, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[2] = torch.tensor(w, dtype=torch.float32)
    res = sign_attack(log_prob_scorer(lin, goal=2), d=d, seed=0)
    assert np.array_equal(res.reconstruction[0], np.sign(w))
    res = coordinate_ascent(log_prob_scorer(lin), d=d, goals=[2], seed=0)
    assert np.array_equal(res.reconstruction[0], np.sign(w))


# ----------------------------------------------------------------------------------- semantics against references

def _naive_sign(score, d, T, repeats, seed):
    """The authors' loop, one pair of queries at a time, drawing base points in the same order."""
    rng = np.random.default_rng(seed)
    votes = np.zeros((T, d))
    for t in range(T):
        for _ in range(repeats):
            for i in range(d):
                x = np.where(rng.random((1, d)) < 0.5, 1.0, -1.0)
                up, dn = x.copy(), x.copy()
                up[0, i], dn[0, i] = 1.0, -1.0
                votes[t, i] += np.sign(score(up, [t])[0] - score(dn, [t])[0])
    return votes


def test_sign_attack_matches_the_one_query_at_a_time_loop():
    d, T, R = 12, 3, 3
    score = _tiny_net(d, T, seed=1)
    votes = _naive_sign(score, d, T, R, seed=9)
    for batch_size in (2, 37, 10_000):
        res = sign_attack(score, d=d, goals=np.arange(T), repeats=R, batch_size=batch_size, seed=9)
        nonzero = votes != 0  # an odd number of repeats and no exact tie: no coin flip needed
        assert nonzero.all()
        assert np.array_equal(res.reconstruction, np.sign(votes).astype(np.int8))


def _naive_ascent(score, x0, goal, max_epochs):
    x = x0.astype(np.float64).copy()
    cur, q, updated = score(x[None], [goal])[0], 1, True
    for _ in range(max_epochs):
        if not updated:
            return x, q, True
        updated = False
        for i in range(len(x)):
            p = x.copy()
            p[i] *= -1
            s = score(p[None], [goal])[0]
            q += 1
            if s > cur:
                cur, x, updated = s, p, True
    return x, q, not updated


@pytest.mark.parametrize("max_block", [1, 7, 64])
def test_batched_ordered_ascent_keeps_the_sequential_semantics(max_block):
    d, goals = 30, np.array([0, 1, 2, 3, 0, 2])
    score = _tiny_net(d, 4, seed=3)
    start = np.random.default_rng(0).choice([-1.0, 1.0], size=(goals.size, d))
    res = coordinate_ascent(score, d=d, goals=goals, start=start, max_epochs=3, max_block=max_block)
    for t, g in enumerate(goals):
        x, q, conv = _naive_ascent(score, start[t], g, 3)
        assert np.array_equal(res.reconstruction[t], x) and res.n_queries[t] == q
        assert res.converged[t] == conv
    assert np.all(res.n_evaluations >= res.n_queries)


def _naive_greedy(score, x0, goal, max_epochs):
    x = x0.astype(np.float64).copy()
    cur, q = score(x[None], [goal])[0], 1
    for _ in range(max_epochs * len(x)):
        flips = np.repeat(x[None], len(x), axis=0)
        flips[np.arange(len(x)), np.arange(len(x))] *= -1
        s = score(flips, [goal] * len(x))
        q += len(x)
        if s.max() <= cur:
            return x, q
        x, cur = flips[s.argmax()], s.max()
    return x, q


def test_greedy_ascent_matches_a_reference_and_ends_at_local_maxima():
    d, goals = 20, np.array([0, 1, 2])
    score = _tiny_net(d, 3, seed=4)
    start = np.random.default_rng(1).choice([-1.0, 1.0], size=(goals.size, d))
    res = coordinate_ascent(score, d=d, goals=goals, start=start, selection="greedy", batch_size=25)
    for t, g in enumerate(goals):
        x, q = _naive_greedy(score, start[t], g, 10)
        assert np.array_equal(res.reconstruction[t], x) and res.n_queries[t] == q


@pytest.mark.parametrize("selection", ["ordered", "random-permutation", "greedy"])
def test_converged_ascent_is_a_local_maximum(selection):
    d, goals = 24, np.array([0, 1, 2, 1])
    score = _tiny_net(d, 3, seed=6)
    res = coordinate_ascent(score, d=d, goals=goals, selection=selection, seed=2)
    assert res.converged.all()
    for t, g in enumerate(goals):
        x = res.reconstruction[t].astype(np.float64)
        flips = np.repeat(x[None], d, axis=0)
        flips[np.arange(d), np.arange(d)] *= -1
        assert np.all(score(flips, [g] * d) <= score(x[None], [g])[0])
        assert score(x[None], [g])[0] == pytest.approx(res.scores[t])


def test_minus_infinity_scores_are_ties_not_votes():
    d = 6
    # probability 0 (log p = -inf) unless x_0 = +1: only coordinate 0 carries a vote
    score = lambda X: np.where(X[:, 0] > 0, X[:, 1:].sum(axis=1), -np.inf)  # noqa: E731
    res = sign_attack(score, d=d, repeats=5, seed=0)
    assert res.reconstruction[0, 0] == 1 and np.all(res.reconstruction[0, 1:] == 1)
    res = coordinate_ascent(score, d=d, start=-np.ones(d), seed=0)
    assert res.scores[0] == d - 1 and np.all(res.reconstruction[0] == 1)
    # nothing ever improves on probability 0: the ascent stays at its start after one epoch
    res = coordinate_ascent(lambda X: np.full(len(X), -np.inf), d=d, start=-np.ones(d), seed=0)
    assert res.scores[0] == -np.inf and np.all(res.reconstruction[0] == -1) and res.converged[0]
    assert res.n_queries[0] == 1 + d


def test_queries_respect_batch_size_and_results_do_not_depend_on_it():
    d = 16
    score = _tiny_net(d, 2, seed=7)
    sizes = []

    def counting(X, labels):
        sizes.append(len(X))
        return score(X, labels)

    a = coordinate_ascent(counting, d=d, goals=[0, 1], batch_size=5, selection="random-permutation", seed=4)
    assert max(sizes) <= 5
    b = coordinate_ascent(score, d=d, goals=[0, 1], batch_size=4096, selection="random-permutation", seed=4)
    assert np.array_equal(a.reconstruction, b.reconstruction) and np.array_equal(a.n_queries, b.n_queries)


def test_log_prob_scorer_is_exact_and_keeps_precision_for_confident_models():
    torch.manual_seed(0)
    lin = torch.nn.Linear(10, 6)
    X = np.random.default_rng(0).choice([-1.0, 1.0], size=(40, 10)).astype(np.float32)
    labels = np.arange(40) % 6
    ref = torch.log_softmax(lin(torch.from_numpy(X)).double(), 1)[torch.arange(40), labels].detach().numpy()
    assert np.allclose(log_prob_scorer(lin, batch_size=7)(X, labels), ref, atol=1e-5)
    # a confident model: float32 log_softmax rounds log p to 0, the scorer still sees the flips
    with torch.no_grad():
        lin.weight.copy_(torch.eye(6, 10) * 20.0)
        lin.weight[0, 0] = 40.0   # logits (40, 20, 20, 20, 20, 20) at x = 1: p_0 = 1 - 1e-8
        lin.bias.zero_()
    s = log_prob_scorer(lin, goal=0)
    x = np.ones((1, 10), np.float32)
    x_closer = x.copy()
    x_closer[0, 1] = -1.0  # lowers class 1's logit: p_0 gets closer still to 1
    assert torch.log_softmax(lin(torch.from_numpy(x)), 1)[0, 0].item() == 0.0
    assert torch.log_softmax(lin(torch.from_numpy(x_closer)), 1)[0, 0].item() == 0.0
    assert s(x)[0] == pytest.approx(-5 * math.exp(-20), rel=1e-5)
    assert s(x_closer)[0] > s(x)[0]


def test_attacks_reject_bad_input():
    d = 8
    good = lambda X: X.sum(axis=1)  # noqa: E731
    with pytest.raises(MemlensInputError, match="score"):
        sign_attack("model", d=d)
    with pytest.raises(MemlensInputError, match="one value per input row"):
        sign_attack(lambda X: np.zeros(3), d=d)
    with pytest.raises(MemlensInputError, match="sampler"):
        sign_attack(good, d=d, adversary="informed")
    with pytest.raises(MemlensInputError, match="adversary"):
        sign_attack(good, d=d, adversary="oracle")
    with pytest.raises(MemlensInputError, match="selection"):
        coordinate_ascent(good, d=d, selection="best-first")
    with pytest.raises(MemlensInputError, match="start"):
        coordinate_ascent(good, d=d, start=np.zeros(d))
    with pytest.raises(MemlensInputError, match="start"):
        coordinate_ascent(good, d=d, start=np.ones(d + 1))
    with pytest.raises(MemlensInputError, match="goals"):
        coordinate_ascent(lambda X, g: X.sum(1), d=d, goals=[0.5])
    with pytest.raises(MemlensInputError, match="NaN"):
        coordinate_ascent(lambda X: np.full(len(X), np.nan), d=d)
    res = sign_attack(good, d=d)
    with pytest.raises(MemlensInputError, match="x_true"):
        res.errors(np.ones((2, d)))


# ----------------------------------------------------------------------------------- the information bound

def test_binary_entropy_hand_values():
    assert binary_entropy([0.0, 0.5, 1.0]).tolist() == [0.0, 1.0, 0.0]
    assert binary_entropy(0.11) == pytest.approx(0.499916, abs=1e-6)
    assert binary_entropy(0.03) == pytest.approx(-(0.03 * math.log2(0.03) + 0.97 * math.log2(0.97)), rel=1e-12)
    assert binary_entropy(0.25) == pytest.approx(0.811278, abs=1e-6)
    with pytest.raises(MemlensInputError):
        binary_entropy(1.5)


def test_information_bound_hand_computed():
    # docs/theory.md example: m free bits, error rate 0.03 -> m (1 - h2(0.03)); 826 free bits give about 666 bits
    h = -(0.03 * math.log2(0.03) + 0.97 * math.log2(0.97))
    assert 826 * (1 - h) == pytest.approx(665.4, abs=0.1)
    d = 1000
    free = np.zeros((2, d), bool)
    free[0, :800] = True
    free[1, 200:] = True  # 800 free bits each
    errors = np.zeros((2, d), bool)
    errors[0, :24] = True          # 24 of 800 free bits wrong: 0.03
    errors[0, 900:] = True         # errors on fixed coordinates do not count
    errors[1, 200:600] = True      # half the free bits wrong: nothing shown
    b = information_lower_bound(errors, free=free)
    assert b.n_bits.tolist() == [800, 800] and b.n_errors.tolist() == [24, 400]
    assert b.error_rate.tolist() == [0.03, 0.5]
    assert b.bits[0] == pytest.approx(800 * (1 - h), rel=1e-12) and b.bits[1] == 0.0
    assert b.entropy_bits.tolist() == [800.0, 800.0]
    assert b.total_bits == pytest.approx(800 * (1 - h))
    assert b.fraction == pytest.approx(800 * (1 - h) / 1600)
    # the conservative version uses a larger error rate: smaller, still positive
    assert 0 < b.bits_lower[0] < b.bits[0] and b.bits_lower[1] == 0.0
    # no error: the whole entropy; an exactly inverted reconstruction is as informative (but not credited
    # by the conservative bound)
    perfect = information_lower_bound(np.zeros((1, 10), bool))
    assert perfect.bits.tolist() == [10.0]
    inverted = information_lower_bound(np.ones((1, 10), bool))
    assert inverted.bits.tolist() == [10.0] and inverted.bits_lower.tolist() == [0.0]


def test_information_bound_with_bit_entropy_and_fano_form():
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 0.2, size=(5, 40))
    # concavity: the per-bit form is at least the averaged form
    per_bit = fano_bits(e)
    averaged = 40 * (1 - binary_entropy(e.mean(axis=1)))
    assert np.all(per_bit >= averaged - 1e-9)
    assert fano_bits(np.zeros((1, 7))).tolist() == [7.0]
    # correlated bits: entropy h2(0.3) per bit; an error rate at h2^{-1} of it shows nothing
    Hk = binary_entropy(0.3)
    errors = np.zeros((1, 100), bool)
    errors[0, :30] = True
    b = information_lower_bound(errors, bit_entropy=Hk)
    assert b.bits[0] == 0.0 and b.entropy_bits[0] == pytest.approx(100 * Hk)
    errors[0, 10:30] = False
    b = information_lower_bound(errors, bit_entropy=Hk)
    assert b.bits[0] == pytest.approx(100 * (Hk - binary_entropy(0.1)))
    with pytest.warns(MemlensWarning, match="no coordinate"):
        empty = information_lower_bound(np.zeros((1, 5), bool), free=np.zeros((1, 5), bool))
    assert empty.bits.tolist() == [0.0] and np.isnan(empty.error_rate[0])
    with pytest.raises(MemlensInputError, match="errors"):
        information_lower_bound(np.full((1, 5), 0.3))
    with pytest.raises(MemlensInputError, match="free"):
        information_lower_bound(np.zeros((2, 5), bool), free=np.ones((2, 4), bool))


def test_information_bound_matches_the_true_information_of_a_binary_symmetric_channel():
    # X uniform on m bits, X_hat = X through a BSC(e): I(X; X_hat) = m (1 - h2(e)) exactly.
    m, e, T = 500, 0.05, 200
    rng = np.random.default_rng(11)
    errors = rng.random((T, m)) < e
    b = information_lower_bound(errors)
    truth = m * (1 - binary_entropy(e))
    # per-target sd ~ m h2'(e) sqrt(e(1-e)/m) ~ 21 bits; mean over 200 targets: sd ~ 1.5, bias < 1
    mean, low, high = b.mean_ci()
    assert abs(mean - truth) < 8.0
    assert low < truth + 1.0 < high + 2.0
    # the conservative bound lies below the truth for about 95% of the targets (one-sided 95%)
    assert np.mean(b.bits_lower <= truth) > 0.9
    assert b.pooled_bits() == pytest.approx(truth, abs=8.0)


# ----------------------------------------------------------------------------------- reproductions (quick)

def _check_outputs(out, figure, results):
    assert (out / figure).stat().st_size > 10_000
    assert "97%" in (out / "README.md").read_text()
    on_disk = json.loads((out / "results.json").read_text())
    final = on_disk["final"]
    for key in ("recovery_error_all_bits", "recovery_error_free_bits", "singleton_accuracy",
                "represented_accuracy", "bits_memorized_per_singleton", "recovered_fraction_of_singleton_bits_paper"):
        assert key in final
    assert final["recovered_fraction_of_singleton_bits_paper"] == ">0.97"
    hist = on_disk["history"]
    assert len(hist["recovery_error"]) == len(hist["attack_updates"]) >= 5
    # before training the attack knows nothing (about half the bits wrong); at the end it recovers the singletons
    assert hist["recovery_error"][0] > 0.35
    assert final["recovery_error_all_bits"]["mean"] < 0.05
    assert final["recovery_error_all_bits"]["ci_low"] <= final["recovery_error_all_bits"]["mean"] <= \
        final["recovery_error_all_bits"]["ci_high"]
    assert final["singleton_accuracy"] > 0.8 and hist["singles_error"][0] > 0.9
    bits = final["bits_memorized_per_singleton"]
    assert 0.5 * bits["entropy_bits_per_target"] < bits["bits_per_target"] <= bits["entropy_bits_per_target"]
    assert results["final"]["n_singletons_attacked"] == final["n_singletons_attacked"]


def test_quick_brown_logreg_runs_and_writes_files(tmp_path):
    from memlens.experiments import brown_logreg

    results = brown_logreg.run(tmp_path, quick=True, seed=0, n_attack=4)
    _check_outputs(tmp_path, "logit_figure.png", results)
    assert results["final"]["n_singletons_attacked"] == results["data"]["n_singletons"]  # all of them
    th = results["final"]["theory"]                 # the theorem's target beside the measured bits
    bits = results["final"]["bits_memorized_per_singleton"]
    assert th["whole_sample_target"]["bits_per_singleton"] == pytest.approx(bits["entropy_bits_per_target"], rel=0.1)
    assert 0 < th["measured_fraction_of_target"] <= 1.05
    assert th["min_pure_dp_epsilon"] == pytest.approx(bits["bits_per_target"] * math.log(2))


def test_quick_brown_mlp_runs_and_writes_files(tmp_path):
    from memlens.experiments import brown_mlp

    results = brown_mlp.run(tmp_path, quick=True, seed=0, n_attack=4, n_attack_final=12)
    _check_outputs(tmp_path, "mlp_figure.png", results)
    assert results["final"]["n_singletons_attacked"] == 12
    assert results["settings"]["hidden"] == 300


def test_nesterov_step_matches_torch_sgd():
    from memlens.experiments.brown_logreg import _nesterov_step

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.99, nesterov=True)
    bufs = [torch.zeros_like(p) for p in b.parameters()]
    X, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(a(X), y).backward()
        opt.step()
        g = torch.autograd.grad(torch.nn.functional.cross_entropy(b(X), y), list(b.parameters()))
        _nesterov_step(list(b.parameters()), g, bufs, lr=0.1, momentum=0.99)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
