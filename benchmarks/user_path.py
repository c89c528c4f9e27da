"""What a user gets: whole processes through ``memlens`` as a user runs it, imports and report included.

    python benchmarks/user_path.py                          # start-up, digits audits, the demo, the peer job
    python benchmarks/user_path.py --only fmnist-logreg     # + full Fashion-MNIST, 512 logistic models (~9 min)
    python benchmarks/user_path.py --only fmnist-mlp        # + full Fashion-MNIST, 256 MLPs (~30 min)
    python benchmarks/user_path.py --only startup --before 0f21293^   # start-up at an older commit beside now

Every row is one child process (``memlens ...`` or ``python -c ...``), timed from its start to its exit, with the
CPU time (user + system) and the peak resident size of its whole process tree (worker processes included, polled
from /proc every 0.2 s), and the load average before and after. Repeated rows report the median and the range.
Sections:

- ``startup``: ``import memlens``, ``memlens --version``, ``memlens --help``, ``memlens list``; with ``--before REV``
  the same at that commit (a ``git worktree``; run as ``python -c`` with ``PYTHONPATH`` on its ``src``).
- ``digits``: ``memlens audit --dataset digits --models 4 --no-attacks`` (the fixed cost of an audit: imports,
  data, training, measures, report) and the same with attacks; the audit's own phase times from summary.json.
- ``demo``: what ``make demo`` runs (256 logistic models on digits, attacks, report).
- ``peer``: the peer job (a target + 16 reference models, attacks) through ``memlens audit`` beside
  ``benchmarks/peer_loop.py`` (one scikit-learn fit per model, the same attacks), both as whole processes.
- ``fmnist-logreg`` / ``fmnist-mlp``: the full Fashion-MNIST audits (60,000 x 10,000) with default settings,
  every core (``--jobs`` default).

Writes ``benchmarks/user_path.json`` (sections merged, so they can be measured separately) and
``benchmarks/user_path.md``, which ``benchmarks/run.py --render`` puts at the top of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _proc import run_tree  # noqa: E402
BIN = Path(sys.executable).with_name("memlens")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
ENV.pop("MEMLENS_JOBS", None)   # the CLI's default: every core


def run(cmd: list[str], *, env=None, timeout: float = 7200, cwd=None) -> dict:
    """Run ``cmd`` as one child process; its wall time, process-tree CPU time and peak resident size."""
    load0 = os.getloadavg()[0]
    r = run_tree(cmd, env=env or ENV, cwd=cwd, timeout=timeout)
    return {"cmd": " ".join(str(c) for c in cmd), "rc": r["rc"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
            "peak_gib": r["peak_bytes"] / 2**30, "load_before": load0, "load_after": os.getloadavg()[0],
            "stdout_tail": r["stdout"][-2000:], "stderr_tail": r["stderr"][-2000:]}


def repeat(cmd, n: int, **kw) -> dict:
    """``n`` runs of ``cmd``: the median wall and CPU time, the range, and every run."""
    runs = [run(cmd, **kw) for _ in range(n)]
    bad = [r for r in runs if r["rc"] != 0]
    if bad:
        raise SystemExit(f"{bad[0]['cmd']} failed (exit {bad[0]['rc']}): {bad[0]['stderr_tail'][-800:]}")
    walls = [r["wall_s"] for r in runs]
    return {"cmd": runs[0]["cmd"], "n": n, "wall_s": statistics.median(walls), "wall_min": min(walls),
            "wall_max": max(walls), "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_gib": max(r["peak_gib"] for r in runs), "load_before": runs[0]["load_before"],
            "load_after": runs[-1]["load_after"], "last": runs[-1]}


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ------------------------------------------------------------------------------------------------ sections
def startup(before: str | None, n: int = 5) -> dict:
    py = sys.executable
    rows = {"import memlens": repeat([py, "-c", "import memlens"], n),
            "memlens --version": repeat([str(BIN), "--version"], n),
            "memlens --help": repeat([str(BIN), "--help"], n),
            "memlens list": repeat([str(BIN), "list"], n)}
    res = {"now": rows, "rev_now": _rev("HEAD")}
    if before:
        tree = Path(tempfile.mkdtemp(prefix="memlens-before-"))
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            env = dict(ENV, PYTHONPATH=str(tree / "src"))
            cli = "import sys; from memlens.cli.main import main; sys.exit(main(sys.argv[1:]))"
            res["before"] = {"import memlens": repeat([py, "-c", "import memlens"], n, env=env),
                             "memlens --help": repeat([py, "-c", cli, "--help"], n, env=env),
                             "memlens list": repeat([py, "-c", cli, "list"], n, env=env)}
            with tempfile.TemporaryDirectory() as tmp:
                res["before"]["digits, 4 models, no attacks"] = repeat(
                    [py, "-c", cli, "audit", "--dataset", "digits", "--models", "4", "--no-attacks", "--out",
                     f"{tmp}/a", "--overwrite", "--no-progress"], 3, env=env)
            res["rev_before"] = _rev(before)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    return res


def _rev(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _audit_row(args: list[str], n: int, out: Path) -> dict:
    row = repeat([str(BIN), "audit", *args, "--out", str(out), "--overwrite", "--no-progress"], n)
    s = _summary(out)
    row["phases"] = {k: s.get(k) for k in ("training_seconds", "attack_seconds", "report_seconds",
                                           "runtime_seconds") if s.get(k) is not None}
    row["test_accuracy"] = s.get("test_accuracy")
    row["n_memorized"] = s.get("n_memorized")
    row["attacks"] = {name: (a.get("auc") or {}).get("mean")
                      for name, a in ((s.get("attacks") or {}).get("table") or {}).items()}
    row["trainer"] = {k: v for k, v in (s.get("trainer") or {}).items() if k in ("n_iter_mean", "n_iter_max",
                                                                                 "n_not_converged", "preconditioner")}
    return row


def digits(tmp: Path) -> dict:
    return {"digits, 4 models, no attacks": _audit_row(["--dataset", "digits", "--models", "4", "--no-attacks"], 5,
                                                       tmp / "d4"),
            "digits, 4 models, attacks": _audit_row(["--dataset", "digits", "--models", "4"], 3, tmp / "d4a")}


def demo(tmp: Path) -> dict:
    return {"make demo: digits, 256 logistic models, attacks": _audit_row(
        ["--dataset", "digits", "--model", "logreg", "--models", "256"], 3, tmp / "demo")}


def peer(tmp: Path) -> dict:
    mem = _audit_row(["--dataset", "digits", "--model", "logreg", "--models", "17", "--attack-targets", "1"], 3,
                     tmp / "peer")
    loop = repeat([sys.executable, str(HERE / "peer_loop.py"), "--models", "17", "--out", str(tmp / "loop.json")], 3)
    loop["inner"] = json.loads((tmp / "loop.json").read_text())
    return {"memlens audit (target + 16 references, attacks)": mem,
            "per-model loop (peer_loop.py: 17 scikit-learn fits, the same attacks)": loop}


def fmnist_logreg(tmp: Path) -> dict:
    return {"fashion-mnist, 512 logistic models (C=0.01), no attacks": _audit_row(
        ["--dataset", "fashion-mnist", "--model", "logreg", "--model-param", "C=0.01", "--models", "512",
         "--no-attacks"], 1, tmp / "fl")}


def fmnist_mlp(tmp: Path) -> dict:
    return {"fashion-mnist, 256 MLPs (20 epochs), no attacks": _audit_row(
        ["--dataset", "fashion-mnist", "--model", "mlp", "--models", "256", "--no-attacks"], 1, tmp / "fm")}


SECTIONS = {"startup": None, "digits": digits, "demo": demo, "peer": peer, "fmnist-logreg": fmnist_logreg,
            "fmnist-mlp": fmnist_mlp}
DEFAULT = ("startup", "digits", "demo", "peer")


# ------------------------------------------------------------------------------------------------ report
def _f(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def _row(name: str, r: dict) -> str:
    rng = f"{r['wall_min']:.2f}–{r['wall_max']:.2f}" if r.get("n", 1) > 1 else "—"
    return (f"| {name} | {r.get('n', 1)} | **{r['wall_s']:.2f}** | {rng} | {r['cpu_s']:.1f} | {r['peak_gib']:.2f} | "
            f"{r['load_before']:.2f}/{r['load_after']:.2f} |")


def _best_component(model: str, k: int) -> float | None:
    """The fastest full-size run of ``model`` with ``k`` models in ``benchmarks/results.json`` (section (e2))."""
    try:
        rows = json.loads((HERE / "results.json").read_text()).get("fmnist_full", [])
    except (OSError, ValueError):
        return None
    walls = [r["wall_s"] for r in rows if r.get("model") == model and r.get("n_models") == k and "wall_s" in r]
    return min(walls) if walls else None


def markdown(res: dict) -> str:
    m = res.get("machine", {})
    L = [f"Measured by `python benchmarks/user_path.py` ({m.get('cpus', '?')} CPUs, {m.get('python', '')}; sections "
         f"and dates below). Every row is one whole process as a user starts it: wall time from start to exit "
         "(median of n, and the range), CPU time and peak resident size of the whole process tree (worker "
         "processes included), load average before/after.\n"]
    head = "| job | n | wall s (median) | range | CPU s | peak GiB | load |\n|---|--:|--:|--:|--:|--:|--:|"
    st = res.get("startup")
    if st:
        L.append(f"### Start-up ({st['utc']} UTC, commit {st['rev_now']})\n")
        L += [head] + [_row(k, v) for k, v in st["now"].items()]
        if "before" in st:
            L += [_row(f"{k} — at {st['rev_before']} (before the lazy imports)", v) for k, v in st["before"].items()]
        L.append("")
    for key, title in (("digits", "The fixed cost of an audit (digits)"), ("demo", "The default demo"),
                       ("peer", "The peer job: a target and 16 reference models, attacks"),
                       ("fmnist-logreg", "Full Fashion-MNIST, logistic regression"),
                       ("fmnist-mlp", "Full Fashion-MNIST, MLP")):
        sec = res.get(key)
        if not sec:
            continue
        L.append(f"### {title} ({sec['utc']} UTC)\n")
        L += [head] + [_row(k, v) for k, v in sec["rows"].items()]
        L.append("")
        for k, v in sec["rows"].items():
            bits = []
            if v.get("phases"):
                bits.append("phases (summary.json, last run): " + ", ".join(
                    f"{p.replace('_seconds', '')} {s:.2f} s" for p, s in v["phases"].items()))
            if v.get("test_accuracy") is not None:
                bits.append(f"test accuracy {v['test_accuracy']:.4f}")
            if v.get("trainer"):
                bits.append("trainer " + ", ".join(f"{a} {b:.4g}" if isinstance(b, float) else f"{a} {b}"
                                                   for a, b in v["trainer"].items()))
            if v.get("attacks") and any(b is not None for b in v["attacks"].values()):
                bits.append("AUC " + ", ".join(f"{a} {b:.3f}" for a, b in v["attacks"].items() if b is not None))
            if v.get("inner"):
                i = v["inner"]
                bits.append(f"inside the process: imports {i['import_s']:.2f} s, training {i['train_s']:.2f} s, "
                            f"attacks {i['attack_s']:.2f} s; AUC " + ", ".join(f"{a} {b:.3f}"
                                                                              for a, b in i["auc"].items()))
            if bits:
                L.append(f"- *{k}*: " + "; ".join(bits) + ".")
        if key == "fmnist-logreg":
            comp = _best_component("logreg", 512)
            if comp:
                whole = next(iter(sec["rows"].values()))["wall_s"]
                L.append(f"- the best component figure for this job: {comp:.0f} s (section (e2): "
                         "`benchmarks/fmnist_full.py`, `train_population` in blocks of 256 on 2 processes, then "
                         f"memorization and influence); through `memlens audit`, whole process: {whole:.0f} s, "
                         f"**{whole / comp:.2f}x** of it.")
        if key == "peer":
            rows = list(sec["rows"].values())
            m, loop = rows[0], rows[1]
            inner = loop.get("inner") or {}
            L.append(f"- whole process: memlens {m['wall_s']:.2f} s, the per-model script {loop['wall_s']:.2f} s "
                     f"(memlens / script = {m['wall_s'] / loop['wall_s']:.2f}x). Training alone: memlens "
                     f"{(m.get('phases') or {}).get('training_seconds', float('nan')):.2f} s, the script "
                     f"{inner.get('train_s', float('nan')):.2f} s. memlens's process also computes memorization, "
                     "influence and the noise floor, four attacks with intervals, the ε audit and the report.")
        L.append("")
    return "\n".join(L)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--before", default=None, metavar="REV", help="startup: also measure this commit")
    ap.add_argument("--results", type=Path, default=HERE / "user_path.json")
    args = ap.parse_args(argv)
    names = [x for x in args.only.split(",") if x]
    for name in names:
        if name not in SECTIONS:
            ap.error(f"--only: unknown section {name!r}; choose from {', '.join(SECTIONS)}")
    res = json.loads(args.results.read_text()) if args.results.exists() else {}
    import platform
    res["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    tmp = Path(tempfile.mkdtemp(prefix="memlens-user-path-"))
    try:
        for name in names:
            t0 = time.perf_counter()
            utc = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            if name == "startup":
                res[name] = {**startup(args.before), "utc": utc}
            else:
                res[name] = {"rows": SECTIONS[name](tmp), "utc": utc}
            print(f"[{name}] {time.perf_counter() - t0:.0f} s", flush=True)
            args.results.write_text(json.dumps(res, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (HERE / "user_path.md").write_text(markdown(res))
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
