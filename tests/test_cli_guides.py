"""A CLI that remembers and guides: --version, "did you mean", `memlens show`, resume from the manifest alone."""
import json

import pytest

from memlens._version import __version__
from memlens.cli.main import main


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"memlens {__version__}"


@pytest.mark.parametrize("argv, suggestion", [
    (["audt"], "'audit'"),
    (["audit", "--modles", "4"], "'--models'"),
    (["audit", "--datset", "digits"], "'--dataset'"),
    (["audit", "--dataset", "digts"], "'digits'"),
    (["audit", "--dataset", "fashion_mnist"], "'fashion-mnist'"),
    (["audit", "--model", "mpl"], "'mlp'"),
    (["audit", "--lira-convention", "refrence"], "'reference'"),
    (["reproduce", "brown-logrg"], "'brown-logreg'"),
])
def test_did_you_mean(argv, suggestion, capsys, tmp_path):
    assert main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "audit" else [])]) == 2
    err = _err(capsys)
    assert err.count("\n") == 0 and f"did you mean {suggestion}?" in err, err
    assert not (tmp_path / "r").exists()


def test_no_suggestion_for_a_far_miss(capsys, tmp_path):
    assert main(["audit", "--dataset", "zzzzzz", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean" not in _err(capsys)


def _audit(data_file, out, *extra):
    return ["audit", "--data", str(data_file), "--models", "6", "--shard-size", "2", "--seed", "3",
            "--subset-ratio", "0.6", "--model-param", "C=0.5", "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def reference_run(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("guides") / "ref"
    assert main(_audit(data_file, out)) == 0
    return out


def test_show_prints_the_summary(reference_run, capsys):
    capsys.readouterr()
    assert main(["show", str(reference_run)]) == 0
    text = capsys.readouterr().out
    s = json.loads((reference_run / "summary.json").read_text())
    assert f"{s['n_memorized']:,}" in text and "lira-online" in text and "AUC" in text
    auc = s["attacks"]["table"]["rmia"]["auc"]["mean"]
    assert f"{auc:.3f}" in text
    assert main(["show", str(reference_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == s


def test_show_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    assert main(["show", str(tmp_path / "none")]) == 2
    assert "not a folder" in _err(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["show", str(tmp_path / "empty")]) == 2
    err = _err(capsys)
    assert err.count("\n") == 0 and "no summary.json" in err


def test_resume_from_the_manifest_alone(reference_run, data_file, tmp_path, interrupt_second_shard, capsys):
    out = tmp_path / "run"
    assert main(_audit(data_file, out)) == 130
    capsys.readouterr()
    interrupt_second_shard()       # the real training back
    # own arrays: the file is needed again, and the message says so in one line
    assert main(["audit", "--resume", "--out", str(out)]) == 2
    err = _err(capsys)
    assert "--data" in err and err.count("\n") == 0
    # every other setting (models, seed, subset ratio, model parameters, shard size) comes from the manifest
    assert main(["audit", "--resume", "--out", str(out), "--data", str(data_file), "--no-progress"]) == 0
    for name in ("examples.csv", "pairs.csv"):
        assert (out / name).read_bytes() == (reference_run / name).read_bytes()


def test_resume_from_the_manifest_of_a_built_in_dataset(tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["audit", "--dataset", "iris", "--models", "4", "--shard-size", "2", "--seed", "5", "--no-attacks",
            "--no-progress", "--out", str(out)]
    assert main(argv + ["--overwrite"] if out.exists() else argv) == 0
    ref = (out / "examples.csv").read_bytes()
    (out / "population" / "shards" / "shard-00001.npz").unlink()
    assert main(["audit", "--resume", "--out", str(out), "--no-attacks", "--no-progress"]) == 0
    assert (out / "examples.csv").read_bytes() == ref


def test_resume_with_other_settings_lists_each_difference(reference_run, data_file, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference_run, out)
    capsys.readouterr()
    assert main(["audit", "--resume", "--out", str(out), "--data", str(data_file), "--models", "7",
                 "--model-param", "C=2", "--no-progress"]) == 2
    lines = _err(capsys).splitlines()
    assert lines[0].startswith("memlens: error: --resume refused") and "2 setting(s) differ" in lines[0]
    assert sorted(line.strip() for line in lines[1:]) == ["- model_config.C is 0.5 in the run, 2.0 now",
                                                          "- n_models is 6 in the run, 7 now"]


def test_notebook_displays(tmp_path):
    """Results display as HTML tables in Jupyter: the audit, its population and an attack result."""
    from memlens.attacks import lira
    from memlens.audits.image import run_audit

    res = run_audit(dataset="iris", n_models=8, shard_size=4, out=tmp_path / "r", progress=False)
    page = res._repr_html_()
    assert page.startswith("<table>") and f"{res.summary['n_memorized']:,}" in page and "lira-online" in page
    pop = res.population._repr_html_()
    assert "<table>" in pop and ">8<" in pop and "112" in pop        # 8 models, 112 training examples
    att = lira(res.population, target=0, fix_variance=True)
    html = att._repr_html_()
    assert "lira-online" in html and f"{att.auc:.4f}" in html
    # text is escaped
    from memlens._display import html_table

    assert "&lt;b&gt;" in html_table("t", [("<b>", "x")])


def test_quiet_and_json(tmp_path, capsys):
    argv = ["audit", "--dataset", "iris", "--models", "4", "--no-attacks"]
    assert main([*argv, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and all(ln.startswith("memlens: warning:") for ln in cap.err.splitlines())
    assert main([*argv, "--out", str(tmp_path / "j"), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads((tmp_path / "j" / "summary.json").read_text())


def test_show_a_text_audit(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["audit", "--dataset", "fortunes", "--models", "4", "--shard-size", "2", "--documents", "40",
                 "--max-chars", "50", "--canary-repetitions", "1,2", "--canaries-per-repetition", "1", "--steps", "30",
                 "--width", "16", "--depth", "1", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "char-lm" in text and "canaries inserted 1x" in text and "canaries inserted 2x" in text
