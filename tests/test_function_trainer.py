"""Any training function as a population (memlens.train.function): one fit call per model, the standard signals,
the same run directory as the built-in models."""
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from memlens import MemlensInputError
from memlens.cli import main
from memlens.data import load_dataset, make_masks
from memlens.train import FitFunction, train_population

FIT_FILE = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


def fit(X, y, seed):
    model = LogisticRegression(C=1.0, max_iter=500, random_state=seed % 2**32).fit(X, y)
    return model.predict_proba


def bad_shape(X, y, seed):
    return lambda Z: np.zeros((len(Z), 3))


def fails(X, y, seed):
    raise ValueError("no data")


def no_predict(X, y, seed):
    return 42
'''


def sk_fit(X, y, seed):
    model = LogisticRegression(C=1.0, max_iter=500, random_state=seed % 2**32).fit(X.astype(np.float64), y)
    return lambda Z: model.predict_proba(Z.astype(np.float64))


@pytest.fixture(scope="module")
def small():
    d = load_dataset("digits")
    return d.subset(train_index=np.arange(150), test_index=np.arange(40))


def test_function_population_equals_the_sklearn_reference_path(small):
    """fit returning predict_proba of a scikit-learn model gives the signals of the sklearn backend with the same
    estimator, seeds and raw features (fit gets float32 rows; this one computes in float64, as the backend does)."""
    masks = make_masks(3, small.n_train, p=0.7, seed=0)
    pop = train_population(small, model=FitFunction(sk_fit, output="proba"), masks=masks, seed=4)
    ref = train_population(small, model=LogisticRegression(C=1.0, max_iter=500), backend="sklearn", masks=masks,
                           seed=4)
    for split in ("train", "test"):
        for name in ("logit", "loss", "correct"):
            np.testing.assert_allclose(pop.signal(split, name), ref.signal(split, name), rtol=1e-6, atol=1e-6)
    rec = pop.provenance["model"]
    assert rec["name"] == "function" and rec["fit"].endswith(":sk_fit") and rec["output"] == "proba"


def test_bad_training_functions_get_one_line(small, tmp_path):
    path = tmp_path / "train.py"
    path.write_text(FIT_FILE)
    masks = np.ones((2, small.n_train), dtype=bool)
    for func, msg in (("bad_shape", "shape \\(rows, n_classes\\)"), ("fails", "fit failed for model 0"),
                      ("no_predict", "must return a function")):
        with pytest.raises(MemlensInputError, match=msg):
            train_population(small, model=FitFunction(f"{path}:{func}"), masks=masks, seed=0)
    with pytest.raises(MemlensInputError, match="output must be"):
        FitFunction(sk_fit, output="labels")


def test_audit_of_a_training_function_file(data_file, tmp_path):
    path = tmp_path / "train.py"
    path.write_text(FIT_FILE)
    out = tmp_path / "run"
    assert main(["audit", "--data", str(data_file), "--model", f"fit:{path}:fit", "--model-param", "output=proba",
                 "--models", "4", "--shard-size", "2", "--attack-targets", "2", "--out", str(out),
                 "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["model_config"]["name"] == "function" and s["model_config"]["output"] == "proba"
    assert s["test_accuracy"] > 0.8 and (out / "report.html").exists()
