

def test_open_lock_creates_a_regular_file_and_refuses_links_folders_and_fifos(tmp_path):
    import os

    import pytest

    from napari_prunuclei.io.atomic import open_lock

    (tmp_path / "a.lock").write_text("kept")
    with open_lock(tmp_path / "a.lock"):
        pass
    assert (tmp_path / "a.lock").read_text() == "kept"  # never truncated
    (tmp_path / "link.lock").symlink_to(tmp_path / "a.lock")
    (tmp_path / "dir.lock").mkdir()
    os.mkfifo(tmp_path / "fifo.lock")
    for name in ("link.lock", "dir.lock", "fifo.lock"):
        with pytest.raises(OSError):
            open_lock(tmp_path / name)
