#!/usr/bin/env python3
"""Build (once) a venv with ROS 2 Jazzy from apt's numpy 1.26 and run the package's tests in it.

A robot with ROS 2 Jazzy from apt (Ubuntu 24.04) has numpy 1.26.4, and apt's message packages are
C extensions that do not load under numpy 2; the README's path for it pip installs
requirements-jazzy-apt.txt into a ``--system-site-packages`` venv. There is no apt ROS here, so this
venv stands in for that one: requirements-jazzy-apt.txt, plus the ros-jazzy-* wheels of
requirements.txt in the place of apt's ROS packages; the messages are built against numpy 1.26 by
scripts/setup_env.py. It is kept in the user cache (``<cache>/venv-jazzy-apt``, see
face_tracking_3dmm/paths.py) so that every clone and CI run reuses it. Standard library only.

  python scripts/check_jazzy_apt.py          create or update the venv
  python scripts/check_jazzy_apt.py --test   also run TESTS in it (``make test``)

With ``--test``, a venv that cannot be built because no package index answers is reported as
SKIPPED and the exit status stays 0; a build that fails otherwise, or a failing test, fails.
``FACE_TRACKING_3DMM_SKIP_JAZZY_APT=1`` skips.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from face_tracking_3dmm import paths  # noqa: E402  (standard library only)

APT_REQUIREMENTS = REPO / "requirements-jazzy-apt.txt"
SKIP_ENV = "FACE_TRACKING_3DMM_SKIP_JAZZY_APT"
#: The numpy of Ubuntu 24.04's python3-numpy, which apt's ROS 2 Jazzy is built against.
APT_NUMPY = "1.26.4"
#: Messages (FaceParams/FaceParamsArray through rclpy's CDR), the tracker library on real frames,
#: the tracker node over DDS, bags, and a replay of a bag through the node: ~1.5 min on 2 cores.
TESTS = ["test/test_conversions.py", "test/test_requirements.py", "test/test_tracker.py",
         "test/test_nodes_tracker.py", "test/test_io_bags.py", "test/test_evaluation_replay.py"]
#: A small wheel that is on PyPI only: downloading it tells "no index reachable" from a broken build.
INDEX_PROBE = "rosbags==0.11.9"


def venv_dir() -> Path:
    return paths.cache_dir() / "venv-jazzy-apt"


def log(message: str) -> None:
    print(f"[jazzy-apt] {message}", flush=True)


def requirement_name(line: str) -> str | None:
    """The normalised project name a requirements line pins, or None for comments and blanks."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    return re.split(r"[\s=<>!~;\[]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def ros_stand_in(requirements: str, apt_requirements: str) -> str:
    """The lines of ``requirements`` (requirements.txt) that apt provides on a Jazzy system.

    Those are the pins that requirements-jazzy-apt.txt does not name: the ros-* wheels and their
    own Python dependencies.
    """
    apt_names = {requirement_name(line) for line in apt_requirements.splitlines()} - {None}
    kept = [line for line in requirements.splitlines() if requirement_name(line) not in apt_names | {None}]
    return "\n".join(kept) + "\n"


def index_reachable() -> bool:
    with tempfile.TemporaryDirectory() as folder:
        probe = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                 "--quiet", "--dest", folder, INDEX_PROBE]
        return subprocess.run(probe, capture_output=True, timeout=300).returncode == 0


def ensure_venv(build_dir: Path) -> tuple[Path | None, str]:
    """Build or update the venv; its python, or None and why not (raises when the build is broken)."""
    venv = venv_dir()
    venv.mkdir(parents=True, exist_ok=True)
    stand_in = venv / "ros-stand-in-requirements.txt"
    text = ros_stand_in((REPO / "requirements.txt").read_text(), APT_REQUIREMENTS.read_text())
    if not stand_in.is_file() or stand_in.read_text() != text:
        stand_in.write_text(text)
    start = time.monotonic()
    command = [sys.executable, str(REPO / "scripts" / "setup_env.py"), "--venv", str(venv), "--build-dir",
               str(build_dir), "--skip-data", "--requirements", str(APT_REQUIREMENTS), "--requirements",
               str(stand_in)]
    if subprocess.run(command).returncode != 0:
        if not index_reachable():
            return None, f"no package index answers (pip download {INDEX_PROBE} failed): the venv cannot be built"
        raise RuntimeError("scripts/setup_env.py failed (its output is above)")
    python = venv / "bin" / "python"
    version = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                             text=True, cwd=tempfile.gettempdir()).stdout.strip()
    if version != APT_NUMPY:
        raise RuntimeError(f"{venv} has numpy {version!r}, not apt's {APT_NUMPY}")
    return python, f"{venv} ready (numpy {version}) in {time.monotonic() - start:.0f} s"


def run_tests(python: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [str(python), "-m", "pytest", *TESTS, "-q", "-rs", "-p", "no:cacheprovider"]
    log(" ".join(command[1:]))
    return subprocess.run(command, cwd=REPO, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", action="store_true", help="run the tests in the venv")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "jazzy_apt",
                        help="where the messages are built")
    args = parser.parse_args()
    if os.environ.get(SKIP_ENV) == "1":
        log(f"SKIPPED: {SKIP_ENV}=1; the numpy {APT_NUMPY} tests did NOT run")
        return 0
    try:
        python, how = ensure_venv(args.build_dir.absolute())
    except RuntimeError as error:
        log(f"FAILED: {error}")
        return 1
    if python is None:
        log(f"{'SKIPPED' if args.test else 'FAILED'}: {how}; the numpy {APT_NUMPY} tests did NOT run")
        return 0 if args.test else 1
    log(how)
    return run_tests(python) if args.test else 0


if __name__ == "__main__":
    sys.exit(main())
