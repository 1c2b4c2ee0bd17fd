"""The machine a measurement ran on: its CPU's name, cores, memory, and how busy other work kept it."""

import os
import time

import pytest

from napari_prunuclei.base.machine import available_cores, cpu_name, cpu_snapshot, memory_bytes, others_share


def test_the_machine_is_named_and_counted():
    assert cpu_name() and available_cores() >= 1 and (memory_bytes() is None or memory_bytes() > 0)


def test_a_snapshot_reads_the_busy_time_of_this_processs_cpus_alone(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  999 0 999 1000 7 0 0 0 0 0\ncpu0 50 0 25 500 3 0 0 0 0 0\n"
                    "cpu1 70 0 5 500 3 0 0 0 0 0\ncpu2 1000 0 0 0 0 0 0 0 0 0\nintr 5 6\n")
    wall, busy, own, n = cpu_snapshot(stat, cpus={0, 1})
    hz = os.sysconf("SC_CLK_TCK")
    assert busy == pytest.approx(150 / hz) and n == 2  # cpu2 is not this process's, the total line not counted
    assert own == pytest.approx(time.process_time(), abs=1.0) and wall == pytest.approx(time.perf_counter(), abs=1.0)
    for broken in ("", "cpu0 1 2\n", "cpu0 a b c d e f g h\n", "cpu5 1 2 3 4 5 6 7 8\n"):
        stat.write_text(broken)
        assert cpu_snapshot(stat, cpus={0, 1}) is None
    assert cpu_snapshot(tmp_path / "missing") is None
    here = cpu_snapshot()
    assert here is None or here[3] == available_cores()


def test_others_share_is_what_other_processes_used_of_this_processs_cpus():
    assert others_share((0.0, 10.0, 1.0, 2), (10.0, 25.0, 6.0, 2)) == pytest.approx(0.5)  # 10 of 20 CPU-s
    assert others_share((0.0, 10.0, 1.0, 2), (10.0, 15.0, 6.0, 2)) == 0.0  # only this process ran
    assert others_share((0.0, 0.0, 0.0, 2), (1.0, 50.0, 0.0, 2)) == 1.0  # counters jumped: at most all of them
    assert others_share(None, (1.0, 1.0, 1.0, 1)) is None
    assert others_share((1.0, 1.0, 1.0, 1), (1.0, 2.0, 1.0, 1)) is None
