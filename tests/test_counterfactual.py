"""Counterfactual memorization and influence of documents (Zhang et al. 2021), and explanations."""
import string

import numpy as np
import pytest

from memlens import MemlensInputError, Population
from memlens.data import make_masks
from memlens.data.text import TextDataset, text_dataset_from_texts
from memlens.measures import memorization_from_arrays
from memlens.measures.counterfactual import (
    counterfactual_influence,
    counterfactual_memorization,
    explain_documents,
    ngram_overlap,
)
from memlens.train.text_population import CharLMConfig, train_text_population


def _hand_population():
    masks = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    acc = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.7, 0.6, 0.4], [0.3, 0.2, 0.6]])
    test = np.array([[0.5, 1.0], [0.1, 0.0], [0.6, 1.0], [0.2, 0.0]])
    return Population(masks=masks, signals={"train": {"token_accuracy": acc, "loss": -np.log(acc)},
                                            "test": {"token_accuracy": test}})


def test_counterfactual_memorization_by_hand():
    pop = _hand_population()
    res = counterfactual_memorization(pop)
    # doc 0: IN models 0, 2 -> (0.9 + 0.7)/2 = 0.8; OUT models 1, 3 -> (0.1 + 0.3)/2 = 0.2
    # doc 1: IN 1, 2 -> 0.7; OUT 0, 3 -> 0.2.  doc 2: IN 0, 1, 3 -> 1.6/3; OUT 2 -> 0.4
    np.testing.assert_allclose(res.scores, [0.6, 0.5, 1.6 / 3 - 0.4], rtol=1e-6)
    np.testing.assert_allclose(res.stderr[0], np.sqrt(0.02 / 2 + 0.02 / 2), rtol=1e-5)
    assert np.isnan(res.stderr[2])  # one OUT model: no variance
    ll = counterfactual_memorization(pop, signal="loss")  # negated: lower loss = better fit
    np.testing.assert_allclose(ll.scores, memorization_from_arrays(pop.masks, np.log(pop.signal("train",
                                                                   "token_accuracy"))).scores, rtol=1e-5)
    with pytest.raises(MemlensInputError, match=r"signal 'bleu' is not in.*'loss', 'token_accuracy'"):
        counterfactual_memorization(pop, signal="bleu")


def test_counterfactual_influence_by_hand():
    pop = _hand_population()
    res = counterfactual_influence(pop, top_k=2, threshold=0.5, return_matrix=True)
    # train doc 0 on test doc 1: IN models 0, 2 -> 1.0; OUT 1, 3 -> 0.0
    assert res.matrix.shape == (2, 3)
    np.testing.assert_allclose(res.matrix[:, 0], [0.55 - 0.15, 1.0])
    np.testing.assert_allclose(res.matrix[:, 2], [(0.5 + 0.1 + 0.2) / 3 - 0.6, 1 / 3 - 1.0])
    assert res.top_index[0].tolist() == [1, 0]
    # on the train split the diagonal is the memorization
    diag = counterfactual_influence(pop, split="train", return_matrix=True).matrix.diagonal()
    np.testing.assert_allclose(diag, counterfactual_memorization(pop).scores, rtol=1e-6)
    with pytest.raises(MemlensInputError, match="'canary' split"):
        counterfactual_influence(pop, split="canary")


def test_duplicated_document_not_memorized_unique_documents_are():
    """Zhang et al. 2021 §4: a document the models see through its copies has counterfactual memorization ~0;
    unpredictable unique documents the models fit have large memorization."""
    rng = np.random.default_rng(0)
    letters = list(string.ascii_lowercase)
    unique = ["".join(rng.choice(letters, 10)) for _ in range(12)]
    dup = "the cat sat on the mat"
    ds = TextDataset(name="toy", train_texts=tuple(unique + [dup] * 6),
                     test_texts=tuple("".join(rng.choice(letters, 10)) for _ in range(4)))
    cfg = CharLMConfig(width=32, depth=1, n_heads=2, steps=120, batch_size=64, lr=0.02, warmup_steps=5)
    masks = make_masks(8, ds.n_train, p=0.5, seed=1, balanced=True)
    pop = train_text_population(ds, masks=masks, config=cfg, block_size=8)
    res = counterfactual_memorization(pop, signal="token_accuracy")
    u, d = slice(0, 12), slice(12, 18)
    # the models fit their unique documents and cannot predict the others
    assert res.mean_in[u].mean() > 0.7 and res.mean_out[u].mean() < 0.3
    assert np.all(res.scores[u] > 4 * res.stderr[u]) and res.scores[u].mean() > 0.5
    # the duplicated document: within 4 standard errors of 0, or one predicted token of 23 (0.043) when every
    # model predicts it perfectly (zero variance)
    assert np.all(np.abs(res.scores[d]) <= 4 * res.stderr[d] + 1 / 23)
    assert res.mean_out[d].mean() > 0.9  # seen through the copies
    ll = counterfactual_memorization(pop, signal="log_likelihood")
    assert np.all(ll.scores[u] > 4 * ll.stderr[u])
    assert np.abs(ll.scores[d]).max() < 0.1 * ll.scores[u].min()
    # explanations: the copies are found as duplicates of each other
    exp = explain_documents(ds, res, top=18)
    assert set(exp.index[:12].tolist()) == set(range(12))  # unique documents rank first
    for r in range(12, 18):
        assert any(why.startswith("duplicate of training document 1") for why in exp.reasons[r])
    # influence of a unique document on held-out random strings is small
    infl = counterfactual_influence(pop, return_matrix=True)
    assert np.abs(infl.matrix).max() < 0.3


def test_explain_documents_finds_planted_duplicates():
    base = [f"fortune number {w} says {v}" for w, v in zip(["one", "two", "three", "four", "five", "six", "seven"],
                                                            ["hello", "goodbye", "maybe", "never", "always",
                                                             "soon", "later"])]
    planted = "A penny saved is a penny earned, said the old man."
    near = "A penny saved is a penny earned, said the old woman."
    raw = base + [planted, planted + "  ", "  " + planted, near, "ΣΦΨ ☃ symbols ★★★ %%% ###"]
    ds = text_dataset_from_texts(raw, test_texts=["held out"])
    assert ds.n_train == 10  # the three spellings of the planted fortune are one document
    exp = explain_documents(ds)
    i = ds.train_texts.index(planted)
    j = ds.train_texts.index(near)
    r_i, r_j = int(np.flatnonzero(exp.index == i)[0]), int(np.flatnonzero(exp.index == j)[0])
    assert exp.duplicate_count[r_i] == 3
    assert any("occurs 3 times in the raw corpus" in w for w in exp.reasons[r_i])
    assert exp.neighbour[r_i] == j and exp.neighbour[r_j] == i
    assert exp.overlap[r_i] > 0.8 and any(w.startswith(f"near-duplicate of training document {j}")
                                          for w in exp.reasons[r_i])
    r_k = ds.n_train - 1  # the symbol document, last in corpus order
    assert ds.train_texts[exp.index[r_k]].startswith("ΣΦΨ")
    assert "Σ" in exp.rare_chars[r_k] and any("rare in the corpus" in w for w in exp.reasons[r_k])
    assert any(w.startswith("mostly symbols") for w in exp.reasons[r_k])
    assert exp[i]["duplicate_count"] == 3 and exp.reason_text(i).startswith("occurs 3 times")
    assert exp.reason_text(10**6) == ""
    rows = exp.rows(top=2)
    assert len(rows) == 2 and set(rows[0]) >= {"index", "reasons", "overlap", "duplicate_count"}
    assert np.isnan(exp.correlations["overlap"])  # no scores given
    # with scores that follow the duplicate count, the correlation says so
    scores = ds.train_counts.astype(float) + np.linspace(0, 0.1, ds.n_train)
    assert explain_documents(ds, scores).correlations["duplicate_count"] > 0.3
    with pytest.raises(MemlensInputError, match="one value per training document"):
        explain_documents(ds, np.zeros(ds.n_train + 1))
    with pytest.raises(MemlensInputError, match="top= needs scores"):
        explain_documents(ds, top=3)


def test_ngram_overlap_matches_brute_force():
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(40)]

    def grams(t, n):
        k = " ".join(t.lower().split())
        return {k[i:i + n] for i in range(len(k) - n + 1)} if len(k) >= n else {k}

    for n in (3, 8):
        got, nb = ngram_overlap(texts, n=n, chunk_size=7)
        for i, t in enumerate(texts):
            gi = grams(t, n)
            shared = [len(gi & grams(u, n)) if j != i else -1 for j, u in enumerate(texts)]
            best = int(np.argmax(shared))
            assert got[i] == pytest.approx(shared[best] / len(gi))
            if shared[best] > 0:
                assert nb[i] == best  # ties resolved to the lowest index, as argmax does
            else:
                assert nb[i] == -1 and got[i] == 0
    sub, _ = ngram_overlap(texts, n=3, index=[5, 1])
    np.testing.assert_allclose(sub, ngram_overlap(texts, n=3)[0][[5, 1]])
