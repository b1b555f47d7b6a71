"""A tiny ingest folder made directly (no DICOM, no cone finding): manifest.csv, PNG frames, a key,
labels, views and the true boxes, so dataset and annotation tests run in milliseconds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from echoavc.cone.transform import StandardTransform
from echoavc.dicom.deid import pseudonym

MANIFEST_COLUMNS = [
    "source_sha256", "frame_index", "image_path", "patient_id", "patient_id_source", "study_id", "series_id",
    "original_rows", "original_cols", "crop_x", "crop_y", "crop_w", "crop_h", "scale", "pad_x", "pad_y", "std_size",
]


@dataclass
class FakeIngest:
    root: Path
    manifest: Path
    key: Path
    secret: bytes
    boxes_std: dict = field(default_factory=dict)  # key -> (x1, y1, x2, y2) standard
    views: dict = field(default_factory=dict)  # key -> view
    labels: list = field(default_factory=list)  # original ids
    exam_labels: dict = field(default_factory=dict)  # pseudonymous study -> (calcified, grade)
    patient_of_exam: dict = field(default_factory=dict)
    transforms: dict = field(default_factory=dict)

    def df(self) -> pd.DataFrame:
        return pd.read_csv(self.manifest, dtype=str, keep_default_na=False)

    def boxes_original(self) -> dict:
        return {k: tuple(self.transforms[k].box_to_original(b)) for k, b in self.boxes_std.items()}

    def write_maxqda(self, path: Path, space: str = "original") -> Path:
        boxes = self.boxes_original() if space == "original" else self.boxes_std
        rows = [{"image": k, "code": "Aortic valve", "x": b[0], "y": b[1], "width": b[2] - b[0],
                 "height": b[3] - b[1], "coordinate_space": space} for k, b in boxes.items()]
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    def write_labels(self, path: Path) -> Path:
        pd.DataFrame(self.labels).to_csv(path, index=False)
        return path

    def write_views(self, path: Path) -> Path:
        pd.DataFrame([{"source_sha256": k.split(":")[0], "frame_index": int(k.split(":")[1]), "view": v}
                      for k, v in self.views.items()]).to_csv(path, index=False)
        return path


def valve_image(size: int, box, rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 40, size=(size, size), dtype=np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        centre = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
        axes = (max(1, int((x2 - x1) / 2) - 1), max(1, int((y2 - y1) / 2) - 1))
        cv2.ellipse(img, centre, axes, 0, 0, 360, 220, -1)
    return img


def make_ingest(root: Path, patients: int = 10, exams: int = 1, std: int = 96, seed: int = 0,
                valve_frames: int = 2, background_frames: int = 1, grades=(0, 0, 1, 2, 3)) -> FakeIngest:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    secret = bytes(range(32))
    key = root.parent / f"{root.name}.key"
    key.write_text(secret.hex() + "\n")
    fi = FakeIngest(root, root / "manifest.csv", key, secret)
    rows = []
    for p in range(patients):
        pid_orig = f"PAT{p:03d}"
        pid = pseudonym(secret, "patient", pid_orig)
        grade = int(grades[p % len(grades)])
        for e in range(exams):
            g = min(3, grade + e) if grade else 0
            study_orig = f"1.2.826.0.1.{seed}.{p}.{e}"
            sid = pseudonym(secret, "study", study_orig)
            fi.labels.append({"exam_id": f"A{p:03d}{e}", "patient_id": pid_orig, "calcified": int(g > 0),
                              "grade": g, "study_instance_uid": study_orig})
            fi.exam_labels[sid] = (int(g > 0), g)
            fi.patient_of_exam[sid] = pid
            for kind, n in (("psax_av", valve_frames), ("plax", background_frames)):
                if n == 0:
                    continue
                sha = hashlib.sha256(f"{seed}-{p}-{e}-{kind}".encode()).hexdigest()
                series = pseudonym(secret, "series", sha)
                cols, rows_ = int(rng.integers(90, 200)), int(rng.integers(80, 180))
                cw, ch = int(rng.integers(cols // 2, cols - 4)), int(rng.integers(rows_ // 2, rows_ - 4))
                cx, cy = int(rng.integers(0, cols - cw)), int(rng.integers(0, rows_ - ch))
                t = StandardTransform.fit(cx, cy, cw, ch, std)
                for f in range(n):
                    k = f"{sha}:{f}"
                    box = None
                    if kind == "psax_av":
                        w, h = rng.uniform(0.15, 0.3, size=2) * std
                        x1, y1 = rng.uniform(0.25 * std, 0.75 * std - w), rng.uniform(0.25 * std, 0.75 * std - h)
                        box = (round(float(x1), 2), round(float(y1), 2), round(float(x1 + w), 2),
                               round(float(y1 + h), 2))
                        fi.boxes_std[k] = box
                    fi.views[k] = kind
                    fi.transforms[k] = t
                    rel = f"frames/{sid}/{sha[:8]}-f{f:04d}.png"
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(root / rel), valve_image(std, box, rng))
                    rows.append({"source_sha256": sha, "frame_index": f, "image_path": rel, "patient_id": pid,
                                 "patient_id_source": "PatientID", "study_id": sid, "series_id": series,
                                 "original_rows": rows_, "original_cols": cols,
                                 **{k2: v for k2, v in t.to_dict().items() if k2 != "size"}, "std_size": t.size})
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(fi.manifest, index=False)
    return fi
