"""Structure-aware mutators for the image readers (fuzz targets in `*_fuzz_test.py`, benches in
`redox_tools/bench/*_fuzz.py`). Mutations keep checksums valid so they reach the parsers."""
