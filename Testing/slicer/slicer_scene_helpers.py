"""Scene helpers for the slicer tests (slicer-core cannot use slicer.util.loadVolume without the app)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813
import vtk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def add_volume(scene, image, name: str):
    """A scalar volume node with the SimpleITK image's voxels and geometry (LPS -> RAS)."""
    from vtk.util import numpy_support

    array = sitk.GetArrayFromImage(image)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image_data)
    node.SetSpacing(image.GetSpacing())
    node.SetOrigin(*(LPS_TO_RAS @ np.array(image.GetOrigin())))
    directions = LPS_TO_RAS @ np.array(image.GetDirection()).reshape(3, 3)
    matrix = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, directions[row, column])
    node.SetIJKToRASDirectionMatrix(matrix)
    return node


def add_small_segment(segmentation_node, segment_id: str, name: str):
    """Add a segment holding a 2x2x2 labelmap (slicer-core has no converters for ``AddEmptySegment``)."""
    import slicer

    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(0, 1, 0, 1, 0, 1)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    labelmap.GetPointData().GetScalars().Fill(1)
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.AddRepresentation("Binary labelmap", labelmap)
    if not segmentation_node.GetSegmentation().AddSegment(segment, segment_id):
        raise RuntimeError(f"Could not add the segment {segment_id}")
    return segment
