"""Image assembly: a root manifest from staged package trees (`assemble`, `driver_filter`), the
GPT disk image around RedoxFS and the FAT ESP (`diskimage`), and looking inside images
(`inspect`). The formats themselves live in their own modules (redoxfs/, fat, gpt, initfs, qcow2/)."""
