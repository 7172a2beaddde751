#!/usr/bin/env python3
"""Set up ``.venv`` with ROS 2 Jazzy from PyPI wheels and build this package's messages into it.

Run by ``make setup`` (and by ``make demo`` / ``make test``). Standard library only, so that the
system ``python3`` can start it before the venv exists. Each step keeps a stamp in the venv and is
skipped when its inputs did not change, so a second run takes about a second.

Steps (see ../shared/notes/ros2-from-pypi.md for why each is needed):
1. create the venv; pip install requirements.txt (or the files given with --requirements),
   requirements-ros-build.txt (the undeclared wheels rosidl needs to build messages) and
   requirements-nodeps.txt (with --no-deps);
2. rewrite the include dirs that the ROS wheels' cmake files hard-code from the machine that built
   them to this venv's Python and numpy include dirs;
3. build tf2_msgs (TFMessage only) when no real tf2_msgs is importable;
4. build msg/ with plain cmake into the venv prefix: libraries land in .venv/lib, which the ROS
   wheels' bootstrapper already puts on LD_LIBRARY_PATH, so nothing needs to be sourced;
5. make the source tree importable in place (a .pth file; face_tracking_3dmm/__init__.py extends its
   __path__ to the generated ``face_tracking_3dmm.msg``) and write ``.venv/bin/face-tracking-3dmm``;
6. fetch the ICT Face Model Light (from GitHub, converted into the cache) and the demo clip (from
   PyPI) when ../shared is not beside the checkout.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "face_tracking_3dmm"
#: Where the generated Python messages go inside the venv: not site-packages, so that the source
#: tree (first on sys.path through the .pth file) provides the rest of the package.
GENERATED_PYTHON_DIR = Path("lib") / f"{PACKAGE}_generated"
#: Bump to force every step to run again after a change of this script's logic.
SCRIPT_VERSION = "1"

TF2_MSGS_FILES = {
    "package.xml": """<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.36.0</version>
  <description>TFMessage only, built by face_tracking_3dmm's set-up where no ROS 2 install provides
    tf2_msgs. Same definition, hence the same type hash, as the real package.</description>
  <maintainer email="face-tracking-3dmm@example.com">face_tracking_3dmm maintainers</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
""",
    "CMakeLists.txt": """cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
""",
    "msg/TFMessage.msg": "geometry_msgs/TransformStamped[] transforms\n",
}


class SetupError(RuntimeError):
    """A step failed for a reason the user can fix; the message says how."""


def log(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def run(command: list[str], **kwargs) -> None:
    log("$ " + " ".join(str(part) for part in command))
    result = subprocess.run([str(part) for part in command], **kwargs)
    if result.returncode != 0:
        raise SetupError(f"command failed with exit code {result.returncode}: {' '.join(map(str, command))}")


def digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()


def files_digest(paths: list[Path]) -> str:
    return digest(SCRIPT_VERSION, sys.version, *(display_path(p) + "\n" + p.read_text() for p in sorted(paths)))


def display_path(path: Path) -> str:
    """``path`` relative to the checkout when inside it (so that stamps do not depend on where it lies)."""
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.as_posix()


class Stamps:
    """Records which inputs each step last completed with, inside the venv (gone with it)."""

    def __init__(self, venv: Path):
        self.folder = venv / f".{PACKAGE}_setup"

    def is_current(self, step: str, key: str) -> bool:
        path = self.folder / step
        return path.is_file() and path.read_text() == key

    def mark(self, step: str, key: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / step).write_text(key)


def ensure_venv(venv: Path) -> Path:
    """Create the venv if needed and return its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        if not (3, 10) <= sys.version_info[:2] <= (3, 13):
            raise SetupError(f"Python {sys.version.split()[0]} found; the ROS 2 Jazzy wheels need 3.10-3.13 "
                             "(run with PYTHON=python3.11 make setup)")
        log(f"creating {venv} with {sys.executable}")
        run([sys.executable, "-m", "venv", venv])
        if not python.exists():
            raise SetupError("python3 -m venv failed; on Debian/Ubuntu: sudo apt install python3-venv")
    return python


def install_requirements(venv: Path, stamps: Stamps, requirements: list[Path]) -> None:
    """pip install ``requirements`` with the message-build wheels, then requirements-nodeps.txt."""
    nodeps = REPO / "requirements-nodeps.txt"
    files = [*requirements, REPO / "requirements-ros-build.txt"]
    key = files_digest([*files, nodeps])
    if stamps.is_current("pip", key):
        return
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    run(pip + [arg for path in files for arg in ("-r", path)])
    run(pip + ["--no-deps", "-r", nodeps])
    stamps.mark("pip", key)


def fix_cmake_include_dirs(venv: Path) -> int:
    """Point the include dirs hard-coded in the wheels' cmake files at this venv (idempotent).

    Returns how many files were rewritten.
    """
    import numpy  # installed by the requirements step

    python_include = sysconfig.get_paths()["include"]
    if not (Path(python_include) / "Python.h").is_file():
        raise SetupError(f"Python headers missing ({python_include}/Python.h): the message build compiles "
                         "a Python extension; on Debian/Ubuntu: sudo apt install python3-dev")
    replacements = [
        (re.compile(r"/opt/python/cp\d+-cp\d+/lib/python3\.\d+/site-packages/numpy/_core/include"),
         numpy.get_include()),
        (re.compile(r"/opt/python/cp\d+-cp\d+/include/python3\.\d+"), python_include),
    ]
    changed = 0
    for path in sorted((venv / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new_text = text
        for pattern, replacement in replacements:
            new_text = pattern.sub(replacement, new_text)
        if "/opt/python/" in new_text:
            log(f"warning: {path} still names /opt/python/ after the rewrite")
        if new_text != text:
            path.write_text(new_text)
            changed += 1
    if changed:
        log(f"pointed the include dirs of {changed} cmake files at this venv")
    return changed


def build_environment(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for name in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        env[name] = os.pathsep.join(p for p in (str(venv), env.get(name, "")) if p)
    return env


def find_cmake(venv: Path) -> str:
    cmake = shutil.which("cmake", path=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if cmake is None:
        raise SetupError("cmake not found; on Debian/Ubuntu: sudo apt install cmake g++")
    return cmake


def cmake_build(source: Path, build: Path, venv: Path, extra_args: list[str]) -> None:
    """Configure from scratch, build and install one ament_cmake package into the venv prefix."""
    if build.exists():
        shutil.rmtree(build)
    cmake = find_cmake(venv)
    env = build_environment(venv)
    run([cmake, "-S", source, "-B", build, f"-DCMAKE_INSTALL_PREFIX={venv}", "-DBUILD_TESTING=OFF",
         "-DCMAKE_BUILD_TYPE=Release", f"-DPython3_EXECUTABLE={sys.executable}", *extra_args,
         "--log-level=WARNING"], env=env, stdout=subprocess.DEVNULL)
    run([cmake, "--build", build, "-j", str(min(4, os.cpu_count() or 1))], env=env, stdout=subprocess.DEVNULL)
    run([cmake, "--install", build], env=env, stdout=subprocess.DEVNULL)


def importable(module: str, venv: Path) -> bool:
    """Whether a fresh venv python (outside the source tree) imports ``module``."""
    result = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], cwd=tempfile.gettempdir(),
                            capture_output=True, text=True)
    return result.returncode == 0


def build_tf2_msgs(venv: Path, build_root: Path, stamps: Stamps) -> None:
    key = digest(SCRIPT_VERSION, sys.version, *TF2_MSGS_FILES.values())
    if stamps.is_current("tf2_msgs", key) or (not stamps.folder.joinpath("tf2_msgs").exists()
                                              and importable("tf2_msgs.msg", venv)):
        return
    source = build_root / "tf2_msgs_src"
    for name, text in TF2_MSGS_FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    log("no tf2_msgs found: building TFMessage")
    cmake_build(source, build_root / "tf2_msgs", venv, [])
    if not importable("tf2_msgs.msg", venv):
        raise SetupError("tf2_msgs was built but does not import")
    stamps.mark("tf2_msgs", key)


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def build_messages(venv: Path, build_root: Path, stamps: Stamps) -> None:
    # Everything the cmake install copies, so that the installed share/ never goes stale.
    inputs = [REPO / "CMakeLists.txt", REPO / "package.xml",
              *(p for folder in ("msg", "launch", "config") for p in sorted((REPO / folder).glob("*")) if p.is_file())]
    key = files_digest(inputs)
    generated = venv / GENERATED_PYTHON_DIR / PACKAGE / "msg"
    if stamps.is_current("messages", key) and generated.is_dir():
        return
    log("building the messages in msg/")
    cmake_build(REPO, build_root / PACKAGE, venv,
                [f"-DPYTHON_INSTALL_DIR={GENERATED_PYTHON_DIR}",
                 "-DFACE_TRACKING_3DMM_INSTALL_PYTHON_SOURCES=OFF"])
    stamps.mark("messages", key)


def install_source_tree(venv: Path) -> None:
    """Import the package from this checkout, messages from the build, and write the CLI launcher."""
    pth = site_packages() / f"{PACKAGE}_source.pth"
    lines = f"{REPO}\n{venv / GENERATED_PYTHON_DIR}\n"
    if not pth.is_file() or pth.read_text() != lines:
        pth.write_text(lines)
        log(f"source tree importable through {pth.name}")
    launcher = venv / "bin" / "face-tracking-3dmm"
    script = (f"#!{venv / 'bin' / 'python'}\n"
              "import sys\n\n"
              f"from {PACKAGE}.cli import main\n\n"
              "sys.exit(main())\n")
    if not launcher.is_file() or launcher.read_text() != script:
        launcher.write_text(script)
        launcher.chmod(0o755)
        log(f"wrote {launcher}")


def check_imports(venv: Path) -> None:
    check = f"import rclpy, tf2_msgs.msg, {PACKAGE}.msg; {PACKAGE}.msg.FaceParams()"
    result = subprocess.run([str(venv / "bin" / "python"), "-c", check], cwd=tempfile.gettempdir(),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(f"the built environment does not import ({check}):\n{result.stderr.strip()}")


def fetch_data(what: str, module: str, *args: str) -> None:
    """Run ``python -m module args`` to obtain data (a soft step: a failure warns, the set-up goes on)."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True)
    last_line = (result.stdout.strip() or result.stderr.strip()).splitlines()[-1:] or [""]
    if result.returncode == 0:
        log(f"{what}: {last_line[0]}")
    else:
        log(f"warning: no {what}: {last_line[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "ros")
    parser.add_argument("--requirements", type=Path, action="append",
                        help="requirements file(s) to install instead of requirements.txt (repeatable)")
    parser.add_argument("--skip-data", action="store_true", help="do not fetch the model and the demo clip")
    args = parser.parse_args()
    venv = args.venv.absolute()
    try:
        python = ensure_venv(venv)
        if Path(sys.prefix).resolve() != venv.resolve():
            # Continue inside the venv: its sysconfig, numpy and pip are the ones to use.
            os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
        stamps = Stamps(venv)
        install_requirements(venv, stamps, [p.absolute() for p in args.requirements or [REPO / "requirements.txt"]])
        fix_cmake_include_dirs(venv)
        args.build_dir.mkdir(parents=True, exist_ok=True)
        build_tf2_msgs(venv, args.build_dir, stamps)
        build_messages(venv, args.build_dir, stamps)
        install_source_tree(venv)
        check_imports(venv)
        if not args.skip_data:
            # Both are found at once when ../shared (models, eval_data) is beside the checkout.
            fetch_data("ICT Face Model Light", f"{PACKAGE}.model_convert", "--if-missing")
            fetch_data("demo clip", f"{PACKAGE}.demo_clip")
    except SetupError as error:
        log(f"error: {error}")
        return 1
    log(f"ready: {venv / 'bin' / 'face-tracking-3dmm'} and {venv / 'bin' / 'python'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
