"""Key mapping between our state dict and the released (official) checkpoint layouts.

Released files keep the state dict under ``'net'`` with the DDP prefix ``module.``. The swinunetr file uses
the legacy flat layout (``module.swinViT.*``, ``module.encoder1.*``, ``module.decoder1.*``: no
``backbone.``); the unet file uses the nested layout (``module.backbone.down_tr64.*``).
"""

from __future__ import annotations

from collections.abc import Mapping

DDP_PREFIX = "module."
BACKBONE_PREFIX = "backbone."
#: First key components that belong to the backbone in the flat (legacy swin) layout.
FLAT_BACKBONE_PARTS: tuple[str, ...] = ("swinViT", "encoder", "decoder")

#: Backbone detection: a key component that only that backbone has.
BACKBONE_MARKERS: dict[str, str] = {"swinViT": "swinunetr", "down_tr64": "unet"}
#: Backbones of the official code that UniversalSeg cannot build (no released weights).
UNSUPPORTED_MARKERS: dict[str, str] = {"cell_tree": "dints", "stem_down": "dints", "conv_0_0": "unetpp"}


def to_official_key(key: str, backbone: str) -> str:
    """Our key → the key in the released checkpoint of ``backbone``."""
    if backbone == "swinunetr" and key.startswith(BACKBONE_PREFIX):
        key = key[len(BACKBONE_PREFIX) :]
    return DDP_PREFIX + key


def _is_flat_backbone_key(key: str) -> bool:
    first = key.split(".", 1)[0]
    return any(first.startswith(part) for part in FLAT_BACKBONE_PARTS)


def from_official_key(key: str) -> str:
    """A released (or bare / prefix-less) key → our key.

    Strips ``module.`` and puts flat swin keys (``swinViT.*``, ``encoderN.*``, ``decoderN.*``) under
    ``backbone.``; keys already under ``backbone.`` stay there.
    """
    if key.startswith(DDP_PREFIX):
        key = key[len(DDP_PREFIX) :]
    if _is_flat_backbone_key(key):
        key = BACKBONE_PREFIX + key
    return key


def to_official_state_dict(state_dict: Mapping[str, object], backbone: str) -> dict[str, object]:
    """Rename every key of our state dict to the released layout of ``backbone``."""
    return {to_official_key(key, backbone): value for key, value in state_dict.items()}


def from_official_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Rename every key of a released (or bare) state dict to ours."""
    return {from_official_key(key): value for key, value in state_dict.items()}


def detect_backbone(keys: list[str] | tuple[str, ...]) -> str | None:
    """Backbone name from state-dict keys (``"swinunetr"``, ``"unet"``, an unsupported name, or None)."""
    parts = {part for key in keys for part in key.split(".")}
    for marker, name in {**BACKBONE_MARKERS, **UNSUPPORTED_MARKERS}.items():
        if marker in parts:
            return name
    return None
