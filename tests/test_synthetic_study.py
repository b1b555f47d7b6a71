"""The shared session fixture really is a usable study: both classes, every role, disjoint patients."""


def test_synthetic_study_is_usable(synthetic_study):
    frame = synthetic_study.table.frame
    assert set(frame.role) >= {"valve", "background"}
    valve = frame[frame.role == "valve"]
    assert valve.calcified.nunique() == 2
    parts = synthetic_study.split.parts()
    ids = [parts[p] for p in ("train", "val", "test")]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
