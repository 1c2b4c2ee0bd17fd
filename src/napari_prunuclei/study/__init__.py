"""Floor 7: comparing models: evaluation, the CR sweep, timing, reports, shipping models, and the Qt-free
comparison session on one image (what the widget and the headless job run)."""
