"""The package's import graph, read from the source with ``ast``: no module imports itself back,
and no layer imports a layer above it."""

import ast
from pathlib import Path

import zeroseg

PACKAGE = Path(zeroseg.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the zeroseg modules it imports (at top level or inside functions).

    ``from zeroseg import checkpoint`` imports the submodule; ``from zeroseg import train``
    imports a name from the package's ``__init__``, which counts as importing the package.
    """
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                submodules = {f"{base}.{alias.name}" for alias in node.names}
                targets |= submodules & modules.keys()
                if not submodules <= modules.keys():  # names from the module (or package) itself
                    targets.add(base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "zeroseg.training.loop" in graph["zeroseg.cli"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# Layers from the bottom: a module may import its own layer and those below it, never above.
LAYERS = (
    ("zeroseg.errors", "zeroseg.version", "zeroseg.runtime", "zeroseg.config"),
    ("zeroseg.models",),
    ("zeroseg.data",),
    ("zeroseg.training",),
    ("zeroseg.inference",),
    ("zeroseg.apps",),
    ("zeroseg.benchmark",),  # writes label pictures through apps.visualize
    ("zeroseg.synthetic",),
    ("zeroseg.cli", "zeroseg.__main__", "zeroseg"),  # the public API and the command line
)


def layer_of(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "zeroseg"):
            return index
    assert module == "zeroseg", f"{module} is in no layer: add it to LAYERS"
    return len(LAYERS) - 1


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"zeroseg.models.build": {"zeroseg.inference.segmenter"}, "zeroseg.cli": set()}
    assert upward_imports(graph) == ["zeroseg.models.build -> zeroseg.inference.segmenter"]
