"""The reproduction registry's one-line descriptions are the modules' own (listed without importing them)."""
import importlib
import subprocess
import sys

from memlens.experiments import DESCRIPTIONS, REGISTRY, list_experiments


def test_registry_descriptions_are_the_modules_own():
    assert set(DESCRIPTIONS) == set(REGISTRY)
    for name, module in REGISTRY.items():
        mod = importlib.import_module(module)
        assert mod.NAME == name and mod.DESCRIPTION == DESCRIPTIONS[name], name
    assert [n for n, _ in list_experiments()] == list(REGISTRY)


def test_import_memlens_and_listing_import_no_heavy_library():
    code = ("import sys, memlens; from memlens.experiments import list_experiments; list_experiments(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'ray', 'opacus') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
