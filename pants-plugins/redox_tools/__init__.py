"""Pure tools of redox-pants: format writers/readers, manifests, VM clients.

Nothing in this package imports Pants. Every module runs on Python 3.9+ and is usable as a
library or as a command (`python -m redox_tools.<module> ...`); the Pants rules in
`redox/` only orchestrate these as processes.
"""
