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
3. build tf2_msgs (TFMessage only) and hri_msgs (the six REP-155 types the tracker publishes, pinned
   to the hri_msgs 2.3.2 release) when no real one is importable;
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

def interface_package_files(name: str, version: str, description: str, licence: str, dependency: str,
                            messages: dict[str, str]) -> dict[str, str]:
    """The files of a message-only ament_cmake package: package.xml, CMakeLists.txt and msg/*.msg.

    Args:
        messages: {type name: .msg text}; every type may use ``dependency``'s messages.
    """
    listed = " ".join(f'"msg/{message}.msg"' for message in messages)
    return {
        "package.xml": f"""<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>{version}</version>
  <description>{description}</description>
  <maintainer email="face-tracking-3dmm@example.com">face_tracking_3dmm maintainers</maintainer>
  <license>{licence}</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>{dependency}</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
""",
        "CMakeLists.txt": f"""cmake_minimum_required(VERSION 3.16)
project({name})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package({dependency} REQUIRED)
rosidl_generate_interfaces(${{PROJECT_NAME}} {listed}
  DEPENDENCIES {dependency})
ament_export_dependencies(rosidl_default_runtime)
ament_package()
""",
        **{f"msg/{message}.msg": text for message, text in messages.items()},
    }


TF2_MSGS_FILES = interface_package_files(
    "tf2_msgs", "0.36.0", "TFMessage only, built by face_tracking_3dmm's set-up where no ROS 2 install provides\n"
    "    tf2_msgs. Same definition, hence the same type hash, as the real package.", "BSD-3-Clause", "geometry_msgs",
    {"TFMessage": "geometry_msgs/TransformStamped[] transforms\n"})


#: The REP-155 (ROS4HRI) messages the tracker publishes, built only where no real hri_msgs imports.
#: Pinned to hri_msgs 2.3.2, the release ROS 2 Jazzy ships (ros4hri/hri_msgs, Apache-2.0; its 0.x
#: ROS 1 releases were BSD): the field lists below are that release's, unchanged since its 2.0.0,
#: so the RIHS01 type hashes match a Jazzy install's (test/test_package_setup.py checks them); the
#: comments are ours. Only the six types the tracker uses are built.
HRI_MSGS_RELEASE = "2.3.2"
HRI_MSGS_MESSAGES = {
    "IdsList": """# The ids of what is tracked now (faces, bodies, voices or persons), e.g. on /humans/faces/tracked.
std_msgs/Header header
string[] ids
""",
    "NormalizedPointOfInterest2D": """# A point in an image, each coordinate divided by the image's size (0..1), with a confidence c (0..1).
float32 x
float32 y
float32 c
""",
    "NormalizedRegionOfInterest2D": """# A box in an image: top-left (xmin, ymin) and bottom-right (xmax, ymax) corners, each coordinate
# divided by the image's size (0..1), with a confidence c (0..1). Stamp: the image's.
std_msgs/Header header
float32 xmin
float32 ymin
float32 xmax
float32 ymax
float32 c
""",
    "FacialLandmarks": """# 70 points of a face in normalised image coordinates (0..1 from the top-left corner), indexed as
# dlib's / OpenPose's 68-point face layout plus the two pupils (68 right, 69 left; the person's sides).
std_msgs/Header header

uint8 RIGHT_EAR=0
uint8 RIGHT_PROFILE_1=1
uint8 RIGHT_PROFILE_2=2
uint8 RIGHT_PROFILE_3=3
uint8 RIGHT_PROFILE_4=4
uint8 RIGHT_PROFILE_5=5
uint8 RIGHT_PROFILE_6=6
uint8 RIGHT_PROFILE_7=7
uint8 MENTON=8
uint8 LEFT_PROFILE_7=9
uint8 LEFT_PROFILE_6=10
uint8 LEFT_PROFILE_5=11
uint8 LEFT_PROFILE_4=12
uint8 LEFT_PROFILE_3=13
uint8 LEFT_PROFILE_2=14
uint8 LEFT_PROFILE_1=15
uint8 LEFT_EAR=16
uint8 RIGHT_EYEBROW_OUTSIDE=17
uint8 RIGHT_EYEBROW_1=18
uint8 RIGHT_EYEBROW_2=19
uint8 RIGHT_EYEBROW_3=20
uint8 RIGHT_EYEBROW_INSIDE=21
uint8 LEFT_EYEBROW_INSIDE=22
uint8 LEFT_EYEBROW_3=23
uint8 LEFT_EYEBROW_2=24
uint8 LEFT_EYEBROW_1=25
uint8 LEFT_EYEBROW_OUTSIDE=26
uint8 SELLION=27
uint8 NOSE_1=28
uint8 NOSE_2=29
uint8 NOSE=30
uint8 NOSTRIL_1=31
uint8 NOSTRIL_2=32
uint8 NOSTRIL_3=33
uint8 NOSTRIL_4=34
uint8 NOSTRIL_5=35
uint8 RIGHT_EYE_OUTSIDE=36
uint8 RIGHT_EYE_TOP_1=37
uint8 RIGHT_EYE_TOP_2=38
uint8 RIGHT_EYE_INSIDE=39
uint8 RIGHT_EYE_BOTTOM_2=40
uint8 RIGHT_EYE_BOTTOM_1=41
uint8 LEFT_EYE_INSIDE=42
uint8 LEFT_EYE_TOP_2=43
uint8 LEFT_EYE_TOP_1=44
uint8 LEFT_EYE_OUTSIDE=45
uint8 LEFT_EYE_BOTTOM_1=46
uint8 LEFT_EYE_BOTTOM_2=47
uint8 MOUTH_OUTER_RIGHT=48
uint8 MOUTH_OUTER_TOP_1=49
uint8 MOUTH_OUTER_TOP_2=50
uint8 MOUTH_OUTER_TOP_3=51
uint8 MOUTH_OUTER_TOP_4=52
uint8 MOUTH_OUTER_TOP_5=53
uint8 MOUTH_OUTER_LEFT=54
uint8 MOUTH_OUTER_BOTTOM_5=55
uint8 MOUTH_OUTER_BOTTOM_4=56
uint8 MOUTH_OUTER_BOTTOM_3=57
uint8 MOUTH_OUTER_BOTTOM_2=58
uint8 MOUTH_OUTER_BOTTOM_1=59
uint8 MOUTH_INNER_RIGHT=60
uint8 MOUTH_INNER_TOP_1=61
uint8 MOUTH_INNER_TOP_2=62
uint8 MOUTH_INNER_TOP_3=63
uint8 MOUTH_INNER_LEFT=64
uint8 MOUTH_INNER_BOTTOM_3=65
uint8 MOUTH_INNER_BOTTOM_2=66
uint8 MOUTH_INNER_BOTTOM_1=67
uint8 RIGHT_PUPIL=68
uint8 LEFT_PUPIL=69

# One point per index above, in that order.
NormalizedPointOfInterest2D[70] landmarks

# The image's size in pixels (rows, columns), to turn the points back into pixels.
uint32 height
uint32 width
""",
    "FacialActionUnits": """# The intensity (0..1) and its confidence (0..1) of each FACS action unit (Ekman and Friesen's
# Facial Action Coding System) of one face; index = AU number (0 = neutral face), 99 slots.
std_msgs/Header header

uint8 NEUTRAL_FACE=0
uint8 INNER_BROW_RAISER=1
uint8 OUTER_BROW_RAISER=2
uint8 BROW_LOWERER=4
uint8 UPPER_LID_RAISER=5
uint8 CHEEK_RAISER=6
uint8 LID_TIGHTENER=7
uint8 LIPS_TOWARD_EACH_OTHER=8
uint8 NOSE_WRINKLER=9
uint8 UPPER_LIP_RAISER=10
uint8 NASOLABIAL_DEEPENER=11
uint8 LIP_CORNER_PULLER=12
uint8 SHARP_LIP_PULLER=13
uint8 DIMPLER=14
uint8 LIP_CORNER_DEPRESSOR=15
uint8 LOWER_LIP_DEPRESSOR=16
uint8 CHIN_RAISER=17
uint8 LIP_PUCKER=18
uint8 TONGUE_SHOW=19
uint8 LIP_STRETCHER=20
uint8 NECK_TIGHTENER=21
uint8 LIP_FUNNELER=22
uint8 LIP_TIGHTENER=23
uint8 LIP_PRESSOR=24
uint8 LIPS_PART=25
uint8 JAW_DROP=26
uint8 MOUTH_STRETCH=27
uint8 LIP_SUCK=28
uint8 JAW_THRUST=29
uint8 JAW_SIDEWAYS=30
uint8 JAW_CLENCHER=31
uint8 LIP_BITE=32
uint8 CHEEK_BLOW=33
uint8 CHEEK_PUFF=34
uint8 CHEEK_SUCK=35
uint8 TONGUE_BULGE=36
uint8 LIP_WIPE=37
uint8 NOSTRIL_DILATOR=38
uint8 NOSTRIL_COMPRESSOR=39
uint8 SNIFF=40
uint8 LID_DROOP=41
uint8 SLIT=42
uint8 EYES_CLOSED=43
uint8 SQUINT=44
uint8 BLINK=45
uint8 WINK=46
uint8 SPEECH=50
uint8 HEAD_TURN_LEFT=51
uint8 HEAD_TURN_RIGHT=52
uint8 HEAD_UP=53
uint8 HEAD_DOWN=54
uint8 HEAD_TILT_LEFT=55
uint8 HEAD_TILT_RIGHT=56
uint8 HEAD_FORWARD=57
uint8 HEAD_BACK=58
uint8 EYES_TURN_LEFT=61
uint8 EYES_TURN_RIGHT=62
uint8 EYES_UP=63
uint8 EYES_DOWN=64
uint8 WALLEYE=65
uint8 CROSS_EYE=66
uint8 EYES_POSITIONED_TO_LOOK_AT_OTHER_PERSON=69
uint8 BROWS_AND_FOREHEAD_NOT_VISIBLE=70
uint8 EYES_NOT_VISIBLE=71
uint8 LOWER_FACE_NOT_VISIBLE=72
uint8 ENTIRE_FACE_NOT_VISIBLE=73
uint8 UNSOCIABLE=74
uint8 SWALLOW=80
uint8 CHEWING=81
uint8 SHOULDER_SHRUG=82
uint8 HEAD_SHAKE_BACK_AND_FORTH=84
uint8 HEAD_NOD_UP_AND_DOWN=85
uint8 FLASH=91
uint8 PARTIAL_FLASH=92
uint8 SHIVER_TREMBLE=97
uint8 FAST_UP_DOWN_LOOK=98

# Indexed by the AU numbers above; a slot with confidence 0 is not estimated.
float32[99] intensity
float32[99] confidence
""",
    "Expression": """# A facial expression: a category (one of the names below) and/or valence and arousal (-1..1),
# with a confidence (0..1). Publishers use the categories they can tell apart.
std_msgs/Header header

string NEUTRAL="neutral"
string ANGRY="angry"
string SAD="sad"
string HAPPY="happy"
string SURPRISED="surprised"
string DISGUSTED="disgusted"
string SCARED="scared"
string PLEADING="pleading"
string VULNERABLE="vulnerable"
string DESPAIRED="despaired"
string GUILTY="guilty"
string DISAPPOINTED="disappointed"
string EMBARRASSED="embarrassed"
string HORRIFIED="horrified"
string SKEPTICAL="skeptical"
string ANNOYED="annoyed"
string FURIOUS="furious"
string SUSPICIOUS="suspicious"
string REJECTED="rejected"
string BORED="bored"
string TIRED="tired"
string ASLEEP="asleep"
string CONFUSED="confused"
string AMAZED="amazed"
string EXCITED="excited"

string expression
float32 valence
float32 arousal
float32 confidence
""",
}
HRI_MSGS_TYPES = tuple(HRI_MSGS_MESSAGES)
HRI_MSGS_FILES = interface_package_files(
    "hri_msgs", HRI_MSGS_RELEASE, "Six REP-155 (ROS4HRI) message types (IdsList, NormalizedPointOfInterest2D,\n"
    "    NormalizedRegionOfInterest2D, FacialLandmarks, FacialActionUnits, Expression), built by\n"
    "    face_tracking_3dmm's set-up where no ROS 2 install provides hri_msgs. The field definitions are\n"
    f"    those of the hri_msgs {HRI_MSGS_RELEASE} release (ros4hri/hri_msgs, Apache-2.0), hence the same\n"
    "    type hashes; the comments are face_tracking_3dmm's.", "Apache-2.0", "std_msgs", HRI_MSGS_MESSAGES)


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


def build_interface_package(name: str, files: dict[str, str], venv: Path, build_root: Path,
                            stamps: Stamps) -> None:
    """Build the message package ``name`` from ``files`` into the venv, unless a real one imports
    (a ROS 2 install's: it is used as it is) or the build is current (stamped)."""
    key = digest(SCRIPT_VERSION, sys.version, *files.values())
    if stamps.is_current(name, key) or (not stamps.folder.joinpath(name).exists()
                                        and importable(f"{name}.msg", venv)):
        return
    source = build_root / f"{name}_src"
    if source.exists():
        shutil.rmtree(source)
    for path, text in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    log(f"no {name} found: building it")
    cmake_build(source, build_root / name, venv, [])
    if not importable(f"{name}.msg", venv):
        raise SetupError(f"{name} was built but does not import")
    stamps.mark(name, key)


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
    check = f"import rclpy, tf2_msgs.msg, hri_msgs.msg, {PACKAGE}.msg; {PACKAGE}.msg.FaceParams()"
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
        build_interface_package("tf2_msgs", TF2_MSGS_FILES, venv, args.build_dir, stamps)
        build_interface_package("hri_msgs", HRI_MSGS_FILES, venv, args.build_dir, stamps)
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
