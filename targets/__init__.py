"""Target profiles shipped with edge-iqa, one TOML file each (read by :mod:`edge_iqa.export.targets`)."""
