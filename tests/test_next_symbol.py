"""Next-symbol task (Brown et al., documented interpretation), the autoregressive model, and the reproduction."""
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from memlens import MemlensInputError, MemlensWarning
from memlens.models.char_lm import (
    AutoregressiveConfig,
    argmax_predictions,
    greedy_continue,
    load_autoregressive_model,
    make_autoregressive_model,
    next_token_logprobs,
    save_autoregressive_model,
    sequence_signals,
    token_accuracy,
    token_logprobs,
)
from memlens.tasks.next_symbol import (
    NextSymbolSample,
    NextSymbolTask,
    binary_entropy,
    expected_singletons,
    fano_bits_per_symbol,
    find_singletons,
    make_next_symbol_data,
    make_next_symbol_task,
    memorized_bits_lower_bound,
    noise_recovery,
    sample_sequences,
    subpopulation_prior,
    symbol_entropy_bits,
)
from memlens.train.autoregressive import train_autoregressive

# ------------------------------------------------------------------------------------------------ generator

def test_sample_ground_truth_is_consistent():
    task = make_next_symbol_task(20, alphabet_size=5, prefix_length=12, noise=0.3, seed=1)
    s = sample_sequences(task, 300, seed=2)
    ref = task.references[s.subpopulation]
    assert s.sequences.shape == (300, 13) and s.sequences.min() >= 0 and s.sequences.max() < 5
    np.testing.assert_array_equal(s.targets, task.next_symbols[s.subpopulation])
    np.testing.assert_array_equal(s.prefixes[~s.resampled], ref[~s.resampled])  # untouched symbols = reference
    np.testing.assert_array_equal(s.changed, s.prefixes != ref)
    assert not np.any(s.changed & ~s.resampled)
    np.testing.assert_array_equal(s.tokens(bos=5)[:, 0], 5)
    np.testing.assert_array_equal(s.tokens(bos=5)[:, 1:], s.sequences)


def test_noise_rates_match_their_parameters():
    a, p = 6, 0.25
    task = make_next_symbol_task(50, alphabet_size=a, prefix_length=40, noise=p, seed=3)
    s = sample_sequences(task, 4000, seed=4)
    n = s.resampled.size
    assert abs(s.resampled.mean() - p) < 4 * math.sqrt(p * (1 - p) / n)
    q = p * (a - 1) / a
    assert abs(s.changed.mean() - q) < 4 * math.sqrt(q * (1 - q) / n)
    assert task.reference_error == pytest.approx(q)
    # resampled symbols are uniform over the alphabet (chi-square, fixed seed)
    from scipy.stats import chisquare
    counts = np.bincount(s.prefixes[s.resampled], minlength=a)
    assert chisquare(counts).pvalue > 1e-3


def test_expected_singletons_hand_values_and_monte_carlo():
    assert expected_singletons([0.5, 0.5], n=2) == pytest.approx(1.0)  # {same: 0, different: 2} each w.p. 1/2
    assert expected_singletons([1.0], n=3) == pytest.approx(0.0)
    assert expected_singletons([1.0], n=1) == pytest.approx(1.0)
    n = 200
    f = subpopulation_prior(n, prior="zipf", exponent=1.0)
    rng = np.random.default_rng(5)
    draws = np.array([np.sum(np.bincount(rng.choice(n, size=n, p=f), minlength=n) == 1) for _ in range(400)])
    assert abs(draws.mean() - expected_singletons(f, n=n)) < 4 * draws.std(ddof=1) / math.sqrt(draws.size)
    u = subpopulation_prior(n, prior="uniform")
    assert expected_singletons(u, n=n) == pytest.approx(n * (1 - 1 / n) ** (n - 1))


def test_find_singletons_and_data_ground_truth():
    np.testing.assert_array_equal(find_singletons([3, 1, 3, 0, 2, 2]), [1, 3])
    data = make_next_symbol_data(150, alphabet_size=8, prefix_length=10, noise=0.2, n_test=60, seed=6)
    counts = np.bincount(data.train.subpopulation, minlength=data.task.n_subpopulations)
    np.testing.assert_array_equal(data.counts, counts)
    np.testing.assert_array_equal(data.singletons, find_singletons(data.train.subpopulation))
    assert np.all(data.counts[data.train.subpopulation[data.singletons]] == 1)
    assert np.all(data.counts[data.train.subpopulation[data.frequent]] >= data.frequent_min)
    groups = {"singles": lambda c: c == 1, "represented": lambda c: c >= 1, "unseen": lambda c: c == 0,
              "frequent": lambda c: c >= data.frequent_min}
    for name, rule in groups.items():
        assert len(data.tests[name]) == 60
        assert np.all(rule(data.counts[data.tests[name].subpopulation])), name
    # test copies are fresh: same reference, new noise
    single = data.tests["singles"]
    assert single.resampled.any()
    train_copy = {int(data.train.subpopulation[i]): data.train.prefixes[i] for i in data.singletons}
    differs = [not np.array_equal(single.prefixes[k], train_copy[int(j)]) for k, j in enumerate(single.subpopulation)]
    assert np.mean(differs) > 0.5


def test_data_is_reproducible_from_seed():
    a = make_next_symbol_data(50, prefix_length=6, n_test=10, seed=7)
    b = make_next_symbol_data(50, prefix_length=6, n_test=10, seed=7)
    c = make_next_symbol_data(50, prefix_length=6, n_test=10, seed=8)
    np.testing.assert_array_equal(a.train.sequences, b.train.sequences)
    np.testing.assert_array_equal(a.tests["singles"].sequences, b.tests["singles"].sequences)
    assert not np.array_equal(a.train.sequences, c.train.sequences)


@pytest.mark.parametrize("kwargs, word", [
    (dict(alphabet_size=1), "alphabet_size"), (dict(noise=1.5), "noise"), (dict(prior="pareto"), "prior"),
    (dict(prefix_length=0), "prefix_length"), (dict(frequencies=[0.5, -0.1]), "frequencies"),
])
def test_generator_rejects_bad_parameters(kwargs, word):
    with pytest.raises(MemlensInputError, match=word):
        make_next_symbol_task(**{"n_subpopulations": 2 if "frequencies" not in kwargs else None, **kwargs})


# ------------------------------------------------------------------------------------------------ bits

def test_entropy_hand_values():
    assert symbol_entropy_bits(alphabet_size=2, noise=1.0) == pytest.approx(1.0)
    assert symbol_entropy_bits(alphabet_size=4, noise=1.0) == pytest.approx(2.0)
    assert symbol_entropy_bits(alphabet_size=8, noise=0.0) == 0.0
    assert symbol_entropy_bits(alphabet_size=2, noise=0.5) == pytest.approx(binary_entropy(0.25))
    assert binary_entropy(0.25) == pytest.approx(0.8112781245)
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0


def test_bound_reduces_to_spec_h2_bound_and_vanishes_at_reference_error():
    # docs/theory.md example: m = 826 free bits, mean error 0.03 -> 826 (1 - h2(0.03)) ≈ 665.4 bits
    assert memorized_bits_lower_bound(0.03, n_symbols=826, alphabet_size=2, noise=1.0) == pytest.approx(
        826 * (1 - 0.1943918), rel=1e-6)
    a, p = 8, 0.2
    h = symbol_entropy_bits(alphabet_size=a, noise=p)
    assert fano_bits_per_symbol(0.0, alphabet_size=a, entropy=h) == pytest.approx(h)
    assert fano_bits_per_symbol(p * (a - 1) / a, alphabet_size=a, entropy=h) == pytest.approx(0.0, abs=1e-12)
    assert fano_bits_per_symbol(0.5, alphabet_size=a, entropy=h) == 0.0  # clipped at zero
    with pytest.raises(MemlensInputError, match="error"):
        fano_bits_per_symbol(1.2, alphabet_size=a, entropy=h)


def _hand_task():
    task = NextSymbolTask(references=np.array([[0, 1, 2, 3]]), next_symbols=np.array([1]),
                          frequencies=np.array([1.0]), alphabet_size=4, noise=0.5)
    prefixes = np.array([[0, 3, 2, 1], [1, 1, 2, 3]])
    sample = NextSymbolSample(sequences=np.concatenate([prefixes, [[1], [1]]], axis=1), subpopulation=np.array([0, 0]),
                              resampled=np.array([[0, 1, 0, 1], [1, 0, 0, 0]], bool),
                              changed=prefixes != task.references[[0, 0]])
    return task, sample


def test_noise_recovery_on_hand_made_inputs():
    task, sample = _hand_task()
    # row 0 reproduces its copy (noise included), row 1 outputs the reference
    rec = noise_recovery(np.array([[0, 3, 2, 1], [0, 1, 2, 3]]), sample, task)
    np.testing.assert_array_equal(rec.errors, [[0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(rec.symbol_error, [0.0, 0.25])
    np.testing.assert_allclose(rec.error_by_position, [0.5, 0, 0, 0])
    assert rec.mean_error == pytest.approx(0.125)
    assert rec.noise_recall == pytest.approx(2 / 3)       # 3 changed symbols, row 0's two reproduced
    assert rec.reference_at_noise == pytest.approx(1 / 3)  # row 1 put the reference at its changed symbol
    h = -0.625 * math.log2(0.625) - 3 * 0.125 * math.log2(0.125)  # 1.548795 bits
    assert rec.entropy_bits == pytest.approx(4 * h)
    # position 0: error 0.5 -> h2(0.5) + 0.5 log2 3 = 1.79 > H -> 0 bits; three exact positions -> 3 H
    assert rec.bits() == pytest.approx(3 * h)
    assert rec.bits_pooled() == pytest.approx(4 * (h - binary_entropy(0.125) - 0.125 * math.log2(3)))
    assert rec.bits_pooled() <= rec.bits()
    # reconstruction of positions 2..3 only, on row 1
    sub = noise_recovery(np.array([[2, 0]]), sample, task, start=2, index=[1])
    np.testing.assert_array_equal(sub.errors, [[0, 1]])
    assert math.isnan(sub.noise_recall)  # row 1 has no changed symbol at positions 2..3
    with pytest.raises(MemlensInputError, match="reconstruction"):
        noise_recovery(np.zeros((2, 5), dtype=int), sample, task)


# ------------------------------------------------------------------------------------------------ model

def _toy_tokens():
    """Four deterministic sequences over 6 symbols, told apart by their first token."""
    rng = np.random.default_rng(0)
    body = rng.integers(6, size=(4, 14))
    return np.concatenate([np.arange(4)[:, None], body], axis=1)


@pytest.mark.parametrize("arch", ["transformer", "gru"])
def test_model_learns_deterministic_sequences_and_reproduces_them_greedily(arch):
    x = _toy_tokens()
    cfg = AutoregressiveConfig(vocab_size=6, context_length=15, width=32, depth=1, arch=arch, n_heads=2)
    run = train_autoregressive(x, config=cfg, steps=150, batch_size=4, lr=1e-2, seed=0)
    np.testing.assert_array_equal(greedy_continue(run.model, x[:, :1], 14), x[:, 1:])
    np.testing.assert_array_equal(token_accuracy(run.model, x), 1.0)
    np.testing.assert_array_equal(argmax_predictions(run.model, x), x[:, 1:])
    assert np.all(sequence_signals(run.model, x)["loss"] < 0.05)
    assert [h["step"] for h in run.history] == [0, 150] and np.isfinite(run.history[-1]["train_loss"])


def test_signals_agree_with_direct_cross_entropy_and_handle_padding():
    x = np.random.default_rng(1).integers(7, size=(5, 9))
    model = make_autoregressive_model(AutoregressiveConfig(vocab_size=7, context_length=9, width=16, depth=2), seed=3)
    with torch.no_grad():
        logits = model(torch.from_numpy(x))[:, :-1]
        ce = F.cross_entropy(logits.reshape(-1, 7), torch.from_numpy(x[:, 1:]).reshape(-1), reduction="none")
    ref = -ce.reshape(5, 8).double().numpy()
    lp = token_logprobs(model, x, batch_size=2)
    np.testing.assert_allclose(lp, ref, atol=1e-5)
    sig = sequence_signals(model, x)
    np.testing.assert_allclose(sig["log_likelihood"], ref.sum(axis=1), atol=1e-4)
    np.testing.assert_allclose(sig["loss"], -ref.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(sig["token_accuracy"], (logits.argmax(-1).numpy() == x[:, 1:]).mean(axis=1))
    # ragged: padding after the length changes nothing (causal model) and is NaN in token_logprobs
    lengths = np.array([9, 4, 6, 2, 9])
    padded = x.copy()
    padded[1, 4:] = 0
    lp_pad = token_logprobs(model, padded, lengths=lengths)
    assert np.isnan(lp_pad[1, 3:]).all() and np.isfinite(lp_pad[1, :3]).all()
    sig_pad = sequence_signals(model, padded, lengths=lengths)
    np.testing.assert_allclose(sig_pad["log_likelihood"][1], ref[1, :3].sum(), atol=1e-4)
    # target mask selecting one position, and next-token log-probs of a prefix
    one = np.zeros(8, bool)
    one[5] = True
    np.testing.assert_allclose(sequence_signals(model, x, target_mask=one)["log_likelihood"], ref[:, 5], atol=1e-5)
    nxt = next_token_logprobs(model, x[:, :6])
    np.testing.assert_allclose(nxt[np.arange(5), x[:, 6]], ref[:, 5], atol=1e-5)
    np.testing.assert_array_equal(greedy_continue(model, x[:, :6], 1)[:, 0], nxt.argmax(axis=1))
    with pytest.warns(MemlensWarning, match="no counted token"):
        out = sequence_signals(model, x, target_mask=np.zeros(8, bool))
    assert np.isnan(out["loss"]).all()


def test_training_is_seeded_calls_back_and_leaves_global_rng_alone():
    x = _toy_tokens()
    cfg = AutoregressiveConfig(vocab_size=6, context_length=15, width=16, depth=1)
    calls = []
    state = torch.get_rng_state()

    def cb(step, model):
        calls.append(step)
        assert not model.training
        return {"ll": float(sequence_signals(model, x)["log_likelihood"].mean())}

    a = train_autoregressive(x, config=cfg, steps=20, batch_size=2, seed=5, callback=cb, eval_every=8)
    b = train_autoregressive(x, config=cfg, steps=20, batch_size=2, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert calls == [0, 8, 16, 20]
    assert [h["step"] for h in a.history] == [0, 8, 16, 20] and math.isnan(a.history[0]["train_loss"])
    steps, ll = a.curve("ll")
    np.testing.assert_array_equal(steps, [0, 8, 16, 20])
    assert ll[-1] > ll[0]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    c = train_autoregressive(x, config=cfg, steps=20, batch_size=2, seed=6)
    assert not torch.equal(next(a.model.parameters()), next(c.model.parameters()))
    # a loss on the last token only trains that token
    last = np.zeros(14, bool)
    last[-1] = True
    d = train_autoregressive(x, config=cfg, steps=60, batch_size=4, lr=1e-2, target_mask=last, seed=0)
    assert sequence_signals(d.model, x, target_mask=last)["token_accuracy"].mean() == 1.0


def test_save_load_roundtrip_gives_identical_outputs():
    model = make_autoregressive_model(AutoregressiveConfig(vocab_size=5, context_length=8, width=8, depth=1,
                                                           arch="gru"), seed=2)
    x = np.random.default_rng(2).integers(5, size=(3, 8))
    again = load_autoregressive_model(save_autoregressive_model(model))
    assert again.config == model.config
    np.testing.assert_array_equal(token_logprobs(model, x), token_logprobs(again, x))


def test_model_input_validation():
    with pytest.raises(MemlensInputError, match="n_heads"):
        AutoregressiveConfig(vocab_size=5, context_length=8, width=10, n_heads=4)
    with pytest.raises(MemlensInputError, match="arch"):
        AutoregressiveConfig(vocab_size=5, context_length=8, arch="lstm")
    model = make_autoregressive_model(AutoregressiveConfig(vocab_size=5, context_length=8, width=8, n_heads=2))
    with pytest.raises(MemlensInputError, match="vocab_size"):
        token_logprobs(model, np.full((2, 4), 5))
    with pytest.raises(MemlensInputError, match="context_length"):
        token_logprobs(model, np.zeros((2, 9), dtype=int))
    with pytest.raises(MemlensInputError, match="exactly one"):
        train_autoregressive(np.zeros((2, 4), dtype=int), steps=1)


# ------------------------------------------------------------------------------------------------ reproduction

def test_quick_reproduction_runs_and_writes_its_files(tmp_path):
    from memlens.experiments import REGISTRY, brown_next_symbol

    assert REGISTRY[brown_next_symbol.NAME] == "memlens.experiments.brown_next_symbol"
    res = brown_next_symbol.run(tmp_path, quick=True, seed=0)
    for name in ["results.json", "README.md", "training_curves.png", "model_size.png", "accuracy_by_count.png"]:
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["name"] == "brown-next-symbol" and saved["data"]["n_singletons"] > 0
    s = saved["summary"]
    widths = [str(w) for w in brown_next_symbol.SETTINGS["quick"]["widths"]]
    assert list(saved["models"]) == widths
    # the largest model fits its singletons' labels and reproduces their noise; fresh noise it cannot
    assert s["acc_train_singletons"] >= 0.9
    assert s["singleton_noise_recall"] >= 0.8
    assert s["singleton_bits_teacher_forced"] > 0.5 * s["singleton_entropy_bits"]
    assert s["control_fresh_copy_bits"] < 0.1 * s["singleton_entropy_bits"]
    assert s["acc_frequent"] > s["chance"] + 0.2
    assert s["whole_sample_target"]["bits_per_singleton"] == pytest.approx(s["singleton_entropy_bits"])
    assert s["min_pure_dp_epsilon"] == pytest.approx(s["singleton_bits_teacher_forced"] * np.log(2))
    hist = saved["models"][widths[-1]]["history"]
    assert hist[0]["singletons_greedy"]["bits_lower_bound"] < hist[-1]["singletons_greedy"]["bits_lower_bound"]
    assert "brown-next-symbol" in (tmp_path / "README.md").read_text()
    assert res["summary"]["largest_width"] == brown_next_symbol.SETTINGS["quick"]["widths"][-1]


def test_binary_case_agrees_with_the_cluster_information_bound():
    info = pytest.importorskip("memlens.measures.information")
    rng = np.random.default_rng(9)
    n, m = 40, 30
    refs = rng.integers(2, size=(n, m))
    task = NextSymbolTask(references=refs, next_symbols=np.zeros(n, dtype=np.int64), frequencies=np.full(n, 1 / n),
                          alphabet_size=2, noise=1.0)
    sample = sample_sequences(task, subpopulations=np.arange(n), seed=10)
    flips = rng.random((n, m)) < 0.08
    rec = noise_recovery(np.where(flips, 1 - sample.prefixes, sample.prefixes), sample, task)
    bound = info.information_lower_bound(rec.errors)
    assert rec.bits_pooled() == pytest.approx(bound.pooled_bits())
    np.testing.assert_allclose(rec.symbol_error, bound.error_rate)
