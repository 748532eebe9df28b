"""The keypoints processor's options: what a job enrolls with, chosen without cv2 loaded.

The contract fixes the configuration keys, so the one user-facing choice, the feature
type, comes from the environment variable ``NOTRAINING_KEYPOINTS_FEATURES`` (``sift``,
the default, or ``orb``), read when a job starts, not at import. On a VM it is set in
the systemd unit or cloud-init like any ``NOTRAINING_*`` variable; the config loader
ignores it because it names no key. The rest are tuning knobs for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from notraining_agent.errors import ProcessorError

FeatureKind = Literal["sift", "orb"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("sift", "orb")
FEATURES_ENV = "NOTRAINING_KEYPOINTS_FEATURES"

DEFAULT_FEATURES: FeatureKind = "sift"
DEFAULT_MAX_SIDE = 1024
"""Arts are enrolled with their long side at most this many pixels: detail beyond it is
never visible in a store photo, and it bounds the cost per art."""
DEFAULT_ART_FEATURES = 600
"""Descriptors kept per art: recall holds down to 25 % scale, and 1000 arts make a
FLANN index of about 300 MB."""
ORB_ART_FEATURES = 1000
"""ORB descriptors are weaker one by one; more of them per art keep recall comparable."""

CONDITIONS: tuple[str, ...] = (
    "perspective",
    "scale",
    "rotation",
    "blur",
    "lighting",
    "jpeg",
    "occlusion",
)
"""The matchability check's synthetic views, one per thing a store photo does to an art."""


@dataclass(frozen=True)
class KeypointsOptions:
    """How a package is enrolled; ``workers=None`` uses every CPU the process may run on."""

    features: FeatureKind = DEFAULT_FEATURES
    max_side: int = DEFAULT_MAX_SIDE
    art_features: int = DEFAULT_ART_FEATURES
    conditions: tuple[str, ...] = CONDITIONS
    workers: int | None = None

    def to_json(self) -> dict[str, object]:
        """The options as the worker's plan file carries them."""
        return {
            "features": self.features,
            "max_side": self.max_side,
            "art_features": self.art_features,
            "conditions": list(self.conditions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> KeypointsOptions:
        """The inverse of :meth:`to_json`."""
        conditions = data.get("conditions", CONDITIONS)
        return cls(
            features=parse_features(str(data.get("features", DEFAULT_FEATURES)), "plan"),
            max_side=int(cast(int, data.get("max_side", DEFAULT_MAX_SIDE))),
            art_features=int(cast(int, data.get("art_features", DEFAULT_ART_FEATURES))),
            conditions=tuple(str(c) for c in cast(list[object], conditions)),
        )


def parse_features(value: str, source: str) -> FeatureKind:
    """``sift`` or ``orb`` (any case); ProcessorError names ``source`` otherwise."""
    kind = value.strip().lower()
    if kind not in FEATURE_KINDS:
        raise ProcessorError(
            f"{source}: features={value!r} is not one of {', '.join(FEATURE_KINDS)}; "
            f"fix {FEATURES_ENV} on the VM"
        )
    return kind


def options_from_env(environ: Mapping[str, str]) -> KeypointsOptions:
    """The options a job runs with: defaults, the feature type from ``environ``."""
    raw = environ.get(FEATURES_ENV, "").strip()
    if not raw:
        return KeypointsOptions()
    kind = parse_features(raw, f"environment ({FEATURES_ENV})")
    art_features = ORB_ART_FEATURES if kind == "orb" else DEFAULT_ART_FEATURES
    return KeypointsOptions(features=kind, art_features=art_features)
