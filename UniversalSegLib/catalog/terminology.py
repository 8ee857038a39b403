"""DICOM/SNOMED CT terminology codes and Slicer's ``TerminologyEntry`` string.

Slicer stores a segment's terminology as one string (``vtkSegment`` tag ``TerminologyEntry``, written by
``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry``) of seven ``~``-separated parts::

    contextName~category~type~typeModifier~regionContextName~region~regionModifier

where each code is ``scheme^value^meaning`` (``^^`` when absent).
"""

from __future__ import annotations

from dataclasses import dataclass

GENERAL_ANATOMY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
DICOM_MASTER_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_REGION_CONTEXT = "Anatomic codes - DICOM master list"

#: The terminology parts in Slicer's colour-table CSV column order (``<Part>_CodingScheme`` etc.).
TERMINOLOGY_PARTS: tuple[str, ...] = ("Category", "Type", "TypeModifier", "Region", "RegionModifier")


@dataclass(frozen=True)
class Code:
    """One coded concept, e.g. ``Code("SCT", "10200004", "Liver")``; all-empty means absent."""

    scheme: str = ""
    value: str = ""
    meaning: str = ""

    def __bool__(self) -> bool:
        return bool(self.value)

    def to_slicer(self) -> str:
        """``scheme^value^meaning`` as in Slicer's terminology strings."""
        return f"{self.scheme}^{self.value}^{self.meaning}"

    @classmethod
    def from_slicer(cls, text: str) -> Code:
        """Parse ``scheme^value^meaning``."""
        parts = text.split("^")
        if len(parts) != 3:
            raise ValueError(f"Expected 'scheme^value^meaning', got {text!r}")
        return cls(*parts)


@dataclass(frozen=True)
class Terminology:
    """Category, type (with modifier) and anatomic region (with modifier) of a segment."""

    category: Code
    type: Code
    type_modifier: Code = Code()
    region: Code = Code()
    region_modifier: Code = Code()
    context: str = GENERAL_ANATOMY_CONTEXT
    region_context: str = ANATOMIC_REGION_CONTEXT

    def to_slicer_entry(self) -> str:
        """Slicer's ``TerminologyEntry`` string (same layout as ``SerializeTerminologyEntry``)."""
        return "~".join(
            [
                self.context,
                self.category.to_slicer(),
                self.type.to_slicer(),
                self.type_modifier.to_slicer(),
                self.region_context,
                self.region.to_slicer(),
                self.region_modifier.to_slicer(),
            ]
        )

    @classmethod
    def from_slicer_entry(cls, entry: str) -> Terminology:
        """Parse a Slicer ``TerminologyEntry`` string."""
        parts = entry.split("~")
        if len(parts) != 7:
            raise ValueError(
                f"A Slicer terminology entry has 7 '~'-separated parts, got {len(parts)}: {entry!r}"
            )
        context, category, type_, type_modifier, region_context, region, region_modifier = parts
        return cls(
            category=Code.from_slicer(category),
            type=Code.from_slicer(type_),
            type_modifier=Code.from_slicer(type_modifier),
            region=Code.from_slicer(region),
            region_modifier=Code.from_slicer(region_modifier),
            context=context,
            region_context=region_context,
        )

    @classmethod
    def from_csv_row(cls, row: dict[str, str]) -> Terminology:
        """Read the Slicer colour-table terminology columns (``Category_CodingScheme`` ...) of one row."""
        codes = [
            Code(
                row.get(f"{part}_CodingScheme", ""),
                row.get(f"{part}_CodeValue", ""),
                row.get(f"{part}_CodeMeaning", ""),
            )
            for part in TERMINOLOGY_PARTS
        ]
        return cls(
            *codes,
            context=row.get("terminology_context") or GENERAL_ANATOMY_CONTEXT,
            region_context=row.get("region_context") or ANATOMIC_REGION_CONTEXT,
        )
