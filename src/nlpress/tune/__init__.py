"""``nlpress tune``: choose the compression by experiment (see :mod:`nlpress.tune.api`).

Importing any ``nlpress.tune.*`` module makes Python set the attribute ``nlpress.tune`` to this
package, replacing the ``nlpress.tune()`` function; so the package itself is callable and does
what the function does, and ``nlpress.tune(...)`` works whatever was imported before.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from nlpress.tune.api import tune

        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
