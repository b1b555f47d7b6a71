"""The bundle's model card (MODEL_CARD.md): a short human-readable page beside bundle.json, which stays the
reference; and the one-line summaries of the grade head and the view model it shares with reports."""

from __future__ import annotations

import json

#: how validation figures are labelled wherever they are shown (they chose the epochs, calibration, thresholds)
VALIDATION_LABEL = "validation (used for model selection; optimistic)"
RESEARCH_ONLY = "Research use only: not for clinical diagnosis or treatment decisions."


def model_card_markdown(meta: dict, grade: dict | None = None, test_boxes: int = 1, members: int = 1) -> str:
    """A short human-readable card; the JSON record stays the reference."""
    from echoavc.weights import describe_start

    lines = [f"# Model card: {meta.get('name')}", "", f"**{RESEARCH_ONLY}**", "",
             f"Created {meta.get('created')} with echoavc {meta.get('versions', {}).get('echoavc')}.", "",
             "## What it does",
             "Finds the aortic valve in parasternal short-axis echo frames (detector) and gives a calibrated "
             "probability that it is calcified (classifier); frames are combined per exam "
             f"({meta['screening']['exam_aggregate']} of the decided frames).", "",
             "## Models", f"- detector: {meta['detector']['model_name']} at {meta['detector']['imgsz']} px; "
             f"{describe_start(meta['detector'].get('starting_weights'))}",
             f"- classifier: {meta['classifier'].get('backbone')} / {meta['classifier'].get('pooling')} at "
             f"{meta['classifier'].get('input_size')} px; {describe_start(meta['classifier'].get('starting_weights'))}"
             + _members_note(members) + _test_boxes_note(test_boxes),
             "",
             "## Severity grade", grade_card(grade), "",
             "## Thresholds (chosen on validation)",
             f"- frame: {meta['thresholds']['frame']:.4f} ({meta['thresholds'].get('frame_rule')})",
             f"- exam: {meta['thresholds']['exam']:.4f} ({meta['thresholds'].get('exam_rule')})", "",
             "## Test (held-out patients; echoavc evaluate on the split's test part)",
             *_test_lines(meta.get("test_summary")), "",
             f"## {VALIDATION_LABEL[0].upper()}{VALIDATION_LABEL[1:]}", "```",
             json.dumps(meta.get("validation_summary", {}), indent=1)[:4000], "```", "",
             "## Training data", "```", json.dumps(meta.get("training", {}), indent=1)[:3000], "```", ""]
    if meta.get("limitations"):
        lines += ["## Limitations", *[f"- {x}" for x in meta["limitations"]], ""]
    return "\n".join(lines)


def _test_lines(test: dict | None) -> list[str]:
    if not test:
        return ["None: the split had no test part, so no figure here is held out."]
    if test.get("note"):
        return [test["note"]]

    from echoavc.evaluate.intervals import format_plain as fmt

    c = test.get("counts", {})
    out = [f"{c.get('exams')} exams of {c.get('patients')} patients; coverage (exams decided / exams) "
           f"{fmt(test.get('coverage'))}. 95% intervals; full report in {test.get('report')}."]
    for way, title in (("exam_decided", "over decided exams"),
                       ("exam_undetermined_as_errors", "undetermined exams counted as errors")):
        m = test.get(way) or {}
        out.append(f"- {title}: " + ", ".join(f"{k} {fmt(m.get(k))}" for k in ("auroc", "recall", "specificity")))
    g = test.get("grade") or {}
    if g.get("qwk"):
        out.append(f"- severity grade ({g.get('exams_graded')} decided exams): quadratic weighted kappa "
                   f"{fmt(g['qwk'])}")
    return out


def grade_card(g: dict | None) -> str:
    """One line on the grade head (the bundle's grade.json record) for the model card and reports."""
    if not g or not g.get("trained"):
        return (g or {}).get("note") or "grade: not trained (bundle made before grades existed)"
    cal = g.get("calibration") or {}
    val = g.get("validation") or {}
    qwk = val.get("qwk_crops")
    return (f"grade 0-{len(g['classes']) - 1}: {(g.get('model') or {}).get('kind')}; temperature "
            f"{cal.get('temperature', 1.0):.3f} on {(cal.get('data') or {}).get('kind')} crops"
            + (f"; quadratic weighted kappa on them {qwk:.2f} (crops; optimistic)" if qwk is not None else "")
            + (f"; the network trained with the grade loss (weight {w:g})"
               if (w := (g.get("model") or {}).get("network_grade_loss")) else ""))


def views_card(v: dict) -> str:
    """One line on the view model (its views.json) for the model card and reports."""
    val = (v.get("validation") or {}).get("clip_accuracy") or {}
    acc = "n/a" if val.get("value") is None else (
        f"{val['value']:.2f} [{val.get('low') or float('nan'):.2f}, {val.get('high') or float('nan'):.2f}]")
    return (f"views: {v.get('backbone')} at {v.get('input_size')} px, classes {', '.join(v.get('classes', []))}; "
            f"clip view accuracy {acc} on the validation patients (used for model selection; optimistic); "
            "clips of another view are listed, not screened")


def _members_note(members: int) -> str:
    return (f"; an ensemble of {members} networks (seeds in turn; their mean logit, calibrated as one model)"
            if members > 1 else "")


def _test_boxes_note(n: int) -> str:
    return (f"; each probability is the mean over {n} boxes (the detector's box and {n - 1} fixed shifts and "
            "resizes of it), as it was calibrated" if n and n > 1 else "")


__all__ = ["VALIDATION_LABEL", "RESEARCH_ONLY", "model_card_markdown", "grade_card", "views_card"]
