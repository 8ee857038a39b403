"""Put segmentation results into the MRML scene as a ``vtkMRMLSegmentationNode``.

One segment per class, with the catalog's display name, colour and terminology (segment tag
``TerminologyEntry``), on the input volume's geometry. Each class keeps its own voxels, so
overlapping classes (liver and liver tumor) are both complete. Works in 3D Slicer and with the
``slicer-core`` wheel (only a scene is needed, no application).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

TERMINOLOGY_TAG = "TerminologyEntry"
logger = logging.getLogger(__name__)


def segmentation_node_name(volume_node: Any) -> str:
    """Name of the result node for a volume: ``"<volume name> segmentation"``."""
    return f"{volume_node.GetName()} segmentation"


def prepare_output_node(volume_node: Any, chosen_node: Any = None) -> Any:
    """The segmentation node that receives the result.

    A node the user picked as output is emptied and reused; otherwise a new node is added with a
    unique name, so an existing segmentation is never replaced silently.
    """
    import slicer

    scene = _scene_of(volume_node)
    if chosen_node is not None:
        chosen_node.GetSegmentation().RemoveAllSegments()
        node = chosen_node
    else:
        node = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", scene.GenerateUniqueName(segmentation_node_name(volume_node))
        )
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    if not isinstance(node, slicer.vtkMRMLSegmentationNode):  # pragma: no cover - defensive
        raise TypeError(f"Expected a segmentation node, got {node.GetClassName()}")
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
    """Import a ``.seg.nrrd`` written by the engine; segments are named and coloured from the catalog."""
    import slicer

    from UniversalSegLib.catalog import get_class

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Segmentation result not found: {path}")
    scene = _scene_of(volume_node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    loaded = scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", scene.GenerateUniqueName("__universalseg_result__")
    )
    try:
        storage.SetFileName(path)
        if not storage.ReadData(loaded):
            raise RuntimeError(f"Could not read the segmentation file {path}")
        source = loaded.GetSegmentation()
        segments = []
        for segment_id in _segment_ids(source):
            info = _class_for_segment(get_class, segment_id, source.GetSegment(segment_id).GetName())
            segments.append((segment_id, info, segment_mask(loaded, segment_id, volume_node)))
        node = prepare_output_node(volume_node, output_node)
        was_modifying = node.StartModify()
        try:
            for segment_id, info, mask in segments:
                if info is None:
                    info = _UnknownClass(segment_id, source.GetSegment(segment_id))
                _add_segment(node, volume_node, info, mask)
        finally:
            node.EndModify(was_modifying)
    finally:
        scene.RemoveNode(loaded)
        scene.RemoveNode(storage)
    place_in_subject_hierarchy(volume_node, node)
    return node


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


class _UnknownClass:
    """Description of a segment that is not a catalog class: kept as it was in the file."""

    def __init__(self, segment_id: str, segment: Any) -> None:
        self.key = segment_id
        self.display_name = segment.GetName() or segment_id
        self.color = tuple(round(255 * c) for c in segment.GetColor())
        self._entry = segment_terminology(segment)

    def terminology_entry(self) -> str:
        return self._entry


def _segment_ids(segmentation: Any) -> list[str]:
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def _class_for_segment(get_class: Any, *refs: Iterable[str]) -> Any:
    for ref in refs:
        try:
            return get_class(ref)
        except ValueError:
            continue
    logger.warning("Segment %s is not a UniversalSeg class; imported as is", refs[0])
    return None
