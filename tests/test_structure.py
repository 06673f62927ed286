"""The project's import graph has no cycle: one module, one room, and doors that go one way.

A cycle makes the order modules load in matter (a name imported from a half-loaded module is missing) and ties
rooms together that should change alone; one imported lazily inside a function is still a cycle, just one found
later. So every ``import`` counts, at module level and inside functions alike.
"""

from __future__ import annotations

import ast
import importlib
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from shopstyle_spider.config import PROJECT_ROOT

PACKAGES = ("shopstyle_spider", "modeling")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages (``pkg.sub`` for ``pkg/sub/__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that ``name`` (at ``path``) imports anywhere in its body, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = module_files()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def test_the_graph_sees_the_imports_it_must_judge():
    """A walker that missed relative, ``from .. import``, or function-level imports would pass any code."""
    graph = import_graph()
    assert "shopstyle_spider.schema" in graph["shopstyle_spider.spiders.shopstyle"]  # from .. import schema
    assert "shopstyle_spider.slots" in graph["shopstyle_spider.scheduler"]  # from .slots import API_SLOT
    assert "shopstyle_spider.request_queue" in graph["shopstyle_spider.spiders.shopstyle"]  # inside a method
    assert "modeling.cluster" in graph["modeling.image"]  # inside ImageEmbedder._embed


def test_no_module_of_the_project_imports_itself_through_others():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")



@pytest.mark.parametrize("command", [
    "modeling.analyze", "modeling.audit", "modeling.cycle", "modeling.filings", "modeling.filings export",
    "modeling.models", "modeling.models list", "modeling.models show", "modeling.models current",
    "modeling.models promote", "modeling.predict", "modeling.reviews", "modeling.train", "modeling.review.__main__",
    "shopstyle_spider.changes", "shopstyle_spider.demo", "shopstyle_spider.sandbox.__main__"])
def test_every_command_prints_its_help_with_each_default_once_as_typed(command, capsys):
    """argparse formats a help text only when asked: a stray '%' in one (99% rather than 99%%) breaks --help and
    nothing else, so each command's (and subcommand's) help is formatted here, as ``--help`` prints it. Each option
    names its default at most once (never a help that says it followed by argparse's ``(default: None)``), and as
    one would type it: no ``None``, no ``False``, no Python list, no choices argparse ran together."""
    module, *subcommand = command.split()
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main([*subcommand, "--help"])
    printed = capsys.readouterr().out
    assert exited.value.code == 0 and "--" in printed
    options = re.split(r"\n(?=  -)", printed.split("\noptions:\n", 1)[1])  # one chunk per option
    assert len(options) > 1
    for option in options:
        said = " ".join(option.split())
        assert said.lower().count("default") <= 1, said
        assert "default: None" not in said and "default: False" not in said and "['" not in said, said
        assert "default: True" not in said, said
        assert "{leaf,leaf,parent}" not in said, said
