"""The package's import graph: imports go one way (no cycle), and the model layer imports nothing above it."""

import ast
from pathlib import Path

import litebert

PACKAGE = Path(litebert.__path__[0])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The litebert modules `path` imports, at any depth of its code (lazy imports inside functions count)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from a import b` imports module a.b when there is one, else a name defined in a
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    graph = {module_name(path): imported_modules(path, modules) for path in paths}
    for name in graph:
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# docs/architecture.md: every module's layer, and the layers each layer may import besides its own
LAYERS = {
    "config": ["litebert.configuration_litebert"],
    "model": ["litebert.modeling_litebert", "litebert.modeling_tnf", "litebert.modeling_objectives"],
    "model tools": ["litebert.convert", "litebert.parameters", "litebert.remote_code"],
    "data": ["litebert.tasks", "litebert.tokenization", "litebert.tnf_data", "litebert.documents",
             "litebert.sentence_order", "litebert.masking", "litebert.pretraining_data", "litebert.default_corpus"],
    "hub": ["litebert.hub_cards"],
    "training": ["litebert.trainer_callbacks", "litebert.distillation"],
    "deployment": ["litebert.onnx"],
    "package": ["litebert"],
    "scripts": ["litebert.cli"],
}
MAY_IMPORT = {
    "config": set(),
    "model": {"config"},  # save_pretrained copies the model layer for trust_remote_code users: nothing else there
    "model tools": {"config", "model"},
    "data": set(),  # the data pipeline works on tokenizers and text; it knows no model
    "hub": {"config", "model", "model tools", "data"},
    "training": {"config", "model", "model tools", "data", "hub"},
    "deployment": {"config", "model", "data"},
    "package": {"config", "model", "hub"},
    "scripts": set(LAYERS),
}


def layer_of(module: str) -> str:
    """The layer of `module`: the one listing it or the package it belongs to (the longest match)."""
    matches = [(len(prefix), layer) for layer, prefixes in LAYERS.items() for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} belongs to no layer of docs/architecture.md"
    return max(matches)[1]


def test_every_module_imports_only_the_layers_its_own_may():
    for module, imported in import_graph().items():
        layer = layer_of(module)
        allowed = MAY_IMPORT[layer] | {layer}
        forbidden = {target for target in imported if layer_of(target) not in allowed}
        assert not forbidden, f"{module} ({layer}) imports {sorted(forbidden)}"


def test_the_layer_check_catches_a_data_module_importing_the_model():
    assert layer_of("litebert.tasks.squad") == "data" and layer_of("litebert.cli.glue") == "scripts"
    assert layer_of("litebert.modeling_litebert") not in MAY_IMPORT["data"]


def test_the_model_layer_imports_only_the_config_and_itself():
    graph = import_graph()
    model_layer = {"litebert.configuration_litebert", "litebert.modeling_litebert", "litebert.modeling_tnf",
                   "litebert.modeling_objectives"}
    for module in model_layer:
        assert graph[module] <= model_layer, (module, graph[module] - model_layer)


def test_the_architecture_page_lists_every_layer():
    page = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    for layer, modules in LAYERS.items():
        assert f"| {layer} |" in page, layer
        for module in modules:
            assert f"`{module.removeprefix('litebert.') or 'litebert'}" in page, module
