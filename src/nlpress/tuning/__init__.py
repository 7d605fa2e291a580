"""``nlpress tune``: choose the compression by experiment (see :mod:`nlpress.tuning.api`).

The package is ``tuning``, not ``tune``: a subpackage named ``tune`` would replace the function
``nlpress.tune`` as soon as one of its modules is imported."""
