"""View classification (issue 16): which clips are parasternal short-axis views at the aortic-valve level.

``classes`` (the five classes, and the one map from view names onto them), ``headers`` (what the DICOM header
decides: M-mode, spectral Doppler, colour flow, split screens), ``model`` (the timm network and a loaded model),
``data``/``train`` (training from a dataset table's ``view`` column), ``evaluate`` (clip accuracy with its
interval, confusion matrix), ``predict`` (files and tables), ``screening`` (what predict takes and why not),
``cli`` (``echoavc views train | evaluate | predict``). docs/views.md.
"""
