"""The ground floor: errors, atomic writes, notes, progress, optional extras, TOML tables, provenance,
the machine, model inputs, config checks, setting declarations and the device runner.

Nothing here imports another floor of the package: every other layer may import it.
"""
