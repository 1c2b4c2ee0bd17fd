"""The machine a measurement ran on: its CPU's name, cores, memory, and how busy other work kept it."""

import time

import pytest

from napari_prunuclei.base.machine import available_cores, cpu_name, cpu_snapshot, memory_bytes, others_share


def test_the_machine_is_named_and_counted():
    assert cpu_name() and available_cores() >= 1 and (memory_bytes() is None or memory_bytes() > 0)


def test_a_snapshot_reads_the_machines_busy_time_and_this_processs(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 7 0 0 0 0 0\ncpu0 50 0 25 500 3 0 0 0 0 0\n")
    wall, busy, own = cpu_snapshot(stat)
    hz = __import__("os").sysconf("SC_CLK_TCK")
    assert busy == pytest.approx(150 / hz) and own == pytest.approx(time.process_time(), abs=1.0)
    assert wall == pytest.approx(time.perf_counter(), abs=1.0)
    for broken in ("", "cpu  1 2\n", "cpu  a b c d e f g h\n"):
        stat.write_text(broken)
        assert cpu_snapshot(stat) is None
    assert cpu_snapshot(tmp_path / "missing") is None


def test_others_share_is_what_other_processes_used_of_every_core():
    assert others_share((0.0, 10.0, 1.0), (10.0, 25.0, 6.0), cores=2) == pytest.approx(0.5)  # 10 of 20 core-s
    assert others_share((0.0, 10.0, 1.0), (10.0, 15.0, 6.0), cores=2) == 0.0  # only this process ran
    assert others_share((0.0, 0.0, 0.0), (1.0, 50.0, 0.0), cores=2) == 1.0  # counters jumped: at most every core
    assert others_share(None, (1.0, 1.0, 1.0)) is None and others_share((1.0, 1.0, 1.0), (1.0, 2.0, 1.0)) is None
