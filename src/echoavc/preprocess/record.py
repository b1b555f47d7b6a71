"""The preprocessing record: every setting that must be the same when a model is trained and when it
screens, as one frozen value. A bundle stores it in ``bundle.json`` (``"preprocessing"``) and
:meth:`Preprocessing.from_dict` is the one reader."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from echoavc.settings import ConeSettings, CropSettings, IngestSettings, from_dict

__all__ = ["Preprocessing"]


@dataclass(frozen=True)
class Preprocessing:
    """Standard frame (size, frames kept, cone finder), detector input size, valve crop and normalisation."""

    standard_size: int
    every_nth: int
    cone: ConeSettings
    detector_imgsz: int
    crop_size: int
    crop_margin: float
    noise_reduction: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, ingest: IngestSettings, detector_imgsz: int, classifier_meta: dict) -> "Preprocessing":
        """From the ingest settings, the detector's input size and a classifier's stored settings."""
        norm = classifier_meta["normalisation"]
        return cls(int(ingest.size), int(ingest.every_nth), ingest.cone, int(detector_imgsz),
                   int(classifier_meta["crop"]["size"]), float(classifier_meta["crop"]["margin"]),
                   bool(classifier_meta["noise_reduction"]), tuple(float(v) for v in norm["mean"]),
                   tuple(float(v) for v in norm["std"]))

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """Read the record as :meth:`to_dict` writes it (KeyError/TypeError for an incomplete one)."""
        return cls(int(d["standard_size"]), int(d["every_nth"]), from_dict(ConeSettings, d["cone"], "bundle.json preprocessing.cone"),
                   int(d["detector_imgsz"]), int(d["crop"]["size"]), float(d["crop"]["margin"]),
                   bool(d["noise_reduction"]), tuple(float(v) for v in d["normalisation"]["mean"]),
                   tuple(float(v) for v in d["normalisation"]["std"]))

    def ingest_part(self) -> dict:
        """The part fixed at ingest time (what ``ingest.json`` in a bundle holds), JSON-able."""
        # through JSON, so tuples and lists compare equal
        return json.loads(json.dumps({"standard_size": self.standard_size, "every_nth": self.every_nth,
                                      "cone": asdict(self.cone)}, default=str))

    def to_dict(self) -> dict:
        """The JSON-able record, as ``bundle.json`` holds it (format 1)."""
        return {**self.ingest_part(), "detector_imgsz": self.detector_imgsz,
                "crop": {"size": self.crop_size, "margin": self.crop_margin},
                "noise_reduction": self.noise_reduction,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)}}

    def ingest_settings(self) -> IngestSettings:
        """The ingest settings the models were trained with (standard size, frames kept, cone finder)."""
        return IngestSettings(size=self.standard_size, every_nth=self.every_nth, cone=self.cone)

    def crop(self) -> CropSettings:
        return CropSettings(size=self.crop_size, margin=self.crop_margin)
