

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


def test_a_failed_rename_names_the_file_not_the_temporary(tmp_path, monkeypatch):
    """Hostile pass, session 37: an immutable sweep.json gave "[Errno 1] Operation not permitted:
    '.../.prunuclei-tmp.sweep.json.431mjbje.json' -> 'sweep.json'"."""
    import errno
    import os

    import pytest

    from napari_prunuclei.io.atomic import atomic_write

    target = tmp_path / "sweep.json"

    def refuse(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError) as e:
        atomic_write(target, lambda t: t.write_text("[]"))
    assert str(e.value) == f"[Errno 1] cannot write {target}: Operation not permitted"
    assert list(tmp_path.iterdir()) == []
