"""The view classes and the one place that maps view names onto them.

Five classes (issue 16): ``psax_av`` (parasternal short axis at the aortic-valve level), ``psax_mid`` (short axis
below it: LV base, papillary muscles, apex), ``plax`` (parasternal long axis), ``a4c`` (apical views) and
``other`` (subcostal, suprasternal, anything not a 2D view). Names come from the synthetic generator
(``echoavc.synth``: psax_av, psax_mid, plax, a4c), the dataset table (``dataset build --views``, which
normalises spelling: see ``echoavc.dataset.table.normalise_view``) and users' CSVs; :func:`view_class` maps all of
them. ``unknown`` and names it does not know give None: such frames train nothing and are never guessed.
"""

from __future__ import annotations

__all__ = ["VIEW_CLASSES", "SCREENED_VIEW", "view_class", "VIEW_NAMES"]

VIEW_CLASSES = ("psax_av", "psax_mid", "plax", "a4c", "other")
#: the one view screened for calcification (the paper's frames)
SCREENED_VIEW = "psax_av"

#: every known spelling -> class (lower case; spaces and hyphens read as underscores)
VIEW_NAMES: dict[str, str] = {
    # aortic-valve short axis (the great-vessel level, where the tricuspid and pulmonary valves show too)
    **dict.fromkeys(("psax_av", "psaxav", "sax_av", "psax_ao", "psax_aov", "psax_great_vessels", "psax_tv",
                     "psax_aortic_valve", "psax_base_av"), "psax_av"),
    # short axis below the valve: mitral (LV base), papillary (mid) and apical levels
    **dict.fromkeys(("psax_mid", "psax_pm", "psax_pap", "psax_papillary", "psax_lv_mid", "psax_lv_base", "psax_mv",
                     "psax_mitral", "psax_lv_apex", "psax_apex", "psax_apical", "psax_base", "psax"), "psax_mid"),
    # parasternal long axis (and its right-ventricular inflow/outflow variants)
    **dict.fromkeys(("plax", "plax_full", "plax_zoom", "plax_rv_ao", "plax_full_rv_ao", "plax_rvif", "plax_rvot",
                     "rv_inflow", "rvot"), "plax"),
    # apical views
    **dict.fromkeys(("a4c", "a4ch", "a4ch_full", "4ch", "apical4", "a5c", "a5ch", "a2c", "a2ch", "a3c", "a3ch",
                     "aplax", "apical"), "a4c"),
    # everything else that is a view, and what is not a 2D view at all
    **dict.fromkeys(("other", "subcostal", "subcostal_heart", "sc4c", "subcostal_ivc", "ivc", "suprasternal",
                     "ssn", "m_mode", "mmode", "spectral_doppler", "doppler", "pw", "cw"), "other"),
}


def view_class(name) -> str | None:
    """The class of a view name, or None for ``unknown``, an empty value, or a name not in :data:`VIEW_NAMES`."""
    if name is None:
        return None
    s = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    return VIEW_NAMES.get(s)
