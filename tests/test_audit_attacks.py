"""`memlens audit` with membership attacks and DP flags: summary tables, examples.csv columns, report sections,
--no-attacks, DP flag errors, resume, and the DP run's identity (skipped where DP-SGD training is unavailable)."""
import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import memlens.train
from memlens import Population
from memlens.attacks import attack_all_targets, lira
from memlens.audits.image import LIRA_FIXED_VARIANCE_BELOW, MEM_THRESHOLD, audit_attacks, run_audit
from memlens.cli.main import load_npz_dataset, main
from memlens.evaluation import roc
from memlens.measures import memorization
from memlens.privacy.paired import GUESS_FRACTIONS, paired_one_run_audit

N_MODELS, SHARD, N_TARGETS = 16, 6, 5
SUITE = {"lira-online": ("lira", {"online": True, "fix_variance": True}),
         "lira-offline": ("lira", {"online": False, "fix_variance": True}),
         "rmia": ("rmia", {"online": True}),
         "loss": ("loss", {})}


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list:
    with open(path) as f:
        return list(csv.DictReader(f))


def _col(rows, name) -> np.ndarray:
    return np.array([float(r[name]) if r[name] != "nan" else np.nan for r in rows])


def _pngs(page: str) -> int:
    return len(re.findall(r'src="data:image/png;base64,', page))


def _args(data_file, out, *extra):
    return ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "attacks"
    assert main(_args(data_file, out, "--attack-targets", str(N_TARGETS))) == 0
    return out, _hashes(out)


def test_summary_tables_equal_direct_attacks(finished):
    out, _ = finished
    s = json.loads((out / "summary.json").read_text())
    pop = Population.load(out / "population")
    a = s["attacks"]
    assert a["targets"] == list(range(N_TARGETS)) and a["n_targets"] == N_TARGETS
    assert a["n_reference_models"] == N_MODELS - 1
    assert a["lira_fix_variance"] is (N_MODELS - 1 < LIRA_FIXED_VARIANCE_BELOW)
    assert set(a["table"]) == set(SUITE)
    for key, (attack, kw) in SUITE.items():
        direct = attack_all_targets(pop, attack, targets=np.arange(N_TARGETS), **kw)
        agg = direct.aggregate
        row = a["table"][key]
        assert row["auc"]["mean"] == pytest.approx(agg.mean_auc, rel=1e-9)
        np.testing.assert_allclose(row["auc"]["ci"], agg.auc_ci, rtol=1e-9)
        np.testing.assert_allclose(row["auc"]["per_target"], agg.auc, rtol=1e-9)
        for j, f in enumerate(("0.001", "0.01")):
            assert row["tpr"][f]["mean"] == pytest.approx(agg.mean_tpr[j], rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(row["tpr"][f]["ci"], agg.tpr_ci[j], rtol=1e-9, atol=1e-12)
            assert row["tpr"][f]["pooled"] == pytest.approx(agg.pooled_tpr[j], rel=1e-9, abs=1e-12)
        assert 0.0 <= row["auc"]["mean"] <= 1.0
        # the audited ε of each attack: the best paired one-run audit over the targets, the error shared
        # (Bonferroni) among the 4 attacks x the targets x the guess counts
        n_t = direct.scores.shape[0]
        per = [paired_one_run_audit(direct.scores[t], direct.labels[t], level=0.95, n_other_tests=4 * n_t,
                                    seed=t).epsilon for t in range(n_t)]
        blk = row["epsilon"]
        assert row["epsilon_lower_bound"] == pytest.approx(max(per), rel=1e-12)
        assert blk["per_target"] == pytest.approx(per, rel=1e-12)
        assert s["privacy"]["by_attack"][key]["epsilon"] == pytest.approx(max(per), rel=1e-12)
        assert blk["level"] == 0.95 and blk["valid"] is True and blk["n_tests"] == 4 * n_t * len(GUESS_FRACTIONS)
        assert "Steinke" in blk["method"]
        # the trials: IN/OUT pairs of distinct examples of one target, never more than the examples
        n_train = pop.masks.shape[1]
        best_mask = pop.masks[blk["best_target"]]
        assert blk["n_members"] == blk["n_nonmembers"] == min(best_mask.sum(), (~best_mask).sum())
        assert blk["n_members"] + blk["n_nonmembers"] <= n_train
        assert blk["n_correct"] <= blk["n_guesses"] <= blk["n_pairs"]
    p = s["privacy"]
    assert p["dp"] is False and p["accountant_epsilon"] is None and p["confidence"] == 0.95
    best = max(row["epsilon_lower_bound"] for row in a["table"].values())
    assert p["audited_epsilon_lower_bound"] == pytest.approx(best)
    # LiRA beats the loss attack on the pooled ROC at 1% FPR, as the literature reports
    assert a["table"]["lira-online"]["tpr"]["0.01"]["pooled"] > a["table"]["loss"]["tpr"]["0.01"]["pooled"]


def test_examples_csv_lira_columns(finished):
    out, _ = finished
    pop = Population.load(out / "population")
    rows = _rows(out / "examples.csv")
    assert list(rows[0]) == ["index", "label", "memorization", "stderr", "n_in", "n_out", "out_majority", "out_share", "lira_online",
                             "in_target", "lira_online_in"]
    direct = lira(pop, target=0, online=True, fix_variance=True)
    np.testing.assert_allclose(_col(rows, "lira_online"), direct.scores, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal([int(r["in_target"]) for r in rows], pop.masks[0].astype(int))
    # lira_online_in: mean online LiRA score over the attacked targets that trained on the example, by hand
    per = np.stack([lira(pop, target=t, online=True, fix_variance=True).scores for t in range(N_TARGETS)])
    expect = np.full(pop.n_train, np.nan)
    for i in range(pop.n_train):
        v = per[pop.masks[:N_TARGETS, i], i]
        v = v[np.isfinite(v)]
        if v.size:
            expect[i] = v.mean()
    np.testing.assert_allclose(_col(rows, "lira_online_in"), expect, rtol=1e-5, atol=1e-6, equal_nan=True)
    # the flagged list: memorization >= 0.25 and exposure >= the pooled online-LiRA threshold at 1% FPR
    s = json.loads((out / "summary.json").read_text())
    pooled = attack_all_targets(pop, "lira", targets=np.arange(N_TARGETS), online=True, fix_variance=True)
    sc, lab = pooled.scores.ravel(), pooled.labels.ravel()
    curve = roc(sc[np.isfinite(sc)], lab[np.isfinite(sc)])
    thr = curve.thresholds[np.flatnonzero(curve.fpr <= 0.01)[-1]]
    assert s["attacks"]["flag_threshold"] == pytest.approx(thr)
    mem = memorization(pop).scores
    with np.errstate(invalid="ignore"):
        both = set(np.flatnonzero((mem >= MEM_THRESHOLD) & (expect >= thr - 1e-9 * abs(thr))).tolist())
    assert set(s["attacks"]["flagged"]) == both and s["attacks"]["n_flagged"] == len(both)


def test_report_has_roc_figure_tpr_table_and_exposure(finished):
    out, _ = finished
    page = (out / "report.html").read_text()
    s = json.loads((out / "summary.json").read_text())
    assert 'alt="ROC curves"' in page and 'alt="memorization vs LiRA score as a member"' in page
    table = re.search(r'<table class="tpr">(.*?)</table>', page, re.S)
    assert table and "TPR @ 0.1% FPR" in table.group(1)
    for key in SUITE:
        assert f"<td>{key}</td>" in table.group(1)
    pooled = s["attacks"]["table"]["lira-online"]["tpr"]["0.001"]["pooled"]
    assert f"{100 * pooled:.2f}%" in table.group(1)
    assert "audited ε lower bound" in page and "lower bound" in page and "95%" in page
    n_grid = 1 if s["attacks"]["n_flagged"] else 0
    assert _pngs(page) == 4 + 2 + n_grid
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_no_attacks_omits_everything(data_file, finished, tmp_path):
    ref, _ = finished
    out = tmp_path / "plain"
    assert main(_args(data_file, out, "--no-attacks")) == 0
    s = json.loads((out / "summary.json").read_text())
    assert "attacks" not in s and "privacy" not in s
    rows = _rows(out / "examples.csv")
    assert list(rows[0]) == ["index", "label", "memorization", "stderr", "n_in", "n_out", "out_majority",
                             "out_share"]
    page = (out / "report.html").read_text()
    assert 'alt="ROC curves"' not in page and 'class="tpr"' not in page and "audited ε" not in page
    assert _pngs(page) == 4
    # same population and memorization as the run with attacks: attacks only read the population
    ref_rows = _rows(ref / "examples.csv")
    assert [r["memorization"] for r in rows] == [r["memorization"] for r in ref_rows]
    assert json.loads((out / "manifest.json").read_text())["run_id"] == \
        json.loads((ref / "manifest.json").read_text())["run_id"]


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("memlens: error: ") and "Traceback" not in err, err
    return lines[0]


BAD_DP = {
    "epsilon 0": (["--dp-epsilon", "0"], ["--dp-epsilon", "> 0", "got 0"]),
    "epsilon negative": (["--dp-epsilon", "-1"], ["--dp-epsilon", "> 0", "got -1"]),
    "epsilon nan": (["--dp-epsilon", "nan"], ["--dp-epsilon", "finite"]),
    "epsilon word": (["--dp-epsilon", "lots"], ["--dp-epsilon", "'lots'"]),
    "delta 0": (["--dp-epsilon", "8", "--dp-delta", "0"], ["--dp-delta", "> 0", "got 0"]),
    "delta 1": (["--dp-epsilon", "8", "--dp-delta", "1"], ["--dp-delta", "< 1", "got 1"]),
    "delta 1.5": (["--dp-epsilon", "8", "--dp-delta", "1.5"], ["--dp-delta", "got 1.5"]),
    "delta alone": (["--dp-delta", "1e-5"], ["--dp-delta", "--dp-epsilon"]),
    "zero targets": (["--attack-targets", "0"], ["--attack-targets", ">= 1", "got 0"]),
    "targets and no attacks": (["--attack-targets", "3", "--no-attacks"], ["--no-attacks", "--attack-targets"]),
}


@pytest.mark.parametrize("case", list(BAD_DP))
def test_bad_dp_and_attack_flags_exit_2_run_untouched(case, finished, data_file, capsys):
    ref, hashes = finished
    extra, expected = BAD_DP[case]
    msg = _one_line_error(capsys, _args(data_file, ref, "--overwrite", *extra))
    for part in expected:
        assert part in msg, (part, msg)
    assert _hashes(ref) == hashes


class _Killed(Exception):
    pass


def test_resume_with_attacks_equals_uninterrupted(finished, data_file, tmp_path):
    ref, _ = finished
    out = tmp_path / "killed"

    def kill(k, n_done, n_shards):
        if n_done == 1:
            raise _Killed

    with pytest.raises(_Killed):
        run_audit(dataset=load_npz_dataset(data_file), n_models=N_MODELS, shard_size=SHARD, out=out, progress=False,
                  attack_targets=N_TARGETS, on_shard=kill)
    assert not (out / "summary.json").exists()
    assert main(_args(data_file, out, "--resume", "--attack-targets", str(N_TARGETS))) == 0
    assert (out / "examples.csv").read_bytes() == (ref / "examples.csv").read_bytes()
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((ref / "summary.json").read_text())
    assert a["attacks"]["table"] == b["attacks"]["table"] and a["privacy"] == b["privacy"]
    assert a["shards_trained"] == 2 and a["shards_reused"] == 1


def test_audit_attacks_oracle_population():
    """Signals that reveal membership: every attack has AUC 1 and every memorized example is flagged."""
    rng = np.random.default_rng(0)
    n_models, n = 12, 60
    masks = rng.random((n_models, n)) < 0.5
    masks[0, :2], masks[1, :2] = True, False          # every example has IN and OUT models
    masks[0, 2:4], masks[1, 2:4] = False, True
    logit = np.where(masks, 6.0, -6.0) + 0.1 * rng.standard_normal((n_models, n))
    loss = np.log1p(np.exp(-logit))
    test_logit = -6.0 + 0.1 * rng.standard_normal((n_models, 30))
    pop = Population(masks, {"train": {"logit": logit, "loss": loss, "correct": (logit > 0).astype(np.float32)},
                             "test": {"logit": test_logit, "loss": np.log1p(np.exp(-test_logit)),
                                      "correct": np.zeros((n_models, 30), np.float32)}},
                     seeds=np.arange(n_models), labels={"train": np.zeros(n, np.int64), "test": np.zeros(30, np.int64)})
    mem = memorization(pop)
    att = audit_attacks(pop, memorization_scores=mem.scores, n_targets=4)
    for key, res in att.results.items():
        assert res.aggregate.pooled_auc == pytest.approx(1.0), key
    assert np.all(mem.scores == 1.0)
    assert set(att.flagged.tolist()) == set(np.flatnonzero(np.isfinite(att.lira_online_in)).tolist())
    assert att.epsilon["lira-online"].epsilon > 0 and att.privacy is None


def test_dp_flags_enter_config_and_report(data_file, finished, tmp_path, capsys):
    if not hasattr(memlens.train, "DPConfig"):
        pytest.skip("DP-SGD training (memlens.train.DPConfig) is not in this installation")
    ref, hashes = finished
    # a non-private run cannot be resumed as a DP run: the DP settings are part of its config
    assert main(_args(data_file, ref, "--resume", "--dp-epsilon", "8")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # the refusal's first line, then one line per differing setting
    assert lines[0].startswith("memlens: error: --resume refused") and "1 setting(s)" in lines[0], lines
    assert len(lines) == 2 and lines[1].startswith("  - dp is '<absent>' in the run"), lines
    assert _hashes(ref) == hashes
    out = tmp_path / "dp"
    assert main(["audit", "--data", str(data_file), "--models", "6", "--out", str(out), "--no-progress",
                 "--dp-epsilon", "8", "--dp-delta", "1e-4", "--attack-targets", "3"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["dp"]["epsilon"] == 8.0 and man["config"]["dp"]["delta"] == 1e-4
    s = json.loads((out / "summary.json").read_text())
    pop = Population.load(out / "population")
    acc = pop.provenance["dp"]["epsilon_accountant"]
    assert 0 < acc <= 8.0 * 1.01
    p = s["privacy"]
    assert p["dp"] is True and p["accountant_epsilon"] == pytest.approx(acc) and p["delta"] == pytest.approx(1e-4)
    assert p["audited_epsilon_lower_bound"] <= acc and p["consistent"] is True
    page = (out / "report.html").read_text()
    assert "accountant’s ε" in page or "accountant's ε" in page
    assert f"{acc:.3f}" in page
    assert math.isfinite(s["attacks"]["table"]["lira-online"]["auc"]["mean"])


def test_two_models_leave_attacks_undefined_not_fatal(data_file, tmp_path, capsys):
    """One reference model: online LiRA and RMIA have no IN and OUT references; NaN with warnings, no failure."""
    out = tmp_path / "two"
    assert main(["audit", "--data", str(data_file), "--models", "2", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "memlens: warning: lira-online: no target has defined scores" in err and "Traceback" not in err
    s = json.loads((out / "summary.json").read_text())
    t = s["attacks"]["table"]
    assert t["lira-online"]["auc"]["mean"] is None and t["rmia"]["auc"]["mean"] is None
    assert s["privacy"]["by_attack"]["lira-online"] is None
    # the loss attack needs no reference model: defined, and equal to a direct call
    from memlens.attacks import loss_attack

    pop = Population.load(out / "population")
    assert t["loss"]["auc"]["per_target"][0] == pytest.approx(loss_attack(pop, target=0).auc)
    assert s["privacy"]["audited_epsilon_lower_bound"] is not None
    assert 'alt="ROC curves"' in (out / "report.html").read_text()
