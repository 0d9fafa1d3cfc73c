"""Every script in ``benchmarks/`` and ``lab/`` imports: a script broken by a change in the
package (a moved module, a renamed function) fails the suite, not its next user."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("lab/*.py")])


def test_there_are_scripts_in_both_folders():
    folders = {path.parent.name for path in SCRIPTS}
    assert folders == {"benchmarks", "lab"} and len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_script_imports_and_has_a_main(path, monkeypatch):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)  # runs its imports and definitions, not its main
    assert module.__doc__, f"{path.name} has no docstring saying what it measures"
    assert any(callable(getattr(module, name, None)) for name in ("main", "main_"))
