"""The frame policy: which frames a clip screens, in screen_input and in predict's outputs, and in the bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pandas as pd
import pytest

from echoavc.phase import CLOSED, OPEN, UNKNOWN, ClipPhase, frames_in_policy
from echoavc.screening import FrameResult, screen_input
from echoavc.settings import IngestSettings, ScreeningSettings


def test_each_policy_picks_its_frames_and_an_untimed_clip_is_screened_whole():
    phase = ClipPhase([CLOSED, UNKNOWN, OPEN, CLOSED], [True, False, False, False], "ecg_trace", "test")
    assert frames_in_policy(phase, "closed") == [True, False, False, True]
    assert frames_in_policy(phase, "end-diastole") == [True, False, False, False]
    assert frames_in_policy(phase, "all") == [True] * 4
    assert frames_in_policy(ClipPhase.unknown(3, {}), "closed") == [True] * 3
    with pytest.raises(ValueError):
        frames_in_policy(phase, "systole")


@pytest.fixture(scope="module")
def ecg_clip(tmp_path_factory):
    """One short-axis clip of two beats on a layout that draws the ECG with its marker, and its truth."""
    from echoavc.synth.cohort import make_cohort

    root = tmp_path_factory.mktemp("ecg_clip")
    for seed in range(20, 40):  # the first seed whose exam is on a layout with an ECG (about 2 in 3 are)
        paths = make_cohort(root / str(seed), 1, seed, frames_per_exam=16, distractor_fraction=0.0,
                            beats_per_clip=2.0, workers=1, progress=False)
        truth = pd.read_csv(paths.frames)
        if truth["layout"].iloc[0] != "compact":
            longest = truth["file"].value_counts().index[0]
            truth = truth[truth["file"] == longest].sort_values("frame_index")
            return paths.out_dir / longest, truth
    raise AssertionError("no ECG layout in 20 seeds")


def test_a_single_frame_is_not_searched_for_an_ecg_trace(ecg_clip):
    # one frame cannot be timed by the trace (no marker to read against it): the reader does not look for the
    # trace at all (10 ms of a single-frame file's screening), and says why the clip is untimed
    from echoavc.dicom.read import open_dicom
    from echoavc.phase.reader import PhaseReader
    from echoavc.preprocess.clip import prepare_clip

    path, _ = ecg_clip
    prep = prepare_clip(open_dicom(path.read_bytes(), path.name), IngestSettings())
    whole = PhaseReader(prep)
    for _, frame in prep.frames():
        whole.add(frame)
    assert whole.area is not None and whole.phase(None, None).source == "ecg_trace"
    one = replace(prep, kept=prep.kept[:1])
    single = PhaseReader(one)
    single.add(next(one.frames())[1])
    assert single.area is None and not single.strips
    phase = single.phase(None, None)
    assert phase.source == "none" and "single frame" in phase.notes["ecg_trace"]


class _AnyValve:
    """Stands in for the models: one valve box on every frame it locates, P 0.4 on every frame it classifies. It
    reads the frame policy between the two as ``Screener.screen`` does and records which frames each model saw."""

    BOX = [250.0, 250.0, 390.0, 390.0]

    def __init__(self, frames: str):
        self.settings = ScreeningSettings(frames=frames)
        self.secret = None
        self.bundle = type("B", (), {"ingest_settings": staticmethod(IngestSettings)})()

    def screen(self, images, kept, exam_id, source, gate=None):
        look = gate.to_locate() if gate is not None else None
        located = [look is None or bool(look[i]) for i in range(len(kept))]
        read = gate.to_classify([self.BOX if x else None for x in located]) if gate is not None else located
        self.located = [int(k) for k, x in zip(kept, located) if x]
        self.classified = [int(k) for k, r in zip(kept, read) if r]
        return [FrameResult(exam_id, source, int(k), "decided", 0.9, self.BOX, 0.4, "not calcified") if r else
                FrameResult(exam_id, source, int(k), "other_phase", *((0.9, self.BOX) if x else ()))
                for k, x, r in zip(kept, located, read)]


@pytest.mark.parametrize("policy", ["closed", "all", "end-diastole"])
def test_screen_input_keeps_only_the_policys_frames_and_records_the_phase(ecg_clip, policy, tmp_path):
    path, truth = ecg_clip
    models = _AnyValve(policy)
    clip = screen_input(models, path.read_bytes(), path.name, "sha", tmp_path, overlays="none")
    assert clip.phase["source"] == "ecg_trace" and clip.phase["frames"] == policy
    got = [f.phase for f in clip.frames]
    for g, want in zip(got, truth["valve_phase"]):
        assert g in (want, UNKNOWN)  # the ECG trace never calls an open valve closed here
    assert got.count(CLOSED) >= 3 and all(f.phase_source == "ecg_trace" for f in clip.frames)
    # two beats: the frame nearest each R wave (cycle fraction nearest 0)
    ed = [f.frame_index for f in clip.frames if f.end_diastole]
    frac = truth["cycle_fraction"].to_numpy()
    spacing = 2.0 / len(frac)  # cycle fraction between frames
    assert len(ed) >= 1 and all(min(frac[i], 1 - frac[i]) <= spacing / 2 + 0.01 for i in ed)
    screened = [f.frame_index for f in clip.frames if f.status == "decided"]
    others = [f for f in clip.frames if f.status == "other_phase"]
    if policy == "all":
        assert len(screened) == len(clip.frames) and not others
    elif policy == "closed":
        assert screened == [f.frame_index for f in clip.frames if f.phase == CLOSED]
    else:
        assert screened == ed
    assert all(f.decision == "" and f.probability is None for f in others)  # never classified
    # the ECG trace timed the clip before the detector ran: neither model saw a frame outside the policy
    assert models.located == models.classified == screened
    assert all(f.valve_box is None for f in others)


def test_predict_writes_the_phase_and_screens_by_the_policy(screening_bundle, tmp_path):
    from echoavc.predict import predict

    src = screening_bundle.test_sources[:3]
    counts, seen = {}, {}
    for policy in ("all", "closed"):
        s = replace(screening_bundle.settings, frames=policy, explain=False)
        predict(src, screening_bundle.bundle, tmp_path / policy, settings=s, overlays="none",
                      report=False, progress=False)
        frames = pd.read_csv(tmp_path / policy / "frames.csv")
        assert {"phase", "phase_source", "end_diastole"} <= set(frames.columns)
        assert set(frames["phase"]) <= {"closed", "open", "unknown"}
        assert set(frames["phase_source"]) <= {"header", "ecg_trace", "image", "none"}
        doc = json.loads((tmp_path / policy / "results.json").read_text())
        assert doc["settings"]["frames"] == policy
        counts[policy] = frames["status"].value_counts().to_dict()
        seen[policy] = frames.set_index(["source", "frame_index"])
        if policy == "closed":
            # the models skip what the policy leaves out: never a probability outside it
            assert frames.loc[frames["status"] == "other_phase", "probability"].isna().all()
            assert (frames.loc[frames["status"] == "decided", "phase"].isin(["closed"])
                    | frames.loc[frames["status"] == "decided", "phase_source"].eq("none")).all()
    assert counts["all"].get("other_phase", 0) == 0
    assert counts["closed"].get("other_phase", 0) > 0
    # ... and what it keeps is screened exactly as with every frame: the same boxes, probabilities, decisions
    kept = seen["closed"][seen["closed"]["status"] == "decided"]
    same = seen["all"].loc[kept.index]
    for col in ("valve_score", "valve_x1", "valve_y2", "probability", "decision"):
        assert (same[col] == kept[col]).all(), col


def test_the_bundle_stores_its_policy_and_older_bundles_screen_every_frame(screening_bundle, tmp_path):
    from echoavc.bundle import load_bundle

    bundle = load_bundle(screening_bundle.bundle)
    assert bundle.meta["screening"]["frames"] == ScreeningSettings().frames == "closed"
    assert bundle.screening.frames == "closed"
    old = tmp_path / "format2"
    shutil.copytree(screening_bundle.bundle, old)
    meta = json.loads((old / "bundle.json").read_text())
    del meta["screening"]["frames"]
    meta["format"] = "echoavc-bundle/2"
    (old / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(old).screening.frames == "all"
