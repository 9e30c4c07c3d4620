"""The code stays readable as it grows: no library function longer than 80 lines, no CLI handler
longer than 30 (a handler parses, calls one library function and prints), and no import cycle
between the package's modules."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightformer"


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE.parent), node, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_80_lines():
    assert [f"{p}:{n.lineno} {n.name} ({length})" for p, n, length in _functions() if length > 80] == []


def test_no_cli_handler_is_longer_than_30_lines():
    long = [f"{p}:{n.lineno} {n.name} ({length})" for p, n, length in _functions()
            if p.parts[1] == "cli" and n.name.startswith("cmd_") and length > 30]
    assert long == []


def _module_imports() -> dict[str, set[str]]:
    """Module -> the package modules (or their names) it imports, inside functions too: a cycle
    deferred into a function body is still two modules that each need the other."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightformer"):
                deps |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}  # a name or a submodule
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("lightformer")}
        graph[name] = deps - {name}
    return graph


def test_modules_do_not_import_each_other_in_a_cycle():
    graph = _module_imports()
    cycles = []

    def visit(node, stack):
        for dep in graph.get(node, ()):
            if dep not in graph:  # a name imported from a module, not a module
                continue
            if dep in stack:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in seen:
                seen.add(dep)
                visit(dep, stack + [dep])

    seen = set()
    for module in graph:
        visit(module, [module])
    assert sorted(set(cycles)) == []


# The package's layers, lowest first; a module may import its own layer (no cycles, above) and
# the layers below it, never one above. Folders and top-level modules are named alike.
LAYERS = [
    {"errors", "version"},
    {"io", "validate", "options", "progress", "gpu", "provenance", "hardware", "paper"},
    {"config"},
    {"metrics", "data"},  # data: the readers training needs
    {"datasets"},  # acquisition and preparation (and GLUE's task table, which glue/ reads)
    {"decode"},
    {"models"},
    {"compress"},
    {"checkpoint", "grid", "controls"},
    {"export"},
    {"speed"},
    {"train", "glue"},
    {"report", "workflow_checks"},
    {"cli", "__main__"},
]


def _unit_imports():
    """(importing file, its unit, the imported unit or '__init__' for the package itself)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        unit = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lightformer":
                names = node.module.split(".")[1:2] or [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] if "." in a.name else "__init__" for a in node.names
                         if a.name.split(".")[0] == "lightformer"]
            else:
                continue
            for name in names:
                is_unit = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
                yield path.relative_to(PACKAGE.parent), unit, name if is_unit else "__init__"


def test_no_module_imports_the_package_itself():
    """`import lightformer` or a name from its __init__ runs the whole public API's imports: modules
    import what they use from where it lives."""
    assert [str(p) for p, unit, dep in _unit_imports() if dep == "__init__" and unit != "__init__.py"] == []


def test_every_unit_has_a_layer_and_no_import_points_up():
    level = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert units - set(level) == set(), "give each new folder or module its place in LAYERS"
    up = sorted({f"{p}: {unit} -> {dep}" for p, unit, dep in _unit_imports()
                 if unit in level and dep in level and level[dep] > level[unit]})
    assert up == []
