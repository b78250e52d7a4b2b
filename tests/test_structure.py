"""How the modules fit together: no import cycle, the generators side by side over shared
modules, and one generator table that everything reads."""
import ast
import subprocess
import sys

import pytest

from conftest import ROOT
from generator_base import Generator
from generators import TABLE, make_generator
from GenVanillaNN import GenVanillaNN
from project import DanceError
from provenance import TARGET_KEYS

MODULES = {p.stem: p for p in ROOT.glob("*.py")}
GENERATOR_MODULES = {row.cls.__module__ for row in TABLE}
TOP = {"generators", "DanceDemo", "evaluate", "validate", "benchmark", "app", "web_lists"}  # the table and the entry points that read it


def project_imports(path):
    """(module-level imports, imports inside functions or classes) of project modules in a file."""
    tree = ast.parse(path.read_text())
    top, nested = set(), set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        for name in names:
            if name.split(".")[0] in MODULES:
                (top if node in tree.body else nested).add(name.split(".")[0])
    return top, nested


GRAPH = {name: project_imports(path)[0] for name, path in MODULES.items()}


def test_project_modules_are_imported_at_the_top_only():
    hidden = {name: project_imports(path)[1] for name, path in MODULES.items() if project_imports(path)[1]}
    assert not hidden, f"imports inside functions hide the real dependencies: {hidden}"


def test_the_import_graph_has_no_cycle():
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            pytest.fail("import cycle: " + " -> ".join(on_path[on_path.index(name):] + [name]))
        if name in done:
            return
        on_path.append(name)
        for dep in sorted(GRAPH[name]):
            visit(dep)
        on_path.pop()
        done.add(name)

    for name in sorted(GRAPH):
        visit(name)


def test_generators_sit_side_by_side_over_shared_modules():
    assert GENERATOR_MODULES == {name for name in MODULES if name.startswith("Gen")}  # each Gen*.py has a row
    for name in GENERATOR_MODULES:
        siblings = GRAPH[name] & (GENERATOR_MODULES | TOP)
        assert not siblings, f"{name} imports {siblings}: a generator imports shared modules only"
    for name in set(MODULES) - GENERATOR_MODULES - TOP:
        upward = GRAPH[name] & (GENERATOR_MODULES | TOP)
        assert not upward, f"the shared module {name} imports {upward}"


def test_every_row_of_the_table_is_a_generator_and_ships_a_usable_model():
    assert len({row.number for row in TABLE}) == len({row.name for row in TABLE}) == len(TABLE)
    for row in TABLE:
        assert issubclass(row.cls, Generator) and row.description
        if row.learned:
            gen = make_generator(row.name, target="taichi1.mp4")  # the shipped file, checked as the demo checks it
            assert set(TARGET_KEYS) <= set(gen.record) and gen.record["target"] == "taichi1.mp4"
            assert all(gen.config[k] == v for k, v in row.config.items())


def test_a_model_that_does_not_say_how_its_crops_were_cut_is_refused(tmp_path):
    GenVanillaNN(device="cpu").save(tmp_path / "untrained.pth")  # never trained: knows no target
    with pytest.raises(DanceError, match="does not record target, crop_margin"):
        make_generator("vanilla_nn_ske", target="taichi1.mp4", model=tmp_path / "untrained.pth")


def test_help_lists_every_generator_of_the_table():
    out = subprocess.run([sys.executable, str(ROOT / "DanceDemo.py"), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120).stdout
    for row in TABLE:
        assert f"{row.number} {row.name}" in out


MAX_MODULE_LINES = 400   # a module a newcomer reads in a sitting
MAX_FUNCTION_LINES = 60  # a function seen whole on one screen


def sizes_over_the_limits():
    """'module: N lines' and 'module.function: N lines' for every top-level module over a limit."""
    over = []
    for name, path in sorted(MODULES.items()):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            over.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    over.append(f"{name}.{node.name}: {length} lines")
    return over


def test_no_module_over_400_lines_and_no_function_over_60():
    over = sizes_over_the_limits()
    assert not over, f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {over}"
