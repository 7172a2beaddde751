"""The package's layout rules (issue 13, "one place for each job"), checked on the source's syntax trees.

- No import cycle among the package's modules (module-level imports, which run at import time).
- One module starts node processes: face_tracking_3dmm/apps/graph.py.
- No class over 300 lines, no function over 80 (package, scripts, tests, launch files).
- The algorithm modules import no ROS and draw nothing: drawing belongs in io/overlay.py, ROS in
  nodes/, apps/ and evaluation/replay.py.
- Test files leave torch's thread count to conftest.py.
"""
from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "face_tracking_3dmm"
PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))
#: Every Python file the size and process rules cover.
SOURCE_FILES = sorted([*PACKAGE_FILES, *REPO.glob("scripts/*.py"), *REPO.glob("test/*.py"),
                       *REPO.glob("launch/*.py"), REPO / "setup.py"])

MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 300

#: The algorithms: model, geometry, tracking, fitting, rendering, the evaluation's scoring and the
#: ROS-free inputs and outputs. evaluation/truth_render.py is not among them: it renders the
#: benchmark's ground truth and does so with OpenCV's polygon fills on purpose, unlike the fit's
#: renderer (see its docstring), so its cv2 drawing is its job; the package-wide ROS rule covers it.
ALGORITHM_FILES = sorted(
    [PACKAGE / "model.py", PACKAGE / "geometry.py", PACKAGE / "correspondence.py",
     *(PACKAGE / "tracking").glob("*.py"), *(PACKAGE / "fitting").glob("*.py"), *(PACKAGE / "rendering").glob("*.py"),
     *(PACKAGE / "evaluation" / name for name in ("metrics.py", "accuracy.py", "annotation_eval.py", "holdout.py")),
     *(path for path in (PACKAGE / "io").glob("*.py") if path.name != "overlay.py")])
#: The modules that may import ROS (rclpy, message packages, the nodes).
ROS_FILES = [*(PACKAGE / "nodes").glob("*.py"), *(PACKAGE / "apps").glob("*.py"), PACKAGE / "evaluation" / "replay.py"]

ROS_MODULE_PREFIXES = ("rclpy", "rcl_interfaces", "rosidl", "rosbag2_py", "tf2", "launch", "message_filters",
                       "cv_bridge", "face_tracking_3dmm.msg", "face_tracking_3dmm.nodes")
DRAWING_MODULE_PREFIXES = ("matplotlib", "PIL.ImageDraw", "face_tracking_3dmm.io.overlay")
CV2_DRAWING_FUNCTIONS = frozenset({"arrowedLine", "circle", "drawContours", "drawMarker", "ellipse", "fillConvexPoly",
                                   "fillPoly", "line", "polylines", "putText", "rectangle"})
#: Ways to start a child process that outlives the call (a node); subprocess.run of a command that
#: ends by itself (pip, cmake, the CLI under test) is not one and is allowed anywhere.
PROCESS_STARTERS = frozenset({"Popen", "create_subprocess_exec", "create_subprocess_shell", "spawnv", "spawnve",
                              "spawnl", "spawnle", "posix_spawn", "fork"})
NODE_PROCESS_MODULE = PACKAGE / "apps" / "graph.py"


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def module_name(path: Path) -> str:
    """``face_tracking_3dmm/io/bags.py`` -> ``face_tracking_3dmm.io.bags`` (a package: its folder's name)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: top level, also inside top-level ``if`` and
    ``try``, not in functions or classes and not under ``if TYPE_CHECKING``."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)) and not is_type_checking_block(node):
            pending.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)


def all_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, module level or inside a function."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def imported_names(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """Full names an import statement reaches: ``from a import b`` -> ``a.b`` (``b`` may be a
    module or a name in ``a``), relative imports resolved against the importing module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".")[:-node.level]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{alias.name}" for alias in node.names]


def nearest_known(name: str, known: set[str]) -> str | None:
    """The longest prefix of a dotted name that is one of ``known`` (None when none is)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """The package's modules, each with the package modules its module-level imports load."""
    modules = {module_name(path): path for path in PACKAGE_FILES}
    graph = {}
    for name, path in modules.items():
        importer = name if path.name != "__init__.py" else f"{name}.__init__"
        targets = (nearest_known(target, set(modules))
                   for node in module_level_imports(parse(path)) for target in imported_names(node, importer))
        graph[name] = {target for target in targets if target not in (None, name)}
    return graph


def matches_prefix(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") or name.startswith(prefix + "_")
               for prefix in prefixes)


def is_ros_module(name: str) -> bool:
    """rclpy and friends, the nodes, and message packages (``*_msgs``, ``*_interfaces``)."""
    top = name.split(".")[0]
    return matches_prefix(name, ROS_MODULE_PREFIXES) or top.endswith(("_msgs", "_interfaces"))


def ros_imports(path: Path) -> list[str]:
    importer = module_name(path)
    return [name for node in all_imports(parse(path)) for name in imported_names(node, importer)
            if is_ros_module(name)]


def drawing_uses(path: Path) -> list[str]:
    """Imports of drawing libraries or of the overlay, and calls of OpenCV's drawing functions."""
    tree = parse(path)
    importer = module_name(path)
    imports = [name for node in all_imports(tree) for name in imported_names(node, importer)
               if matches_prefix(name, DRAWING_MODULE_PREFIXES)]
    cv2_calls = [f"cv2.{node.attr} (line {node.lineno})" for node in ast.walk(tree)
                 if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cv2"
                 and node.attr in CV2_DRAWING_FUNCTIONS]
    return imports + cv2_calls


def process_starts(path: Path) -> list[str]:
    """Where a file names a way to start a long-lived child process (attribute, name or import)."""
    found = []
    for node in ast.walk(parse(path)):
        names = ([node.attr] if isinstance(node, ast.Attribute) else [node.id] if isinstance(node, ast.Name)
                 else [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else [])
        found += [f"{name} (line {node.lineno})" for name in names if name in PROCESS_STARTERS]
    return found


def oversized_definitions(path: Path) -> list[str]:
    """Functions over MAX_FUNCTION_LINES and classes over MAX_CLASS_LINES lines (``def`` to last line)."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{relative(path)}:{node.lineno} {node.name}: {length} lines (limit {limit})")
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"face_tracking_3dmm.config", "face_tracking_3dmm.tracking.faces"} <= graph[
        "face_tracking_3dmm.tracking.tracker"]   # the walk sees the imports
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' imports '.join(reversed(err.args[1]))}")


def test_the_cycle_check_sees_a_cycle():
    """The walk resolves relative imports and the sorter reports what it finds."""
    tree = ast.parse("from . import b\nfrom .c import d\nif TYPE_CHECKING:\n    import e\n")
    names = [name for node in module_level_imports(tree) for name in imported_names(node, "pkg.a")]
    assert sorted(names) == ["pkg.b", "pkg.c.d"]
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}).prepare()


def test_only_the_graph_module_starts_node_processes():
    """Node processes (long-lived children) start in apps/graph.py alone, which owns their
    environment, logs and shutdown; short commands run with subprocess.run anywhere."""
    starts = {relative(path): process_starts(path) for path in SOURCE_FILES if path != NODE_PROCESS_MODULE}
    assert {path: found for path, found in starts.items() if found} == {}
    assert process_starts(NODE_PROCESS_MODULE)   # the rule looks where processes do start


def test_no_class_over_300_lines_and_no_function_over_80():
    assert [line for path in SOURCE_FILES for line in oversized_definitions(path)] == []


@pytest.mark.parametrize("path", ALGORITHM_FILES, ids=relative)
def test_algorithm_modules_import_no_ros_and_draw_nothing(path):
    assert ros_imports(path) == []
    assert drawing_uses(path) == []


def test_ros_is_imported_only_by_the_nodes_the_apps_and_the_replay():
    offenders = {relative(path): ros_imports(path) for path in PACKAGE_FILES if path not in ROS_FILES}
    assert {path: names for path, names in offenders.items() if names} == {}
    assert ros_imports(PACKAGE / "nodes" / "tracker_node.py")   # the rule recognises ROS imports


def test_the_drawing_rule_recognises_the_overlay():
    assert drawing_uses(PACKAGE / "io" / "overlay.py")


def test_test_files_leave_torch_threads_to_conftest():
    """A file's torch.set_num_threads would set it for the whole session (conftest sets it once)."""
    calls = [relative(path) for path in REPO.glob("test/*.py")
             if any(isinstance(node, ast.Attribute) and node.attr == "set_num_threads"
                    for node in ast.walk(parse(path)))]
    assert calls == []
