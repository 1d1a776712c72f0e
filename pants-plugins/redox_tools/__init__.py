"""Pure tools of redox-pants: format writers/readers, manifests, VM clients.

Nothing in this package imports Pants. Every module runs on Python 3.9+ and is usable as a
library or as a command (`python -m redox_tools.<module> ...`); the Pants rules in
`redox/` only orchestrate these as processes.
"""

import os as _os
import sys as _sys

# numpy's OpenBLAS starts a spinning thread per core at import; no tool here does linear
# algebra, and on a 2-core machine those threads took ~3% of the RedoxFS writer's CPU.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# `python -m redox_tools.<module>` (argv[0] is "-m" while the module is being found): a missing
# requirement of the tools (the system python has no numpy) is one line, not a traceback.
if _sys.argv[:1] == ["-m"]:
    from redox_tools.missing_requirement import install as _install

    _install()
