"""One map from view names onto the five classes."""

import pytest

from echoavc.dataset.table import KNOWN_VIEWS, normalise_view
from echoavc.synth.views import VIEW_DRAWERS
from echoavc.views.classes import VIEW_CLASSES, view_class


def test_every_generator_view_is_its_own_class():
    for v in VIEW_DRAWERS:
        assert view_class(v) == v
    assert set(VIEW_DRAWERS) | {"other"} == set(VIEW_CLASSES)


def test_every_view_the_table_knows_maps_and_unknown_stays_unknown():
    for v in KNOWN_VIEWS:
        assert (view_class(v) is None) == (v == "unknown"), v
    # spellings the table normalises reach the same class, before or after normalising
    for raw in ("PSAX-AV", "psax av", "4ch", "apical4", "psax-mid", "SAX_AV"):
        assert view_class(raw) == view_class(normalise_view(raw)) is not None, raw


@pytest.mark.parametrize("name,cls", [
    ("psax_av", "psax_av"), ("psax-tv", "psax_av"), ("psax-lv-base", "psax_mid"), ("psax-lv-mid", "psax_mid"),
    ("psax-lv-apex", "psax_mid"), ("plax-full-rv-ao", "plax"), ("a4ch-full", "a4c"), ("a2c", "a4c"),
    ("a5c", "a4c"), ("subcostal", "other"), ("subcostal-heart", "other"), ("suprasternal", "other"),
    ("m-mode", "other"), ("", None), ("unknown", None), ("nan", None), (None, None), ("ultrasound", None),
])
def test_names_of_other_sources(name, cls):
    # the real development frames' names (shared/real-dev) and what users write
    assert view_class(name) == cls
