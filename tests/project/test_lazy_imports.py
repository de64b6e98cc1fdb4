"""Start-up stays light, and the import graph stays visible: project modules are imported at
module top, and an import inside a function is there for one of three reasons only.

1. hoisting it would add a heavy library (torch, lightning, diffusers, mlflow, ...) to what
   importing the module loads: `longvie --help`, `compose` and the Dagster definitions stay
   quick, and a step pays for its libraries when it runs;
2. hoisting it would close an import cycle at module load;
3. its name is also a module-level name of the importing module.

The first test checks the start-up paths themselves; the second finds every function-local
project import that has none of the reasons, so it is moved to the module's top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project.test_import_direction import ROOT, module_files

# Libraries whose import costs tenths of a second or more (or starts threads and plugins).
HEAVY = {"torch", "torchvision", "torchmetrics", "lightning", "diffusers", "transformers",
         "great_expectations", "mlflow", "dagster", "dagster_mlflow", "pandas", "pyarrow", "cv2",
         "av", "scipy", "matplotlib", "trimesh", "embreex", "dvc", "sqlalchemy", "scenedetect",
         "safetensors", "PIL", "imageio", "tqdm", "skimage", "sklearn", "huggingface_hub"}
START_UP = ["longvie.cli", "longvie.steps", "longvie.catalog", "longvie.config", "longvie.ui",
            "orchestration.definitions"]
# What each start-up path may load: the Dagster definitions are Dagster's own.
ALLOWED = {"orchestration.definitions": {"dagster"}}
DEEP_LEARNING = {"torch", "lightning", "diffusers", "great_expectations", "mlflow", "transformers"}


@pytest.mark.parametrize("module", START_UP)
def test_start_up_paths_load_no_deep_learning_library(module):
    code = (f"import sys, {module}; print(' '.join(sorted(m for m in {sorted(HEAVY)!r} "
            "if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert not set(loaded) & DEEP_LEARNING, f"importing {module} loads {loaded}"
    assert set(loaded) <= ALLOWED.get(module, set()), f"importing {module} loads {loaded}"


def resolved(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - (path.name != "__init__.py")]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


class ImportGraph:
    """Module-top imports of every project module: project modules and external libraries."""

    def __init__(self) -> None:
        self.files = module_files()
        self.trees = {m: ast.parse(p.read_text()) for m, p in self.files.items()}
        self.edges: dict[str, set[str]] = {}
        self.libraries: dict[str, set[str]] = {}
        for module, tree in self.trees.items():
            self.edges[module], self.libraries[module] = self._top_level(module, tree)

    def project_module(self, name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in self.files:
                return ".".join(parts[:end])
        return None

    def packages(self, module: str) -> set[str]:
        parts = module.split(".")
        return {".".join(parts[:k]) for k in range(1, len(parts))} & set(self.files)

    def targets(self, module: str, node: ast.ImportFrom | ast.Import) -> set[str]:
        if isinstance(node, ast.Import):
            found = {self.project_module(a.name) for a in node.names}
        else:
            full = resolved(module, self.files[module], node)
            found = {self.project_module(full)}
            found |= {self.project_module(f"{full}.{a.name}") for a in node.names}
        found.discard(None)
        return {t for target in found for t in {target, *self.packages(target)}}

    def _top_level(self, module: str, tree: ast.Module) -> tuple[set[str], set[str]]:
        project, external = set(), set()
        for statement in tree.body:
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                continue
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for node in ast.walk(statement):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                targets = self.targets(module, node)
                project |= targets
                if not targets:
                    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [resolved(module, self.files[module], node)])
                    external |= {n.split(".")[0] for n in names}
        return project - {module}, external

    def reach(self, module: str) -> set[str]:
        seen, todo = set(), [module]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo += [*self.edges[current], *self.packages(current)]
        return seen

    def heavy(self, module: str) -> set[str]:
        return {lib for m in self.reach(module) for lib in self.libraries[m]} & HEAVY


def module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def needless_lazy_imports(graph: ImportGraph) -> list[str]:
    found = []
    for module, tree in graph.trees.items():
        own_names, own_heavy = module_level_names(tree), graph.heavy(module)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.ImportFrom) or node is function:
                    continue
                targets = graph.targets(module, node)
                if not targets:
                    continue
                pulls_heavy = any(not graph.heavy(t) <= own_heavy for t in targets)
                cycle = any(module in graph.reach(t) for t in targets)
                shadows = any((a.asname or a.name) in own_names for a in node.names)
                if not (pulls_heavy or cycle or shadows):
                    found.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    return found


def test_project_modules_are_imported_at_module_top_unless_there_is_a_reason():
    lazy = needless_lazy_imports(ImportGraph())
    assert not lazy, ("function-local imports that could be at module top (no heavy library, "
                      "no cycle, no name clash):\n  " + "\n  ".join(sorted(lazy)))


def test_the_check_finds_a_needless_lazy_import(tmp_path, monkeypatch):
    graph = ImportGraph()
    package = tmp_path / "longvie"
    package.mkdir()
    (package / "light.py").write_text("VALUE = 1\n")
    (package / "user.py").write_text("def f():\n    from longvie.light import VALUE\n"
                                     "    return VALUE\n")
    graph.files = {"longvie.light": package / "light.py", "longvie.user": package / "user.py"}
    graph.trees = {m: ast.parse(p.read_text()) for m, p in graph.files.items()}
    graph.edges = {m: set() for m in graph.files}
    graph.libraries = {m: set() for m in graph.files}
    assert needless_lazy_imports(graph) == ["longvie.user:2 from longvie.light import VALUE"]
    graph.libraries["longvie.light"] = {"torch"}  # now hoisting would load torch at start-up
    assert needless_lazy_imports(graph) == []
