"""`memlens reproduce canary-exposure --quick`: outputs, and the trends it claims (exposure rising with repetitions,
extraction above a threshold, reference canaries near the unseen-secret baseline)."""
import json
import math

import numpy as np
import pytest

from memlens.cli.main import main
from memlens.experiments import REGISTRY, get_experiment
from memlens.experiments.canary_exposure import by_repetition, extraction_threshold

MAX_BITS = math.log2(10_000)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("canary") / "quick"
    assert main(["reproduce", "canary-exposure", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_registered():
    assert REGISTRY["canary-exposure"] == "memlens.experiments.canary_exposure"
    mod = get_experiment("canary-exposure")
    assert mod.NAME == "canary-exposure" and "exposure" in mod.DESCRIPTION


def test_quick_writes_figures_readme_results(quick):
    out, r = quick
    for name in ("exposure_vs_repetitions.png", "exposure_vs_steps.png", "extraction_vs_model_size.png",
                 "README.md", "results.json"):
        assert (out / name).is_file(), name
    readme = (out / "README.md").read_text()
    assert "Exposure and extraction against repetitions" in readme and "Quick version" in readme
    assert r["quick"] is True and r["space_size"] == 10_000
    # every exposure lies in [0, log2 |R|]
    for w, m in r["models"].items():
        assert all(0 <= v <= MAX_BITS + 1e-6 for v in m["exposure_by_repetition"].values()), w


def test_exposure_rises_with_repetitions(quick):
    _, r = quick
    s = r["summary"]
    e = {int(k): v for k, v in s["exposure_by_repetition"].items()}
    reps = sorted(k for k in e if k > 0)
    # monotone up to a tolerance of 1 bit between consecutive counts, and a large overall rise
    for a, b in zip(reps, reps[1:]):
        assert e[b] >= e[a] - 1.0, e
    assert e[reps[-1]] >= e[reps[0]] + 3.0, e
    assert e[reps[-1]] >= MAX_BITS - 2.0, e          # the most repeated secret ranks (near) first
    assert s["spearman_exposure_repetitions"] > 0.6
    # never-inserted reference canaries: exposure of an unseen secret, Pr[exposure >= e] = 2^-e; with 2 of them the
    # mean exceeds 6 bits with probability below 1%
    assert e[0] < 6.0 and e[reps[-1]] > e[0] + 5.0
    # exposure grows during training for the most repeated canaries
    first, last = s["exposure_first_vs_last_checkpoint"]
    assert last[str(reps[-1])] > first[str(reps[-1])] + 3.0


def test_extraction_needs_repetitions(quick):
    _, r = quick
    for w, m in r["models"].items():
        x = {int(k): v for k, v in m["extracted_by_repetition"].items()}
        assert x[0] == 0.0, w                        # a never-seen secret is not extracted
        assert x[max(x)] >= x[min(k for k in x if k > 0)], w
    main_x = {int(k): v for k, v in r["summary"]["extracted_by_repetition"].items()}
    assert main_x[max(main_x)] > 0                   # the most repeated canaries are extracted
    assert all(v == 0.0 for k, v in main_x.items() if k <= 1)   # a secret seen once is not
    assert r["summary"]["extraction_threshold"] is not None and r["summary"]["extraction_threshold"] > 1


def test_helpers_by_hand():
    reps = np.array([0, 1, 1, 4, 4, 16])
    vals = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    assert by_repetition(reps, vals) == {"0": 0.0, "1": 0.5, "4": 0.5, "16": 1.0}
    assert extraction_threshold(reps, vals) == 1
    assert extraction_threshold(reps, vals, level=0.75) == 16
    assert extraction_threshold(reps, np.zeros(6)) is None
    # a dip above the threshold moves it up: at least `level` at *every* larger count
    assert extraction_threshold(np.array([1, 2, 4]), np.array([1.0, 0.0, 1.0])) == 4
