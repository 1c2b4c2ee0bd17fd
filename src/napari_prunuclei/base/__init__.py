"""Floor 0: names, the progress protocol, the machine, the heap (no torch, no napari)."""
