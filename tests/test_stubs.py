"""The type stubs of the compiled module cover everything it exports."""

from __future__ import annotations

import ast
from pathlib import Path

from rankfold import _core


def _stub_names() -> dict:
    tree = ast.parse((Path(_core.__file__).parent / "_core.pyi").read_text())
    names: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            members = set()
            if isinstance(node, ast.ClassDef):
                for n in node.body:
                    if isinstance(n, ast.FunctionDef):
                        members.add(n.name)
                    elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                        members.add(n.target.id)
            names.setdefault(node.name, set()).update(members)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
    return names


def test_stub_lists_every_export():
    stubs = _stub_names()
    exported = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    missing = sorted(exported - set(stubs))
    assert not missing, f"_core.pyi lacks: {missing}"


def test_stub_lists_every_method_of_classes():
    stubs = _stub_names()
    for name, members in stubs.items():
        obj = getattr(_core, name, None)
        if isinstance(obj, type):
            public = {m for m in vars(obj) if not m.startswith("_")}
            missing = sorted(public - members)
            assert not missing, f"_core.pyi lacks {name}.{missing}"
