"""The package layout rules (docs/architecture.md), checked by parsing the imports.

* Families (``ann``, ``completion``, ``nmf``, ``dask``, ``retrieval``) are
  subpackages; no module imports another family's underscore names. The one
  exception is by design: ``rankfold.dask`` runs each family's engine on the
  workers, so it may import the family modules ``_engine`` and ``_init``.
* Only ``*/_engine.py``, ``ann/*``, ``linalg.py``, ``_validation.py`` (the
  default thread count) and ``__init__.py`` (version, build facts) import
  ``_core``.
* No rankfold module is imported inside a function (the command line excepted,
  which imports lazily to start fast); third-party imports inside functions
  are allowed (optional dependencies, heavy modules used by one method).
* ``import rankfold`` does not import scikit-learn (nor the NMF family).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rankfold

ROOT = Path(rankfold.__file__).parent
FAMILIES = ("ann", "completion", "nmf", "dask", "retrieval")
CORE_ALLOWED_FILES = {"linalg.py", "_validation.py", "__init__.py"}
DASK_MAY_USE = {"_engine", "_init"}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _family(rel: Path):
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in FAMILIES else None


def _resolve(rel: Path, node: ast.ImportFrom) -> str:
    """The absolute dotted module of a ``from X import ...`` inside the package."""
    if node.level == 0:
        return node.module or ""
    package = ["rankfold", *rel.parts[:-1]]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(rel: Path, tree: ast.AST):
    """(module, names, inside_function) for every import of a rankfold module."""
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(fn):
                inside.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(rel, node)
            if mod == "rankfold" or mod.startswith("rankfold."):
                yield mod, [a.name for a in node.names], id(node) in inside
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "rankfold" or a.name.startswith("rankfold."):
                    yield a.name, [], id(node) in inside


def test_the_walk_finds_every_family():
    found = {_family(rel) for rel, _ in _modules()} - {None}
    assert {"ann", "completion", "nmf", "dask"} <= found


def test_no_module_imports_another_familys_private_names():
    bad = []
    for rel, tree in _modules():
        own = _family(rel)
        for mod, names, _ in _imports(rel, tree):
            parts = mod.split(".")[1:]
            if not parts or parts[0] not in FAMILIES or parts[0] == own:
                continue
            private_module = [p for p in parts[1:] if p.startswith("_")]
            if private_module and not (own == "dask" and set(private_module) <= DASK_MAY_USE):
                bad.append(f"{rel}: imports {mod}")
            # ``from rankfold.nmf import _engine`` names the module in the names list
            for name in names:
                if name.startswith("_") and not (own == "dask" and name in DASK_MAY_USE):
                    bad.append(f"{rel}: imports {name} from {mod}")
    assert not bad, "\n".join(bad)


def test_only_engines_ann_and_linalg_call_the_core():
    bad = []
    for rel, tree in _modules():
        allowed = rel.name == "_engine.py" or _family(rel) == "ann" or (len(rel.parts) == 1 and rel.name in CORE_ALLOWED_FILES)
        if allowed:
            continue
        for mod, names, _ in _imports(rel, tree):
            if mod == "rankfold._core" or (mod == "rankfold" and "_core" in names):
                bad.append(str(rel))
    assert not bad, f"modules calling _core outside the engines: {bad}"


def test_no_package_imports_inside_functions():
    bad = []
    for rel, tree in _modules():
        if rel.name == "cli.py":
            continue
        for mod, _, inside in _imports(rel, tree):
            if inside:
                bad.append(f"{rel}: {mod}")
    assert not bad, "\n".join(bad)


def test_the_rules_catch_a_violation(tmp_path):
    """The checks above are not vacuous: a module breaking each rule is caught."""
    rel = Path("dask") / "x.py"
    tree = ast.parse("from ..nmf.nmf import _private\nfrom .. import _core\ndef f():\n    from ..ann import knn\n")
    found = list(_imports(rel, tree))
    assert ("rankfold.nmf.nmf", ["_private"], False) in found
    assert ("rankfold", ["_core"], False) in found
    assert ("rankfold.ann", ["knn"], True) in found


@pytest.mark.parametrize("name", ["HNSWIndex", "ALS"])
def test_import_rankfold_is_light(name):
    """``import rankfold`` and the index / recommender families load without scikit-learn."""
    code = (f"import sys, rankfold; rankfold.{name}; "
            "bad = [m for m in ('sklearn', 'rankfold.nmf', 'dask', 'distributed') if m in sys.modules]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_public_names_resolve_lazily():
    for name in rankfold.__all__:
        assert getattr(rankfold, name) is not None
    assert set(rankfold.__all__) <= set(dir(rankfold))
    with pytest.raises(AttributeError):
        rankfold.no_such_name
    assert rankfold.NMF is rankfold.nmf.NMF
    assert rankfold.HNSWIndex is rankfold.ann.HNSWIndex
    assert rankfold.topk is rankfold.linalg.topk
