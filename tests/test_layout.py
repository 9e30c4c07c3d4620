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
