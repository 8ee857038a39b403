"""Importing an engine result into Slicer: the old way (one full-grid labelmap per segment) against the new
way (Slicer's segmentation storage node, shared layers kept), time and peak memory, in one run.

The parent synthesises a CT-shaped grid (512 x 512 x 300 voxels, 0.78 x 0.78 x 1.5 mm by default) and 32
class masks on it (ellipsoid-like blobs with bumpy surfaces laid out like an abdomen; tumors, cyst and
hepatic vessels lie inside their organs, so they overlap), writes the layered ``.seg.nrrd`` with the engine's
writer (``UniversalSegLib.io.write_segmentation_nrrd``), then imports it once per way, each in a FRESH
process holding a real slicer-core MRML scene with a CT volume node on that grid:

- ``old``: the code path the module used before: read the file with the storage node into a temporary node,
  take every segment's mask on the volume grid (``segment_mask``) and add each as its own full-grid labelmap
  (``import_masks``).
- ``new``: ``import_segmentation_file`` (storage node read, shared layers kept, names/colours/terminology
  set).

Each child reports the wall time of the import and its peak memory above the resident memory just before
the import (Linux: the peak is reset through ``/proc/self/clear_refs`` and read from ``VmHWM``; elsewhere
``ru_maxrss``), plus the number of segments, layers and per-segment voxel counts; the parent checks that both
ways give the same voxels and prints the figures and the new/old ratios.

Usage::

    python benchmarks/slicer_import.py [--size 512 512 300] [--json-out FILE] [--check]

``--check`` exits 1 when the new way is not >= 5x faster or uses more than 0.3x the old peak memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # UniversalSegLib without an install
sys.path.insert(0, str(REPO_ROOT / "UniversalSeg"))  # the module's UniversalSegGui package

DEFAULT_SIZE = (512, 512, 300)
SPACING_MM = (0.78, 0.78, 1.5)
ORIGIN_LPS = (-200.0, -230.0, -480.0)
TARGET_SPEEDUP = 5.0
TARGET_MEMORY_RATIO = 0.3
SEED = 0

#: class index -> (centre as fractions of the grid (x, y, z), radii in mm (x, y, z)); inside a parent's box
#: for tumors, cyst and hepatic vessels (they overlap their organ).
BLOBS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((0.78, 0.58, 0.68), (35, 30, 50)),  # spleen
    2: ((0.32, 0.70, 0.42), (28, 30, 50)),  # kidney right
    3: ((0.66, 0.70, 0.42), (28, 30, 50)),  # kidney left
    4: ((0.40, 0.36, 0.44), (15, 15, 30)),  # gallbladder
    5: ((0.53, 0.60, 0.86), (8, 8, 60)),  # esophagus
    6: ((0.30, 0.45, 0.62), (80, 65, 65)),  # liver
    7: ((0.62, 0.38, 0.68), (45, 32, 45)),  # stomach
    8: ((0.51, 0.66, 0.55), (10, 10, 150)),  # aorta
    9: ((0.45, 0.64, 0.55), (11, 11, 120)),  # inferior vena cava
    10: ((0.52, 0.54, 0.60), (40, 6, 6)),  # portal / splenic vein
    11: ((0.56, 0.52, 0.53), (55, 11, 12)),  # pancreas
    12: ((0.38, 0.66, 0.63), (10, 5, 15)),  # adrenal right
    13: ((0.63, 0.66, 0.63), (10, 5, 15)),  # adrenal left
    14: ((0.44, 0.48, 0.48), (25, 12, 25)),  # duodenum
    15: ((0.28, 0.45, 0.64), (50, 5, 5)),  # hepatic vessel (inside the liver)
    16: ((0.30, 0.55, 1.00), (70, 80, 75)),  # lung right (clipped by the top of the grid)
    17: ((0.70, 0.55, 1.00), (65, 80, 75)),  # lung left
    18: ((0.50, 0.30, 0.34), (110, 22, 40)),  # colon
    19: ((0.52, 0.52, 0.30), (60, 35, 35)),  # small bowel (touches the colon)
    20: ((0.50, 0.72, 0.13), (18, 18, 40)),  # rectum
    21: ((0.50, 0.42, 0.11), (35, 30, 30)),  # urinary bladder
    22: ((0.50, 0.52, 0.04), (18, 15, 15)),  # prostate
    23: ((0.70, 0.56, 0.06), (25, 25, 25)),  # femur head left
    24: ((0.30, 0.56, 0.06), (25, 25, 25)),  # femur head right
    25: ((0.51, 0.60, 0.58), (5, 15, 5)),  # celiac trunk
    26: ((0.32, 0.70, 0.39), (12, 12, 12)),  # kidney tumor (in the right kidney)
    27: ((0.24, 0.42, 0.60), (25, 25, 25)),  # liver tumor (in the liver)
    28: ((0.60, 0.52, 0.53), (10, 8, 9)),  # pancreas tumor
    29: ((0.28, 0.45, 0.64), (12, 6, 6)),  # hepatic vessel tumor
    30: ((0.30, 0.55, 0.94), (15, 15, 15)),  # lung tumor (right lung)
    31: ((0.42, 0.30, 0.34), (15, 15, 15)),  # colon tumor
    32: ((0.32, 0.70, 0.47), (10, 10, 10)),  # kidney cyst (right kidney)
}


# ------------------------------------------------------------------------------------------ synthesis
def blob_mask(shape_zyx: tuple[int, int, int], index: int) -> np.ndarray:
    """Boolean (z, y, x) mask of one class: an ellipsoid whose radius varies smoothly with direction."""
    (fx, fy, fz), radii_mm = BLOBS[index]
    size_xyz = shape_zyx[::-1]
    centre = np.array([fx * size_xyz[0], fy * size_xyz[1], fz * size_xyz[2]])
    # Radii in voxels of the default grid, scaled with the grid so that a smaller grid keeps the layout.
    radii = np.array(radii_mm) / np.array(SPACING_MM) * np.array(size_xyz) / np.array(DEFAULT_SIZE)
    low = np.maximum(np.floor(centre - 1.3 * radii).astype(int), 0)
    high = np.minimum(np.ceil(centre + 1.3 * radii).astype(int) + 1, size_xyz)
    mask = np.zeros(shape_zyx, bool)
    if np.any(high <= low):
        return mask
    z, y, x = np.ogrid[low[2] : high[2], low[1] : high[1], low[0] : high[0]]
    u, v, w = (x - centre[0]) / radii[0], (y - centre[1]) / radii[1], (z - centre[2]) / radii[2]
    distance = np.sqrt(u * u + v * v + w * w) + 1e-9
    phases = np.random.default_rng(SEED + index).uniform(0, 2 * np.pi, 3)
    bumps = (
        1.0
        + 0.12
        * np.sin(3 * np.arctan2(v, u) + phases[0])
        * np.cos(2 * np.arccos(np.clip(w / distance, -1, 1)))
        + 0.08 * np.sin(5 * np.arctan2(w, u) + phases[1])
        + 0.05 * np.cos(4 * np.arctan2(w, v) + phases[2])
    )
    mask[low[2] : high[2], low[1] : high[1], low[0] : high[0]] = distance < bumps
    return mask


def ct_voxels(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """A CT-shaped int16 volume: air around an elliptic body of soft tissue with a denser spine."""
    _, ny, nx = shape_zyx
    y, x = np.ogrid[:ny, :nx]
    body = ((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.35 * ny)) ** 2 < 1
    spine = ((x - nx / 2) / (0.04 * nx)) ** 2 + ((y - 0.72 * ny) / (0.04 * ny)) ** 2 < 1
    section = np.where(body, 40, -1000).astype(np.int16)
    section[spine] = 400
    return np.broadcast_to(section, shape_zyx).copy()


class LazyMasks(Mapping):
    """class index -> SimpleITK mask on the CT grid, made when asked (keeps one full-grid mask in memory)."""

    def __init__(self, shape_zyx: tuple[int, int, int]) -> None:
        self.shape_zyx = shape_zyx

    def __getitem__(self, index: int):
        import SimpleITK as sitk  # noqa: N813

        image = sitk.GetImageFromArray(blob_mask(self.shape_zyx, index).view(np.uint8))
        image.SetSpacing(SPACING_MM)
        image.SetOrigin(ORIGIN_LPS)
        return image

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(BLOBS))

    def __len__(self) -> int:
        return len(BLOBS)


def write_engine_file(path: Path, shape_zyx: tuple[int, int, int]) -> float:
    """Write the 32-class result with the engine's writer; returns the seconds it took."""
    from UniversalSegLib.io import write_segmentation_nrrd

    start = time.perf_counter()
    write_segmentation_nrrd(LazyMasks(shape_zyx), path, overwrite=True)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------- children
def add_ct_volume(scene, shape_zyx: tuple[int, int, int]):
    """A scalar volume node holding the CT on the synthetic grid (LPS origin turned into RAS)."""
    import vtk
    from vtk.util import numpy_support

    voxels = ct_voxels(shape_zyx)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(shape_zyx[::-1])
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels.ravel(), deep=True))
    del voxels
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Synthetic CT")
    node.SetAndObserveImageData(image_data)
    node.SetSpacing(SPACING_MM)
    node.SetOrigin(-ORIGIN_LPS[0], -ORIGIN_LPS[1], ORIGIN_LPS[2])
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 0, -1.0)
    matrix.SetElement(1, 1, -1.0)
    node.SetIJKToRASDirectionMatrix(matrix)
    return node


def import_old_way(volume_node, path: Path):
    """The former import: storage-node read, then every segment rebuilt as its own full-grid labelmap."""
    import slicer
    from UniversalSegGui.segmentation_import import import_masks, segment_mask

    scene = slicer.vtkMRMLScene()
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    loaded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    storage.SetFileName(str(path))
    if not storage.ReadData(loaded):
        raise RuntimeError(f"Could not read {path}")
    segmentation = loaded.GetSegmentation()
    masks = {
        segment_id: segment_mask(loaded, segment_id, volume_node)
        for segment_id in segmentation.GetSegmentIDs()
    }
    scene.Clear(True)
    return import_masks(volume_node, masks)


def import_new_way(volume_node, path: Path, timings: dict[str, float] | None = None):
    """``import_segmentation_file``; ``timings["read"]`` gets the seconds spent in the storage-node read."""
    from UniversalSegGui import segmentation_import

    original_read = segmentation_import.read_segmentation_file

    def timed_read(file_path):
        start = time.perf_counter()
        try:
            return original_read(file_path)
        finally:
            if timings is not None:
                timings["read"] = time.perf_counter() - start

    segmentation_import.read_segmentation_file = timed_read
    try:
        return segmentation_import.import_segmentation_file(volume_node, path)
    finally:
        segmentation_import.read_segmentation_file = original_read


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_kib(peak_was_reset: bool) -> int:
    if peak_was_reset:
        return _proc_status_kib("VmHWM") or 0
    scale = 1 if sys.platform != "darwin" else 1 / 1024  # bytes on macOS
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def voxel_counts(node) -> dict[str, int]:
    """Voxels of each segment, counted in its binary labelmap (shared layers: voxels of its label value)."""
    from vtk.util import numpy_support

    segmentation = node.GetSegmentation()
    counts = {}
    for segment_id in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segment_id)
        labelmap = segment.GetRepresentation("Binary labelmap")
        voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
        counts[segment_id] = int(np.count_nonzero(voxels == segment.GetLabelValue()))
    return counts


def run_child(way: str, path: Path, shape_zyx: tuple[int, int, int]) -> dict:
    """Import ``path`` one way in this (fresh) process; returns the figures."""
    import slicer

    scene = slicer.vtkMRMLScene()
    volume = add_ct_volume(scene, shape_zyx)
    from UniversalSegGui import segmentation_import  # noqa: F401 (modules loaded before the clock starts)

    from UniversalSegLib.catalog import get_class

    get_class("liver")  # the class catalog is read once per process
    timings: dict[str, float] = {}
    gc.collect()
    baseline_kib = _proc_status_kib("VmRSS") or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    peak_was_reset = _reset_peak()
    start = time.perf_counter()
    node = import_old_way(volume, path) if way == "old" else import_new_way(volume, path, timings)
    seconds = time.perf_counter() - start
    peak_kib = _peak_kib(peak_was_reset)
    segmentation = node.GetSegmentation()
    return {
        "way": way,
        "seconds": seconds,
        "read_seconds": timings.get("read"),
        "peak_delta_bytes": max(peak_kib - baseline_kib, 0) * 1024,
        "peak_source": "VmHWM after clear_refs" if peak_was_reset else "ru_maxrss",
        "segments": segmentation.GetNumberOfSegments(),
        "layers": segmentation.GetNumberOfLayers(),
        "voxels": voxel_counts(node),
    }


# --------------------------------------------------------------------------------------------- parent
def run_in_fresh_process(way: str, path: Path, shape_zyx: tuple[int, int, int]) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        way,
        "--file",
        str(path),
        "--size",
        *map(str, shape_zyx[::-1]),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"The {way} import failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=list(DEFAULT_SIZE), metavar=("I", "J", "K"))
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape_zyx = tuple(args.size[::-1])
    if args.child:
        print(json.dumps(run_child(args.child, args.file, shape_zyx)), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="slicer-import-bench-") as folder:
        path = Path(folder) / "result.seg.nrrd"
        write_seconds = write_engine_file(path, shape_zyx)
        print(
            f"Engine file: {len(BLOBS)} classes on {args.size[0]}x{args.size[1]}x{args.size[2]} voxels, "
            f"{path.stat().st_size / 2**20:.1f} MiB, written in {write_seconds:.1f} s",
            flush=True,
        )
        results = {way: run_in_fresh_process(way, path, shape_zyx) for way in ("old", "new")}

    old, new = results["old"], results["new"]
    if old["voxels"] != new["voxels"]:
        differing = [key for key in old["voxels"] if old["voxels"][key] != new["voxels"].get(key)]
        print(f"ERROR: the two ways give different voxels for {differing}", file=sys.stderr)
        return 1
    speedup = old["seconds"] / new["seconds"]
    memory_ratio = new["peak_delta_bytes"] / max(old["peak_delta_bytes"], 1)
    print(f"{'way':<5}{'seconds':>10}{'peak memory':>14}{'segments':>10}{'layers':>8}")
    for result in (old, new):
        print(
            f"{result['way']:<5}{result['seconds']:>10.2f}{result['peak_delta_bytes'] / 2**30:>11.2f} GiB"
            f"{result['segments']:>10}{result['layers']:>8}"
        )
    print(f"peak memory measured as {new['peak_source']} minus the resident memory before the import")
    print(
        f"new: {new['read_seconds']:.2f} s in the storage-node read (one C++ call), "
        f"{new['seconds'] - new['read_seconds']:.3f} s for names, colours, terminology and placing the node"
    )
    print(
        f"new/old: {speedup:.1f}x faster (target >= {TARGET_SPEEDUP:g}x), "
        f"{memory_ratio:.2f}x the peak memory (target <= {TARGET_MEMORY_RATIO:g}x); "
        "same voxels in every segment"
    )
    if args.json_out:
        summary = {"old": old, "new": new, "speedup": speedup, "memory_ratio": memory_ratio}
        args.json_out.write_text(json.dumps(summary, indent=2))
    met = speedup >= TARGET_SPEEDUP and memory_ratio <= TARGET_MEMORY_RATIO
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
