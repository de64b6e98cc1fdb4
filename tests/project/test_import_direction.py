"""Imports run one way: from a layer to itself or to the layers below it, never up; and the
entry points (the CLI, the Dagster definitions) do not lean on each other.

The graph is read from the source (every ``import`` and ``from ... import`` of a project module,
at module top or inside a function), so a lazy import cannot hide an arrow. ``KNOWN_UPWARD``
lists the arrows that still climb, each with why; an arrow fixed must leave the list (the last
test), and a new one fails the first.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A room is a package of src/longvie (or a top-level module), or orchestration/.
LAYERS: list[set[str]] = [
    {"errors", "atomic", "ranks"},
    {"config"},
    {"preflight", "tracking_store", "tracking", "step_lock", "plots", "data_version", "video",
     "validation", "dagster_home"},
    {"synth", "curation", "controls"},
    {"quality", "pyfunc"},
    {"model"},
    {"training", "registry"},
    {"generation"},
    {"benchmark"},
    {"promotion"},
    {"serving"},
    {"catalog", "steps", "summaries", "ui", "__init__"},
    {"cli", "orchestration"},  # entry points: neither imports the other
]
ENTRY_POINTS = len(LAYERS) - 1

KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def layer_of(room: str) -> int:
    for index, rooms in enumerate(LAYERS):
        if room in rooms:
            return index
    raise AssertionError(f"room {room!r} is in no layer of LAYERS: place it")


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "orchestration":
        return "orchestration"
    if parts[1:] == ["__main__"]:  # `python -m longvie` is the CLI
        return "cli"
    return parts[1] if len(parts) > 1 else "__init__"


def module_files() -> dict[str, Path]:
    found = {}
    for folder, prefix in ((ROOT / "src" / "longvie", "longvie"),
                           (ROOT / "orchestration", "orchestration")):
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((prefix, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in ("longvie", "orchestration")}


def upward_arrows() -> dict[tuple[str, str], list[str]]:
    arrows: dict[tuple[str, str], list[str]] = {}
    for module, path in module_files().items():
        source = room_of(module)
        for target in imported_modules(path):
            to = room_of(target)
            climbs = layer_of(to) > layer_of(source)
            sideways = layer_of(to) == layer_of(source) == ENTRY_POINTS
            if to != source and (climbs or sideways):
                arrows.setdefault((source, to), []).append(f"{module} -> {target}")
    return arrows


def test_every_room_has_a_layer():
    for module in module_files():
        layer_of(room_of(module))


def test_no_import_climbs_or_joins_entry_points_beyond_the_known_ones():
    new = {arrow: where for arrow, where in upward_arrows().items()
           if arrow not in KNOWN_UPWARD}
    assert not new, "imports that climb a layer:\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(sorted(set(w)))}" for (a, b), w in sorted(new.items()))


def test_every_known_upward_import_still_exists():
    fixed = set(KNOWN_UPWARD) - set(upward_arrows())
    assert not fixed, f"fixed, so take them out of KNOWN_UPWARD: {sorted(fixed)}"


def test_the_check_sees_a_lazy_import(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from longvie.serving.video_model import serving_spec\n")
    assert imported_modules(module) == {"longvie.serving.video_model"}
