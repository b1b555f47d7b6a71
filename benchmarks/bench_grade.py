"""Acceptance benchmark of the severity grade (issue 17; results in docs/classifier.md, "Severity grade").

The classifier stage on ground-truth valve crops (the whole pipeline, detector included, is too slow to train
on the shared 2-core machine):

1. a training study from a TUNING seed (500 patients by default: synth -> ingest -> dataset build -> patient split
   80/20 train/val);
2. the classifier, cpu preset, exactly as ``echoavc classifier train`` trains it (with the preset's grade loss);
   when that weight is above 0, also the same recipe with the binary loss alone (``model-binary``), the "without"
   side of the AUROC comparison;
3. the grade head on its frozen pooled features (training patients), calibrated on the validation patients;
4. a held-out cohort from an EVALUATION seed (never filtered, docs/evaluation.md), at least 60 patients: each
   exam's grade from its valve frames' pooled class probabilities (the head's exam pooling, fitted on
   validation exams); quadratic weighted kappa with a patient
   bootstrap interval, the confusion matrix; the binary exam AUROC with and without the grade head (and its
   grade loss), paired bootstrap of the difference.

Run (2-core machine shared with other jobs: --threads 1):
  nice -n 10 .venv/bin/python benchmarks/bench_grade.py --work /tmp/grade-bench --threads 1 [--json out.json]

The cohorts and the trained classifier are kept in --work and reused by a later run (``--prepare-only`` stops
after step 2). Prints PASS/FAIL lines: QWK >= 0.80, binary exam AUROC not lower with the grade head (FAIL when the
paired 95% interval of the difference lies wholly below 0); and the
screening cost of the one classifier graph (logits + features) against format 2's two graphs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np


def _study(work: Path, name: str, patients: int, seed: int, prevalence: float, held_out: bool, workers: int):
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.synth.study import make_study

    folder = work / name
    info_file = folder / "study.json"
    if not info_file.is_file():
        parts = dict(train=1.0, val=0.0, test=0.0) if held_out else dict(train=0.8, val=0.2, test=0.0)
        _, _, info = make_study(folder, patients, seed, prevalence=prevalence, held_out=held_out, workers=workers,
                                **parts)
        info_file.write_text(json.dumps(info, default=str))
    table = DatasetTable.load(folder / "table")
    return table, Split.load(folder / "table" / "split.json"), json.loads(info_file.read_text())


def _run_folder(work: Path, name: str, run: int) -> Path:
    return work / (name if run == 0 else f"{name}-s{run}")


def _not_lower(diff) -> bool:
    """The AUROC difference with - without is not shown lower: its paired 95% interval is not wholly below 0."""
    return diff.estimate >= 0 or diff.hi >= 0


def _exam_means(p: np.ndarray, idx: dict, exams: list) -> np.ndarray:
    """Each exam's binary probability: the mean of its frames' (the exam aggregate)."""
    return np.array([p[idx[e]].mean() for e in exams])


def prepare(args) -> tuple:
    """Steps 1-2: the training study and the binary classifier (reused when --work holds them)."""
    from echoavc.classifier.train import train_classifier
    from echoavc.settings import classifier_preset

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table, split, info = _study(work, "train", args.train_patients, args.train_seed, args.prevalence, False,
                                args.workers)
    print(f"training study: {info}", flush=True)
    model = work / "model"
    s = classifier_preset("cpu", threads=args.threads, pretrained="none")
    # one crop per frame, as when the figures in docs/classifier.md were measured: this bench reads crops, not
    # the test-box average the cpu preset now serves (docs/classifier.md, "Test boxes")
    s = replace(s, crop=replace(s.crop, test_boxes=1))
    if args.epochs:
        s = replace(s, epochs=args.epochs)
    if args.grade_loss is not None:
        s = replace(s, grade_loss=args.grade_loss)
    t1 = time.perf_counter()
    # the model as `echoavc classifier train` trains it, and (when its training used the grade loss) the same
    # recipe with the binary loss alone: the "without the grade head" side of the AUROC comparison
    runs = []
    for k in range(args.runs):  # run k: training seed k; run 0 in model/ and model-binary/
        sk = replace(s, seed=k)
        runs += [(_run_folder(work, "model", k), sk)]
        runs += [(_run_folder(work, "model-binary", k), replace(sk, grade_loss=0.0))] if s.grade_loss > 0 else []
    for folder, settings in runs:
        if not (folder / "classifier.json").is_file():
            print(f"training {folder.name} (grade_loss {settings.grade_loss})", flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                train_classifier(table, split, folder, settings, log=lambda m: print(m, flush=True))
    return table, split, model, {"data": round(t1 - t0, 1), "classifier": round(time.perf_counter() - t1, 1)}


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fit_head(table, split, model: Path):
    """Step 3: the grade head on the saved classifier's frozen features, by the function ``train_classifier``
    calls after training (here on a classifier trained before, so its binary files are checked unchanged)."""
    from echoavc.classifier.calibrate import Calibration
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.grade_fit import fit_grade_head
    from echoavc.classifier.predict import load_model
    from echoavc.classifier.train import Trained
    from echoavc.settings import ClassifierSettings, from_dict

    net, meta = load_model(model)
    s = from_dict(ClassifierSettings, meta["settings"])
    samples = load_samples(table, split)
    source = CropSource(table, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
    trained = Trained(net, s, Calibration.from_dict(meta["calibration"]), float(meta["threshold"]), meta)
    train = [x for x in samples if x.part == "train"]
    val = [x for x in samples if x.part == "val"]
    head = fit_grade_head(trained, source, train, val, model, log=lambda m: print(m, flush=True))
    return head, source, train, val, net, s


def _logit_only_baseline(head_inputs, test_logits_by_exam):
    """The same cumulative-link model on one feature, the binary logit, with its own exam pooling fitted on the
    validation exams the same way: what the grade head adds beyond it. Returns (probabilities by exam, pooling)."""
    from echoavc.classifier.grade import class_probabilities, fit_exam_sharpness, fit_grade_temperature, fit_ordinal
    from echoavc.classifier.train import predict_logits

    _, source, train, val, net, s = head_inputs
    z_tr = predict_logits(net, source.batch(train), s.mean, s.std)[:, None]
    z_va = predict_logits(net, source.batch(val), s.mean, s.std)[:, None]
    g_tr, g_va = np.array([x.grade for x in train]), np.array([x.grade for x in val])
    mu, sd = z_tr.mean(), z_tr.std()
    w, c = fit_ordinal((z_tr - mu) / sd, g_tr, 4, 1e-3)
    t = fit_grade_temperature(((z_va - mu) / sd) @ w[:, None] - c[None, :], g_va)
    p_va = class_probabilities((((z_va - mu) / sd) @ w[:, None] - c[None, :]) / t)
    v_exams = sorted({x.study_id for x in val})
    rows = [[i for i, x in enumerate(val) if x.study_id == e] for e in v_exams]
    pooling = {"kind": "geometric", "sharpness": fit_exam_sharpness([p_va[r] for r in rows], [g_va[r[0]] for r in rows])}
    return {e: class_probabilities((((z[:, None] - mu) / sd) @ w[:, None] - c[None, :]) / t)
            for e, z in test_logits_by_exam.items()}, pooling


def _time_passes(model: Path, clf, crops) -> dict:
    """CPU and wall seconds per 1000 crops: the single graph (logits + features, the head in numpy) against the
    two-graph path bundles of format 2 ran (logits-only graph, then grade.onnx: the backbone again + the head)."""
    import torch

    from echoavc.classifier.grade import GradeModel
    from echoavc.classifier.predict import Classifier, OnnxBackend, load_model

    net, meta = load_model(model)
    path = model / "logits-only.onnx"  # the classifier graph as format 2 exported it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, net.input_size, net.input_size),), str(path),
                          input_names=["crops"], output_names=["logits"],
                          dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    old = Classifier(meta, OnnxBackend(path), None, model)
    two = GradeModel.load(model, backend="onnx")  # grade.onnx, exported here if missing
    one = GradeModel.on_classifier(model, clf)
    out = {}
    for name, run in (("one_graph", lambda: one.from_features(clf.predict_proba_and_features(crops)[1])),
                      ("two_graphs", lambda: (old.predict_proba(crops), two.predict_proba(crops)))):
        run()  # warm-up
        w, c = time.perf_counter(), time.process_time()
        for _ in range(3):
            run()
        out[name] = {"wall_s_per_1000": round((time.perf_counter() - w) / 3 / len(crops) * 1000, 3),
                     "cpu_s_per_1000": round((time.process_time() - c) / 3 / len(crops) * 1000, 3)}
    g_one, g_two = one.from_features(clf.predict_proba_and_features(crops)[1]), two.predict_proba(crops)
    out["max_grade_difference"] = float(np.abs(g_one - g_two).max())
    return out


def _other_runs(args, work: Path, joint: bool, test, samples, idx, exams, y, g_true, patients, pe_with0,
                pe_without0, qwk0) -> dict:
    """With ``--runs`` K > 1: every run's exam QWK (its own network and head, as predict serves them) and the
    binary exam AUROC difference with - without averaged over the K runs, one paired patient bootstrap (the same
    resampled patients for every network): the recipe's effect with the training runs' own spread averaged out."""
    from sklearn.metrics import roc_auc_score

    from echoavc.classifier.data import CropSource
    from echoavc.classifier.grade import GradeModel, exam_grade
    from echoavc.classifier.predict import Classifier
    from echoavc.evaluate import bootstrap_by_group
    from echoavc.evaluate.grading import quadratic_kappa

    if args.runs < 2:
        return {"lines": []}
    qwks, with_, without = [qwk0], [pe_with0], [pe_without0]
    for k in range(1, args.runs):
        folder, reference = _run_folder(work, "model", k), _run_folder(work, "model-binary", k)
        clf = Classifier.load(folder, backend="onnx")
        crops = CropSource(test, clf.crop, clf.noise_reduction).batch(samples)
        p, features = clf.predict_proba_and_features(crops)
        head = GradeModel.on_classifier(folder, clf)
        g_frames = head.from_features(features)
        g_pred = np.array([exam_grade(g_frames[idx[e]], head.head.exam_pooling)[0] for e in exams])
        qwks.append(quadratic_kappa(g_true, g_pred, labels=list(range(4))))
        p_ref = Classifier.load(reference).predict_proba(crops) if joint else p
        with_.append(_exam_means(p, idx, exams))
        without.append(_exam_means(p_ref, idx, exams))
    a, b = np.stack(with_, axis=1), np.stack(without, axis=1)
    mean_diff = bootstrap_by_group(
        lambda t, a, b: float(np.mean([roc_auc_score(t, a[:, k]) - roc_auc_score(t, b[:, k])
                                       for k in range(a.shape[1])])), patients, y, a, b, n_boot=args.n_boot)
    per_run = [round(roc_auc_score(y, a[:, k]) - roc_auc_score(y, b[:, k]), 3) for k in range(a.shape[1])]
    lines = [
        f"{'PASS' if min(qwks) >= 0.80 else 'FAIL'} exam grade over {args.runs} training runs (training seeds "
        f"0-{args.runs - 1}): quadratic weighted kappa {', '.join(f'{v:.3f}' for v in qwks)} (each >= 0.80)",
        f"{'PASS' if _not_lower(mean_diff) else 'FAIL'} binary exam AUROC with - without "
        f"the grade head, averaged over the {args.runs} runs: {mean_diff.format(3)} (paired patient bootstrap, every "
        f"network on the same resampled patients; per run {per_run})",
    ]
    return {"lines": lines, "qwk": qwks, "auroc_difference_per_run": per_run,
            "auroc_difference_mean": mean_diff.to_dict()}


def evaluate_grade(args, table, split, model: Path, seconds: dict) -> dict:
    """Steps 3-4; prints the PASS/FAIL lines."""
    from sklearn.metrics import roc_auc_score

    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.grade import GradeModel, exam_grade, median_grade
    from echoavc.classifier.predict import Classifier
    from echoavc.evaluate import bootstrap_by_group
    from echoavc.evaluate.grading import confusion_markdown, grade_report, quadratic_kappa

    work = Path(args.work)
    t0 = time.perf_counter()
    test, _, info = _study(work, f"test{args.test_seed}", args.test_patients, args.test_seed, args.test_prevalence,
                           True, args.workers)
    seconds["held_out_data"] = round(time.perf_counter() - t0, 1)
    samples = load_samples(test)  # every labelled valve frame of the held-out cohort (ground-truth boxes)
    binary = {f: _sha(model / f) for f in ("model.safetensors", "classifier.json")}
    clf = Classifier.load(model)
    crops = CropSource(test, clf.crop, clf.noise_reduction).batch(samples)
    z_test = clf.logits(crops)
    # without the grade head: the binary-loss-only network when the model trained with the grade loss, else this
    # network itself (the head is then frozen-feature and cannot change it)
    reference = _run_folder(model.parent, "model-binary", 0)
    joint = float(json.loads((model / "classifier.json").read_text())["settings"].get("grade_loss", 0.0)) > 0
    p_without = (Classifier.load(reference) if joint else clf).predict_proba(crops)
    t1 = time.perf_counter()
    head_inputs = _fit_head(table, split, model)
    seconds["grade_head"] = round(time.perf_counter() - t1, 1)
    unchanged = all(_sha(model / f) == h for f, h in binary.items())
    clf2 = Classifier.load(model)
    p_with = clf2.predict_proba(crops)  # the binary path of the same folder, now holding the grade head
    # as predict serves it (bundle format 3): ONE ONNX graph gives the logit and the pooled features the head reads
    clf_onnx = Classifier.load(model, backend="onnx")
    p_onnx, features = clf_onnx.predict_proba_and_features(crops)
    g_frames = GradeModel.on_classifier(model, clf_onnx).from_features(features)
    g_torch = GradeModel.load(model, backend="torch").predict_proba(crops)
    passes = _time_passes(model, clf_onnx, crops)

    exams = sorted({x.study_id for x in samples})
    idx = {e: [i for i, x in enumerate(samples) if x.study_id == e] for e in exams}
    truth = {e: samples[idx[e][0]] for e in exams}
    y = np.array([truth[e].label for e in exams])
    g_true = np.array([truth[e].grade for e in exams])
    patients = [truth[e].patient_id for e in exams]
    pe_without, pe_with = _exam_means(p_without, idx, exams), _exam_means(p_with, idx, exams)
    pooling = head_inputs[0].exam_pooling  # fitted on the validation exams with the head
    g_pred = np.array([exam_grade(g_frames[idx[e]], pooling)[0] for e in exams])
    g_mean = np.array([exam_grade(g_frames[idx[e]])[0] for e in exams])  # the former rule: the frames' mean
    rep_mean = grade_report(g_true, g_mean, patients, n_classes=4, n_boot=args.n_boot)
    rep = grade_report(g_true, g_pred, patients, n_classes=4, n_boot=args.n_boot)
    base_probs, base_pooling = _logit_only_baseline(head_inputs, {e: z_test[idx[e]] for e in exams})
    g_base = np.array([exam_grade(base_probs[e], base_pooling)[0] for e in exams])
    rep_base = grade_report(g_true, g_base, patients, n_classes=4, n_boot=args.n_boot)
    auc = {name: bootstrap_by_group(lambda t, p: roc_auc_score(t, p), patients, y, pe, n_boot=args.n_boot)
           for name, pe in (("without", pe_without), ("with", pe_with))}
    diff = bootstrap_by_group(lambda t, a, b: roc_auc_score(t, a) - roc_auc_score(t, b), patients, y, pe_with,
                              pe_without, n_boot=args.n_boot)
    _, source, _, val, _, _ = head_inputs
    gv = GradeModel.load(model, backend="torch").predict_proba(source.batch(val))
    v_exams = sorted({x.study_id for x in val})
    v_idx = {e: [i for i, x in enumerate(val) if x.study_id == e] for e in v_exams}
    val_qwk = quadratic_kappa([val[v_idx[e][0]].grade for e in v_exams],
                              [exam_grade(gv[v_idx[e]], pooling)[0] for e in v_exams])
    frame_qwk = quadratic_kappa([x.grade for x in samples], median_grade(g_frames))
    q = rep["qwk"]
    n_pat = len(set(patients))
    max_diff = float(np.abs(p_with - p_without).max())
    lines = [
        f"{'PASS' if n_pat >= 60 else 'FAIL'} held-out cohort: {n_pat} patients, {len(exams)} exams, "
        f"{len(samples)} valve frames, evaluation seed {args.test_seed} (exams by true grade "
        f"{ {int(a): int(b) for a, b in zip(*np.unique(g_true, return_counts=True))} }; unfiltered, {info.get('unreadable_files')} "
        "unreadable files)",
        f"{'PASS' if q['value'] is not None and q['value'] >= 0.80 else 'FAIL'} exam grade: quadratic weighted kappa "
        f"{q['value']:.3f} [{q['low']:.3f}, {q['high']:.3f}] (95% patient bootstrap, {q['n_boot_valid']} resamples) "
        f">= 0.80; exact agreement {rep['accuracy']:.2f}",
        f"{'PASS' if _not_lower(diff) else 'FAIL'} binary exam AUROC with the grade head "
        f"{auc['with'].format(3)} vs without {auc['without'].format(3)}: difference {diff.format(3)} (paired patient "
        "bootstrap; not lower unless the whole interval is below 0); " + (
            f"without = the same recipe trained with the binary loss alone ({reference.name}); fitting the head left "
            if joint else "the head is frozen-feature, so the binary probabilities are identical (max |difference| "
            f"{max_diff:.1e}) and ") + f"the binary files {'unchanged (sha256 equal)' if unchanged else 'CHANGED'}",
        f"INFO exam pooling: geometric, sharpness {pooling['sharpness']:.3f} (fitted on the validation exams); the "
        f"former rule (the frames' mean distribution) on the same frames: QWK {rep_mean['qwk']['value']:.3f} "
        f"[{rep_mean['qwk']['low']:.3f}, {rep_mean['qwk']['high']:.3f}]",
        f"INFO validation exams (training study, used to choose L2, T and the sharpness: optimistic): QWK "
        f"{val_qwk:.3f} over {len(v_exams)} exams",
        f"INFO baseline, the same ordinal model on the binary logit alone: QWK {rep_base['qwk']['value']:.3f} "
        f"[{rep_base['qwk']['low']:.3f}, {rep_base['qwk']['high']:.3f}]; frame-level QWK of the head "
        f"{frame_qwk:.3f}; ONNX vs PyTorch grade probabilities max |difference| "
        f"{float(np.abs(g_frames - g_torch).max()):.1e}",
        f"INFO screening cost per 1000 crops (ONNX, this machine, shared): one graph (logits + features) "
        f"{passes['one_graph']['cpu_s_per_1000']} CPU s ({passes['one_graph']['wall_s_per_1000']} s wall) vs the "
        f"format-2 two graphs {passes['two_graphs']['cpu_s_per_1000']} CPU s ({passes['two_graphs']['wall_s_per_1000']}"
        f" s wall); grade probabilities max |difference| {passes['max_grade_difference']:.1e}",
    ]
    runs = _other_runs(args, model.parent, joint, test, samples, idx, exams, y, g_true, patients, pe_with,
                       pe_without, q["value"])
    lines += runs.pop("lines")
    print(confusion_markdown(rep), flush=True)
    for line in lines:
        print(line, flush=True)
    seconds["evaluation"] = round(time.perf_counter() - t1, 1)
    print(f"seconds: {seconds}", flush=True)
    return {"lines": lines, "grade": rep, "logit_only_baseline": rep_base, "mean_pooling": rep_mean,
            "auroc": {k: v.to_dict() for k, v in auc.items()},
            "auroc_difference": diff.to_dict(), "binary_unchanged": unchanged, "max_binary_difference": max_diff,
            "held_out": info, "seconds": seconds, "passes": passes, "runs": runs,
            "grade_head": json.loads((model / "grade.json").read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    # 500 (400 training, 100 validation patients): with 200 the backbone limited the grade (QWK 0.75 on both seeds);
    # with 500 one run reached 0.82 / 0.85 and a rerun 0.75 (docs/classifier.md)
    ap.add_argument("--train-patients", type=int, default=500)
    ap.add_argument("--train-seed", type=int, default=417, help="a tuning seed (0-899999)")
    ap.add_argument("--prevalence", type=float, default=0.6)
    ap.add_argument("--test-patients", type=int, default=72)
    ap.add_argument("--test-seed", type=int, default=900_719, help="an evaluation seed (docs/evaluation.md; "
                    "the reported ones: 900719, 900720)")
    ap.add_argument("--test-prevalence", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1,
                    help="training runs (seeds 0..K-1) of the model and of its binary-only twin; K > 1 adds each "
                         "run's QWK and the AUROC difference averaged over runs")
    ap.add_argument("--grade-loss", type=float, default=None,
                    help="ClassifierSettings.grade_loss (default: the cpu preset's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="processes for synth and ingest")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--prepare-only", action="store_true", help="stop after training the binary classifier")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from echoavc import runtime
    from echoavc.evaluate.seeds import is_evaluation_seed, require_evaluation_seed

    runtime.configure(offline=True)
    try:  # refused before any work: a report on a tuning seed would be optimistic
        require_evaluation_seed(args.test_seed, "grade benchmark's held-out cohort")
        if is_evaluation_seed(args.train_seed):
            raise SystemExit(f"--train-seed {args.train_seed} is an evaluation seed: train on a tuning seed")
    except Exception as exc:
        raise SystemExit(str(exc)) from None
    table, split, model, seconds = prepare(args)
    if args.prepare_only:
        print(f"prepared: {model} ({seconds})", flush=True)
        return
    res = evaluate_grade(args, table, split, model, seconds)
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]), **res}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
