"""Build the ICT Face Model Light npz from the public ICT-FaceKit repository's OBJ files.

The npz (layout in :mod:`face_tracking_3dmm.model` and the model's README) holds:

- ``neutral``: the vertices of ``generic_neutral_mesh.obj`` (centimetres, +y up);
- ``identity_basis[i]``: ``identityNNN.obj - neutral``, as stored (the OBJ offsets are already one
  standard deviation, so coefficients are ~ N(0, 1));
- ``expression_basis[j]``: ``<name>.obj - neutral`` for the names listed in ``vertex_indices.json``;
- ``triangles`` / ``triangle_uv``: the OBJ faces (quads and triangles) fan-triangulated, vertex and
  texture-coordinate indices; ``uv``: the OBJ ``vt`` lines unchanged;
- ``triangle_material`` / ``material_names``: the ``usemtl`` group of each face, names in order of
  first use;
- ``landmarks_ibug68``, ``fitting_vertices``, ``rigid_vertices``: from ``vertex_indices.json``;
- ``region_names`` / ``region_ranges``: the vertex ranges ICT-FaceKit documents for its parts.

:func:`fetch_and_convert` downloads the repository archive from GitHub (for users who do not have
a converted copy) and converts it; run ``python -m face_tracking_3dmm.model_convert --help``.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from face_tracking_3dmm import paths

#: The repository and the commit the shared copy was converted from.
REPOSITORY = "ICT-VGL/ICT-FaceKit"
DEFAULT_REF = "da5f95a"
MODEL_FOLDER = "FaceXModel"
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDICES_FILE = "vertex_indices.json"

#: Inclusive vertex ranges of the model's parts, as documented by ICT-FaceKit.
REGIONS = {
    "face": (0, 9408), "narrow_face": (0, 6705), "head_and_neck": (9409, 11247),
    "mouth_socket": (11248, 13293), "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061), "gums_and_tongue": (14062, 17038),
    "teeth": (17039, 21450), "eyeball_left": (21451, 23020), "eyeball_right": (23021, 24590),
    "iris_left": (22221, 23020), "iris_right": (23791, 24590),
}


class ConversionError(RuntimeError):
    """The OBJ files are missing or do not fit together; the message says which."""


def read_obj_vertices(path: Path) -> np.ndarray:
    """(V, 3) float64 positions of the ``v`` lines of an OBJ file."""
    rows = [line[2:] for line in path.read_text().splitlines() if line.startswith("v ")]
    if not rows:
        raise ConversionError(f"{path} has no vertices")
    return np.loadtxt(io.StringIO("\n".join(rows)), dtype=np.float64, usecols=(0, 1, 2), ndmin=2)


def read_obj_topology(path: Path) -> dict[str, np.ndarray]:
    """Fan-triangulated faces, texture coordinates and per-triangle materials of an OBJ file."""
    triangles, triangle_uv, triangle_material, uv, materials = [], [], [], [], []
    current = -1
    for line in path.read_text().splitlines():
        if line.startswith("vt "):
            uv.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("usemtl "):
            name = line.split(maxsplit=1)[1].strip()
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
        elif line.startswith("f "):
            corners = [corner.split("/") for corner in line.split()[1:]]
            vertex = [int(c[0]) - 1 for c in corners]
            texture = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners]
            for k in range(1, len(corners) - 1):
                triangles.append((vertex[0], vertex[k], vertex[k + 1]))
                triangle_uv.append((texture[0], texture[k], texture[k + 1]))
                triangle_material.append(current)
    if not triangles:
        raise ConversionError(f"{path} has no faces")
    return {"triangles": np.asarray(triangles, dtype=np.int32),
            "triangle_uv": np.asarray(triangle_uv, dtype=np.int32),
            "triangle_material": np.asarray(triangle_material, dtype=np.int16),
            "material_names": np.asarray(materials),
            "uv": np.asarray(uv, dtype=np.float32).reshape(-1, 2)}


def _offsets(folder: Path, names: list[str], neutral: np.ndarray, progress) -> np.ndarray:
    basis = np.empty((len(names), *neutral.shape), dtype=np.float32)
    for index, name in enumerate(progress(names)):
        path = folder / f"{name}.obj"
        if not path.is_file():
            raise ConversionError(f"{path} is missing")
        vertices = read_obj_vertices(path)
        if vertices.shape != neutral.shape:
            raise ConversionError(f"{path} has {len(vertices)} vertices, the neutral mesh {len(neutral)}")
        basis[index] = vertices - neutral
    return basis


def convert(folder: str | Path, identities: list[str] | None = None,
            expressions: list[str] | None = None, show_progress: bool = False) -> dict[str, np.ndarray]:
    """Arrays of the npz from an ICT-FaceKit ``FaceXModel`` folder.

    Args:
        folder: holds generic_neutral_mesh.obj, vertex_indices.json, identityNNN.obj and one OBJ
            per expression.
        identities: OBJ stems of the identity modes (default: every identity*.obj, sorted).
        expressions: OBJ stems of the expressions (default: vertex_indices.json's list).
        show_progress: a tqdm bar over the OBJ files.

    Returns:
        Dict of arrays with the keys, dtypes and units of the shipped ``ict_face_light.npz``.
    """
    folder = Path(folder)
    for required in (NEUTRAL_FILE, INDICES_FILE):
        if not (folder / required).is_file():
            raise ConversionError(f"{folder} lacks {required}: is it ICT-FaceKit's {MODEL_FOLDER} folder?")
    indices = json.loads((folder / INDICES_FILE).read_text())
    if identities is None:
        identities = sorted(p.stem for p in folder.glob("identity*.obj"))
    if expressions is None:
        expressions = list(indices["expressions"])
    if show_progress:
        from tqdm import tqdm

        def progress(items):
            return tqdm(items, desc="converting OBJ", unit="file")
    else:
        def progress(items):
            return items

    neutral = read_obj_vertices(folder / NEUTRAL_FILE)
    arrays = {"neutral": neutral.astype(np.float32),
              "identity_basis": _offsets(folder, identities, neutral, progress),
              "expression_basis": _offsets(folder, expressions, neutral, progress),
              "expression_names": np.asarray(expressions)}
    arrays.update(read_obj_topology(folder / NEUTRAL_FILE))
    arrays["landmarks_ibug68"] = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int32)
    arrays["fitting_vertices"] = np.asarray(indices["idx_to_fitting_verts"], dtype=np.int32)
    arrays["rigid_vertices"] = np.asarray(indices["idx_to_rigid_verts"], dtype=np.int32)
    arrays["region_names"] = np.asarray(list(REGIONS))
    arrays["region_ranges"] = np.asarray(list(REGIONS.values()), dtype=np.int32)
    return arrays


def archive_url(ref: str = DEFAULT_REF) -> str:
    return f"https://github.com/{REPOSITORY}/archive/{ref}.zip"


def _download(url: str, target: Path, timeout_s: float) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout_s) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="ICT-FaceKit archive") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def fetch_and_convert(dest: str | Path | None = None, ref: str = DEFAULT_REF,
                      timeout_s: float = 60.0, url: str | None = None) -> Path:
    """Download ICT-FaceKit at ``ref`` from GitHub, convert it, write ``dest`` and its LICENSE.

    Args:
        dest: npz to write (default: ``<cache>/ict_face_light/ict_face_light.npz``, where
            :func:`paths.default_model_path` looks).
        ref: git ref of the archive; ``url`` replaces the whole GitHub address (mirrors).

    Returns:
        The path written. Raises :class:`ConversionError` with what to do when offline.
    """
    dest = Path(dest) if dest else paths.cache_dir() / "ict_face_light" / "ict_face_light.npz"
    url = url or archive_url(ref)
    with tempfile.TemporaryDirectory(prefix="ict_facekit_") as tmp:
        archive = Path(tmp) / "ict_facekit.zip"
        try:
            _download(url, archive, timeout_s)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            raise ConversionError(
                f"could not download the ICT-FaceKit repository from {url} ({error}). Without "
                "network access, copy a converted ict_face_light.npz and point the "
                f"${paths.MODEL_ENV} environment variable (or the 'model_path' parameter) at it, "
                "or download the repository elsewhere and run "
                "`python -m face_tracking_3dmm.model_convert --from <ICT-FaceKit>/FaceXModel`") from error
        extracted = Path(tmp) / "extracted"
        with zipfile.ZipFile(archive) as bundle:
            wanted = [n for n in bundle.namelist()
                      if (f"/{MODEL_FOLDER}/" in n and n.endswith((".obj", ".json")))
                      or (n.count("/") == 1 and n.endswith("/LICENSE"))]
            bundle.extractall(extracted, members=wanted)
        folders = list(extracted.glob(f"*/{MODEL_FOLDER}"))
        if not folders:
            raise ConversionError(f"{url} has no {MODEL_FOLDER} folder")
        arrays = convert(folders[0], show_progress=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.savez(dest, **arrays)
        for licence in extracted.glob("*/LICENSE"):
            shutil.copyfile(licence, dest.parent / "LICENSE")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Get the ICT Face Model Light npz: convert a local "
                                     "ICT-FaceKit FaceXModel folder, or download and convert it.")
    parser.add_argument("--from", dest="source", type=Path, help="local FaceXModel folder to convert")
    parser.add_argument("--dest", type=Path, help="npz to write (default: the user cache)")
    parser.add_argument("--ref", default=DEFAULT_REF, help="ICT-FaceKit git ref to download")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when a model is already found (for `make setup`)")
    args = parser.parse_args(argv)
    if args.if_missing and args.source is None and paths.default_model_path() is not None:
        print(f"ICT Face Model Light found at {paths.default_model_path()}; nothing to do")
        return 0
    try:
        if args.source is not None:
            dest = args.dest or paths.cache_dir() / "ict_face_light" / "ict_face_light.npz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            np.savez(dest, **convert(args.source, show_progress=True))
            licence = args.source.parent / "LICENSE"
            if licence.is_file():
                shutil.copyfile(licence, dest.parent / "LICENSE")
        else:
            dest = fetch_and_convert(args.dest, ref=args.ref)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
