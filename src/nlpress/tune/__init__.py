"""``nlpress tune``: choose the compression by experiment (see :mod:`nlpress.tune.api`)."""
