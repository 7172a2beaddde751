#!/usr/bin/env python3
"""Build (once) the PyTorch3D environment and run the renderer parity tests in it.

PyTorch3D only installs beside torch==2.12.0 (a CUDA build), while the project pins torch==2.13.0,
so it gets its own venv, kept in the user cache (``<cache>/venv-pytorch3d``, see
face_tracking_3dmm/paths.py) so that every clone and CI run on a machine reuses it. Standard
library only.

  python scripts/setup_pytorch3d.py            create or update the venv (``make setup-pytorch3d``)
  python scripts/setup_pytorch3d.py --test     also run test/test_render_parity.py in it (``make test``)

With ``--test``, a venv that cannot be built (no network, or the ~4.9 GB download outlasting
``--install-timeout``) is reported as SKIPPED and the exit status stays 0, so that CI is not failed
by a slow download; failing parity tests do fail. ``FACE_TRACKING_3DMM_SKIP_PYTORCH3D=1`` skips.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from face_tracking_3dmm import paths  # noqa: E402  (standard library only)

REQUIREMENTS = REPO / "requirements-pytorch3d.txt"
PARITY_TESTS = "test/test_render_parity.py"
SKIP_ENV = "FACE_TRACKING_3DMM_SKIP_PYTORCH3D"


def venv_dir() -> Path:
    return paths.cache_dir() / "venv-pytorch3d"


def _stamp() -> str:
    """Changes when the pins or the Python building the venv change."""
    content = REQUIREMENTS.read_bytes() + sys.version.encode()
    return hashlib.sha256(content).hexdigest()


def _imports(python: Path) -> bool:
    probe = "import torch, pytorch3d.renderer, pytorch3d._C"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def ensure_venv(install_timeout: float) -> tuple[Path | None, str]:
    """The venv's python, or None and why not."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    stamp_file = venv / ".face_tracking_3dmm_stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == _stamp() and _imports(python):
        return python, f"reusing {venv}"
    print(f"[setup-pytorch3d] building {venv} (torch 2.12.0 CUDA build + easypytorch3d, ~4.9 GB; "
          f"time limit {install_timeout:.0f} s)", flush=True)
    start = time.monotonic()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
                        "-r", str(REQUIREMENTS)], check=True, timeout=install_timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(venv, ignore_errors=True)         # a half-installed venv would look usable
        return None, f"the install did not finish within {install_timeout:.0f} s (slow download?)"
    except (subprocess.CalledProcessError, OSError) as err:
        return None, f"the install failed ({err}); no network or registry?"
    if not _imports(python):
        return None, "pytorch3d does not import in the new venv"
    stamp_file.write_text(_stamp())
    return python, f"built {venv} in {time.monotonic() - start:.0f} s"


def run_parity_tests(python: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [str(python), "-m", "pytest", PARITY_TESTS, "-q", "-rs", "-p", "no:cacheprovider"]
    print(f"[setup-pytorch3d] {' '.join(command[1:])}", flush=True)
    return subprocess.run(command, cwd=REPO, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", action="store_true", help="run the parity tests in the venv")
    parser.add_argument("--install-timeout", type=float, default=1800.0, help="seconds allowed for pip")
    args = parser.parse_args()
    if os.environ.get(SKIP_ENV) == "1":
        print(f"[setup-pytorch3d] SKIPPED: {SKIP_ENV}=1; the renderer parity tests did NOT run")
        return 0
    python, how = ensure_venv(args.install_timeout)
    if python is None:
        print(f"[setup-pytorch3d] {'SKIPPED' if args.test else 'FAILED'}: {how}; "
              f"the renderer parity tests did NOT run")
        return 0 if args.test else 1
    print(f"[setup-pytorch3d] {how}")
    return run_parity_tests(python) if args.test else 0


if __name__ == "__main__":
    sys.exit(main())
