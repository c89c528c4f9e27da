"""Populations of byte-level language models: stacked training, weight-0 = removal, signals, shards."""
import numpy as np
import pytest
import torch

from memlens import MemlensInputError, Population
from memlens.data import make_masks
from memlens.data.text import TextDataset, encode_texts
from memlens.models.char_lm import AutoregressiveConfig, make_autoregressive_model, sequence_signals
from memlens.train.text_population import CharLMConfig, _stacked_forward, text_signals, train_text_population

TRAIN = ("the quick brown fox", "jumps over", "the lazy dog", "a stitch in time", "saves nine", "hello world",
         "lorem ipsum dolor", "carpe diem")
DS = TextDataset(name="toy", train_texts=TRAIN, test_texts=("the quick dog", "nine times"))
CFG = CharLMConfig(width=16, depth=1, n_heads=2, steps=12, batch_size=3, lr=1e-2, warmup_steps=3)


def _states(dataset, masks, *, config=CFG, seed=0, block_size=1, model_offset=0):
    states = []

    def keep(k, model):
        states.append({name: t.detach().clone() for name, t in model.state_dict().items()})

    pop = train_text_population(dataset, masks=masks, config=config, seed=seed, block_size=block_size,
                                model_offset=model_offset, on_model=keep)
    return pop, states


def test_stacked_forward_equals_each_model():
    cfg = AutoregressiveConfig(vocab_size=258, context_length=20, width=16, depth=2, n_heads=2)
    models = [make_autoregressive_model(cfg, seed=s) for s in range(3)]
    params = {name: torch.stack([dict(m.named_parameters())[name] for m in models]) for name, _ in
              models[0].named_parameters()}
    x = torch.randint(0, 258, (3, 4, 11))
    got = _stacked_forward(params, cfg, x)
    with torch.no_grad():
        ref = torch.stack([m(x[k]) for k, m in enumerate(models)])
    torch.testing.assert_close(got.detach(), ref, atol=1e-5, rtol=1e-5)


def test_weight_zero_equals_removal():
    """Masking document 2 out trains the same model as deleting it from the corpus (same seed)."""
    mask = np.ones((1, DS.n_train), dtype=bool)
    mask[0, 2] = False
    # document 2 is among the longest: deleting it changes the corpus's padded width too
    _, (masked,) = _states(DS, mask)
    keep = np.flatnonzero(mask[0])
    _, (deleted,) = _states(DS.subset(train_index=keep), np.ones((1, keep.size), dtype=bool))
    for name in masked:
        torch.testing.assert_close(masked[name], deleted[name], atol=0, rtol=0)
    # and a model that did see it differs
    _, (full,) = _states(DS, np.ones((1, DS.n_train), dtype=bool))
    assert not torch.equal(full["head.weight"], masked["head.weight"])


def _close(a, b, width=16):
    """Parameters agree up to rounding, except the attention key bias: it has an exactly zero gradient (softmax
    is invariant to adding q.b_k to a row of scores), so Adam turns rounding noise in it into +-lr steps that
    differ between two summation orders without changing the function."""
    for name in a:
        x, y = a[name].clone(), b[name].clone()
        if name.endswith("qkv.bias"):
            x[width:2 * width] = y[width:2 * width] = 0
        torch.testing.assert_close(x, y, atol=2e-4, rtol=1e-4)


def test_stacked_block_matches_one_at_a_time_and_removal():
    masks = make_masks(4, DS.n_train, p=0.5, seed=2, balanced=True)
    pop1, s1 = _states(DS, masks, block_size=1)
    pop4, s4 = _states(DS, masks, block_size=4)
    for a, b in zip(s1, s4):
        _close(a, b)
    for split in ("train", "test"):
        for name in ("loss", "log_likelihood", "token_accuracy"):
            np.testing.assert_allclose(pop1.signal(split, name), pop4.signal(split, name), atol=2e-3)
    # weight 0 = removal inside a stacked block (up to rounding): row 0 without its first OUT document
    j = int(np.flatnonzero(~masks[0])[0])
    keep = np.delete(np.arange(DS.n_train), j)
    _, s_del = _states(DS.subset(train_index=keep), masks[:, keep], block_size=4)
    _close(s4[0], s_del[0])


def test_one_model_equals_train_autoregressive():
    """The population trainer (per-model Adam, clipping, warmup + cosine schedule, minibatch order) is the
    reference trainer ``train_autoregressive`` with ``torch.optim.Adam`` on the model's documents."""
    from memlens._random import model_seeds
    from memlens.train.autoregressive import train_autoregressive

    mask = np.zeros((1, DS.n_train), dtype=bool)
    mask[0, [0, 2, 3, 5, 6]] = True
    _, (got,) = _states(DS, mask, seed=4)
    tok, ln = encode_texts([DS.train_texts[i] for i in np.flatnonzero(mask[0])])
    run = train_autoregressive(tok, lengths=ln, config=CFG.model_config(DS.max_tokens()), steps=CFG.steps,
                               batch_size=CFG.batch_size, lr=CFG.lr, grad_clip=CFG.grad_clip, lr_schedule="cosine",
                               warmup_steps=CFG.warmup_steps, seed=int(model_seeds(4, 1)[0]))
    ref = run.model.state_dict()
    _close(got, ref)


def test_population_signals_match_sequence_signals():
    masks = make_masks(3, DS.n_train, p=0.5, seed=0, balanced=True)
    models = []
    pop = train_text_population(DS, masks=masks, config=CFG, block_size=3,
                                on_model=lambda k, m: models.append(m))
    assert isinstance(pop, Population) and pop.n_models == 3
    assert pop.seeds.tolist() == __import__("memlens")._random.model_seeds(0, 3).tolist()
    for split, texts in (("train", DS.train_texts), ("test", DS.test_texts)):
        tok, ln = encode_texts(texts, max_len=DS.max_tokens())
        for k, model in enumerate(models):
            ref = sequence_signals(model, tok, lengths=ln)
            np.testing.assert_allclose(pop.signal(split, "loss")[k], ref["loss"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(pop.signal(split, "token_accuracy")[k], ref["token_accuracy"], atol=1e-7)
            np.testing.assert_allclose(pop.signal(split, "log_likelihood")[k], ref["log_likelihood"] / (ln - 1),
                                       rtol=1e-5, atol=1e-6)
    # mean log-likelihood is minus the loss; accuracy in [0, 1]
    np.testing.assert_allclose(pop.signal("train", "log_likelihood"), -pop.signal("train", "loss"))
    acc = pop.signal("test", "token_accuracy")
    assert acc.min() >= 0 and acc.max() <= 1
    assert pop.provenance["dataset_fingerprint"] == DS.fingerprint()
    assert pop.provenance["model"]["context_length"] == DS.max_tokens()


def test_text_signals_equal_padded_evaluation():
    model = make_autoregressive_model(AutoregressiveConfig(vocab_size=258, context_length=64, width=16, depth=1,
                                                           n_heads=2), seed=5)
    texts = ["short", "a much longer document here", "mid length", "x"]
    tok, ln = encode_texts(texts, max_len=40)
    got = text_signals(model, tok, ln, batch_size=2)
    ref = sequence_signals(model, tok, lengths=ln)
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(got["token_accuracy"], ref["token_accuracy"])


def test_shards_concatenate_to_full_run():
    masks = make_masks(4, DS.n_train, p=0.5, seed=5, balanced=True)
    full = train_text_population(DS, masks=masks, config=CFG, seed=7, block_size=1)
    a = train_text_population(DS, masks=masks[:2], config=CFG, seed=7, block_size=1)
    b = train_text_population(DS, masks=masks[2:], config=CFG, seed=7, model_offset=2, block_size=1)
    both = Population.concat([a, b])
    np.testing.assert_array_equal(both.seeds, full.seeds)
    np.testing.assert_array_equal(both.signal("train", "loss"), full.signal("train", "loss"))


def test_on_model_extra_signals_and_errors():
    masks = make_masks(2, DS.n_train, p=0.5, seed=1, balanced=True)
    pop = train_text_population(DS, masks=masks, config=CFG,
                                on_model=lambda k, m: {"canary": {"exposure": np.array([k, 10.0 + k])}})
    np.testing.assert_array_equal(pop.signal("canary", "exposure"), [[0, 10], [1, 11]])
    with pytest.raises(MemlensInputError, match="same splits and names"):
        train_text_population(DS, masks=masks, config=CFG,
                              on_model=lambda k, m: {"canary": {f"e{k}": np.zeros(2)}})
    with pytest.raises(MemlensInputError, match="already has"):
        train_text_population(DS, masks=masks, config=CFG, on_model=lambda k, m: {"train": {"loss": np.zeros(8)}})


def test_input_errors():
    masks = np.ones((2, DS.n_train), dtype=bool)
    with pytest.raises(MemlensInputError, match="TextDataset"):
        train_text_population(TRAIN, masks=masks)
    with pytest.raises(MemlensInputError, match="masks"):
        train_text_population(DS, masks=masks[:, :3], config=CFG)
    bad = masks.copy()
    bad[1] = False
    with pytest.raises(MemlensInputError, match=r"rows \[1\] are all False"):
        train_text_population(DS, masks=bad, config=CFG)
    with pytest.raises(MemlensInputError, match="context_length=8 is shorter than the longest document"):
        train_text_population(DS, masks=masks, config=CharLMConfig(context_length=8, width=16, n_heads=2))
    with pytest.raises(MemlensInputError, match="width must be divisible"):
        CharLMConfig(width=10, n_heads=4)
    with pytest.raises(MemlensInputError, match="lr_schedule"):
        CharLMConfig(lr_schedule="linear")
    assert CharLMConfig(epochs=2.0, batch_size=4).n_steps(10) == 5
    assert CharLMConfig(steps=7).n_steps(10) == 7


def test_gru_population_trains_one_at_a_time():
    cfg = CharLMConfig(arch="gru", width=16, depth=1, steps=10, batch_size=4, lr=1e-2, warmup_steps=2)
    masks = make_masks(2, DS.n_train, p=0.5, seed=0, balanced=True)
    pop = train_text_population(DS, masks=masks, config=cfg, block_size=8)
    assert pop.provenance["block_size"] == 1
    assert np.all(np.isfinite(pop.signal("train", "loss")))
    # it learned something: training loss below the uniform-byte baseline log(258)
    assert pop.signal("train", "loss").mean() < np.log(258)


def test_train_population_picks_the_trainer_of_the_data_kind():
    """A TextDataset's default trainer is char-lm; a feature-array trainer named for it is refused by name."""
    from memlens.data import text_dataset_from_texts
    from memlens.train import train_population

    ds = text_dataset_from_texts([f"document {i}" for i in range(8)], name="t", test_texts=["test 0", "test 1"])
    with pytest.raises(MemlensInputError, match="trains on feature arrays"):
        train_population(ds, model="logreg", masks=np.ones((2, ds.n_train), dtype=bool), seed=0)
