#!/usr/bin/env python3
"""Time the renderer's hot operations on the ICT model, per backend and device.

For each backend (torch; pytorch3d when it imports), device (cpu; cuda when present), mesh (the
face region used by the photometric stage; the whole head) and image size, prints p50/p95 of:
  raster: visibility only (fragments, no autograd)
  render: rasterise + interpolate + SH shading, forward
  render+bwd: the same plus the backward pass of an image loss to the vertices
and, per device, the ratio of each backend's time to the torch backend's.

Usage: python scripts/bench_rasterize.py [--sizes 128 256 512] [--repeats 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.rendering import Mesh, ambient_sh_coefficients, make_renderer, pytorch3d_available  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _meshes(model: ICTFaceModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Camera-frame (metres, 0.5 m in front, facing the camera) vertices and triangles."""
    to_camera = torch.tensor([1.0, -1.0, -1.0])
    face = model.subset(model.region("face"))
    out = {}
    for name, part in (("face", face), ("head", model)):
        verts = part.vertices() / 100 * to_camera + torch.tensor([0.0, 0.0, 0.5])
        out[name] = (verts, part.triangles)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cpu-pytorch3d-repeats", type=int, default=3,
                        help="PyTorch3D on a CPU takes seconds per call: fewer repeats there")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="those present are used")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = ICTFaceModel.load()
    backends = ["torch"] + (["pytorch3d"] if pytorch3d_available() else [])
    devices = [torch.device(d) for d in args.devices if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    print(f"torch {torch.__version__}, backends {backends}, devices {[str(d) for d in devices]}, "
          f"threads {args.threads}" + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    if "pytorch3d" not in backends:
        print("pytorch3d backend: SKIPPED (PyTorch3D does not import here; `make setup-pytorch3d`)")
    rows = []
    header = f"{'device':6} {'backend':9} {'mesh':5} {'size':>5} {'tris':>6} " \
             f"{'raster p50/p95 ms':>18} {'render p50/p95 ms':>18} {'render+bwd p50/p95':>19}"
    print(header)
    for device in devices:
        for mesh_name, (verts_cpu, faces_cpu) in _meshes(model).items():
            verts, faces = verts_cpu.to(device), faces_cpu.to(device)
            colors = torch.rand(len(verts), 3, device=device)
            mesh = Mesh(verts, faces, colors=colors)
            light = ambient_sh_coefficients(device=device)
            for size in args.sizes:
                camera = CameraIntrinsics(1.4 * size, 1.4 * size, size / 2, size / 2, size, size)
                for backend in backends:
                    renderer = make_renderer(backend, device, cull_backfaces=True)
                    repeats = args.cpu_pytorch3d_repeats if (backend == "pytorch3d" and device.type == "cpu") \
                        else args.repeats

                    def raster():
                        with torch.no_grad():
                            renderer.fragments(mesh, camera, (size, size))

                    def render():
                        with torch.no_grad():
                            renderer.render(mesh, camera, (size, size), light)

                    def render_backward():
                        moving = Mesh(verts.clone().requires_grad_(True), faces, colors=colors)
                        renderer.render(moving, camera, (size, size), light).image.sum().backward()

                    result = {"device": device.type, "backend": backend, "mesh": mesh_name, "size": size,
                              "triangles": len(faces)}
                    for key, fn in (("raster", raster), ("render", render), ("render_backward", render_backward)):
                        times = _time(fn, device, repeats)
                        result[f"{key}_p50_ms"] = statistics.median(times)
                        result[f"{key}_p95_ms"] = _percentile(times, 0.95)
                    rows.append(result)
                    print(f"{device.type:6} {backend:9} {mesh_name:5} {size:5d} {len(faces):6d} "
                          f"{result['raster_p50_ms']:8.2f}/{result['raster_p95_ms']:<9.2f}"
                          f"{result['render_p50_ms']:8.2f}/{result['render_p95_ms']:<9.2f}"
                          f"{result['render_backward_p50_ms']:9.2f}/{result['render_backward_p95_ms']:<9.2f}",
                          flush=True)
    print("\nratio of p50 render+bwd time to the torch backend's on the same device, mesh and size:")
    for row in rows:
        if row["backend"] == "torch":
            continue
        base = next(r for r in rows if r["backend"] == "torch" and all(
            r[k] == row[k] for k in ("device", "mesh", "size")))
        print(f"  {row['device']:5} {row['backend']:9} {row['mesh']:5} {row['size']:4d}: "
              f"x{row['render_backward_p50_ms'] / base['render_backward_p50_ms']:.2f} "
              f"(raster x{row['raster_p50_ms'] / base['raster_p50_ms']:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
