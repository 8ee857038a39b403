"""Put segmentation results into the MRML scene as a ``vtkMRMLSegmentationNode``.

One segment per class, with the catalog's display name, colour and terminology (segment tag
``TerminologyEntry``), on the input volume's geometry. Each class keeps its own voxels, so
overlapping classes (liver and liver tumor) are both complete. Works in 3D Slicer and with the
``slicer-core`` wheel (only a scene is needed, no application).

The engine's ``.seg.nrrd`` is loaded with Slicer's segmentation storage node as it is: segments that
do not overlap share one labelmap layer, so the import costs about one volume per layer instead of
one full-grid labelmap per class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .segmentation_file import SegmentationFileError, read_segmentation_file

__all__ = [
    "SegmentationFileError",
    "import_masks",
    "import_segmentation_file",
    "place_in_subject_hierarchy",
    "prepare_output_node",
    "segment_mask",
    "segment_terminology",
    "segmentation_node_name",
]

TERMINOLOGY_TAG = "TerminologyEntry"
#: A file's grid within this many millimetres of the volume's (every matrix element) is the volume's grid.
GRID_TOLERANCE_MM = 1e-3
logger = logging.getLogger(__name__)


def segmentation_node_name(volume_node: Any) -> str:
    """Name of the result node for a volume: ``"<volume name> segmentation"``."""
    return f"{volume_node.GetName()} segmentation"


def prepare_output_node(volume_node: Any, chosen_node: Any = None, segmentation: Any = None) -> Any:
    """The segmentation node that receives the result.

    A node the user picked as output is emptied and reused; otherwise a new node is added with a
    unique name, so an existing segmentation is never replaced silently.

    Args:
        volume_node: the input volume (its scene and geometry).
        chosen_node: the node the user picked as output, or ``None``.
        segmentation: a ``vtkSegmentation`` that becomes the node's content (its segments replace the
            old ones without copying voxels), or ``None`` to only remove the old segments.
    """
    import slicer

    scene = _scene_of(volume_node)
    if chosen_node is not None:
        if not isinstance(chosen_node, slicer.vtkMRMLSegmentationNode):
            raise TypeError(f"Expected a segmentation node, got {chosen_node.GetClassName()}")
        node = chosen_node
    else:
        node = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", scene.GenerateUniqueName(segmentation_node_name(volume_node))
        )
    if segmentation is not None:
        previous = node.GetSegmentation()
        node.SetAndObserveSegmentation(segmentation)
        if previous is not None and previous is not segmentation:
            _empty_without_splitting_layers(previous)
    else:
        node.GetSegmentation().RemoveAllSegments()
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return node


def import_masks(volume_node: Any, masks: Mapping[Any, Any], output_node: Any = None) -> Any:
    """Add one segment per class from binary masks on the volume's grid.

    Args:
        volume_node: the input ``vtkMRMLScalarVolumeNode`` (defines the geometry).
        masks: class (index, key or name) -> mask: a numpy array shaped like the volume
            (``slicer.util.arrayFromVolume`` order, k-j-i) or a SimpleITK image on the input grid.
        output_node: the segmentation node the user chose as output, or ``None`` for a new node.

    Returns:
        The segmentation node.
    """
    from UniversalSegLib.catalog import get_class

    shape = _volume_shape(volume_node)
    arrays = []
    for ref, mask in masks.items():
        info = get_class(ref)
        array = _mask_array(mask)
        if array.shape != shape:
            raise ValueError(
                f"The mask of {info.display_name} has shape {array.shape} but the volume "
                f"{volume_node.GetName()!r} has {shape} (k, j, i); masks must be on the input volume's grid."
            )
        arrays.append((info, array))
    node = prepare_output_node(volume_node, output_node)
    was_modifying = node.StartModify()
    try:
        for info, array in sorted(arrays, key=lambda pair: pair[0].index):
            _add_segment(node, volume_node, info, array)
    finally:
        node.EndModify(was_modifying)
    place_in_subject_hierarchy(volume_node, node)
    return node


def import_segmentation_file(volume_node: Any, path: str | os.PathLike, output_node: Any = None) -> Any:
    """Load a ``.seg.nrrd`` written by the engine; segments are named and coloured from the catalog.

    The file is read with Slicer's segmentation storage node outside the user's scene, so a missing or
    damaged file raises before anything in the scene changes. Shared labelmap layers are kept; segment
    IDs are the class keys; the layers are placed exactly on the volume's grid when the file's geometry
    matches it.

    Args:
        volume_node: the input volume (defines the scene and the geometry).
        path: the ``.seg.nrrd`` file.
        output_node: the segmentation node the user chose as output (its segments are replaced), or
            ``None`` for a new node with a unique name.

    Returns:
        The segmentation node.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SegmentationFileError: the file could not be read as a segmentation.
    """
    segmentation = read_segmentation_file(path)
    describe_file_segments(segmentation)
    snap_layers_to_volume_grid(segmentation, volume_node)
    node = prepare_output_node(volume_node, output_node, segmentation)
    place_in_subject_hierarchy(volume_node, node)
    return node


def describe_file_segments(segmentation: Any) -> list[str]:
    """Give each segment of a loaded file its class's name, colour and terminology, and the class key as ID.

    Segments are matched to classes by segment ID, then by name; a segment that is no class is kept as
    it was in the file. Returns the segment IDs in order.
    """
    from UniversalSegLib.catalog import get_class

    for segment_id in _segment_ids(segmentation):
        segment = segmentation.GetSegment(segment_id)
        info = _class_for_segment(get_class, segment_id, segment.GetName() or "")
        if info is None:
            continue
        _describe_segment(segment, info)
        if segment_id != info.key:
            _rename_segment(segmentation, segment_id, info.key)
    return _segment_ids(segmentation)


def snap_layers_to_volume_grid(
    segmentation: Any, volume_node: Any, tolerance_mm: float = GRID_TOLERANCE_MM
) -> bool:
    """Put every labelmap layer exactly on the volume's voxel grid when it lies on it within ``tolerance_mm``.

    Text round trips through NRRD headers can move a grid by far less than a voxel; this removes that
    difference. A layer on another grid is left where the file placed it (with a warning). Returns
    whether all layers are on the volume's grid.
    """
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    expected = _matrix_array(ijk_to_ras)
    on_grid = True
    for labelmap in _labelmap_layers(segmentation):
        matrix = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(matrix)
        difference = float(np.abs(_matrix_array(matrix) - expected).max())
        if difference <= tolerance_mm:
            labelmap.SetImageToWorldMatrix(ijk_to_ras)
        else:
            on_grid = False
            logger.warning(
                "The segmentation result is not on the grid of %s (geometry differs by up to %.3g mm); "
                "it is shown where the file places it",
                volume_node.GetName(),
                difference,
            )
    return on_grid


def place_in_subject_hierarchy(volume_node: Any, segmentation_node: Any) -> bool:
    """Put the segmentation under the volume's study (or parent) when the hierarchy knows the volume."""
    import slicer

    scene = _scene_of(volume_node)
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        return False
    volume_item = hierarchy.GetItemByDataNode(volume_node)
    if not volume_item:
        return False
    parent = hierarchy.GetItemParent(volume_item)
    if not parent or parent == hierarchy.GetSceneItemID():
        return False
    item = hierarchy.GetItemByDataNode(segmentation_node)
    if not item:
        item = hierarchy.CreateItem(parent, segmentation_node)
    else:
        hierarchy.SetItemParent(item, parent)
    return bool(item)


def segment_mask(segmentation_node: Any, segment_id: str, volume_node: Any) -> np.ndarray:
    """One segment's voxels on the volume's grid (k, j, i order, 0/1 uint8)."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    reference = slicer.vtkOrientedImageData()
    reference.SetDimensions(volume_node.GetImageData().GetDimensions())
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    reference.SetImageToWorldMatrix(ijk_to_ras)
    reference.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    reference.GetPointData().GetScalars().Fill(0)
    resample = slicer.vtkOrientedImageDataResample
    resample.ModifyImage(reference, labelmap, resample.OPERATION_MAXIMUM)
    voxels = numpy_support.vtk_to_numpy(reference.GetPointData().GetScalars())
    return (voxels.reshape(reference.GetDimensions()[::-1]) > 0).astype(np.uint8)


def segment_terminology(segment: Any) -> str:
    """The segment's ``TerminologyEntry`` tag ("" when absent)."""
    import vtk

    if hasattr(segment, "GetTerminology"):
        return segment.GetTerminology() or ""
    value = vtk.reference("")
    return str(value) if segment.GetTag(TERMINOLOGY_TAG, value) else ""


# ---------------------------------------------------------------------------------------- helpers
def _scene_of(volume_node: Any) -> Any:
    scene = volume_node.GetScene() if volume_node is not None else None
    if scene is None:
        raise ValueError("The input volume must be in a MRML scene.")
    return scene


def _volume_shape(volume_node: Any) -> tuple[int, int, int]:
    image = volume_node.GetImageData()
    if image is None:
        raise ValueError(f"The volume {volume_node.GetName()!r} has no image data.")
    return tuple(reversed(image.GetDimensions()))  # type: ignore[return-value]


def _mask_array(mask: Any) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    try:
        import SimpleITK as sitk  # noqa: N813
    except ImportError as error:  # pragma: no cover - SimpleITK ships with Slicer
        raise TypeError("Masks must be numpy arrays or SimpleITK images") from error
    if isinstance(mask, sitk.Image):
        return sitk.GetArrayViewFromImage(mask)
    raise TypeError(f"Masks must be numpy arrays or SimpleITK images, got {type(mask).__name__}")


def _add_segment(node: Any, volume_node: Any, info: Any, array: np.ndarray) -> None:
    import slicer
    import vtk
    from vtk.util import numpy_support

    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    voxels = np.ascontiguousarray(array != 0, dtype=np.uint8).ravel()
    labelmap.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(voxels, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    )
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    labelmap.SetImageToWorldMatrix(ijk_to_ras)
    segmentation = node.GetSegmentation()
    if segmentation.GetSegment(info.key) is not None:
        segmentation.RemoveSegment(info.key)
    segment = slicer.vtkSegment()
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), labelmap)
    _describe_segment(segment, info)
    if not segmentation.AddSegment(segment, info.key):
        raise RuntimeError(f"Could not add the segment {info.display_name}")


def _describe_segment(segment: Any, info: Any) -> None:
    segment.SetName(info.display_name)
    segment.SetColor(*[c / 255.0 for c in info.color])
    entry = info.terminology_entry()
    if not entry:
        return
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(entry)
    else:  # pragma: no cover - Slicer < 5.8
        segment.SetTag(TERMINOLOGY_TAG, entry)


def _segment_ids(segmentation: Any) -> list[str]:
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def _class_for_segment(get_class: Any, *refs: str) -> Any:
    for ref in refs:
        try:
            return get_class(ref)
        except ValueError:
            continue
    logger.warning("Segment %s is not a UniversalSeg class; imported as it is in the file", refs[0])
    return None


def _rename_segment(segmentation: Any, segment_id: str, new_id: str) -> None:
    """Give a segment another ID at the same position (its voxels move to a layer of their own)."""
    if segmentation.GetSegment(new_id) is not None:
        logger.warning("Two segments are %s; the second keeps the ID %s", new_id, segment_id)
        return
    segment = segmentation.GetSegment(segment_id)
    index = segmentation.GetSegmentIndex(segment_id)
    following = (
        segmentation.GetNthSegmentID(index + 1) if index + 1 < segmentation.GetNumberOfSegments() else ""
    )
    segmentation.RemoveSegment(segment_id)  # separates the segment's voxels from a shared layer first
    segmentation.AddSegment(segment, new_id, following)


def _empty_without_splitting_layers(segmentation: Any) -> None:
    """Remove all segments of a segmentation that no node shows any more, in milliseconds.

    Removing a segment that shares a layer first copies its voxels out of the layer (seconds per segment
    on a large CT); dropping the segments' references to their layers first makes that unnecessary. The
    layers' voxels themselves are never changed, so nothing else that holds them is affected.
    """
    import slicer

    name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    for segment_id in _segment_ids(segmentation):
        segment = segmentation.GetSegment(segment_id)
        if segment.GetRepresentation(name) is not None:
            segment.AddRepresentation(name, slicer.vtkOrientedImageData())
    segmentation.RemoveAllSegments()


def _labelmap_layers(segmentation: Any) -> list[Any]:
    """The distinct binary labelmap objects (layers) of a segmentation."""
    import vtk

    collection = vtk.vtkCollection()
    segmentation.GetLayerObjects(collection, "Binary labelmap")
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def _matrix_array(matrix: Any) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])
