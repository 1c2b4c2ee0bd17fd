"""Floor 9: napari and Qt only: the widget, the layer state, charts, reader, writer, sample data."""
