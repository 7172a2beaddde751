"""The pins for ROS 2 Jazzy from apt (requirements-jazzy-apt.txt) stay in step with requirements.txt,
and the container recipe names files that exist. scripts/check_jazzy_apt.py runs the package's
tests under those pins (numpy 1.26) as a step of `make test`."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Pins that differ from requirements.txt on purpose, with why (requirements-jazzy-apt.txt says more).
APT_OVERRIDES = {
    "numpy": "1.26.4",                      # Ubuntu 24.04's python3-numpy, which apt's ROS is built against
    "opencv-contrib-python": "4.11.0.86",   # 4.12 and later require numpy>=2
}


def load_check_script():
    spec = importlib.util.spec_from_file_location("check_jazzy_apt", REPO / "scripts" / "check_jazzy_apt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_jazzy_apt = load_check_script()


def pins(path: Path) -> dict[str, str]:
    """name -> pinned version of every line of a requirements file (each must be an exact pin)."""
    result = {}
    for line in path.read_text().splitlines():
        name = check_jazzy_apt.requirement_name(line)
        if name is not None:
            version = re.fullmatch(r"[^=]+==([^\s;#]+).*", line.strip())
            assert version, f"{path.name}: not an exact pin: {line!r}"
            result[name] = version.group(1)
    return result


def test_apt_pins_equal_the_default_pins_but_for_numpy_and_opencv():
    apt, default = pins(REPO / "requirements-jazzy-apt.txt"), pins(REPO / "requirements.txt")
    assert {name: version for name, version in apt.items() if name in APT_OVERRIDES} == APT_OVERRIDES
    differing = {name: (version, default.get(name)) for name, version in apt.items()
                 if name not in APT_OVERRIDES and default.get(name) != version}
    assert not differing, f"requirements-jazzy-apt.txt vs requirements.txt: {differing}"


def test_apt_pins_leave_ros_to_apt_and_name_everything_else():
    apt, default = pins(REPO / "requirements-jazzy-apt.txt"), pins(REPO / "requirements.txt")
    assert not [name for name in apt if name.startswith("ros-")]
    stand_in = check_jazzy_apt.ros_stand_in((REPO / "requirements.txt").read_text(),
                                            (REPO / "requirements-jazzy-apt.txt").read_text())
    from_apt = {check_jazzy_apt.requirement_name(line) for line in stand_in.splitlines()}
    # What apt's ROS packages bring: the ros-* wheels' own Python dependencies (python3-empy, python3-lark).
    not_ros = {name for name in from_apt if not name.startswith("ros-")}
    assert not_ros == {"empy", "lark-parser"}, "pins of requirements.txt missing from requirements-jazzy-apt.txt"
    assert from_apt | set(apt) == set(default)


def test_requirement_names_are_normalised():
    name = check_jazzy_apt.requirement_name
    assert [name("ros-jazzy-rclpy[fastrtps]==7.1.6"), name("typing_extensions==4.16.0"), name("ruamel.yaml==0.19.1"),
            name("# torch==1"), name("  "), name("numpy==1.26.4  # apt's")] == \
        ["ros-jazzy-rclpy", "typing-extensions", "ruamel-yaml", None, None, "numpy"]


def test_dockerfile_installs_the_documented_way_from_files_that_exist():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM ros:jazzy\b", dockerfile, re.M)
    assert "--system-site-packages" in dockerfile and "colcon build" in dockerfile
    for name in re.findall(r"\b(requirements[\w-]*\.txt|launch/[\w.]+|config/[\w.]+)", dockerfile):
        assert (REPO / name).is_file(), f"docker/Dockerfile names {name}, which does not exist"
    assert "requirements-jazzy-apt.txt" in dockerfile and "requirements-nodeps.txt" in dockerfile
