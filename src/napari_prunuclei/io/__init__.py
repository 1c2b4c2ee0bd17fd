"""Floor 1: files in and out: images (hostile-file guards, colour spaces), labels, the data-set layout, atomic
writes, output folders, exports."""
