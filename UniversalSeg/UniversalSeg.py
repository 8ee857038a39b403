"""UniversalSeg: text-prompted CT organ and tumor segmentation (CLIP-Driven Universal Model) in 3D Slicer.

This file stays thin: the widgets and logic pieces live in ``UniversalSegGui`` and the engine in
``UniversalSegLib``; both are imported inside functions so that loading the module is cheap.

Python console::

    logic = slicer.util.getModuleLogic("UniversalSeg")
    segmentation = logic.segment(volumeNode, classes=["liver", "liver_tumor"], acceptLicense=True)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

SETTINGS_CLASSES_KEY = "UniversalSeg/SelectedClasses"
CPU_CONFIRM_SECONDS = 120
#: Slicer 5.10 is the first release with Python 3.10 or later (3.12); the engine's code needs 3.10.
MINIMUM_SLICER_VERSION = "5.10"
MINIMUM_PYTHON_VERSION = (3, 10)


def unsupportedSlicerMessage(versionInfo=sys.version_info) -> str:
    """One line saying which Slicer UniversalSeg needs, or ``""`` where this Slicer's Python can run it."""
    if tuple(versionInfo[:2]) >= MINIMUM_PYTHON_VERSION:
        return ""
    return _(
        "UniversalSeg needs 3D Slicer {slicer} or later (Python {needed} or later); this Slicer runs "
        "Python {running}. Install a current Slicer from https://download.slicer.org to use it."
    ).format(
        slicer=MINIMUM_SLICER_VERSION,
        needed=".".join(map(str, MINIMUM_PYTHON_VERSION)),
        running=".".join(map(str, tuple(versionInfo[:2]))),
    )


# The model/device/speed choices and the first-use classes live in UniversalSegGui/choices.py (shared with
# scripts/make_screenshot.py); the Choice([...]) lists below must list the same values (a test checks).


#
# Module
#


class UniversalSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("UniversalSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["UniversalSeg developers"]
        self.parent.helpText = _(
            "Segment 25 organs and 7 tumor/cyst classes in CT with the CLIP-Driven Universal Model "
            "(Liu et al., ICCV 2023). Choose the input CT and the classes, then click Segment. "
            "The model weights are downloaded on first use; their license (CC BY-NC-ND 4.0) allows "
            "non-commercial use only. Not a medical device."
        )
        self.parent.helpText += self.getDefaultModuleDocumentationLink()
        unsupported = unsupportedSlicerMessage()
        if unsupported:  # said once on load; the panel shows the same line instead of its widgets
            logging.error(unsupported)
        self.parent.acknowledgementText = _(
            "Model: Liu J. et al., CLIP-Driven Universal Model for Organ Segmentation and Tumor Detection, "
            "ICCV 2023. Re-implemented with MONAI; weights by the original authors."
        )


#
# Parameter node
#


@parameterNodeWrapper
class UniversalSegParameterNode:
    """Typed parameters of the module, saved with the scene.

    inputVolume: CT to segment. outputSegmentation: replaced when chosen; a new node otherwise.
    model: ``swinunetr`` or ``unet``. device: ``auto`` or ``cpu``. speedMode: ``faithful``,
    ``balanced`` or ``fast``. selectedClasses: class keys. show3D: build closed surfaces of the result.
    """

    inputVolume: vtkMRMLScalarVolumeNode  # noqa: N815 (Slicer parameter names)
    outputSegmentation: vtkMRMLSegmentationNode  # noqa: N815 (Slicer parameter names)
    model: Annotated[str, Choice(["swinunetr", "unet"])] = "swinunetr"
    device: Annotated[str, Choice(["auto", "cpu"])] = "auto"
    speedMode: Annotated[str, Choice(["faithful", "balanced", "fast"])] = "faithful"  # noqa: N815
    selectedClasses: list[str]  # noqa: N815 (Slicer parameter names)
    show3D: bool = False  # noqa: N815 (Slicer parameter names)


#
# Widget
#


class UniversalSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGUI = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        unsupported = unsupportedSlicerMessage()
        if unsupported:  # the panel's code needs a newer Python: say so instead of failing
            label = qt.QLabel(unsupported)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        from UniversalSegGui.advanced_options import AdvancedOptions
        from UniversalSegGui.choices import DEVICE_CHOICES, SPEED_CHOICES
        from UniversalSegGui.class_checklist import ClassChecklist
        from UniversalSegGui.run_panel import RunController, RunPanel
        from UniversalSegGui.weights_panel import WeightsPanel

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/UniversalSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        if self.logic is None:
            self.logic = UniversalSegLogic()

        self.classChecklist = ClassChecklist(translate=_)
        self.ui.classChecklistLayout.addWidget(self.classChecklist)
        self.weightsPanel = WeightsPanel(translate=_)
        self.ui.weightsPanelLayout.addWidget(self.weightsPanel)
        self.runPanel = RunPanel(translate=_)
        self.ui.runPanelLayout.addWidget(self.runPanel)
        self.runController = RunController(self.runPanel, self.logic.job, translate=_)
        self.advancedOptions = AdvancedOptions(translate=_)
        self.logic.reuseFeatures = self.advancedOptions.reuseFeatures()
        self._addAdvancedSection(uiWidget.layout(), self.advancedOptions)
        for value, label in DEVICE_CHOICES:
            self.ui.deviceComboBox.addItem(_(label), value)
        for value, label in SPEED_CHOICES:
            self.ui.speedComboBox.addItem(_(label), value)

        self.classChecklist.selection_changed.append(self.onClassesChanged)
        self.weightsPanel.model_changed.append(lambda model: self._setParameter("model", model))
        self.ui.deviceComboBox.currentIndexChanged.connect(self.onDeviceOrSpeedChanged)
        self.ui.speedComboBox.currentIndexChanged.connect(self.onDeviceOrSpeedChanged)
        self.runController.segment_requested.append(self.onSegmentButton)
        self.runController.finished.append(self.onRunFinished)
        self.advancedOptions.reuse_features_changed.append(self.onReuseFeaturesChanged)
        self.weightsPanel.cache_cleared.append(self.updateEstimate)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def _addAdvancedSection(self, layout, content) -> None:
        """A collapsed "Advanced" section holding ``content``, just above the Segment button."""
        import ctk

        section = ctk.ctkCollapsibleButton()
        section.text = _("Advanced")
        section.collapsed = True
        qt.QVBoxLayout(section).addWidget(content)
        layout.insertWidget(layout.indexOf(self.ui.runPanelPlaceholder), section)

    def cleanup(self) -> None:
        """Module closed (or Slicer quits): stop a running segmentation."""
        if self.logic is not None:
            self.logic.cancel()
        if hasattr(self, "weightsPanel"):
            self.weightsPanel.cancelDownload()
        self.removeObservers()

    def enter(self) -> None:
        if not unsupportedSlicerMessage():
            self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.logic.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node -----------------------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode
        if not self._parameterNode.selectedClasses:
            from UniversalSegGui.choices import DEFAULT_CLASSES

            remembered = qt.QSettings().value(SETTINGS_CLASSES_KEY, ",".join(DEFAULT_CLASSES))
            self._parameterNode.selectedClasses = [key for key in str(remembered).split(",") if key]

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode
            )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode
            )
            self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        """Widgets that connectGui does not bind: classes, model, device, speed, Segment button."""
        node = self._parameterNode
        if node is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            if self.classChecklist.chosenKeys() != list(node.selectedClasses):
                self.classChecklist.setSelectedKeys(node.selectedClasses)
            if self.weightsPanel.model() != node.model:
                self.weightsPanel.setModel(node.model)
            _selectData(self.ui.deviceComboBox, node.device)
            _selectData(self.ui.speedComboBox, node.speedMode)
        finally:
            self._updatingGUI = False
        self.runController.setInputsReady(bool(node.inputVolume) and bool(self.classChecklist.selectedKeys()))
        self.updateEstimate()

    def _setParameter(self, name: str, value) -> None:
        if self._parameterNode is not None and not self._updatingGUI:
            setattr(self._parameterNode, name, value)

    def onClassesChanged(self, selectedKeys) -> None:
        if self._updatingGUI:
            return
        chosen = self.classChecklist.chosenKeys()
        qt.QSettings().setValue(SETTINGS_CLASSES_KEY, ",".join(chosen))
        self._setParameter("selectedClasses", chosen)

    def onReuseFeaturesChanged(self, reuse: bool) -> None:
        self.logic.reuseFeatures = reuse
        self.updateEstimate()

    def onDeviceOrSpeedChanged(self, *args) -> None:
        self._setParameter("device", str(self.ui.deviceComboBox.currentData))
        self._setParameter("speedMode", str(self.ui.speedComboBox.currentData))

    def updateEstimate(self) -> None:
        """Estimated CPU time, a re-query's time, or a warning for a GPU with little memory."""
        node = self._parameterNode
        text = ""
        if node is not None and node.inputVolume is not None and node.inputVolume.GetImageData() is not None:
            from UniversalSegGui.estimate_text import estimate_text

            gpu = self.logic.gpuInfo() if node.device == "auto" else None
            dimensions = node.inputVolume.GetImageData().GetDimensions()
            spacing = node.inputVolume.GetSpacing()
            try:
                reuse = self.logic.featuresReusable(node.inputVolume, node.model, node.device, node.speedMode)
                reusedFor = list(node.selectedClasses) if reuse else None
                text = estimate_text(dimensions, spacing, node.model, node.speedMode, gpu, _, reusedFor)
            except Exception as error:  # an estimate must never break a parameter change
                logging.warning("Could not estimate the run time: %s", error)
        self.ui.estimateLabel.setText(text)

    # -- running -------------------------------------------------------------------------------------

    def onSegmentButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            self.logic.ensureDependencies(node.device, node.speedMode)
            self.weightsPanel.refresh()
            if not self.weightsPanel.ensureLicenseAccepted(node.model):
                self.runPanel.setStatus(_("The weights license was not accepted; nothing was run."))
                return
            if not self._confirmLongCpuRun():
                return
            self.runPanel.logEdit.clear()
            self.runController.start(
                node.inputVolume,
                self.logic.options(
                    self.classChecklist.selectedKeys(),
                    node.model,
                    node.device,
                    node.speedMode,
                    acceptLicense=True,
                    reuseFeatures=self.logic.reuseFeatures,
                ),
                output_node=node.outputSegmentation,
                show3D=node.show3D,
            )

    def _confirmLongCpuRun(self) -> bool:
        node = self._parameterNode
        if slicer.app.testingEnabled() or (node.device == "auto" and self.logic.gpuInfo() is not None):
            return True
        if self.logic.featuresReusable(node.inputVolume, node.model, node.device, node.speedMode):
            return True  # a re-query: seconds
        estimate = self.logic.estimateCpuTime(node.inputVolume, node.model, node.speedMode)
        if estimate.seconds < CPU_CONFIRM_SECONDS:
            return True
        return slicer.util.confirmOkCancelDisplay(
            _("No GPU is used: this will take about {duration}. Start anyway?").format(
                duration=_formatDuration(estimate.seconds)
            )
        )

    def onRunFinished(self, result) -> None:
        self.weightsPanel.refresh()
        self.updateEstimate()  # a second run of this volume can now reuse its image features
        node = result.segmentation_node
        if node is None:
            return
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume is not None:
            slicer.util.setSliceViewerLayers(background=volume)
        node.SetDisplayVisibility(True)


def _selectData(comboBox, value) -> None:
    index = comboBox.findData(value)
    if index >= 0 and comboBox.currentIndex != index:
        comboBox.setCurrentIndex(index)


def _formatDuration(seconds: float) -> str:
    from UniversalSegGui.progress_view import format_duration

    return format_duration(seconds)


#
# Logic
#


class UniversalSegLogic(ScriptedLoadableModuleLogic):
    """Segmentation without the GUI.

    Blocking (Python console): :meth:`segment`. Non-blocking (the panel): :meth:`startSegmentation`,
    :meth:`cancel`, :meth:`isRunning`, with callbacks on :attr:`job`.

    Args:
        job: a ``UniversalSegGui.segmentation_job.SegmentationJob`` (tests inject one with a fake engine).
        dependencyEnvironment: replaces the Slicer calls of ``UniversalSegGui.dependencies`` in tests.

    Attributes:
        reuseFeatures: let runs reuse (and keep) image features of earlier runs (the panel's advanced option);
            the default of :meth:`startSegmentation` and :meth:`segment`.
    """

    def __init__(self, job=None, dependencyEnvironment=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.reuseFeatures = True
        self._job = job
        self._dependencyEnvironment = dependencyEnvironment
        self._gpuInfo = None
        self._gpuChecked = False

    def getParameterNode(self):
        return UniversalSegParameterNode(super().getParameterNode())

    @property
    def job(self):
        if self._job is None:
            from UniversalSegGui.segmentation_job import SegmentationJob

            self._job = SegmentationJob()
        return self._job

    #: The user declined the CPU-acceleration packages in this session: not asked again until a restart.
    _cpu_speed_declined = False

    def requirementsPath(self, name="requirements.txt") -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", name)

    def ensureDependencies(self, device="auto", speed="faithful"):
        """Install what a run on ``device`` in ``speed`` mode needs, keeping the installed PyTorch.

        PyTorch comes through the PyTorch extension; OpenVINO/NNCF only for a CPU speed mode that uses them,
        after asking. Nothing is installed while Slicer runs its tests. Returns a ``DependencyReport``.
        """
        from UniversalSegGui.dependencies import ensure_dependencies, read_requirements

        report = ensure_dependencies(
            read_requirements(self.requirementsPath()),
            self._dependencyEnvironment,
            translate=_,
            device=device,
            speed=speed,
            cpu_speed_requirements=read_requirements(self.requirementsPath("requirements-cpu-speed.txt")),
            offer_cpu_speed=not self._cpu_speed_declined,
        )
        if report.cpu_speed_declined:
            self._cpu_speed_declined = True
        return report

    @staticmethod
    def options(
        classes,
        model="swinunetr",
        device="auto",
        speed="faithful",
        weights=None,
        acceptLicense=False,
        reuseFeatures=True,
    ):
        from UniversalSegGui.engine_command import SegmentOptions

        return SegmentOptions(
            classes=tuple(classes),
            model=model,
            device=device,
            speed=speed,
            weights=weights,
            accept_license=acceptLicense,
            feature_cache=reuseFeatures,
        )

    def featuresReusable(self, volumeNode, model="swinunetr", device="auto", speed="faithful", weights=None):
        """Whether a run would reuse the image features of the last run that kept them.

        True for the same volume (unchanged since), model, weights, device and speed mode, with reuse on and
        the engine's feature cache not cleared since; any class selection.
        """
        if not self.reuseFeatures or self._job is None:
            return False
        from UniversalSegGui.engine_command import FeatureSettings

        return self._job.feature_memory.fits(volumeNode, FeatureSettings(model, device, speed, weights))

    def gpuInfo(self):
        """(name, memory in bytes) of the CUDA GPU, or None; asked once torch is installed (not before)."""
        if not self._gpuChecked:
            from UniversalSegGui.time_estimate import cuda_device, torch_installed

            if not torch_installed():
                return None  # asked again after the first run installs torch
            try:
                self._gpuInfo = cuda_device()
            except Exception as error:  # a broken torch must not break the panel
                logging.warning("Could not query the GPU: %s", error)
            self._gpuChecked = True
        return self._gpuInfo

    @staticmethod
    def estimateCpuTime(volumeNode, model="swinunetr", speed="faithful", secondsPerWindow=None):
        """CPU inference time from the volume size at 1.5 mm and the speed mode's settings.

        Uses the engine's estimator (seconds per window measured on this machine when known);
        ``secondsPerWindow`` overrides the rate.
        """
        from UniversalSegGui.time_estimate import TimeEstimate, estimate_for_speed

        dimensions = volumeNode.GetImageData().GetDimensions()
        estimate = estimate_for_speed(dimensions, volumeNode.GetSpacing(), model, speed, device="cpu")
        if secondsPerWindow is not None:
            return TimeEstimate(estimate.windows, secondsPerWindow)
        return estimate

    def startSegmentation(
        self,
        volumeNode,
        classes,
        model="swinunetr",
        device="auto",
        speed="faithful",
        outputSegmentation=None,
        show3D=False,
        weights=None,
        acceptLicense=False,
        reuseFeatures=None,
    ) -> None:
        """Start a run and return at once; results arrive through ``self.job.finished_callbacks``.

        ``reuseFeatures`` ``None`` follows :attr:`reuseFeatures`.
        """
        reuse = self.reuseFeatures if reuseFeatures is None else reuseFeatures
        options = self.options(classes, model, device, speed, weights, acceptLicense, reuse)
        self.job.start(volumeNode, options, output_node=outputSegmentation, show3D=show3D)

    def isRunning(self) -> bool:
        return self._job is not None and self._job.isRunning()

    def cancel(self, wait: bool = True) -> None:
        """Stop a running segmentation; with ``wait`` the process tree is gone when this returns."""
        if not self.isRunning():
            return
        if wait:
            self._job.stop()
        else:
            self._job.cancel()

    def segment(self, volumeNode, classes, timeoutSeconds=None, **kwargs):
        """Segment and wait; returns the segmentation node. Keyword arguments as :meth:`startSegmentation`.

        Raises:
            RuntimeError: the run failed, was cancelled or timed out (the message says why).
        """
        unsupported = unsupportedSlicerMessage()
        if unsupported:
            raise RuntimeError(unsupported)
        self.ensureDependencies(kwargs.get("device", "auto"), kwargs.get("speed", "faithful"))
        self.startSegmentation(volumeNode, classes, **kwargs)
        result = self.job.wait(-1 if timeoutSeconds is None else int(timeoutSeconds * 1000))
        if self.isRunning():
            self.job.stop()
            raise RuntimeError(
                _("The segmentation did not finish within {seconds} s.").format(seconds=timeoutSeconds)
            )
        if result is None or not result.succeeded:
            reason = (
                _("cancelled")
                if result is not None and result.cancelled
                else (result.error if result else "")
            )
            raise RuntimeError(_("Segmentation failed: {reason}").format(reason=reason))
        return result.segmentation_node


#
# Test
#


class UniversalSegTest(ScriptedLoadableModuleTest):
    """Self-test in Slicer: result import always; a real run when a test checkpoint can be made.

    Set ``UNIVERSALSEG_TEST_CHECKPOINT`` to a checkpoint file to use it instead of a random one.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ImportMasks()
        self.setUp()
        self.test_ImportSegmentationFile()
        self.setUp()
        self.test_SegmentSmallVolume()

    def _addSmallVolume(self):
        import numpy as np

        rng = np.random.default_rng(0)
        voxels = (rng.normal(40, 20, size=(40, 48, 48))).astype(np.int16)
        volume = slicer.util.addVolumeFromArray(voxels, nodeClassName="vtkMRMLScalarVolumeNode")
        volume.SetName("UniversalSeg test CT")
        volume.SetSpacing(3.0, 3.0, 3.0)
        return volume, voxels

    @staticmethod
    def _liverAndTumorMasks(shape):
        """A cubic liver with a smaller tumor inside it (they overlap), as boolean arrays."""
        import numpy as np

        liver = np.zeros(shape, bool)
        liver[10:30, 10:30, 10:30] = True
        tumor = np.zeros(shape, bool)
        tumor[15:20, 15:20, 15:20] = True
        return liver, tumor

    def test_ImportMasks(self):
        import numpy as np
        from UniversalSegGui.segmentation_import import import_masks, segment_mask

        self.delayDisplay("Importing masks")
        volume, voxels = self._addSmallVolume()
        liver, tumor = self._liverAndTumorMasks(voxels.shape)
        node = import_masks(volume, {"liver": liver, "liver_tumor": tumor})
        self.assertEqual(node.GetName(), "UniversalSeg test CT segmentation")
        self.assertEqual(node.GetSegmentation().GetSegment("liver").GetName(), "Liver")
        self.assertTrue(np.array_equal(segment_mask(node, "liver", volume), liver))
        self.assertTrue(np.array_equal(segment_mask(node, "liver_tumor", volume), tumor))
        self.delayDisplay("Test passed")

    def test_ImportSegmentationFile(self):
        """A .seg.nrrd loaded into the chosen node: old segments replaced, catalog names back, voxels kept."""
        import numpy as np
        from UniversalSegGui.segmentation_import import import_masks, import_segmentation_file, segment_mask

        self.delayDisplay("Importing a segmentation file")
        volume, voxels = self._addSmallVolume()
        liver, tumor = self._liverAndTumorMasks(voxels.shape)
        written = import_masks(volume, {"liver": liver, "liver_tumor": tumor})
        written.GetSegmentation().GetSegment("liver").SetName("renamed")
        path = os.path.join(slicer.app.temporaryPath, "UniversalSegTestResult.seg.nrrd")
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(path)
        self.assertTrue(storage.WriteData(written))
        chosen = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Chosen output")
        chosen.GetSegmentation().AddEmptySegment("old")
        node = import_segmentation_file(volume, path, output_node=chosen)
        os.remove(path)
        self.assertIs(node, chosen)
        self.assertIsNone(node.GetSegmentation().GetSegment("old"))
        self.assertEqual(node.GetSegmentation().GetSegment("liver").GetName(), "Liver")
        self.assertTrue(np.array_equal(segment_mask(node, "liver", volume), liver))
        self.assertTrue(np.array_equal(segment_mask(node, "liver_tumor", volume), tumor))
        self.delayDisplay("Test passed")

    def test_SegmentSmallVolume(self):
        from UniversalSegGui.dependencies import read_requirements, requirement_satisfied

        logic = UniversalSegLogic()
        missing = [r for r in read_requirements(logic.requirementsPath()) if not requirement_satisfied(r)]
        if missing:
            self.delayDisplay(f"Skipping the segmentation run: missing Python packages {missing}.")
            return
        checkpoint = os.environ.get("UNIVERSALSEG_TEST_CHECKPOINT")
        if not checkpoint:
            try:
                import torch  # noqa: F401 (only checks that PyTorch is there)

                from UniversalSegLib.testing import write_random_checkpoint
            except ImportError as error:
                self.delayDisplay(f"Skipping the segmentation run: {error}. Install PyTorch to run it.")
                return
            checkpoint = os.path.join(slicer.app.temporaryPath, "UniversalSegTestCheckpoint.pth")
            write_random_checkpoint(checkpoint, backbone="unet", layout="official", seed=0)
        self.delayDisplay("Segmenting a small volume with a test checkpoint")
        volume, _voxels = self._addSmallVolume()
        node = logic.segment(
            volume, ["liver", "spleen"], model="unet", device="cpu", weights=checkpoint, timeoutSeconds=600
        )
        segmentation = node.GetSegmentation()
        self.assertEqual(
            sorted(segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())),
            ["liver", "spleen"],
        )
        self.delayDisplay("Test passed")
