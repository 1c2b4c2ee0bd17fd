"""Floor 2: nuclei from maps and their comparison: the marker-controlled watershed, metrics, agreement, synthetic
tiles."""
