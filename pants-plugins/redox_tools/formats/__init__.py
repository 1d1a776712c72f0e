"""The on-disk formats other than RedoxFS (which has its own package, `redox_tools.redoxfs`):
initfs (`initfs`), the ESP's FAT (`fat`), the GPT (`gpt`), ELF64 summaries (`elf`) and the
seahash RedoxFS and initfs checksum with (`seahash`). Each is a library and, where it has a
`main`, a command: `python -m redox_tools.formats.<module>`.
"""
