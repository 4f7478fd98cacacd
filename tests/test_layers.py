"""The layers of ``qa/`` (docs/architecture.md): each imports only the layers below it,
and no module imports another in a circle. Every import counts, lazy ones in functions
and ``TYPE_CHECKING`` blocks too: an arrow that runs back up fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "qa"

# Bottom first; "qa" is the modules at the top of the package (errors, config,
# records, types), which every layer may use. Layers on one rank are independent of
# each other: the service never imports the ingest pipeline, nor the pipeline the service.
LAYERS: dict[str, int] = {
    "qa": 0,
    "qa.text": 1,
    "qa.embed": 2,
    "qa.store": 3,
    "qa.search": 4,
    "qa.llm": 5,
    "qa.answer": 6,
    "qa.serve": 7, "qa.ingest": 7,
    "qa.eval": 8,
    "qa.cli": 9,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The ``qa`` modules that ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {target for target in found if target in known and target != name}


def layer_of(module: str) -> str:
    """The longest entry of LAYERS that ``module`` is, or sits under."""
    candidates = [layer for layer in LAYERS if module == layer or module.startswith(layer + ".")]
    assert candidates, f"{module} is in no layer: add its package to LAYERS"
    return max(candidates, key=len)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) for name, path in found.items()}


def test_every_module_sits_in_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_layers_import_only_the_layers_below_them() -> None:
    upward = []
    for module, targets in graph().items():
        layer = layer_of(module)
        for target in targets:
            other = layer_of(target)
            if other != layer and LAYERS[other] >= LAYERS[layer]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run up or across the layers:\n" + "\n".join(sorted(upward))


def test_no_module_imports_another_in_a_circle() -> None:
    edges = graph()
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "circular imports:\n" + "\n".join(cycles)


def test_storage_knows_no_text_processing_embedding_or_answering() -> None:
    for module, targets in graph().items():
        if layer_of(module) == "qa.store":
            wrong = {t for t in targets if layer_of(t) in {"qa.text", "qa.embed", "qa.answer"}}
            assert not wrong, f"{module} imports {sorted(wrong)}"


def test_only_the_http_layer_imports_litestar() -> None:
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        uses = any(
            (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "litestar" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "litestar")
            for node in ast.walk(tree)
        )
        if uses:
            assert name.startswith("qa.serve.http"), f"{name} imports litestar"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The test above can fail: an import of the service from storage is found."""
    (tmp_path / "probe.py").write_text("from qa.serve.service import QAService\n")
    probe = PACKAGE / "store" / "_layer_probe.py"
    probe.write_text((tmp_path / "probe.py").read_text())
    try:
        edges = graph()
        assert "qa.serve.service" in edges["qa.store._layer_probe"]
        assert LAYERS[layer_of("qa.serve.service")] > LAYERS[layer_of("qa.store._layer_probe")]
    finally:
        probe.unlink()
