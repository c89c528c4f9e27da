"""Extraction: decoding, discoverable and approximate memorization, canary extraction, ranking attack."""
import math
import warnings
import zlib

import numpy as np
import pytest
import torch
from scipy import stats

from memlens._validation import MemlensInputError, MemlensWarning
from memlens.attacks import (
    approximate_memorization,
    bleu,
    canary_extraction,
    continuations,
    discoverable_memorization,
    edit_similarity,
    generate_samples,
    ranking_attack,
    sample_continue,
    search_secrets,
    verbatim_matches,
    zlib_entropy,
)
from memlens.data import CanaryFormat, insert_text_canaries, make_text_canaries
from memlens.data.text import BOS, EOS, VOCAB_SIZE, encode_texts
from memlens.measures import canary_exposure, space_log_perplexity
from memlens.models.char_lm import AutoregressiveConfig, make_autoregressive_model, token_logprobs
from memlens.train.autoregressive import train_autoregressive

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had "
         "by").split()


def constant_model(*, favourite=None):
    """A byte-level model whose next-token distribution ignores the context: uniform over all 258 tokens, or
    (``favourite``) almost surely that token."""
    cfg = AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=64, width=8, depth=1, n_heads=2)
    model = make_autoregressive_model(cfg, seed=0)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        if favourite is not None:
            model.head.bias[favourite] = 50.0
    return model.eval()


def levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
    return d[len(b)]


@pytest.fixture(scope="module")
def trained():
    """A model given canary 1 twenty times (canary 0 never), and one trained on the same corpus without it."""
    rng = np.random.default_rng(0)
    filler = [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(150)]
    fmt = CanaryFormat("my PIN is {secret}", alphabet="0123456789", length=4)
    canaries = make_text_canaries(fmt, n_canaries=2, repetitions=[0, 20], seed=1)
    texts, _ = insert_text_canaries(filler, canaries, seed=2)
    models = []
    for corpus in (texts, filler):
        tokens, lengths = encode_texts(corpus)
        cfg = AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=80, width=32, depth=1, n_heads=4)
        models.append(train_autoregressive(tokens, config=cfg, lengths=lengths, steps=120, batch_size=64, lr=1e-2,
                                           seed=0).model)
    return canaries, texts, filler, models[0], models[1]


# ---------------------------------------------------------------------------------------------------------------
# edit similarity, zlib
# ---------------------------------------------------------------------------------------------------------------

def test_edit_similarity_hand_cases():
    sim = edit_similarity(["kitten", "", "abc", "flaw", "same"], ["sitting", "", "", "lawn", "same"])
    np.testing.assert_allclose(sim, [1 - 3 / 7, 1.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(edit_similarity([[1, 2, 3]], [np.array([1, 3])]), [1 - 1 / 3])
    with pytest.raises(MemlensInputError, match="pair up"):
        edit_similarity(["a"], ["a", "b"])


def test_edit_similarity_matches_brute_force():
    rng = np.random.default_rng(0)
    a = ["".join(rng.choice(list("abc"), size=rng.integers(0, 9))) for _ in range(200)]
    b = ["".join(rng.choice(list("abc"), size=rng.integers(0, 9))) for _ in range(200)]
    expect = [1 - levenshtein(x, y) / max(len(x), len(y), 1) for x, y in zip(a, b)]
    np.testing.assert_allclose(edit_similarity(a, b), expect)


def test_bleu_hand_values():
    out = bleu(["aaab", "aaaa", "ab", "abc", "", ""], ["aaaa", "aaaa", "abcd", "ab", "x", ""])
    expect = [
        (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** (1 / 4),   # clipped precisions 3/4, 2/3, 1/2, 0 -> epsilon 0.1
        1.0,
        math.exp(1 - 4 / 2),                         # perfect 1- and 2-grams, brevity penalty exp(1 - 4/2)
        (2 / 3 * 1 / 2 * 0.1) ** (1 / 3),            # no brevity penalty when longer than the target
        0.0, 1.0,
    ]
    np.testing.assert_allclose(out, expect, rtol=1e-12)


def test_zlib_entropy_hand_values():
    # empty input: 2-byte header, 3-byte empty final block (padded), 4-byte Adler-32 ... = 8 bytes
    assert zlib_entropy([""]).tolist() == [8.0]
    texts = ["abcabcabcabc" * 10, "The quick brown fox"]
    assert zlib_entropy(texts).tolist() == [float(len(zlib.compress(t.encode()))) for t in texts]


def test_ranking_scores_hand_computed_with_a_uniform_model():
    model = constant_model()
    samples = ["hello hello hello hello", "Qz", ""]
    res = ranking_attack(model, samples, reference_model=constant_model())
    log_ppl = math.log(VOCAB_SIZE)                       # every token has probability 1/258
    np.testing.assert_allclose(res.log_perplexity, log_ppl, rtol=1e-6)
    np.testing.assert_allclose(res.scores["perplexity"], -log_ppl, rtol=1e-6)
    z = np.array([len(zlib.compress(s.encode())) for s in samples], dtype=float)
    np.testing.assert_allclose(res.scores["zlib"], z / log_ppl, rtol=1e-6)
    np.testing.assert_allclose(res.scores["lowercase"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(res.scores["reference"], 1.0, rtol=1e-6)
    assert res.top("zlib", 1).tolist() == [0]            # the longest text compresses to the most bytes
    assert "reference" not in ranking_attack(model, samples).scores
    with pytest.raises(MemlensInputError, match="metric"):
        res.top("nope")


# ---------------------------------------------------------------------------------------------------------------
# decoding and discoverable / approximate memorization on a model with a known output
# ---------------------------------------------------------------------------------------------------------------

def test_discoverable_and_approximate_memorization_hand_cases():
    model = constant_model(favourite=ord("a"))            # greedy and sampling both write "aaaa..."
    texts = ["xxxxaaaa", "xxxxaaab", "xxxxabbb", "xxxxaaa", "xx", "xxxxaaaazzz"]
    with pytest.warns(MemlensWarning, match="1 of 6"):
        res = continuations(model, texts, prefix_len=4, suffix_len=4)
    # "xxxxaaa": the suffix window is "aaa" + EOS
    assert res.target[3].tolist() == [97, 97, 97, EOS]
    np.testing.assert_array_equal(res.eligible, [True, True, True, True, False, True])
    np.testing.assert_allclose(res.exact, [1, 0, 0, 0, np.nan, 1])
    np.testing.assert_allclose(res.similarity, [1, 0.75, 0.25, 0.75, np.nan, 1])
    np.testing.assert_allclose(res.token_match, [1, 0.75, 0.25, 0.75, np.nan, 1])
    np.testing.assert_allclose(res.matched_prefix, [4, 3, 1, 3, np.nan, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemlensWarning)
        np.testing.assert_allclose(discoverable_memorization(model, texts, prefix_len=4, suffix_len=4),
                                   [1, 0, 0, 0, np.nan, 1])
        np.testing.assert_allclose(approximate_memorization(model, texts, prefix_len=4, suffix_len=4,
                                                            threshold=0.75), [1, 1, 0, 1, np.nan, 1])
        np.testing.assert_allclose(approximate_memorization(model, texts, prefix_len=4, suffix_len=4,
                                                            threshold=0.8), [1, 0, 0, 0, np.nan, 1])
        # BLEU of "aaaa" against "aaab": precisions 3/4, 2/3, 1/2 and a smoothed 0.1/1 -> 0.398 < 0.75
        np.testing.assert_allclose(approximate_memorization(model, texts, prefix_len=4, suffix_len=4,
                                                            similarity="bleu"), [1, 0, 0, 0, np.nan, 1])
    np.testing.assert_allclose(res.bleu[1], (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25)
    gen, tgt = res.texts()
    assert gen[0] == "aaaa" and tgt[1] == "aaab"
    with pytest.raises(MemlensInputError, match="method"):
        continuations(model, texts, method="beam")


def test_sampling_is_seeded_uniform_and_leaves_global_rng_alone():
    model = constant_model()
    prompts = np.full((400, 1), BOS)
    state = torch.random.get_rng_state()
    a = sample_continue(model, prompts, 5, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(a, sample_continue(model, prompts, 5, seed=3))
    assert not np.array_equal(a, sample_continue(model, prompts, 5, seed=4))
    counts = np.bincount(a.reshape(-1), minlength=VOCAB_SIZE)
    assert stats.chisquare(counts).pvalue > 1e-3           # 2,000 draws uniform over the 258 tokens
    top1 = sample_continue(constant_model(favourite=65), prompts[:3], 4, top_k=1, seed=0)
    assert (top1 == 65).all()
    greedy = sample_continue(model, prompts[:2], 3, temperature=0.0)
    assert greedy.shape == (2, 3)


# ---------------------------------------------------------------------------------------------------------------
# a trained model
# ---------------------------------------------------------------------------------------------------------------

def test_canary_given_many_times_is_extracted_and_unseen_is_not(trained):
    canaries, _, _, model, clean = trained
    res = canary_extraction(model, canaries)
    assert res.extracted.tolist() == [False, True]
    assert res.guesses[1] == canaries.secrets[1] and res.correct_symbols[1] == 4 and res.rate == 0.5
    res_clean = canary_extraction(clean, canaries)
    assert not res_clean.extracted.any()
    # the same through discoverable memorization with the format's prefix as the prompt (secret + EOS)
    k = len(canaries.format.prefix)
    flags = discoverable_memorization(model, canaries.texts, prefix_len=k, suffix_len=5)
    assert flags.tolist() == [0.0, 1.0]
    assert discoverable_memorization(clean, canaries.texts, prefix_len=k, suffix_len=5).tolist() == [0.0, 0.0]


def test_search_finds_the_lowest_perplexity_secrets_exactly(trained):
    canaries, _, _, model, clean = trained
    fmt = canaries.format
    for m in (model, clean):
        space = space_log_perplexity(m, fmt)
        found, bits = search_secrets(m, fmt, k=10)
        # the k smallest log-perplexities of the whole space, in order (float32 forward passes: 1e-5 relative)
        np.testing.assert_allclose(bits, np.sort(space)[:10], rtol=1e-5)
        np.testing.assert_allclose(space[fmt.index_of(found)], bits, rtol=1e-5)
    with pytest.warns(MemlensWarning, match="max_expansions"):
        found, _ = search_secrets(clean, fmt, k=5, max_expansions=3)
    assert len(found) < 5
    with pytest.raises(MemlensInputError, match="single-byte"):
        search_secrets(model, CanaryFormat(alphabet="äö", length=2))


def test_search_extraction_is_rank_at_most_n_guesses(trained):
    canaries, _, _, model, clean = trained
    for m in (model, clean):
        ranks = canary_exposure(m, canaries).ranks
        for g in (1, 3, 30):
            res = canary_extraction(m, canaries, method="search", n_guesses=g)
            assert res.extracted.tolist() == (ranks <= g).tolist()
            assert len(res.candidates) == g
    res = canary_extraction(model, canaries, method="search")
    assert res.extracted.tolist() == [False, True] and res.guesses[0] == canaries.secrets[1]


def test_ranking_attack_puts_the_memorized_canary_above_novel_text(trained):
    canaries, texts, filler, model, clean = trained
    rng = np.random.default_rng(5)
    seen = set(texts)
    novel = []
    while len(novel) < 60:
        t = " ".join(rng.choice(WORDS, size=rng.integers(3, 7)))
        if t not in seen:
            novel.append(t)
    random_bytes = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789 "), size=14)) for _ in range(20)]
    samples = novel + random_bytes + [canaries.texts[1], canaries.texts[0]]
    planted = len(samples) - 2
    res = ranking_attack(model, samples, reference_model=clean)
    for metric in ("perplexity", "zlib", "reference"):
        assert res.top(metric, 1).tolist() == [planted], metric
    # lowercasing "PIN" costs the model the memorized context: the canary ranks in the top few
    assert planted in res.top("lowercase", 5).tolist()
    # the never-inserted canary is not singled out by the reference ratio
    assert res.scores["reference"][planted + 1] < res.scores["reference"][planted]


def test_window_score_is_the_best_sliding_window(trained):
    _, texts, _, model, _ = trained
    samples = list(texts[:12]) + ["x"]
    res = ranking_attack(model, samples, window=6)
    tokens, lengths = encode_texts(samples)
    nll = -token_logprobs(model, tokens, lengths=lengths)
    for i in range(len(samples)):
        row = nll[i, :lengths[i] - 1]
        w = min(6, row.size)
        best = min(row[j:j + w].mean() for j in range(row.size - w + 1))
        assert res.window_log_perplexity[i] == pytest.approx(best, rel=1e-9)
    np.testing.assert_allclose(res.scores["window"], -res.window_log_perplexity)
    assert np.all(res.window_log_perplexity <= res.log_perplexity + 1e-9)


def test_generate_samples_and_verify_against_training_data(trained):
    canaries, texts, filler, model, _ = trained
    samples = generate_samples(model, 64, max_new=40, seed=0)
    assert len(samples) == 64 and samples == generate_samples(model, 64, max_new=40, seed=0)
    prompted = generate_samples(model, 8, prompt="my PIN", max_new=12, top_k=40, seed=1)
    assert all(s.startswith("my PIN") for s in prompted)
    # the extraction attack end to end: sampled texts ranked by perplexity, the top one verified as training data
    res = ranking_attack(model, samples)
    best = samples[res.top("perplexity", 1)[0]]
    assert verbatim_matches([best], texts, n_bytes=8).all()
    hits = verbatim_matches(samples, [canaries.texts[1]], n_bytes=len(canaries.texts[1]))
    assert hits.any()                                      # the model emits its canary unprompted
    assert not verbatim_matches(samples, [canaries.texts[0]], n_bytes=len(canaries.texts[0])).any()


def test_verbatim_matches_hand_cases():
    corpus = ["say hello world now", "abc"]
    out = verbatim_matches(["xx hello world yy", "hello", "nothing", "w nowabc"], corpus, n_bytes=8)
    assert out.tolist() == [True, False, False, False]     # windows never span two corpus documents
    assert verbatim_matches(["abc"], corpus, n_bytes=3).tolist() == [True]
