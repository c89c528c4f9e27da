"""The package's layers hold: every import of ``src/memlens``, read with ``ast``, runs down the layer order of
docs/architecture.md, there is no import cycle, and imports inside functions only defer heavy optional
dependencies, each with a one-line reason.

A failure here names the module, the line and the import; fix the import (move the code to the right layer) or,
for a deliberate exception, add it to ``DECLARED_UPWARD`` with its reason *and* to docs/architecture.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "memlens"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: The layer order (lowest first). A module imports only from its own layer or below.
LAYERS = (
    ("base", {"_validation", "_random", "_threads", "_io", "_math", "_version", "_display"}),
    ("population", {"population"}),
    ("foundations", {"data", "models", "evaluation", "privacy"}),
    ("computation", {"train", "measures", "attacks", "tasks"}),
    ("storage", {"storage"}),
    ("audits", {"audits", "report"}),
    ("experiments", {"experiments"}),
    # the command line, the package root, and the aliases that keep the first version's module paths working
    ("top", {"cli", "__init__", "__main__", "audit", "text_audit", "runs", "executors"}),
)
#: Packages that must not import their layer-mates: evaluation is a leaf, and the computation packages are
#: independent of each other (measures and attacks read trained models through ``models``, never ``train``).
LEAVES = {"evaluation", "train", "measures", "attacks", "tasks"}
#: Deliberate upward imports: (importing module, imported module) -> reason. Each is also in docs/architecture.md.
DECLARED_UPWARD: dict = {}
#: Third-party modules a function may import lazily: heavy optional dependencies (or heavy native libraries).
DEFERRABLE = {"torch", "ray", "matplotlib", "opacus", "threadpoolctl", "joblib", "sklearn", "scipy", "rich", "transformers",
              "tokenizers"}


def _layer_of(module: str) -> int:
    """Layer index of a module name ``memlens.a.b`` (by its first component)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} is in no layer: add its package to LAYERS and to docs/architecture.md")


def _modules():
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    """The memlens modules an ``import`` / ``from ... import`` statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "memlens"]
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "memlens":
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def _imports():
    """``(module, lineno, imported module, in_function, statement, line text)`` for every memlens import."""
    rows = []
    for module, (path, is_pkg) in MODULES.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)

        def visit(node, depth):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    stmt = ast.unparse(child)
                    line = lines[child.lineno - 1]
                    for target in _resolve(module, is_pkg, child):
                        rows.append((module, child.lineno, target, depth > 0, stmt, line))
                    if depth > 0 and not _resolve(module, is_pkg, child):
                        rows.append((module, child.lineno, None, True, stmt, line))
                inner = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, inner)

        visit(tree, 0)
    return rows


IMPORTS = _imports()


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer_of(module)


def test_no_import_runs_up_the_layers():
    bad = []
    for module, line, target, _, stmt, _ in IMPORTS:
        if target is None or (module, target) in DECLARED_UPWARD:
            continue
        if _layer_of(target) > _layer_of(module):
            bad.append(f"{module}:{line}: {stmt}  ({LAYERS[_layer_of(module)][0]} imports "
                       f"{LAYERS[_layer_of(target)][0]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_leaves_import_nothing_of_their_layer():
    bad = []
    for module, line, target, _, stmt, _ in IMPORTS:
        pkg = module.split(".")[1] if "." in module else ""
        if target is None or pkg not in LEAVES:
            continue
        tpkg = target.split(".")[1] if "." in target else ""
        if tpkg != pkg and _layer_of(target) == _layer_of(module):
            bad.append(f"{module}:{line}: {stmt}")
    assert not bad, "a package imports its independent layer-mates:\n" + "\n".join(bad)


def test_no_module_imports_the_package_root():
    bad = [f"{m}:{line}: {stmt}" for m, line, target, _, stmt, _ in IMPORTS
           if target == "memlens" and m != "memlens"]
    assert not bad, "modules importing the package root (import the module that defines the name):\n" + "\n".join(bad)


def test_no_import_cycle():
    graph: dict = {m: set() for m in MODULES}
    for module, _, target, in_function, _, _ in IMPORTS:
        if target is not None and not in_function and target != module:
            graph[module].add(target)
    # a package's __init__ re-exporting its own submodules is not a cycle of the code's data flow
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_function_level_imports_only_defer_heavy_dependencies_with_a_reason():
    bad = []
    for module, line, target, in_function, stmt, text in IMPORTS:
        if not in_function:
            continue
        top = stmt.split()[1].split(".")[0]
        # the command line may defer its own audits (torch, matplotlib behind them) so that --help is fast
        if target is not None and module.startswith("memlens.cli") and "# deferred" in text:
            continue
        if target is not None or top not in DEFERRABLE or "#" not in text:
            bad.append(f"{module}:{line}: {stmt}")
    assert not bad, ("imports inside functions must defer a heavy optional dependency (torch, ray, matplotlib, "
                     "opacus, ...) and say why in a comment on the line; move the others to the top:\n"
                     + "\n".join(bad))


def test_declared_exceptions_are_documented():
    text = DOCS.read_text()
    assert len(DECLARED_UPWARD) <= 3
    for (module, target), reason in DECLARED_UPWARD.items():
        assert module in text and target in text, f"{module} -> {target} ({reason}) is not in docs/architecture.md"


@pytest.mark.parametrize("forbidden", [
    ("memlens.measures.feldman_zhang", "from ..train import train_population\n"),
    ("memlens.evaluation.metrics", "from ..privacy import empirical_epsilon\n"),
    ("memlens.data.masks", "from ..audits import pipeline\n"),
])
def test_the_checks_fail_on_a_forbidden_import(forbidden):
    """The checker is not vacuous: a planted upward or sideways import is reported."""
    module, stmt = forbidden
    path, is_pkg = MODULES[module]
    node = ast.parse(stmt).body[0]
    targets = _resolve(module, is_pkg, node)
    assert targets and any(_layer_of(t) > _layer_of(module) or
                           (module.split(".")[1] in LEAVES and _layer_of(t) == _layer_of(module)) for t in targets)
