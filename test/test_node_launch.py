"""launch/fartrack.launch.py and config/fartrack.rviz.

launch and launch_ros are not installable from PyPI, so the launch file is checked statically
here (it parses, declares the documented arguments, starts executables that exist in scripts/,
uses files that exist in config/); where launch_ros is importable (a real ROS install) it is also
loaded and its launch description inspected.
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "fartrack.launch.py"
RVIZ_FILE = REPO / "config" / "fartrack.rviz"
SPEED_FIGURE = re.compile(r"\d(\.\d+)?x faster")
DOCUMENTED_ARGUMENTS = {"image", "device", "weights", "variant", "namespace", "params_file", "use_lifecycle",
                        "autostart", "image_transport", "qos_reliability"}


def _tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _string_constants(node) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _declared_arguments(tree: ast.Module) -> set[str]:
    """Names in the ARGUMENTS table (name, default, description) the file declares from."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {entry.elts[0].value for entry in node.value.elts}
    return set()


def _module_constant(tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return node.value.value
    raise AssertionError(f"{name} is not defined in {LAUNCH_FILE.name}")


def test_launch_file_parses_and_defines_generate_launch_description():
    tree = _tree()
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_launch_file_declares_the_documented_arguments():
    tree = _tree()
    declared = _declared_arguments(tree)

    assert DOCUMENTED_ARGUMENTS <= declared
    assert any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"
               for n in ast.walk(tree))


def _argument_descriptions(tree: ast.Module) -> dict[str, str]:
    """name -> description of each ARGUMENTS entry whose description is a plain string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {entry.elts[0].value: entry.elts[2].value for entry in node.value.elts
                    if isinstance(entry.elts[2], ast.Constant)}
    return {}


def test_parameter_overrides_describe_the_parameters_choices_and_defaults():
    """The launch file's own words for a node parameter cannot drift from the parameter's choices
    and default (params.py is the single source)."""
    from fartrack_ros.params import BY_NAME

    tree = _tree()
    descriptions = _argument_descriptions(tree)
    overrides = ast.literal_eval(next(
        n.value for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "OVERRIDES" for t in n.targets)))
    for name in overrides:
        spec, text = BY_NAME[name], descriptions[name]
        for choice in spec.choices or ():
            assert choice in text, f"launch argument {name}: choice {choice!r} not described"
        if spec.default != "":
            assert f"default {spec.default}" in text, f"launch argument {name}: default {spec.default!r} not said"
        assert not SPEED_FIGURE.search(text), f"launch argument {name}: speed figures belong to params.py"


def test_every_launch_argument_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    start = readme.index("- `fartrack.launch.py` arguments:")
    documented = readme[start:readme.index("\n- ", start + 1)]

    missing = [name for name in sorted(_declared_arguments(_tree())) if f"`{name}`" not in documented]

    assert not missing, f"launch arguments missing from the README's list: {missing}"


def test_launch_file_starts_an_executable_that_exists():
    tree = _tree()
    executable = _module_constant(tree, "EXECUTABLE")
    package = _module_constant(tree, "PACKAGE")

    assert package == "fartrack_ros"
    assert (REPO / "scripts" / executable).is_file()
    assert (REPO / "scripts" / executable).stat().st_mode & 0o111, "not executable"


def test_launch_file_refers_to_files_that_exist_in_config():
    strings = _string_constants(_tree())
    for name in ("fartrack.yaml", "fartrack.rviz"):
        assert name in strings
        assert (REPO / "config" / name).is_file()


def test_managed_mode_passes_the_managed_flag():
    assert "--managed" in _string_constants(_tree())


def test_rviz_config_shows_the_debug_image():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(RVIZ_FILE.read_text())

    displays = config["Visualization Manager"]["Displays"]
    images = [d for d in displays if d["Class"] == "rviz_default_plugins/Image"]
    assert images and images[0]["Topic"]["Value"] == "/fartrack/debug_image"
    assert images[0]["Enabled"] is True


def test_launch_description_loads_with_launch_ros():
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    spec = importlib.util.spec_from_file_location("fartrack_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    description = module.generate_launch_description()

    names = {argument.name for argument in description.get_launch_arguments()}
    assert DOCUMENTED_ARGUMENTS <= names


def _load_with_stand_ins(monkeypatch):
    """The launch file loaded against minimal stand-ins of launch and launch_ros (they only record
    what they are given), so that its own logic runs where those packages are not installed."""
    import sys
    import types

    class Recorded:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class Configuration(Recorded):
        def perform(self, context):
            return context.launch_configurations[self.args[0]]

    modules = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {"DeclareLaunchArgument": Recorded, "OpaqueFunction": Recorded, "EmitEvent": Recorded,
                           "RegisterEventHandler": Recorded},
        "launch.events": {"matches_action": lambda action: ("matches", action)},
        "launch.substitutions": {"LaunchConfiguration": Configuration, "PathJoinSubstitution": Recorded},
        "launch_ros": {},
        "launch_ros.actions": {"LifecycleNode": type("LifecycleNode", (Recorded,), {}),
                               "Node": type("Node", (Recorded,), {})},
        "launch_ros.event_handlers": {"OnStateTransition": Recorded},
        "launch_ros.events": {},
        "launch_ros.events.lifecycle": {"ChangeState": Recorded},
        "launch_ros.parameter_descriptions": {"ParameterValue": Recorded},
        "launch_ros.substitutions": {"FindPackageShare": Recorded},
        "lifecycle_msgs": {},
        "lifecycle_msgs.msg": {"Transition": types.SimpleNamespace(TRANSITION_CONFIGURE=1, TRANSITION_ACTIVATE=3)},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("fartrack_launch_stand_ins", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# launch argument values as a launch context holds them (the defaults, params_file by name)
LAUNCH_VALUES = {"image": "camera/image_raw", "device": "", "weights": "", "variant": "", "precision": "",
                 "image_transport": "", "qos_reliability": "", "params_file": "fartrack.yaml",
                 "use_lifecycle": "false", "autostart": "false", "namespace": "", "rviz": "false", "use_sim_time": ""}


def _context(**values: str):
    """A launch context holding the defaults and ``values`` (``ros_namespace``: pushed by an
    including file's PushRosNamespace)."""
    from types import SimpleNamespace

    return SimpleNamespace(launch_configurations={**LAUNCH_VALUES, **values})


@pytest.mark.parametrize("namespace, topic", [("", "/fartrack/debug_image"),
                                              ("robot1", "/robot1/fartrack/debug_image"),
                                              ("/fleet/robot1/", "/fleet/robot1/fartrack/debug_image")])
def test_rviz_shows_the_debug_image_of_the_namespaced_node(monkeypatch, namespace, topic):
    launch = _load_with_stand_ins(monkeypatch)
    tracker, rviz = launch._nodes(_context(namespace=namespace, rviz="true"))

    assert tracker.kwargs["executable"] == "fartrack_node" and tracker.kwargs["namespace"] == namespace
    assert rviz.kwargs["executable"] == "rviz2"
    assert rviz.kwargs["remappings"] == [("/fartrack/debug_image", topic)]
    assert len(launch._nodes(_context(namespace=namespace))) == 1


@pytest.mark.parametrize("namespace, topic", [("", "/robot1/fartrack/debug_image"),
                                              ("cam", "/robot1/cam/fartrack/debug_image"),
                                              ("/cam", "/cam/fartrack/debug_image")])
def test_rviz_follows_a_namespace_pushed_by_an_including_launch_file(monkeypatch, namespace, topic):
    launch = _load_with_stand_ins(monkeypatch)

    _, rviz = launch._nodes(_context(namespace=namespace, rviz="true", ros_namespace="/robot1"))

    assert rviz.kwargs["remappings"] == [("/fartrack/debug_image", topic)]


def test_a_managed_node_with_autostart_is_asked_to_configure_then_to_activate_once_inactive(monkeypatch):
    launch = _load_with_stand_ins(monkeypatch)

    (waiting,) = launch._nodes(_context(use_lifecycle="true"))  # no autostart: a lifecycle manager's to drive
    assert type(waiting).__name__ == "LifecycleNode" and waiting.kwargs["arguments"] == ["--managed"]
    node, handler, configure = launch._nodes(_context(use_lifecycle="true", autostart="true"))

    assert type(node).__name__ == "LifecycleNode"
    assert configure.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node), "transition_id": 1}
    (on_inactive,) = handler.args
    assert on_inactive.kwargs["target_lifecycle_node"] is node
    assert (on_inactive.kwargs["start_state"], on_inactive.kwargs["goal_state"]) == ("configuring", "inactive")
    assert on_inactive.kwargs["handle_once"]  # a later configure by hand is not activated for the user
    (activate,) = on_inactive.kwargs["entities"]
    assert activate.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node), "transition_id": 3}
    (plain,) = launch._nodes(_context(autostart="true"))  # a plain node starts active by itself
    assert type(plain).__name__ == "Node"


def test_image_transport_and_qos_reliability_reach_the_node_only_when_given(monkeypatch):
    launch = _load_with_stand_ins(monkeypatch)

    (default,) = launch._nodes(_context())
    (given,) = launch._nodes(_context(image_transport="compressed", qos_reliability="best_effort"))

    assert default.kwargs["parameters"][1] == {}
    overrides = given.kwargs["parameters"][1]
    assert {name: value.args[0] for name, value in overrides.items()} == {"image_transport": "compressed",
                                                                          "qos_reliability": "best_effort"}


@pytest.mark.parametrize("given, expected", [("", None), ("true", True), ("false", False)])
def test_use_sim_time_reaches_the_node_only_when_given(monkeypatch, given, expected):
    launch = _load_with_stand_ins(monkeypatch)
    (tracker,) = launch._nodes(_context(device="cpu", use_sim_time=given))

    params_file, overrides = tracker.kwargs["parameters"]
    assert params_file == "fartrack.yaml"
    assert overrides.get("use_sim_time") is expected
    assert "device" in overrides  # the string overrides are unchanged


def test_a_misspelt_boolean_launch_argument_stops_the_launch(monkeypatch):
    launch = _load_with_stand_ins(monkeypatch)

    with pytest.raises(ValueError, match="expected true or false.*'ture'"):
        launch._nodes(_context(use_sim_time="ture"))
