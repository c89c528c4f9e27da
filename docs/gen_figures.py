"""Figures and outputs of the documentation, produced by memlens itself (``make docs`` runs this first).

    python docs/gen_figures.py            # writes docs/generated/ (about 40 s on 2 cores)
    python docs/gen_figures.py --gallery  # also every reproduction with --quick: docs/generated/gallery.md and its
                                          # figures (about a minute more); `make docs` runs this

- a digits audit (64 logistic models, attacks, leave-one-out): the report's figures, extracted from its
  ``report.html`` by their alt text (memorization histogram, memorized examples, high-influence pairs, ROC curves
  on log-log axes, memorization against LiRA, leave-one-out against the subset estimate);
- a small text audit on the fortunes corpus (canaries): the exposure and extraction figure;
- the getting-started page's Python flow, run, with what it prints.

Nothing here is committed: every build draws the figures from the installed memlens.
"""
from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
OUT = HERE / "generated"

FIGURES = {  # alt text in report.html -> file name
    "memorization histogram": "memorization_histogram.png",
    "most memorized training examples": "most_memorized.png",
    "Training examples of the high-influence pairs": "pairs.png",
    "ROC curves": "roc.png",
    "memorization vs LiRA score as a member": "mem_vs_lira.png",
    "leave-one-out vs subset memorization": "loo_scatter.png",
    "exposure and extraction vs repetitions": "exposure.png",
}

API_FLOW = '''\
from memlens.data import load_dataset
from memlens.audits.image import audit_masks
from memlens.train import train_population
from memlens.measures import memorization, influence, high_influence_pairs

data = load_dataset("digits")
masks = audit_masks(256, data.n_train, subset_ratio=0.7, seed=0)
pop = train_population(data, model="logreg", masks=masks, seed=0)
mem = memorization(pop)
infl = influence(pop, top_k=4, threshold=0.15)
pairs = high_influence_pairs(mem, infl, train_labels=data.y_train, test_labels=data.y_test)
print(pop)
print(f"{mem.n_memorized(0.25)} examples with memorization >= 0.25, {len(pairs)} high-influence pairs")
order = mem.scores.argsort()[::-1][:5]
print("most memorized:", [(int(i), round(float(mem.scores[i]), 2), int(data.y_train[i])) for i in order])
'''


def _extract(report: Path, wanted: dict) -> list[str]:
    page = report.read_text()
    done = []
    for alt, src in re.findall(r'<img class="fig" alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page):
        for key, name in wanted.items():
            if alt.lower().startswith(key.lower()):
                (OUT / name).write_bytes(base64.b64decode(src))
                done.append(name)
    return done


def gallery() -> None:
    """Every reproduction with ``quick=True, seed=0``: its figures into docs/generated/gallery/NAME/, and
    docs/generated/gallery.md listing them with the summary the run writes (its README.md)."""
    from memlens.experiments import DESCRIPTIONS, REGISTRY, get_experiment

    root = OUT / "gallery"
    shutil.rmtree(root, ignore_errors=True)
    lines = ["# Gallery of the reproductions", "",
             "Each reproduction run with `memlens reproduce NAME --quick --seed 0` (the small version; the full runs' "
             "numbers are in [reproductions](../reproductions.md)); its figures, and the summary it writes in its "
             "`README.md`. Drawn when these pages were built (`python docs/gen_figures.py --gallery`).", ""]
    for name in REGISTRY:
        tmp = Path(tempfile.mkdtemp(prefix=f"memlens-{name}-"))
        try:
            t0 = time.perf_counter()
            get_experiment(name).run(tmp, quick=True, seed=0)
            seconds = time.perf_counter() - t0
            dest = root / name
            dest.mkdir(parents=True, exist_ok=True)
            lines += [f"## `{name}`", "", f"{DESCRIPTIONS[name]} (quick run: {seconds:.0f} s on 2 cores).", ""]
            for png in sorted(tmp.glob("*.png")):
                shutil.copy(png, dest / png.name)
                lines += [f"![{name}: {png.stem}](gallery/{name}/{png.name})", ""]
            readme = tmp / "README.md"
            if readme.exists():
                body = readme.read_text().split("\n", 1)[1] if readme.read_text().startswith("#") else readme.read_text()
                lines += ["??? note \"What the run reports (its README.md)\"", ""]
                lines += ["    " + ln if ln.strip() else "" for ln in body.strip().splitlines()] + [""]
            print(f"gallery: {name} in {seconds:.0f} s", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gallery.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if "--gallery" in sys.argv[1:]:
        gallery()
    from memlens.audits.image import run_audit
    from memlens.audits.text import run_text_audit

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="memlens-docs-"))
    try:
        t0 = time.perf_counter()
        run_audit(dataset="digits", n_models=64, loo=True, out=tmp / "digits", progress=False)
        got = _extract(tmp / "digits" / "report.html", FIGURES)
        run_text_audit(dataset="fortunes", n_models=4, shard_size=2, n_documents=200, out=tmp / "text",
                       progress=False, config={"steps": 300, "width": 32, "depth": 1})
        got += _extract(tmp / "text" / "report.html", FIGURES)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(API_FLOW, "getting-started", "exec"), {})
        (OUT / "api_flow.py").write_text(API_FLOW)
        (OUT / "api_flow.txt").write_text(buf.getvalue())
        missing = sorted(set(FIGURES.values()) - set(got))
        if missing:
            sys.exit(f"gen_figures: the reports lacked {missing}")
        print(f"docs/generated: {len(got)} figures and the API flow in {time.perf_counter() - t0:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
