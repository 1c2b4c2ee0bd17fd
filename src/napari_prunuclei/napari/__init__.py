"""The napari shell: widget, reader, writer and sample data. The only Qt/napari code."""
