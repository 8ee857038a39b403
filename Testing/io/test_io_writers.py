"""Labelmap, per-class masks and Slicer .seg.nrrd writers: geometry, overlaps, atomicity, overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import slicerio

from UniversalSegLib.catalog import get_class
from UniversalSegLib.io import (
    OutputExistsError,
    SegmentInfo,
    atomic_output,
    labelmap_writer,
    write_labelmap,
    write_masks,
    write_segmentation_nrrd,
)

LIVER, KIDNEY_LEFT, HEPATIC_VESSEL, LIVER_TUMOR = 6, 3, 15, 27
SIZE_XYZ = (20, 16, 9)
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-12.25, 40.5, -300.0)
OBLIQUE = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
    [[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]]
)


def to_image(array_zyx: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(OBLIQUE.ravel().tolist())
    return image


@pytest.fixture
def masks() -> dict[int, sitk.Image]:
    """Liver with a tumor and a vessel inside it (overlapping), a separate kidney."""
    shape = SIZE_XYZ[::-1]
    liver, tumor, vessel, kidney = (np.zeros(shape, bool) for _ in range(4))
    liver[1:7, 2:12, 2:14] = True
    tumor[3:6, 4:8, 5:9] = True
    tumor[6:8, 12:14, 14:16] = True  # partly outside the liver
    vessel[2:6, 10:11, 3:13] = True
    kidney[2:5, 13:15, 15:19] = True
    return {LIVER: to_image(liver), LIVER_TUMOR: to_image(tumor), HEPATIC_VESSEL: to_image(vessel),
            KIDNEY_LEFT: to_image(kidney)}  # fmt: skip


def arrays(masks: dict[int, sitk.Image]) -> dict[int, np.ndarray]:
    return {index: sitk.GetArrayFromImage(mask).astype(bool) for index, mask in masks.items()}


def assert_geometry_equal(image: sitk.Image, reference: sitk.Image, atol: float = 1e-6) -> None:
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=atol)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=atol)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=atol)


@pytest.mark.parametrize("extension", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_labelmap_values_geometry_and_tumor_priority(masks, tmp_path: Path, extension: str) -> None:
    path = write_labelmap(masks, tmp_path / f"labels{extension}")
    labelmap = sitk.ReadImage(str(path))
    assert labelmap.GetPixelID() == sitk.sitkUInt8
    # NIfTI stores float32 geometry; the other formats keep it to double precision.
    assert_geometry_equal(labelmap, masks[LIVER], atol=1e-5 if "nii" in extension else 1e-9)
    labels = sitk.GetArrayFromImage(labelmap)
    m = arrays(masks)
    assert (labels[m[LIVER_TUMOR]] == LIVER_TUMOR).all()  # tumor wins over liver
    assert (labels[m[HEPATIC_VESSEL] & ~m[LIVER_TUMOR]] == HEPATIC_VESSEL).all()  # vessel over liver
    assert (labels[m[LIVER] & ~m[LIVER_TUMOR] & ~m[HEPATIC_VESSEL]] == LIVER).all()
    assert (labels[m[KIDNEY_LEFT] & ~m[LIVER_TUMOR]] == KIDNEY_LEFT).all()
    union = np.logical_or.reduce(list(m.values()))
    assert (labels[~union] == 0).all()
    assert set(np.unique(labels)) == {0, LIVER, LIVER_TUMOR, HEPATIC_VESSEL, KIDNEY_LEFT}


def test_labelmap_explicit_priority_and_real_grid(ct_dir: Path, tmp_path: Path) -> None:
    reference = sitk.ReadImage(str(ct_dir / "dcmqi_ct3slice" / "liver_spine_seg.nrrd"))
    liver = sitk.Equal(reference, 1)
    tumor = sitk.BinaryErode(liver, [5, 5, 0])  # a "tumor" inside the liver
    path = write_labelmap({LIVER: liver, LIVER_TUMOR: tumor}, tmp_path / "l.nrrd", overlap_priority=[LIVER])
    labelmap = sitk.ReadImage(str(path))
    assert_geometry_equal(labelmap, reference, atol=0)  # exactly the masks' grid
    labels = sitk.GetArrayFromImage(labelmap)
    np.testing.assert_array_equal(labels == LIVER, sitk.GetArrayFromImage(liver).astype(bool))
    assert not (labels == LIVER_TUMOR).any()  # liver was given precedence


def test_labelmap_refuses_bad_inputs(masks, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use one of"):
        write_labelmap(masks, tmp_path / "labels.png")
    moved = sitk.Image(masks[LIVER])
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="different voxel grid"):
        write_labelmap({**masks, 1: moved}, tmp_path / "labels.nii.gz")
    with pytest.raises(ValueError, match="No masks"):
        write_labelmap({}, tmp_path / "labels.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_asked(masks, tmp_path: Path) -> None:
    path = tmp_path / "labels.nii.gz"
    path.write_bytes(b"user data")
    for write in (
        lambda overwrite: write_labelmap(masks, path, overwrite=overwrite),
        lambda overwrite: write_segmentation_nrrd(masks, path.with_name("s.seg.nrrd"), overwrite=overwrite),
    ):
        path.with_name("s.seg.nrrd").write_bytes(b"user data")
        with pytest.raises(OutputExistsError, match="--overwrite") as caught:
            write(False)
        assert isinstance(caught.value, FileExistsError)
    assert path.read_bytes() == b"user data"
    assert path.with_name("s.seg.nrrd").read_bytes() == b"user data"
    write_labelmap(masks, path, overwrite=True)
    assert sitk.ReadImage(str(path)).GetSize() == SIZE_XYZ
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz", "s.seg.nrrd"]  # no temp files


def test_failing_writer_leaves_no_file(masks, tmp_path: Path, monkeypatch) -> None:
    def write_half_then_fail(image, path, useCompression=False):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(labelmap_writer.sitk, "WriteImage", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_labelmap(masks, tmp_path / "labels.nii.gz")
    existing = tmp_path / "old.nii.gz"
    existing.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="disk full"):
        write_labelmap(masks, existing, overwrite=True)
    assert existing.read_bytes() == b"previous result"  # the old file survives a failed overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["old.nii.gz"]


def test_atomic_output_temp_file_and_race(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.seg.nrrd"
    with atomic_output(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.endswith(".seg.nrrd")
        assert temporary != target
        temporary.write_text("data")
    assert target.read_text() == "data"
    late = tmp_path / "late.json"
    with pytest.raises(OutputExistsError), atomic_output(late) as temporary:
        temporary.write_text("ours")
        late.write_text("someone else's")  # appears while we write
    assert late.read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.json", "sub"]


def test_write_masks_one_binary_file_per_class(masks, tmp_path: Path) -> None:
    written = write_masks(masks, tmp_path / "out")
    assert set(written) == set(masks)
    for index, path in written.items():
        assert path.name == f"{get_class(index).key}.nii.gz"
        image = sitk.ReadImage(str(path))
        assert image.GetPixelID() == sitk.sitkUInt8
        assert_geometry_equal(image, masks[index], atol=1e-5)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(masks[index]))
    (tmp_path / "again").mkdir()
    blocker = tmp_path / "again" / f"{get_class(LIVER_TUMOR).key}.nii.gz"
    blocker.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        write_masks(masks, tmp_path / "again")
    assert [p.name for p in (tmp_path / "again").iterdir()] == [blocker.name]  # nothing half-written


def test_seg_nrrd_with_slicerio(masks, tmp_path: Path) -> None:
    custom = SegmentInfo("my_tumor", "My tumor", (0.1, 0.2, 0.3), get_class(LIVER_TUMOR).terminology_entry())
    path = write_segmentation_nrrd(masks, tmp_path / "s.seg.nrrd", classes_info={LIVER_TUMOR: custom})
    segmentation = slicerio.read_segmentation(str(path))
    assert segmentation["voxels"].ndim == 4  # overlapping segments need layers
    np.testing.assert_allclose(segmentation["ijkToLPS"][:3, :3], OBLIQUE @ np.diag(SPACING), atol=1e-9)
    np.testing.assert_allclose(segmentation["ijkToLPS"][:3, 3], ORIGIN, atol=1e-9)
    by_id = {segment["id"]: segment for segment in segmentation["segments"]}
    for index, mask in arrays(masks).items():
        info = get_class(index)
        segment_id = "my_tumor" if index == LIVER_TUMOR else info.key
        segment = by_id[segment_id]
        if index == LIVER_TUMOR:
            assert segment["name"] == "My tumor"
            np.testing.assert_allclose(segment["color"], (0.1, 0.2, 0.3), atol=1e-6)
        else:
            assert segment["name"] == info.display_name
            np.testing.assert_allclose(segment["color"], info.color_float, atol=1e-6)
        expected_entry = slicerio.segmentation.terminology_entry_from_string(info.terminology_entry())
        assert segment["terminology"] == expected_entry
        stored = slicerio.segment_mask(segmentation, segment_id)  # (i, j, k)
        np.testing.assert_array_equal(stored, mask.transpose(2, 1, 0))


def test_seg_nrrd_with_slicer_core(masks, tmp_path: Path) -> None:
    slicer = pytest.importorskip("slicer")
    vtk = pytest.importorskip("vtk")
    from vtk.util import numpy_support

    empty = sitk.Image(masks[LIVER]) * 0
    path = write_segmentation_nrrd({**masks, 1: empty}, tmp_path / "s.seg.nrrd")
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 5
    assert segmentation.GetNumberOfLayers() >= 2
    ras_from_lps = np.diag([-1.0, -1.0, 1.0])
    for index, mask in {**arrays(masks), 1: np.zeros(SIZE_XYZ[::-1], bool)}.items():
        info = get_class(index)
        segment = segmentation.GetSegment(info.key)
        assert segment is not None and segment.GetName() == info.display_name
        np.testing.assert_allclose(segment.GetColor(), info.color_float, atol=1e-5)
        entry = vtk.reference("")
        assert segment.GetTag("TerminologyEntry", entry)
        assert str(entry) == info.terminology_entry()
        labelmap = segment.GetRepresentation("Binary labelmap")
        voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
        count = int((voxels.reshape(labelmap.GetDimensions()[::-1]) == segment.GetLabelValue()).sum())
        assert count == int(mask.sum())  # overlapping voxels kept in every segment
        if mask.any():
            matrix = vtk.vtkMatrix4x4()
            labelmap.GetImageToWorldMatrix(matrix)
            ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(3)])
            expected = ras_from_lps @ OBLIQUE @ np.diag(SPACING)
            np.testing.assert_allclose(ijk_to_ras[:, :3], expected, atol=1e-6)
            np.testing.assert_allclose(ijk_to_ras[:, 3], ras_from_lps @ ORIGIN, atol=1e-6)
            extent = labelmap.GetExtent()  # shared by the segments of one layer
            i, j, k = np.nonzero(mask.transpose(2, 1, 0))
            assert extent[0] <= i.min() and i.max() <= extent[1]
            assert extent[2] <= j.min() and j.max() <= extent[3]
            assert extent[4] <= k.min() and k.max() <= extent[5]
