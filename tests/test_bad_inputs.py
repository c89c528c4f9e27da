"""Bad input, systematically (docs/architecture.md, "Conventions": validation at the public boundary, undefined is NaN plus a warning,
"Reliability"): a table of bad inputs across the public API, the command line and the files of a run directory.

Every case asserts the exact kind of outcome:

* API: :class:`MemlensInputError` whose message names the parameter and the bad value;
* undefined results: NaN exactly where docs/architecture.md says, plus a :class:`MemlensWarning`;
* command line: exit status 2, one ``memlens: error:`` line on stderr, no traceback, and the files of an existing
  run byte-identical afterwards;
* damaged run files: refused with a clear error and nothing changed, or detected and retrained on ``--resume`` to
  the same result as an undamaged run — never half-read.
"""
import hashlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from memlens import MemlensInputError, MemlensWarning, Population, RunDir
from memlens.cli.main import main
from memlens.data import from_arrays, load_dataset, make_masks
from memlens.evaluation import roc, tpr_at_fpr
from memlens.measures import influence, influence_from_arrays, memorization, memorization_from_arrays
from memlens.population import signals_from_logits, signals_from_proba
from memlens.train import make_model_config, train_population

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 3)).astype(np.float32)
Y = np.arange(20) % 2
DS = from_arrays(X, Y, X[:5], Y[:5])
M = make_masks(8, 20, seed=0)
POP = Population(M, {"train": {"correct": (RNG.random((8, 20)) < 0.7).astype(np.float32)},
                     "test": {"correct": (RNG.random((8, 5)) < 0.7).astype(np.float32)}})


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _with(a, i, v):
    a = np.array(a, dtype=np.float64)
    a[i] = v
    return a


# ------------------------------------------------------------------------------------------------ public API
# (id, call, parts the message must contain: the parameter's name and the bad value)
API = [
    # shapes and dtypes
    ("masks 3-d", lambda: memorization_from_arrays(np.zeros((2, 3, 4), bool), np.zeros((2, 3, 4))),
     ["masks", "2-d", "(2, 3, 4)"]),
    ("masks not boolean", lambda: memorization_from_arrays(np.full((4, 5), 0.5), np.zeros((4, 5))),
     ["masks", "boolean", "float64"]),
    ("masks no model rows", lambda: memorization_from_arrays(np.zeros((0, 5), bool), np.zeros((0, 5))),
     ["masks", "at least 1", "got 0"]),
    ("values shape mismatch", lambda: memorization_from_arrays(M, np.zeros((8, 19))),
     ["values", "(8, 20)", "(8, 19)"]),
    ("values not numeric", lambda: memorization_from_arrays(M, np.full((8, 20), "a")),
     ["values", "numeric"]),
    ("influence values 1-d", lambda: influence_from_arrays(M, np.zeros(8)), ["values", "(8,)"]),
    ("X_train 1-d", lambda: from_arrays(np.zeros(5), np.zeros(5, int)), ["X_train", "2-d", "(5,)"]),
    ("X_train strings", lambda: from_arrays(np.full((20, 3), "a"), Y), ["X_train", "numeric", "'a'"]),
    ("X_train ragged", lambda: from_arrays([[1.0, 2.0], [3.0]], [0, 1]), ["X_train", "numeric"]),
    ("X_train no features", lambda: from_arrays(np.zeros((4, 0)), np.arange(4) % 2),
     ["X_train", "feature", "(4, 0)"]),
    ("X_test other width", lambda: from_arrays(X, Y, X[:3, :2], Y[:3]), ["X_test", "features", "got 2"]),
    ("y_train 2-d", lambda: from_arrays(X, Y[:, None]), ["y_train", "1-d", "(20, 1)"]),
    ("y_train one short", lambda: from_arrays(X, Y[:-1]), ["y_train", "one label per row", "got 19"]),
    ("y_train fractional", lambda: from_arrays(X, Y + 0.5), ["y_train", "integer", "float64"]),
    ("y_train strings", lambda: from_arrays(X, np.array(["a", "b"] * 10)), ["y_train", "integer", "<U1"]),
    ("image_shape mismatch", lambda: from_arrays(X, Y, image_shape=(2, 2)), ["image_shape", "(2, 2)", "3"]),
    ("logits 2-d", lambda: signals_from_logits(np.zeros((3, 4)), np.zeros(3, int)), ["logits", "3-d", "(3, 4)"]),
    ("logits one class", lambda: signals_from_logits(np.zeros((1, 3, 1)), np.zeros(3, int)),
     ["logits", "2 classes", "(1, 3, 1)"]),
    ("y length vs logits", lambda: signals_from_logits(np.zeros((1, 3, 4)), np.array([0, 1])),
     ["y", "one label per row", "got 2"]),
    ("signals not a mapping", lambda: Population(M, [1, 2]), ["signals", "mapping", "list"]),
    ("signal strings", lambda: Population(M, {"train": {"x": np.full((8, 20), "a")}}),
     ["signals['train']['x']", "numeric"]),
    ("signal wrong model count", lambda: Population(M, {"train": {"x": np.zeros((3, 20))}}),
     ["signals['train']['x']", "n_models=8", "(3, 20)"]),
    ("seeds wrong length", lambda: Population(M, {}, seeds=np.arange(3)), ["seeds", "(8,)", "(3,)"]),
    ("labels wrong length", lambda: Population(M, {"train": {"x": np.zeros((8, 20))}}, labels={"train": [0, 1]}),
     ["labels['train']", "(20)", "got 2"]),
    ("concat non-Population", lambda: Population.concat([POP, 3]), ["pops[1]", "Population", "int"]),
    ("select out of range", lambda: POP.select([100]), ["models", "0..7", "[100]"]),
    ("measure on an array", lambda: memorization(np.zeros((8, 20))), ["pop", "Population", "ndarray"]),
    # NaN / inf
    ("values NaN", lambda: memorization_from_arrays(M, _with(np.zeros((8, 20)), (0, 0), np.nan)),
     ["values", "NaN"]),
    ("influence values inf", lambda: influence_from_arrays(M, np.full((8, 3), np.inf)), ["values", "infinite"]),
    ("X_train NaN", lambda: from_arrays(_with(X, (2, 1), np.nan), Y), ["X_train", "1 NaN", "impute"]),
    ("X_train inf", lambda: from_arrays(_with(X, (0, 0), -np.inf), Y), ["X_train", "1 NaN or infinite"]),
    ("X_train beyond float32", lambda: from_arrays(_with(X, (0, 0), 1e300), Y), ["X_train", "1 NaN or infinite"]),
    ("influence threshold NaN", lambda: influence_from_arrays(M, np.zeros((8, 3)), threshold=float("nan")),
     ["threshold", "nan"]),
    ("subset ratio NaN", lambda: make_masks(4, 10, p=float("nan")), ["p", "finite", "nan"]),
    # empty datasets, labels outside the range, single class
    ("empty training set", lambda: from_arrays(np.zeros((0, 3)), np.zeros(0, int)), ["X_train", "(0, 3)"]),
    ("negative label", lambda: from_arrays(X, Y - 1), ["y_train", ">= 0", "-1"]),
    ("label beyond the examples", lambda: from_arrays(X, np.where(Y == 1, 10**12, 0)),
     ["y_train", "1000000000000", "0..n_classes-1"]),
    ("label beyond class_names", lambda: from_arrays(X, Y, class_names=["a"]), ["class_names", "1 names"]),
    ("single class", lambda: from_arrays(X, np.zeros(20, int)), ["y_train", "2 classes", "[0]"]),
    ("label beyond logits' classes", lambda: signals_from_logits(np.zeros((1, 3, 4)), np.array([0, 1, 7])),
     ["y", "n_classes=4", "7"]),
    ("negative label for logits", lambda: signals_from_logits(np.zeros((1, 3, 4)), np.array([0, 1, -1])),
     ["y", ">= 0", "-1"]),
    ("probabilities below 0", lambda: signals_from_proba(-np.ones((1, 3, 2)), np.array([0, 1, 1])),
     ["proba", "[0, 1]", "-1"]),
    ("ROC labels not 0/1", lambda: roc([0.1, 0.2], [0, 2]), ["labels", "0/1", "[0 2]"]),
    ("audit without a test split", lambda: _audit(dataset=from_arrays(X, Y)), ["X_test", "at least 1 row"]),
    # unknown names
    ("unknown dataset", lambda: load_dataset("cifar"), ["dataset", "'cifar'", "digits"]),
    ("dataset name of wrong type", lambda: load_dataset(["digits"]), ["dataset", "['digits']"]),
    ("unknown model", lambda: train_population(DS, model="resnet", masks=M), ["model", "'resnet'", "logreg"]),
    ("unknown config field", lambda: make_model_config("logreg", epochs=3), ["epochs", "'logreg'"]),
    ("unknown signal", lambda: memorization(POP, signal="zz"), ["signal", "'zz'", "correct"]),
    ("unknown split", lambda: influence(POP, split="canary"), ["split", "'canary'"]),
    ("unknown audit model", lambda: _audit(model="resnet"), ["model", "'resnet'"]),
    # negative or absurd numbers
    ("one model", lambda: make_masks(1, 10), ["n_models", ">= 2", "got 1"]),
    ("models not an integer", lambda: make_masks(4.0, 10), ["n_models", "integer", "4.0"]),
    ("negative seed", lambda: make_masks(4, 10, seed=-1), ["seed", "-1"]),
    ("seed a string", lambda: make_masks(4, 10, seed="a"), ["seed", "'a'"]),
    ("balanced not a bool", lambda: make_masks(4, 10, balanced="yes"), ["balanced", "'yes'"]),
    ("subset ratio 1", lambda: make_masks(4, 10, p=1.0), ["p", "between 0 and 1", "1.0"]),
    ("negative top_k", lambda: influence_from_arrays(M, np.zeros((8, 3)), top_k=-1), ["top_k", ">= 0", "-1"]),
    ("chunk_size 0", lambda: influence_from_arrays(M, np.zeros((8, 3)), chunk_size=0), ["chunk_size", "got 0"]),
    ("threshold a string", lambda: influence_from_arrays(M, np.zeros((8, 3)), threshold="x"), ["threshold", "'x'"]),
    ("negative C", lambda: make_model_config("logreg", C=-1), ["C", "> 0", "-1.0"]),
    ("infinite C", lambda: make_model_config("logreg", C=float("inf")), ["C", "finite", "inf"]),
    ("FPR above 1", lambda: tpr_at_fpr([0.1, 0.2], [0, 1], fpr=2.0), ["fpr", "[0, 1]", "2.0"]),
    ("non-integer seed for training", lambda: train_population(DS, masks=M, seed=1.5), ["seed", "1.5"]),
    ("shard_size 0", lambda: _audit(shard_size=0), ["shard_size", ">= 1", "got 0"]),
    ("negative dp_epsilon", lambda: _audit(dp_epsilon=-1.0), ["dp_epsilon", "> 0", "-1.0"]),
    ("dp_delta 1", lambda: _audit(dp_epsilon=1.0, dp_delta=1.0), ["dp_delta", "< 1", "1.0"]),
    # huge values
    ("masks beyond memory", lambda: make_masks(10**12, 10**12), ["n_models", "1000000000000", "memory"]),
    ("audit models beyond memory", lambda: _audit(n_models=10**13), ["n_models", "10000000000000", "memory"]),
    ("unreachable dp_epsilon", lambda: _audit(dp_epsilon=1e308), ["dp_epsilon", "1e+308", "no privacy"]),
    ("MLP layers beyond memory", lambda: train_population(DS, model=make_model_config("mlp", hidden=(10**12,)),
                                                          masks=M), ["hidden", "(1000000000000,)", "memory"]),
    # issue 15, class 3: input that used to fail only after training
    ("image_shape negative", lambda: from_arrays(np.zeros((4, 64)), [0, 1, 0, 1], image_shape=(-8, -8)),
     ["image_shape", "(-8, -8)", "positive"]),
    ("image_shape four channels", lambda: from_arrays(np.zeros((4, 64)), [0, 1, 0, 1], image_shape=(4, 4, 4)),
     ["image_shape", "(4, 4, 4)", "1 or 3 channels"]),
    ("image_shape fractional", lambda: from_arrays(np.zeros((4, 64)), [0, 1, 0, 1], image_shape=(8.5, 8)),
     ["image_shape", "8.5", "integers"]),
    ("dp_epsilon too small to calibrate", lambda: _audit(dp_epsilon=1e-6), ["dp_epsilon", "1e-06", "too small"]),
    ("dp_epsilon tiny with a delta", lambda: _audit(dp_epsilon=1e-9, dp_delta=1e-9), ["dp_epsilon", "1e-09"]),
    ("a million classes", lambda: _audit(dataset=from_arrays(X, np.r_[Y[:-1], 999_999], X[:5], Y[:5],
                                                             class_names=[str(i) for i in range(1_000_000)])),
     ["1,000,000 classes", "GiB", "fewer classes"]),
    ("complex features", lambda: from_arrays(X + 1j, Y, X[:5], Y[:5]), ["X_train", "complex", "real"]),
    ("complex test features", lambda: from_arrays(X, Y, X[:5] * 1j, Y[:5]), ["X_test", "complex"]),
    # class 5: values reported as given
    ("label 2**64-1", lambda: from_arrays(X, np.r_[Y[:-1], 0].astype(np.uint64) + np.r_[np.zeros(19, np.uint64),
                                                                                      np.uint64(2**64 - 1)]),
     ["y_train", "18446744073709551615"]),
    ("label 1e20", lambda: from_arrays(X, np.r_[Y[:-1], 1e20].astype(float)), ["y_train", "1e+20"]),
    ("label -1e19", lambda: from_arrays(X, np.r_[Y[:-1], -1e19].astype(float)), ["y_train", "-1e+19"]),
    ("test label 2**63", lambda: from_arrays(X, Y, X[:5], np.r_[Y[:4], 0].astype(np.uint64)
                                             + np.r_[np.zeros(4, np.uint64), np.uint64(2**63)]),
     ["y_test", "9223372036854775808"]),
]


def _audit(**kw):
    """run_audit into a folder that must stay absent: every case is refused before anything is written."""
    from memlens.audits.image import run_audit

    out = _audit.out
    kw.setdefault("dataset", DS)
    run_audit(out=out, n_models=kw.pop("n_models", 4), progress=False, attacks=False, **kw)


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_api_bad_input_names_parameter_and_value(case, tmp_path):
    name, call, parts = case
    _audit.out = tmp_path / "never"
    with pytest.raises(MemlensInputError) as info:
        call()
    msg = str(info.value)
    for part in parts:
        assert part in msg, (part, msg)
    assert not _audit.out.exists()  # refused before anything was written


def test_corpus_is_large_enough():
    assert len(API) + len(NAN) + len(CLI) + len(RUN_FILES) >= 40


# ------------------------------------------------------------------------------------------------ NaN + warning
def _mem_column(all_in: bool):
    masks = make_masks(6, 5, seed=1)
    masks[:, 2] = all_in
    values = RNG.random((6, 5))
    return masks, values


def _check_mem_nan(all_in):
    masks, values = _mem_column(all_in)
    res = memorization_from_arrays(masks, values)
    assert np.isnan(res.scores[2]) and np.isnan(res.stderr[2])
    ok = np.arange(5) != 2
    assert np.all(np.isfinite(res.scores[ok]))
    # the defined scores are exactly the IN-mean minus the OUT-mean (brute force)
    for i in np.flatnonzero(ok):
        assert res.scores[i] == pytest.approx(values[masks[:, i], i].mean() - values[~masks[:, i], i].mean())


def _check_infl_nan(all_in):
    masks, _ = _mem_column(all_in)
    res = influence_from_arrays(masks, RNG.random((6, 4)), top_k=2, threshold=-np.inf, return_matrix=True)
    assert np.all(np.isnan(res.matrix[:, 2])) and np.all(np.isfinite(np.delete(res.matrix, 2, axis=1)))
    assert np.all(res.top_index[2] == -1) and np.all(np.isnan(res.top_value[2]))
    assert 2 not in res.pair_train and res.n_pairs == 4 * 4  # every defined pair passes threshold -inf


def _check_roc_nan(scores, labels):
    curve = roc(scores, labels)
    assert np.isnan(curve.auc)


def _check_logits_nan():
    """Non-finite class scores (a diverged model) give NaN signals for those pairs only."""
    z = np.log(np.array([[[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]], [[0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]]))
    z[1, 0, 2] = np.nan
    z[0, 1, 0] = np.inf
    s = signals_from_logits(z, np.array([0, 1]))
    for name in ("logit", "loss", "correct"):
        np.testing.assert_array_equal(np.isnan(s[name]), [[False, True], [True, False]])
    np.testing.assert_allclose(s["logit"][[0, 1], [0, 1]], [np.log(0.7 / 0.3), np.log(0.2 / 0.8)], rtol=1e-6)


def _check_attack_nan(attack):
    """An example IN for every model has no OUT reference: its online score is NaN, the others are defined."""
    from memlens.attacks import lira, rmia

    masks = make_masks(8, 6, seed=0)
    masks[:, 2] = True
    rng = np.random.default_rng(1)
    pop = Population(masks, {"train": {"logit": rng.normal(size=(8, 6)), "loss": rng.random((8, 6))},
                             "test": {"logit": rng.normal(size=(8, 3)), "loss": rng.random((8, 3))}})
    res = lira(pop, target=0, fix_variance=True) if attack == "lira" else rmia(pop, target=0)
    assert np.isnan(res.scores[2]) and res.n_undefined == 1
    assert np.all(np.isfinite(np.delete(res.scores, 2)))


# (id, call that must warn and return NaN where undefined)
NAN = [
    ("signals of a diverged model", lambda: _check_logits_nan()),
    ("LiRA: all-IN column", lambda: _check_attack_nan("lira")),
    ("RMIA: all-IN column", lambda: _check_attack_nan("rmia")),
    ("memorization: all-IN column", lambda: _check_mem_nan(True)),
    ("memorization: all-OUT column", lambda: _check_mem_nan(False)),
    ("influence: all-IN column", lambda: _check_infl_nan(True)),
    ("influence: all-OUT column", lambda: _check_infl_nan(False)),
    ("ROC: members only", lambda: _check_roc_nan([0.1, 0.2], [1, 1])),
    ("ROC: no scores", lambda: _check_roc_nan([], [])),
]


@pytest.mark.parametrize("case", NAN, ids=[c[0] for c in NAN])
def test_undefined_is_nan_plus_warning(case):
    _, check = case
    with pytest.warns(MemlensWarning):
        check()


# ------------------------------------------------------------------------------------------------ command line
N_MODELS, SHARD = 6, 3  # 2 shards


def _args(data_file, out, *extra):
    return ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--out", str(out), "--no-progress", "--no-attacks", *extra]


@pytest.fixture(scope="module")
def finished(data_file, tmp_path_factory):
    """One finished audit run: (run directory, its file hashes)."""
    out = tmp_path_factory.mktemp("runs") / "ref"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemlensWarning)  # few models: some examples have no OUT model
        assert main(_args(data_file, out)) == 0
    return out, _hashes(out)


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    # one line; a --resume refusal lists each differing setting on a line of its own ("  - ...") below it
    listed = "--resume refused" in lines[0] and all(ln.startswith("  - ") for ln in lines[1:])
    assert (len(lines) == 1 or listed) and lines[0].startswith("memlens: error: "), err
    assert "Traceback" not in err
    return " ".join(lines)


def _npz(tmp, data_file, name, **changes):
    d = dict(np.load(data_file))
    d.update(changes)
    path = tmp / name
    np.savez(path, **{k: v for k, v in d.items() if v is not None})
    return path


def _pickled(tmp, data_file):
    path = tmp / "pickled.npz"
    np.savez(path, X_train=np.array([{"a": 1}] * 3, dtype=object), y_train=np.zeros(3), X_test=np.zeros((1, 2)),
             y_test=np.zeros(1))
    return path


def _npy(tmp):
    path = tmp / "x.npy"
    np.save(path, np.zeros((3, 2)))
    return path


def _text(tmp, name, data: bytes):
    path = tmp / name
    path.write_bytes(data)
    return path


# (id, extra arguments from (data_file, tmp_path), parts the error line must contain). Each runs with --overwrite
# against a finished run, which must stay byte-identical.
CLI = [
    ("models huge", lambda f, t: ["--models", str(10**12)], ["--models", "1000000000000", "memory"]),
    ("models negative", lambda f, t: ["--models", "-5"], ["--models", ">= 2", "got -5"]),
    ("models not a number", lambda f, t: ["--models", "1e3"], ["--models", "'1e3'"]),
    ("shard size 0", lambda f, t: ["--shard-size", "0"], ["--shard-size", "got 0"]),
    ("subset ratio inf", lambda f, t: ["--subset-ratio", "inf"], ["--subset-ratio", "finite", "inf"]),
    ("subset ratio rounding to 0", lambda f, t: ["--subset-ratio", "1e-9"], ["--subset-ratio", "1e-09"]),
    ("dp epsilon negative", lambda f, t: ["--dp-epsilon", "-1"], ["--dp-epsilon", "> 0", "-1.0"]),
    ("dp epsilon absurd", lambda f, t: ["--dp-epsilon", "1e308"], ["--dp-epsilon", "1e+308", "no privacy"]),
    ("dp delta alone", lambda f, t: ["--dp-delta", "1e-5"], ["--dp-delta", "--dp-epsilon"]),
    ("dp delta 2", lambda f, t: ["--dp-epsilon", "1", "--dp-delta", "2"], ["--dp-delta", "2.0"]),
    ("data: plain text named .npz", lambda f, t: ["--data", str(_text(t, "t.npz", b"just text"))],
     ["--data", "t.npz", "not a zip archive", "b'just tex'"]),
    ("data: an .npy, not an .npz", lambda f, t: ["--data", str(_npy(t))], ["--data", "x.npy", "not a zip archive"]),
    ("data: pickled object arrays", lambda f, t: ["--data", str(_pickled(t, f))], ["--data", "pickled.npz"]),
    ("data: fractional labels", lambda f, t: ["--data", str(_npz(t, f, "fl.npz", y_train=np.load(f)["y_train"] + .5))],
     ["y_train", "integer", "float64"]),
    ("data: single class", lambda f, t: ["--data", str(_npz(t, f, "sc.npz", y_train=np.zeros(240, int)))],
     ["y_train", "2 classes"]),
    ("data: empty training set", lambda f, t: ["--data", str(_npz(t, f, "em.npz", X_train=np.zeros((0, 64)),
                                                                   y_train=np.zeros(0, int)))],
     ["X_train", "(0, 64)"]),
    ("data: label huge", lambda f, t: ["--data", str(_npz(t, f, "lh.npz", y_train=np.full(240, 10**12) *
                                                           (np.arange(240) % 2)))],
     ["y_train", "1000000000000"]),
    ("data: negative labels", lambda f, t: ["--data", str(_npz(t, f, "ng.npz", y_train=np.load(f)["y_train"] - 1))],
     ["y_train", ">= 0", "-1"]),
    ("data: 3-d images", lambda f, t: ["--data", str(_npz(t, f, "x3.npz", X_train=np.zeros((240, 8, 8))))],
     ["X_train", "2-d", "(240, 8, 8)"]),
    ("data: test features differ", lambda f, t: ["--data", str(_npz(t, f, "xt.npz", X_test=np.zeros((80, 10))))],
     ["X_test", "got 10"]),
    ("data: huge values", lambda f, t: ["--data", str(_npz(t, f, "hv.npz", X_train=np.full((240, 64), 1e300)))],
     ["X_train", "NaN or infinite"]),
    ("data: no test split", lambda f, t: ["--data", str(_npz(t, f, "nt.npz", X_test=np.zeros((0, 64)),
                                                              y_test=np.zeros(0, int)))],
     ["X_test", "at least 1 row"]),
    ("unknown backend", lambda f, t: ["--backend", "spark"], ["--backend", "'spark'", "ray"]),
    ("ray address without ray", lambda f, t: ["--ray-address", "127.0.0.1:1"], ["--ray-address", "127.0.0.1:1"]),
    ("ray: unreachable cluster", lambda f, t: _needs_ray("--backend", "ray", "--ray-address", "127.0.0.1:1"),
     ["--ray-address", "'127.0.0.1:1'", "reachable"]),
    ("ray: zero CPUs", lambda f, t: _needs_ray("--backend", "ray", "--ray-num-cpus", "0"), ["--ray-num-cpus", ">= 1", "got 0"]),
    ("loo with an unsupported model", lambda f, t: ["--loo", "--model", "mlp"], ["--loo", "'mlp'", "ridge"]),
    ("text file not UTF-8", lambda f, t: ["--text", str(_text(t, "latin1.txt", "caf\xe9 cr\xe8me\n".encode("latin-1")
                                                               * 5))],
     ["latin1.txt", "not UTF-8", "0xe9"]),
    ("text file missing", lambda f, t: ["--text", str(t / "nope.txt")], ["nope.txt", "does not exist"]),
    ("text audit: negative repetitions", lambda f, t: _good_text(t, "--canary-repetitions", "0,-2"),
     ["--canary-repetitions", "(0, -2)"]),
    ("text audit: repetitions not numbers", lambda f, t: _good_text(t, "--canary-repetitions", "a,b"),
     ["--canary-repetitions", "'a,b'"]),
    ("text audit: unknown architecture", lambda f, t: _good_text(t, "--arch", "lstm"), ["--arch", "'lstm'", "gru"]),
    ("text audit: negative width", lambda f, t: _good_text(t, "--width", "-1"), ["--width", ">= 1", "-1"]),
    ("text audit: canary format without a hole", lambda f, t: _good_text(t, "--canary-format", "nohole"),
     ["--canary-format", "{secret}", "'nohole'"]),
    ("text audit: empty delimiter", lambda f, t: _good_text(t, "--delimiter="), ["--delimiter", "''"]),
    ("char-lm on an .npz", lambda f, t: ["--model", "char-lm"], ["--data", "--text"]),
    ("reproduce: negative seed", lambda f, t: None, ["--seed", "-1"]),
    # issue 15, class 3: refused before the run directory is created, not after training
    ("data: image_shape negative", lambda f, t: ["--data", str(_npz(t, f, "is.npz", image_shape=np.array([-8, -8])))],
     ["image_shape", "(-8, -8)"]),
    ("data: image_shape 3-d with 4 channels",
     lambda f, t: ["--data", str(_npz(t, f, "i4.npz", image_shape=np.array([4, 4, 4])))], ["image_shape", "(4, 4, 4)"]),
    ("data: image_shape 0", lambda f, t: ["--data", str(_npz(t, f, "i0.npz", image_shape=np.array([0, 64])))],
     ["image_shape", "(0, 64)"]),
    ("dp epsilon too small", lambda f, t: ["--dp-epsilon", "1e-6"], ["--dp-epsilon", "1e-06", "too small"]),
    ("data: a million classes", lambda f, t: ["--data", str(_npz(t, f, "mc.npz", y_train=np.r_[np.load(f)["y_train"][:-1],
                                                                                              999_999],
                                                                 class_names=np.array([str(i) for i in range(1_000_000)])))],
     ["1,000,000 classes", "GiB"]),
    ("data: complex features", lambda f, t: ["--data", str(_npz(t, f, "cx.npz", X_train=np.load(f)["X_train"] + 1j))],
     ["X_train", "complex"]),
    # class 4: unbounded reads refused unread
    ("data: zip bomb", lambda f, t: ["--data", str(_bomb(t))], ["--data", "zip bomb", "X_train.npy"]),
    ("data: declared beyond memory", lambda f, t: ["--data", str(_huge_header_npz(t))], ["--data", "X_train.npy",
                                                                                          "GiB"]),
    ("data: a FIFO", lambda f, t: ["--data", str(_fifo(t, "d.npz"))], ["--data", "FIFO"]),
    ("data: /dev/zero", lambda f, t: ["--data", "/dev/zero"], ["--data", "/dev/zero", "character device"]),
    ("text: /dev/zero", lambda f, t: ["--text", "/dev/zero"], ["/dev/zero", "character device"]),
    ("text: a FIFO", lambda f, t: ["--text", str(_fifo(t, "t.txt"))], ["t.txt", "FIFO"]),
    # class 5: values reported as given
    ("data: label 2**64-1", lambda f, t: ["--data", str(_npz(t, f, "u64.npz", y_train=np.r_[np.load(f)["y_train"][:-1],
                                                                                          0].astype(np.uint64)
                                                             + np.r_[np.zeros(239, np.uint64), np.uint64(2**64 - 1)]))],
     ["y_train", "18446744073709551615"]),
    ("data: label 1e20", lambda f, t: ["--data", str(_npz(t, f, "l20.npz", y_train=np.r_[np.load(f)["y_train"][:-1],
                                                                                        1e20]))],
     ["y_train", "1e+20"]),
]


def _bomb(tmp):
    """A small .npz whose X_train inflates to about 2.4 GiB of zeros."""
    import zipfile

    path = tmp / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, shape in (("X_train", (40_000, 16_000)), ("y_train", (40_000,)), ("X_test", (10, 16_000)),
                            ("y_test", (10,))):
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
                left = int(np.prod(shape)) * 4
                chunk = b"\0" * (1 << 24)
                while left > 0:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
    return path


def _huge_header_npz(tmp):
    """An .npz whose X_train header declares 10^12 float32 (the data are absent)."""
    import zipfile

    path = tmp / "header.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, shape in (("X_train", (10**6, 10**6)), ("y_train", (10**6,)), ("X_test", (1, 10**6)),
                            ("y_test", (1,))):
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
            z.writestr(f"{name}.npy", buf.getvalue())
    return path


def _fifo(tmp, name):
    import os

    path = tmp / name
    os.mkfifo(path)
    return path


def _needs_ray(*flags):
    pytest.importorskip("ray")  # an optional extra (pip install 'memlens[ray]')
    return list(flags)


def _good_text(tmp, *flags):
    """A valid text corpus plus one bad text-audit flag: the flag must be refused before any training."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=8)) for _ in range(60)]
    return ["--text", str(_text(tmp, "good.txt", ("\n".join(lines) + "\n").encode()))] + list(flags)


@pytest.mark.parametrize("case", CLI, ids=[c[0] for c in CLI])
def test_cli_bad_input_one_line_exit_2_run_untouched(case, finished, data_file, tmp_path, capsys):
    ref, hashes = finished
    name, make, parts = case
    extra = make(data_file, tmp_path)
    if extra is None:  # the reproduce command
        argv = ["reproduce", "brown-logreg", "--quick", "--seed", "-1", "--out", str(ref)]
    else:
        argv = _args(data_file, ref, "--overwrite")  # even with --overwrite, bad input must not touch the run
        if "--data" in extra or "--text" in extra:  # replace the default --data
            i = argv.index("--data")
            del argv[i:i + 2]
        argv += extra
    msg = _one_line_error(capsys, argv)
    for part in parts:
        assert part in msg, (part, msg)
    assert _hashes(ref) == hashes


# ------------------------------------------------------------------------------------------------ damaged run files
def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _flip(p: Path):
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))


SHARDS = Path("population") / "shards"


def _manifest_keys_only(run: Path):
    (run / "manifest.json").write_text(json.dumps({"format": "memlens-run/1"}))


def _manifest_config_edited(run: Path):
    m = json.loads((run / "manifest.json").read_text())
    m["config"]["seed"] = 7
    (run / "manifest.json").write_text(json.dumps(m))


def _foreign_shard(run: Path):
    """Shard 1 replaced by a copy of shard 0 (a shard of other rows) with its own, valid record."""
    for ext in ("npz", "json"):
        shutil.copy(run / SHARDS / f"shard-00000.{ext}", run / SHARDS / f"shard-00001.{ext}")


def _pickled_population(run: Path):
    buf = io.BytesIO()
    np.savez(buf, masks=np.array([{"a": 1}], dtype=object))
    (run / "population" / "population.npz").write_bytes(buf.getvalue())


# (id, damage(run dir), outcome, parts). Outcomes: "refused" (--resume exits 2 with one line naming the problem,
# nothing changed), "retrained" (--resume detects the damage, retrains what it must and ends identical to the
# undamaged run), "load error" (Population.load / RunDir.open / load_shard raise a clear MemlensInputError).
RUN_FILES = [
    ("manifest truncated", lambda r: _truncate(r / "manifest.json"), "refused", ["manifest.json", "unreadable"]),
    ("manifest not UTF-8", lambda r: (r / "manifest.json").write_bytes(b"\xff\xfe{\x00}"), "refused",
     ["manifest.json", "unreadable"]),
    ("manifest a JSON list", lambda r: (r / "manifest.json").write_text("[1, 2]"), "refused",
     ["foreign output directory"]),
    ("manifest without its fields", _manifest_keys_only, "refused", ["manifest.json"]),
    # --resume takes the unset --seed from the (edited) manifest: the masks it draws are not the run's
    ("manifest config edited", _manifest_config_edited, "refused", ["the training-subset masks differ"]),
    ("masks.npy truncated", lambda r: _truncate(r / "masks.npy"), "retrained", []),
    ("masks.npy bit flip", lambda r: _flip(r / "masks.npy"), "retrained", []),
    ("shard truncated", lambda r: _truncate(r / SHARDS / "shard-00001.npz"), "retrained", []),
    ("shard bit flip", lambda r: _flip(r / SHARDS / "shard-00000.npz"), "retrained", []),
    ("shard record not UTF-8", lambda r: (r / SHARDS / "shard-00001.json").write_bytes(b"\xff" * 40), "retrained",
     []),
    ("shard record missing", lambda r: (r / SHARDS / "shard-00000.json").unlink(), "retrained", []),
    ("shard of other rows", _foreign_shard, "retrained", []),
    ("population.npz truncated", lambda r: _truncate(r / "population" / "population.npz"), "load error",
     ["corrupted or truncated"]),
    ("population.npz pickled", _pickled_population, "load error", ["population", "corrupted"]),
    ("masks.npy missing (open)", lambda r: (r / "masks.npy").unlink(), "open error", ["masks.npy", "damaged"]),
    ("shard truncated (load_shard)", lambda r: _truncate(r / SHARDS / "shard-00001.npz"), "shard error",
     ["shard 1", "missing or damaged", "--resume"]),
]


@pytest.mark.parametrize("case", RUN_FILES, ids=[c[0] for c in RUN_FILES])
def test_damaged_run_files(case, finished, data_file, tmp_path, capsys):
    ref, _ = finished
    name, damage, outcome, parts = case
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    damage(run)
    before = _hashes(run)
    if outcome == "refused":
        msg = _one_line_error(capsys, _args(data_file, run, "--resume"))
        for part in parts:
            assert part in msg, (part, msg)
        assert _hashes(run) == before
    elif outcome == "retrained":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)
            assert main(_args(data_file, run, "--resume")) == 0, capsys.readouterr().err
        summary = json.loads((run / "summary.json").read_text())
        assert summary["shards_trained"] >= 1 or "masks" in name
        assert (run / "examples.csv").read_bytes() == (ref / "examples.csv").read_bytes()
        assert np.array_equal(np.load(run / "masks.npy"), np.load(ref / "masks.npy"))
        opened = RunDir.open(run)
        assert opened.missing_shards() == []
        for k in range(opened.n_shards):
            np.testing.assert_array_equal(opened.load_shard(k).signal("train", "correct"),
                                          RunDir.open(ref).load_shard(k).signal("train", "correct"))
    else:
        with pytest.raises(MemlensInputError) as info:
            if outcome == "load error":
                Population.load(run / "population")
            elif outcome == "open error":
                RunDir.open(run)
            else:
                RunDir.open(run).load_shard(1)
        for part in parts:
            assert part in str(info.value), (part, str(info.value))
        assert _hashes(run) == before


def test_text_loader_refuses_non_utf8_and_empty(tmp_path):
    from memlens.data.text import load_text_dataset

    bad = _text(tmp_path, "notes.txt", b"first line\nsecond \xff line\n" * 3)
    with pytest.raises(MemlensInputError, match=r"notes\.txt.*not UTF-8.*0xff"):
        load_text_dataset(bad)
    empty = _text(tmp_path, "empty.txt", b"")
    with pytest.raises(MemlensInputError, match=r"empty\.txt.*empty"):
        load_text_dataset(empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "notes.txt"]
