"""Pure tools of redox-pants: format writers/readers, manifests, VM clients.

Nothing in this package imports Pants. Every module runs on Python 3.9+ and is usable as a
library or as a command (`python -m redox_tools.<module> ...`); the Pants rules in
`redox/` only orchestrate these as processes.
"""

import os as _os

# numpy's OpenBLAS starts a spinning thread per core at import; no tool here does linear
# algebra, and on a 2-core machine those threads took ~3% of the RedoxFS writer's CPU.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
