"""The package's layers, enforced: every import in ``phobos/`` points down the layer list.

An AST walk over every ``.py`` file under ``phobos/`` collects every import, at module level
and inside functions, ``import x`` and ``from x import y``, relative ones resolved against the
importing module, and maps each ``phobos`` module to its layer in :data:`LAYERS`:

====  ====================================================================================
rank  layers
====  ====================================================================================
0     ``phobos`` (the root package), ``phobos.config``, ``phobos.ray_cluster``: base
      utilities that import no other part of ``phobos`` and that every layer may use
1     ``phobos.comms``
2     ``phobos.envs``: pure simulation, no ``zmq``
3     ``phobos.agents``: policies, no ``zmq``
4     ``phobos.training``, ``phobos.evaluation``, ``phobos.live``: siblings, none imports
      another
5     ``phobos.demo``, ``phobos.benchmarks``, ``phobos.cli``: the entry points; they may
      import anything below and one another, and nothing below imports them
====  ====================================================================================

A module may import its own layer and any layer of a lower rank. An import of a higher rank,
or of another layer at rank 4, is a violation. So is ``zmq`` in the layers of :data:`NO_ZMQ`,
imported directly or through a ``phobos`` module that loads it when imported (the closure is
taken over module-level imports, which is what runs on import). Imports are read from the
source, so one hidden in a function, which the import system sees only when the function
runs, counts as much as one at the top of a file; so does one under ``if TYPE_CHECKING:``,
since a type that names a higher layer couples the layers as much. A ``phobos`` module that
no layer claims fails the check, so a new top-level module must be given a place here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "phobos"

LAYERS: dict[str, int] = {
    "phobos": 0,
    "phobos.config": 0,
    "phobos.ray_cluster": 0,
    "phobos.comms": 1,
    "phobos.envs": 2,
    "phobos.agents": 3,
    "phobos.training": 4,
    "phobos.evaluation": 4,
    "phobos.live": 4,
    "phobos.demo": 5,
    "phobos.benchmarks": 5,
    "phobos.cli": 5,
}
"""Rank of each layer; an import may point only to an equal or lower rank."""

SIBLINGS = 4
"""The rank whose layers must not import one another (training, evaluation, live)."""

NO_ZMQ = ("phobos.envs", "phobos.agents")
"""Layers that must not load ``zmq``: pure simulation and policies."""


@dataclass(frozen=True)
class Import:
    """One module named by an import statement."""

    line: int
    """Line of the statement."""
    target: str
    """The absolute dotted name imported (for ``from a import b``: ``a`` and ``a.b``)."""
    written: str
    """The statement as written, for the failure message."""
    deferred: bool
    """Whether it sits inside a function, so that it runs only when the function does."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name, or ``None`` for a module outside ``phobos``.

    Raises:
        KeyError: A ``phobos`` module that no layer claims.
    """
    if module != "phobos" and not module.startswith("phobos."):
        return None
    if module == "phobos":
        return module
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in LAYERS:
            return ".".join(parts[:end])
    raise KeyError(f"{module} has no layer: give it one in LAYERS ({Path(__file__).name})")


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a source file under the package directory ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in one file, wherever it sits, with relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(node.lineno, alias.name, f"import {alias.name}", deferred))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # One package up per dot after the first.
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = ", ".join(alias.name for alias in node.names)
            written = f"from {'.' * node.level}{node.module or ''} import {names}"
            found.append(Import(node.lineno, base, written, deferred))
            for alias in node.names:  # ``b`` in ``from a import b`` may be a module
                found.append(Import(node.lineno, f"{base}.{alias.name}", written, deferred))
        inside = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def scan(root: Path) -> dict[str, tuple[Path, list[Import]]]:
    """Each module under ``root`` with its file and its imports."""
    return {
        module_name(path, root): (path, imports_of(path, root))
        for path in sorted(root.rglob("*.py"))
    }


def known(target: str, modules: dict[str, object]) -> str:
    """The longest prefix of ``target`` that is a scanned module (``a.b.Name`` -> ``a.b``)."""
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def loads_zmq(modules: dict[str, tuple[Path, list[Import]]]) -> set[str]:
    """The ``phobos`` modules whose import loads ``zmq``, directly or through other modules."""

    def chain(module: str) -> list[str]:
        # Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``.
        parts = module.split(".")
        return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]

    loaders: set[str] = set()
    changed = True
    while changed:
        changed = False
        for module, (_, found) in modules.items():
            if module in loaders:
                continue
            for item in found:
                if item.deferred:
                    continue
                direct = item.target == "zmq" or item.target.startswith("zmq.")
                if direct or loaders.intersection(chain(known(item.target, modules))):
                    loaders.add(module)
                    changed = True
                    break
    return loaders


def layer_of_import(target: str, modules: dict[str, object]) -> str | None:
    """The layer of an imported name; ``from phobos import __version__`` is the root's."""
    try:
        return layer_of(target)
    except KeyError:
        return layer_of(known(target, modules))


def check_module(
    module: str, path: Path, found: list[Import], root: Path, modules: dict, zmq_loaders: set
) -> list[str]:
    """The violations in one module, as ``file:line: statement: why``, one per line and cause."""
    importer = layer_of(module)
    assert importer is not None
    rank = LAYERS[importer]
    problems: dict[tuple[int, str], str] = {}
    for item in found:
        statement = repr(item.written)
        if item.target == "zmq" or item.target.startswith("zmq."):
            if importer in NO_ZMQ:
                problems.setdefault((item.line, "zmq"), f"{statement}: {importer} must not use zmq")
            continue
        imported = layer_of_import(item.target, modules)
        if imported is None or imported == importer:
            continue
        other = LAYERS[imported]
        if other > rank:
            why = f"{importer} (rank {rank}) imports {imported} (rank {other}), a higher layer"
            problems.setdefault((item.line, imported), f"{statement}: {why}")
        elif other == rank == SIBLINGS:
            why = f"{importer} imports its sibling {imported}"
            problems.setdefault((item.line, imported), f"{statement}: {why}")
        elif importer in NO_ZMQ and known(item.target, modules) in zmq_loaders:
            why = f"{importer} must not use zmq ({known(item.target, modules)} loads it)"
            problems.setdefault((item.line, "zmq"), f"{statement}: {why}")
    where = path.relative_to(root.parent)
    return [f"{where}:{line}: {message}" for (line, _), message in sorted(problems.items())]


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import under ``root`` that breaks the layers."""
    modules = scan(root)
    zmq_loaders = loads_zmq(modules)
    problems: list[str] = []
    for module, (path, found) in modules.items():
        problems += check_module(module, path, found, root, modules, zmq_loaders)
    return problems


def test_imports_point_down_the_layers() -> None:
    problems = violations()
    assert not problems, "layer violations:\n" + "\n".join(problems)


def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A throwaway ``phobos`` tree with the given files (and their ``__init__.py``)."""
    root = tmp_path / "phobos"
    for name, source in files.items():
        path = root / name
        for folder in [root, *reversed(path.relative_to(root).parents)]:
            (root / folder).mkdir(parents=True, exist_ok=True)
            init = root / folder / "__init__.py"
            if not init.exists():
                init.write_text("")
        path.write_text(source)
    return root


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from phobos.training import train\n", "phobos.training (rank 4)"),
        ("import zmq\n", "must not use zmq"),
        ("def f():\n    import zmq.auth\n", "must not use zmq"),
        ("from ..agents import policy\n", "phobos.agents (rank 3)"),
        ("from phobos.demo.launcher import Demo\n", "phobos.demo (rank 5)"),
        ("from phobos.comms.wire import send\n", "must not use zmq (phobos.comms.wire loads it)"),
    ],
)
def test_a_planted_violation_in_envs_is_named(source: str, expected: str, tmp_path: Path) -> None:
    root = fake_package(
        tmp_path,
        {
            "envs/bad.py": "import numpy\nfrom phobos.comms.message import Message\n" + source,
            "comms/message.py": "",
            "comms/wire.py": "import zmq\n",
        },
    )
    problems = violations(root)
    assert len(problems) == 1, problems
    line = 2 + source.count("\n")  # the planted import is the source's last line
    assert problems[0].startswith(f"phobos/envs/bad.py:{line}: ")
    assert expected in problems[0]


def test_siblings_do_not_import_one_another(tmp_path: Path) -> None:
    root = fake_package(
        tmp_path,
        {
            "evaluation/bad.py": "from phobos.agents import make_team\n"
            "from phobos.training.config import TrainConfig\n",
            "training/config.py": "",
        },
    )
    problems = violations(root)
    assert problems == [
        "phobos/evaluation/bad.py:2: 'from phobos.training.config import TrainConfig': "
        "phobos.evaluation imports its sibling phobos.training"
    ]


def test_a_module_without_a_layer_is_refused(tmp_path: Path) -> None:
    root = fake_package(tmp_path, {"newthing.py": ""})
    with pytest.raises(KeyError, match="phobos.newthing has no layer"):
        violations(root)


MAX_MODULE_LINES = 450
"""Modules of a few hundred lines, one concept each (STYLE.md item 2)."""


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"
