"""Results into MRML with the real slicer-core wheel: names, colours, terminology, geometry, overlaps."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")
vtk = pytest.importorskip("vtk")


from slicer_scene_helpers import add_small_segment, add_volume  # noqa: E402
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


def engine_masks(ct_case) -> dict:
    """Class key -> mask: liver, liver tumor (inside the liver), spleen, pancreas, kidneys, stomach, aorta."""
    labels = ct_case[1]
    masks = {key: mask for key, mask in overlapping_masks(labels).items() if key != 1}
    for key, label in (
        ("spleen", 1),
        ("pancreas", 7),
        ("kidney_right", 2),
        ("kidney_left", 3),
        ("aorta", 52),
    ):
        masks[key] = labels == label
    return masks


def write_engine_file(ct_case, path, masks, classes_info=None):
    """The engine's writer, as the CLI uses it."""
    from UniversalSegLib.io import write_segmentation_nrrd

    images = {}
    for key, mask in masks.items():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(ct_case[0])
        images[get_class(key).index] = image
    return write_segmentation_nrrd(images, path, classes_info=classes_info)


def file_layers(path) -> dict[str, int]:
    """Segment ID -> layer, as written in the file's header."""
    import slicerio

    return {
        segment["id"]: segment["layer"] for segment in slicerio.read_segmentation(str(path), True)["segments"]
    }


def test_engine_seg_nrrd_is_imported(scene_and_volume, ct_case, tmp_path):
    from UniversalSegLib.io import SegmentInfo

    scene, volume = scene_and_volume
    masks = engine_masks(ct_case)
    assert all(mask.any() for mask in masks.values())
    # Names, colours and terminology in the file differ from the catalog: the import sets the catalog's.
    plain = {get_class(key).index: SegmentInfo(key, key.upper(), (128, 128, 128), None) for key in masks}
    path = write_engine_file(ct_case, tmp_path / "engine.seg.nrrd", masks, plain)
    node = segmentation_import.import_segmentation_file(volume, path)

    segmentation = node.GetSegmentation()
    assert segmentation_import._segment_ids(segmentation) == sorted(
        masks, key=lambda key: get_class(key).index
    )
    for key, mask in masks.items():
        info = get_class(key)
        segment = segmentation.GetSegment(key)
        assert segment.GetName() == info.display_name
        np.testing.assert_allclose(segment.GetColor(), np.array(info.color) / 255.0, atol=1e-6)
        assert segmentation_import.segment_terminology(segment) == info.terminology_entry()
        np.testing.assert_array_equal(segmentation_import.segment_mask(node, key, volume), mask)
    # The tumor's voxels are in both segments.
    assert segmentation_import.segment_mask(node, "liver", volume)[masks["liver_tumor"]].all()
    # Shared layers stay shared: as many layers as in the file, fewer than segments.
    layers = file_layers(path)
    assert segmentation.GetNumberOfLayers() == len(set(layers.values())) == 2 < len(masks)
    for key, layer in layers.items():
        assert set(segmentation.GetSegmentIDsForLayer(layer)) == {k for k, v in layers.items() if v == layer}
        assert segmentation.GetLayerIndex(key) == layer
    # Every layer lies exactly on the volume's grid, and so does the reference geometry.
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    for labelmap in segmentation_import._labelmap_layers(segmentation):
        matrix = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(matrix)
        np.testing.assert_array_equal(
            segmentation_import._matrix_array(matrix), segmentation_import._matrix_array(ijk_to_ras)
        )
        extent = labelmap.GetExtent()
        assert extent[0] >= 0 and extent[1] <= 121 and extent[4] >= 0 and extent[5] <= 29
    assert node.GetName() == "CT abdomen segmentation"
    assert node.GetDisplayNode() is not None and node.GetDisplayNode().GetSegmentVisibility("liver")
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_file_import_reuses_the_chosen_node_else_adds_a_new_one(scene_and_volume, ct_case, tmp_path):
    scene, volume = scene_and_volume
    masks = engine_masks(ct_case)
    path = write_engine_file(ct_case, tmp_path / "engine.seg.nrrd", masks)
    existing = segmentation_import.import_masks(volume, {"pancreas": masks["pancreas"]})
    assert existing.GetName() == "CT abdomen segmentation"

    new = segmentation_import.import_segmentation_file(volume, path)
    assert new is not existing and new.GetName() not in ("", existing.GetName())
    assert segmentation_import._segment_ids(existing.GetSegmentation()) == ["pancreas"]  # untouched

    chosen = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "My segmentation")
    add_small_segment(chosen, "old", "Old segment")
    assert chosen.GetSegmentation().GetSegment("old") is not None
    nodes_before = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    reused = segmentation_import.import_segmentation_file(volume, path, output_node=chosen)
    assert reused is chosen and reused.GetName() == "My segmentation"
    assert chosen.GetSegmentation().GetSegment("old") is None
    assert sorted(segmentation_import._segment_ids(chosen.GetSegmentation())) == sorted(masks)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == nodes_before
    np.testing.assert_array_equal(
        segmentation_import.segment_mask(chosen, "liver_tumor", volume), masks["liver_tumor"]
    )


def test_replacing_a_layered_result_leaves_its_voxels_unchanged(scene_and_volume, ct_case, tmp_path):
    from vtk.util import numpy_support

    scene, volume = scene_and_volume
    masks = engine_masks(ct_case)
    path = write_engine_file(ct_case, tmp_path / "engine.seg.nrrd", masks)
    node = segmentation_import.import_segmentation_file(volume, path)
    old_segmentation = node.GetSegmentation()
    old_layers = segmentation_import._labelmap_layers(old_segmentation)
    before = [numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars()).copy() for layer in old_layers]

    segmentation_import.import_segmentation_file(volume, path, output_node=node)
    assert node.GetSegmentation() is not old_segmentation
    assert old_segmentation.GetNumberOfSegments() == 0  # the old segments are gone ...
    for layer, voxels in zip(old_layers, before, strict=True):  # ... without rewriting the layers they shared
        np.testing.assert_array_equal(numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars()), voxels)
    np.testing.assert_array_equal(segmentation_import.segment_mask(node, "liver", volume), masks["liver"])


def _truncated(path):
    data = path.read_bytes()
    broken = path.with_name("truncated.seg.nrrd")
    broken.write_bytes(data[: len(data) // 2])
    return broken


def _header_only(path):
    data = path.read_bytes()
    broken = path.with_name("header_only.seg.nrrd")
    broken.write_bytes(data[: data.index(b"\n\n") + 2])
    return broken


def _not_nrrd(path):
    broken = path.with_name("text.seg.nrrd")
    broken.write_text("not a segmentation\n" * 50)
    return broken


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_truncated, "incomplete"), (_header_only, "incomplete"), (_not_nrrd, "not a Slicer segmentation")],
)
def test_damaged_file_raises_and_leaves_the_chosen_node_alone(
    scene_and_volume, ct_case, tmp_path, damage, message
):
    scene, volume = scene_and_volume
    masks = engine_masks(ct_case)
    path = write_engine_file(ct_case, tmp_path / "engine.seg.nrrd", masks)
    chosen = segmentation_import.import_masks(volume, {"spleen": masks["spleen"]})
    chosen_segmentation = chosen.GetSegmentation()
    nodes_before = scene.GetNumberOfNodes()

    with pytest.raises(segmentation_import.SegmentationFileError, match=message):
        segmentation_import.import_segmentation_file(volume, damage(path), output_node=chosen)
    with pytest.raises(FileNotFoundError, match="not found"):
        segmentation_import.import_segmentation_file(
            volume, tmp_path / "missing.seg.nrrd", output_node=chosen
        )

    assert scene.GetNumberOfNodes() == nodes_before
    assert chosen.GetSegmentation() is chosen_segmentation
    assert segmentation_import._segment_ids(chosen_segmentation) == ["spleen"]
    np.testing.assert_array_equal(segmentation_import.segment_mask(chosen, "spleen", volume), masks["spleen"])


def test_segments_are_matched_by_name_and_unknown_segments_kept(scene_and_volume, ct_case, tmp_path):
    from UniversalSegLib.io import SegmentInfo

    scene, volume = scene_and_volume
    masks = engine_masks(ct_case)
    masks = {"liver": masks["liver"], "liver_tumor": masks["liver_tumor"], "spleen": masks["spleen"]}
    infos = {
        get_class("liver").index: SegmentInfo("Segment_1", "Liver", (200, 0, 0)),  # another tool's ID
        get_class("spleen").index: SegmentInfo("blob", "My blob", (0, 0, 200)),  # not a class
    }
    path = write_engine_file(ct_case, tmp_path / "other.seg.nrrd", masks, infos)
    node = segmentation_import.import_segmentation_file(volume, path)
    segmentation = node.GetSegmentation()
    assert segmentation_import._segment_ids(segmentation) == ["blob", "liver", "liver_tumor"]  # file order
    assert segmentation.GetSegment("liver").GetName() == "Liver"
    assert segmentation.GetSegment("blob").GetName() == "My blob"
    np.testing.assert_allclose(segmentation.GetSegment("blob").GetColor(), (0, 0, 200 / 255), atol=1e-6)
    for key, mask in (
        ("liver", masks["liver"]),
        ("blob", masks["spleen"]),
        ("liver_tumor", masks["liver_tumor"]),
    ):
        np.testing.assert_array_equal(segmentation_import.segment_mask(node, key, volume), mask)


def test_layers_close_to_the_volume_grid_are_snapped_onto_it(scene_and_volume):
    scene, volume = scene_and_volume
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    expected = segmentation_import._matrix_array(ijk_to_ras)

    def segmentation_with_offset(offset_mm: float):
        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetExtent(0, 3, 0, 3, 0, 3)
        labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        matrix = vtk.vtkMatrix4x4()
        matrix.DeepCopy(ijk_to_ras)
        matrix.SetElement(0, 3, matrix.GetElement(0, 3) + offset_mm)
        labelmap.SetImageToWorldMatrix(matrix)
        segmentation = slicer.vtkSegmentation()
        segment = slicer.vtkSegment()
        segment.AddRepresentation("Binary labelmap", labelmap)
        segmentation.AddSegment(segment, "liver")
        return segmentation, labelmap

    def matrix_of(labelmap):
        matrix = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(matrix)
        return segmentation_import._matrix_array(matrix)

    near, near_labelmap = segmentation_with_offset(1e-5)
    assert segmentation_import.snap_layers_to_volume_grid(near, volume)
    np.testing.assert_array_equal(matrix_of(near_labelmap), expected)
    far, far_labelmap = segmentation_with_offset(2.0)
    assert not segmentation_import.snap_layers_to_volume_grid(far, volume)
    assert matrix_of(far_labelmap)[0, 3] == pytest.approx(expected[0, 3] + 2.0)
