"""Results into MRML with the real slicer-core wheel: names, colours, terminology, geometry, overlaps."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")
vtk = pytest.importorskip("vtk")


from slicer_scene_helpers import add_volume  # noqa: E402
from UniversalSegGui import segmentation_import  # noqa: E402

from UniversalSegLib.catalog import get_class  # noqa: E402

TOTALSEG_LIVER, TOTALSEG_SPLEEN, TOTALSEG_PANCREAS = 5, 1, 7


def segment_array(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """The segment's voxels resampled onto the volume grid (k, j, i)."""
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    reference = slicer.vtkOrientedImageData()
    reference.SetDimensions(volume_node.GetImageData().GetDimensions())
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    reference.SetImageToWorldMatrix(matrix)
    reference.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    reference.GetPointData().GetScalars().Fill(0)
    slicer.vtkOrientedImageDataResample.ModifyImage(
        reference, labelmap, slicer.vtkOrientedImageDataResample.OPERATION_MAXIMUM
    )
    from vtk.util import numpy_support

    dims = reference.GetDimensions()
    return numpy_support.vtk_to_numpy(reference.GetPointData().GetScalars()).reshape(dims[::-1])


@pytest.fixture(scope="module")
def ct_case(ct_dir):
    folder = ct_dir / "totalseg_example"
    image = sitk.ReadImage(str(folder / "example_ct_sm.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    return image, labels


@pytest.fixture()
def scene_and_volume(ct_case):
    scene = slicer.vtkMRMLScene()
    volume = add_volume(scene, ct_case[0], "CT abdomen")
    return scene, volume


def overlapping_masks(labels: np.ndarray) -> dict:
    liver = labels == TOTALSEG_LIVER
    tumor = np.zeros_like(liver)
    k, j, i = np.nonzero(liver)
    centre = (int(np.median(k)), int(np.median(j)), int(np.median(i)))
    tumor[centre[0] - 2 : centre[0] + 3, centre[1] - 3 : centre[1] + 4, centre[2] - 3 : centre[2] + 4] = True
    tumor &= liver  # a "tumor" inside the liver: both segments must keep these voxels
    return {"liver": liver, "liver_tumor": tumor, 1: labels == TOTALSEG_SPLEEN}


def test_masks_become_described_segments_on_the_volume_grid(scene_and_volume, ct_case):
    scene, volume = scene_and_volume
    masks = overlapping_masks(ct_case[1])
    node = segmentation_import.import_masks(volume, masks)

    assert node.GetName() == "CT abdomen segmentation"
    segmentation = node.GetSegmentation()
    assert sorted(segmentation_import._segment_ids(segmentation)) == ["liver", "liver_tumor", "spleen"]
    for key in ("liver", "liver_tumor", "spleen"):
        info = get_class(key)
        segment = segmentation.GetSegment(key)
        assert segment.GetName() == info.display_name
        np.testing.assert_allclose(segment.GetColor(), np.array(info.color) / 255.0, atol=1e-6)
        entry = segmentation_import.segment_terminology(segment)
        assert entry == info.terminology_entry()
        assert entry.count("~") == 6
    assert "10200004" in segmentation_import.segment_terminology(segmentation.GetSegment("liver"))

    expected_liver, expected_tumor = masks["liver"], masks["liver_tumor"]
    assert expected_tumor.sum() > 20
    np.testing.assert_array_equal(segment_array(node, "liver", volume), expected_liver)
    np.testing.assert_array_equal(segment_array(node, "liver_tumor", volume), expected_tumor)
    # Overlap kept: the tumor voxels are still liver voxels.
    assert segment_array(node, "liver", volume)[expected_tumor].all()

    geometry = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    numbers = [float(v) for v in geometry.split(";") if v]
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    expected = [ijk_to_ras.GetElement(r, c) for r in range(4) for c in range(4)]
    np.testing.assert_allclose(numbers[:16], expected, atol=1e-4)
    assert numbers[16:] == [0, 121, 0, 100, 0, 29]


def test_simpleitk_masks_are_accepted_and_wrong_shapes_rejected(scene_and_volume, ct_case):
    scene, volume = scene_and_volume
    liver = sitk.GetImageFromArray((ct_case[1] == TOTALSEG_LIVER).astype(np.uint8))
    liver.CopyInformation(ct_case[0])
    node = segmentation_import.import_masks(volume, {6: liver})
    np.testing.assert_array_equal(segment_array(node, "liver", volume), ct_case[1] == TOTALSEG_LIVER)
    with pytest.raises(ValueError, match="grid"):
        segmentation_import.import_masks(volume, {6: np.zeros((3, 4, 5), np.uint8)})


def test_existing_segmentation_is_replaced_only_when_chosen(scene_and_volume, ct_case):
    scene, volume = scene_and_volume
    first = segmentation_import.import_masks(volume, {"liver": ct_case[1] == TOTALSEG_LIVER})
    second = segmentation_import.import_masks(volume, {"spleen": ct_case[1] == TOTALSEG_SPLEEN})
    assert second is not first
    assert second.GetName() != first.GetName()
    assert first.GetSegmentation().GetSegment("liver") is not None  # untouched

    reused = segmentation_import.import_masks(
        volume, {"pancreas": ct_case[1] == TOTALSEG_PANCREAS}, output_node=first
    )
    assert reused is first
    assert segmentation_import._segment_ids(first.GetSegmentation()) == ["pancreas"]
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 2


def test_seg_nrrd_file_import_keeps_overlaps_and_catalog_descriptions(scene_and_volume, ct_case, tmp_path):
    scene, volume = scene_and_volume
    masks = overlapping_masks(ct_case[1])
    written = segmentation_import.import_masks(volume, masks)
    for key in ("liver", "liver_tumor"):  # a file from another tool: plain names, no terminology
        segment = written.GetSegmentation().GetSegment(key)
        segment.SetName(key.upper())
        segment.SetColor(0.5, 0.5, 0.5)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    path = tmp_path / "result.seg.nrrd"
    storage.SetFileName(str(path))
    assert storage.WriteData(written)

    node = segmentation_import.import_segmentation_file(volume, path)
    assert node is not written
    segmentation = node.GetSegmentation()
    assert sorted(segmentation_import._segment_ids(segmentation)) == ["liver", "liver_tumor", "spleen"]
    assert segmentation.GetSegment("liver").GetName() == "Liver"
    np.testing.assert_allclose(
        segmentation.GetSegment("liver").GetColor(), np.array(get_class("liver").color) / 255
    )
    np.testing.assert_array_equal(segment_array(node, "liver", volume), masks["liver"])
    np.testing.assert_array_equal(segment_array(node, "liver_tumor", volume), masks["liver_tumor"])
    assert not scene.GetFirstNodeByName("__universalseg_result__")
    with pytest.raises(FileNotFoundError):
        segmentation_import.import_segmentation_file(volume, tmp_path / "missing.seg.nrrd")


def test_result_goes_under_the_volume_study(scene_and_volume, ct_case):
    scene, volume = scene_and_volume
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient")
    study = hierarchy.CreateStudyItem(patient, "Study")
    hierarchy.CreateItem(study, volume)
    node = segmentation_import.import_masks(volume, {"liver": ct_case[1] == TOTALSEG_LIVER})
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study


def test_engine_seg_nrrd_is_imported(scene_and_volume, ct_case, tmp_path):
    from UniversalSegLib.io import write_segmentation_nrrd

    scene, volume = scene_and_volume
    masks = overlapping_masks(ct_case[1])
    images = {}
    for ref, mask in masks.items():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(ct_case[0])
        images[get_class(ref).index] = image
    path = write_segmentation_nrrd(images, tmp_path / "engine.seg.nrrd")
    node = segmentation_import.import_segmentation_file(volume, path)
    segmentation = node.GetSegmentation()
    assert sorted(segmentation_import._segment_ids(segmentation)) == ["liver", "liver_tumor", "spleen"]
    assert segmentation.GetSegment("liver_tumor").GetName() == get_class("liver_tumor").display_name
    for ref, mask in masks.items():
        np.testing.assert_array_equal(segment_array(node, get_class(ref).key, volume), mask)
