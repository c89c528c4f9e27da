"""Text canaries and exposure (Carlini et al. 2019, "The Secret Sharer")."""
import math

import numpy as np
import pytest
from scipy import special, stats

from memlens._validation import MemlensInputError, MemlensWarning
from memlens.data import CanaryFormat, TextCanarySet, insert_text_canaries, make_text_canaries
from memlens.data.text import VOCAB_SIZE, encode_texts
from memlens.measures import (
    canary_exposure,
    exposure_by_rank,
    exposure_extrapolated,
    secret_log_perplexity,
    space_log_perplexity,
)
from memlens.measures.exposure import skewnorm_log2_cdf
from memlens.models.char_lm import AutoregressiveConfig, token_logprobs
from memlens.train.autoregressive import train_autoregressive

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had "
         "by").split()


def filler_corpus(n=150, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(n)]


def train_char_model(texts, seed=0):
    tokens, lengths = encode_texts(texts)
    cfg = AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=48, width=32, depth=1, n_heads=4)
    return train_autoregressive(tokens, config=cfg, lengths=lengths, steps=120, batch_size=64, lr=1e-2,
                                seed=seed).model


@pytest.fixture(scope="module")
def trained():
    """A model given canary 1 twenty times (canary 0 never), and one trained on the same corpus without it."""
    fmt = CanaryFormat("my PIN is {secret}", alphabet="0123456789", length=4)
    canaries = make_text_canaries(fmt, n_canaries=2, repetitions=[0, 20], seed=1)
    filler = filler_corpus()
    texts, _ = insert_text_canaries(filler, canaries, seed=2)
    return fmt, canaries, train_char_model(texts), train_char_model(filler)


# ---------------------------------------------------------------------------------------------------------------
# canary formats and insertion
# ---------------------------------------------------------------------------------------------------------------

def test_format_space_and_indexing():
    fmt = CanaryFormat("call {secret} now", alphabet="abc", length=3)
    assert fmt.space_size == 27 and fmt.prefix == "call " and fmt.suffix == " now"
    assert fmt.render("cab") == "call cab now"
    space = fmt.enumerate()
    assert space[:4] == ("aaa", "aab", "aac", "aba") and space[-1] == "ccc" and len(set(space)) == 27
    # "cab" = 2*9 + 0*3 + 1
    assert fmt.index_of(["cab"]).tolist() == [19]
    assert fmt.secrets_at(fmt.index_of(space)) == space
    assert fmt.single_byte and not CanaryFormat(alphabet="äb", length=2).single_byte


@pytest.mark.parametrize("kwargs, word", [
    ({"template": "no field here"}, "template"),
    ({"template": "{secret} and {secret}"}, "template"),
    ({"alphabet": "aa"}, "distinct"),
    ({"alphabet": "a"}, "alphabet"),
    ({"length": 0}, "length"),
])
def test_format_validation(kwargs, word):
    with pytest.raises(MemlensInputError, match=word):
        CanaryFormat(**kwargs)


def test_render_refuses_secret_outside_space():
    fmt = CanaryFormat()
    for bad in ("123", "12a4", 1234):
        with pytest.raises(MemlensInputError, match="secret"):
            fmt.render(bad)


def test_sample_secrets_distinct_uniform_and_excluding():
    fmt = CanaryFormat("x{secret}", alphabet="ab", length=3)
    assert sorted(fmt.sample_secrets(8, seed=0)) == sorted(fmt.enumerate())
    with pytest.raises(MemlensInputError, match="n must be <="):
        fmt.sample_secrets(9, seed=0)
    draws = fmt.sample_secrets(8000, seed=3, replace=True)
    counts = np.bincount(fmt.index_of(draws), minlength=8)
    assert stats.chisquare(counts).pvalue > 1e-3          # uniform over R
    kept = fmt.sample_secrets(500, seed=4, replace=True, exclude=["aaa", "bbb"])
    assert not {"aaa", "bbb"} & set(kept)
    assert fmt.sample_secrets(5, seed=7) == fmt.sample_secrets(5, seed=7)


def test_make_and_insert_canaries():
    fmt = CanaryFormat()
    can = make_text_canaries(fmt, n_canaries=3, repetitions=[0, 1, 4], seed=0)
    assert len(set(can.secrets)) == 3 and can.texts == tuple(fmt.render(s) for s in can.secrets)
    assert can.n_copies == 5
    docs = [f"doc {i}" for i in range(20)]
    texts, copy_of = insert_text_canaries(docs, can, seed=1)
    assert len(texts) == 25 and copy_of.shape == (25,)
    assert [t for t, c in zip(texts, copy_of) if c < 0] == docs              # originals keep their order
    assert np.bincount(copy_of[copy_of >= 0], minlength=3).tolist() == [0, 1, 4]
    assert all(texts[j] == can.texts[c] for j, c in enumerate(copy_of) if c >= 0)
    again, copy_again = insert_text_canaries(docs, can, seed=1)
    assert again == texts and np.array_equal(copy_again, copy_of)
    positions = {tuple(np.flatnonzero(insert_text_canaries(docs, can, seed=s)[1] >= 0)) for s in range(6)}
    assert len(positions) > 1
    with pytest.raises(MemlensInputError, match="repetitions"):
        make_text_canaries(fmt, n_canaries=2, repetitions=[1, 2, 3])
    with pytest.raises(MemlensInputError, match="distinct"):
        TextCanarySet(format=fmt, secrets=("1111", "1111"), repetitions=np.array([1, 1]))


# ---------------------------------------------------------------------------------------------------------------
# exposure formulas
# ---------------------------------------------------------------------------------------------------------------

def test_exposure_by_rank_hand_table():
    # |R| = 5 candidates with log-perplexities 1, 2, 2, 3, 5 (the canaries are among them).
    cand = np.array([3.0, 2.0, 5.0, 1.0, 2.0])
    exposure, rank = exposure_by_rank([1.0, 2.0, 3.0, 5.0], cand)
    # 1 is first; the two 2's occupy positions 2 and 3: mid-rank 2.5; 3 is fourth; 5 is last
    assert rank.tolist() == [1.0, 2.5, 4.0, 5.0]
    np.testing.assert_allclose(exposure, [math.log2(5), 1.0, math.log2(5 / 4), 0.0], atol=1e-12)


def test_nan_scores_give_nan_exposure_with_a_warning():
    with pytest.warns(MemlensWarning, match="NaN"):
        exposure, rank = exposure_by_rank([1.0, np.nan], [1.0, 2.0, 3.0])
    assert exposure[0] == pytest.approx(math.log2(3)) and np.isnan(exposure[1]) and np.isnan(rank[1])
    with pytest.warns(MemlensWarning, match="diverged"):
        exposure, _ = exposure_by_rank([1.0], [1.0, np.nan])
    assert np.isnan(exposure).all()
    with pytest.warns(MemlensWarning, match="diverged"):
        exposure, _ = exposure_extrapolated([1.0], np.full(30, np.nan))
    assert np.isnan(exposure).all()


def test_exposure_by_rank_sampled_candidates():
    # |R| = 10, a sample of m = 4 other candidates: rank = 1 + 9 (#lower + #tied / 2) / 4
    exposure, rank = exposure_by_rank([2.5, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0], space_size=10)
    assert rank.tolist() == [1 + 9 * 2 / 4, 1 + 9 * 1.5 / 4, 1.0]
    np.testing.assert_allclose(exposure, np.log2(10 / rank))
    with pytest.raises(MemlensInputError, match="space_size"):
        exposure_by_rank([1.0], [1.0, 2.0], space_size=1)


def test_skewnorm_log2_cdf_far_tail():
    # a = 0 is the normal distribution, whose log-CDF scipy computes accurately in the tail
    z = np.array([-3.0, -20.0, -45.0])
    np.testing.assert_allclose(skewnorm_log2_cdf(z, 0.0, 0.0, 1.0), special.log_ndtr(z) / math.log(2), rtol=1e-7)
    # a = 1: F(z) = Phi(z)^2 (Owen's identity)
    np.testing.assert_allclose(skewnorm_log2_cdf(z, 1.0, 0.0, 1.0), 2 * special.log_ndtr(z) / math.log(2),
                               rtol=1e-7)
    # location and scale
    np.testing.assert_allclose(skewnorm_log2_cdf(np.array([7.0 - 2 * 30]), 1.0, 7.0, 2.0),
                               2 * special.log_ndtr(-30.0) / math.log(2), rtol=1e-7)


def test_exposure_extrapolated_recovers_known_skewnorm():
    a, loc, scale = -3.0, 60.0, 12.0
    sample = stats.skewnorm.rvs(a, loc, scale, size=20000, random_state=np.random.default_rng(0))
    points = np.array([30.0, 45.0, 55.0])
    exposure, params = exposure_extrapolated(points, sample)
    truth = -stats.skewnorm.logcdf(points, a, loc, scale) / math.log(2)
    # the MLE from 20k draws pins the CDF at these points to within a few percent: well under 0.2 bits
    np.testing.assert_allclose(exposure, truth, atol=0.2)
    exact, _ = exposure_extrapolated(points, None, params=(a, loc, scale))
    np.testing.assert_allclose(exact, truth, rtol=1e-9)
    with pytest.raises(MemlensInputError, match="at least 20"):
        exposure_extrapolated([1.0], np.arange(5.0))


# ---------------------------------------------------------------------------------------------------------------
# exposure of a trained model
# ---------------------------------------------------------------------------------------------------------------

def test_secret_log_perplexity_is_the_sum_of_secret_token_logprobs(trained):
    fmt, canaries, model, _ = trained
    secrets = ["0000", "4271", canaries.secrets[1]]
    tokens, lengths = encode_texts([fmt.render(s) for s in secrets])
    lp = token_logprobs(model, tokens, lengths=lengths)
    start = len(fmt.prefix)          # lp[:, t] predicts token t + 1; the secret is tokens 1 + len(prefix) ...
    hand = -lp[:, start:start + 4].sum(axis=1) / math.log(2)
    # the model computes in float32: sequences of other lengths (here with EOS) round differently, ~1e-7 relative
    np.testing.assert_allclose(secret_log_perplexity(model, fmt, secrets), hand, rtol=1e-5)


def test_space_scoring_in_one_pass_matches_per_secret_scoring(trained):
    fmt, _, model, _ = trained
    space = space_log_perplexity(model, fmt)
    assert space.shape == (10_000,)
    idx = np.random.default_rng(0).choice(10_000, size=300, replace=False)
    np.testing.assert_allclose(space[idx], secret_log_perplexity(model, fmt, fmt.secrets_at(idx)), rtol=1e-5)
    # a format with a suffix scored with it falls back to per-secret scoring; without it equals the prefix part
    sfx = CanaryFormat("my PIN is {secret}!", length=4)
    with_suffix = secret_log_perplexity(model, sfx, fmt.secrets_at(idx[:20]), include_suffix=True)
    assert np.all(with_suffix > space[idx[:20]])


def test_inserted_canary_is_exposed_and_unseen_ones_are_not(trained):
    fmt, canaries, model, clean = trained
    res = canary_exposure(model, canaries)
    assert res.method == "rank" and res.space_size == 10_000
    max_exposure = math.log2(10_000)
    # given 20 times: first of all 10^4 secrets
    assert res.ranks[1] == 1.0 and res.exposure[1] == pytest.approx(max_exposure)
    # never inserted: exposure of a random secret, Pr[exposure >= 7] = 2^-7
    assert res.exposure[0] < 7
    # the model trained without it ranks the canary like any other secret
    assert np.all(canary_exposure(clean, canaries).exposure < 7)
    np.testing.assert_allclose(res.exposure, max_exposure - np.log2(res.ranks))


def test_extrapolated_exposure_agrees_with_exact_rank(trained):
    fmt, canaries, model, _ = trained
    space = space_log_perplexity(model, fmt)
    exact, _ = exposure_by_rank(space, space)
    res = canary_exposure(model, canaries, method="extrapolate", n_samples=2000, seed=0)
    assert res.method == "extrapolate" and res.reference_scores.shape == (2000,)
    approx, _ = exposure_extrapolated(space, None, params=res.skewnorm_params)
    # Tolerance: from m = 2000 draws the tail probability F = 2^-e is known to a relative standard error
    # sqrt((1 - F) / (F m)), i.e. sqrt(...) / ln 2 = 0.06, 0.13, 0.26, 0.52 bits at e = 2, 4, 6, 8; the mean
    # absolute disagreement over the candidates of each exposure band must stay within about that (band's upper
    # end) error: the skew-normal may not add a misfit larger than the sampling noise it is fitted under.
    for lo, hi, tol in [(0, 2, 0.15), (2, 4, 0.25), (4, 6, 0.4), (6, 8, 0.6)]:
        sel = (exact >= lo) & (exact < hi)
        assert sel.sum() >= 50
        assert np.mean(np.abs(approx[sel] - exact[sel])) < tol, (lo, hi)
    # the inserted canary sits beyond every sample: the extrapolation still puts it near or above log2 |R|
    assert res.exposure[1] > math.log2(10_000) - 1
    assert res.exposure[0] < 7
    auto = canary_exposure(model, canaries, max_enumerate=100, n_samples=500)
    assert auto.method == "extrapolate" and auto.skewnorm_params is not None
