"""A1: KNN distances against torch.cdist, one loop against no loop, and the wall time of grading A1."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.common import Row, median_time, peak_memory_mb, slowest_checks

ROOT = Path(__file__).resolve().parent.parent


def run(repeat: int = 5) -> list[Row]:
    from a1_knn import knn
    from grader.judge.runner import grade

    torch.manual_seed(0)
    rows: list[Row] = []
    # the course's sizes: 500 x (3, 32, 32) training and 250 test images
    x_train, x_test = torch.randn(500, 3, 32, 32), torch.randn(250, 3, 32, 32)
    a, b = x_train.reshape(500, -1), x_test.reshape(250, -1)
    no_loop = median_time(lambda: knn.compute_distances_no_loops(x_train, x_test), repeat)
    cdist = median_time(lambda: torch.cdist(a, b) ** 2, repeat)
    rows.append(Row("a1", "no-loop distances 500x250 (time)", no_loop, "torch.cdist(...)**2", cdist, "s"))
    one_loop = median_time(lambda: knn.compute_distances_one_loop(x_train, x_test), max(1, repeat // 2))
    rows.append(
        Row(
            "a1",
            "one-loop distances 500x250 (time)",
            one_loop,
            "no-loop distances",
            no_loop,
            "s",
            note=f"no-loop is {one_loop / no_loop:.0f}x faster",
        )
    )
    shapes = [[2000, 3072], [1000, 3072]]
    mine = peak_memory_mb("a1_knn.knn", "compute_distances_no_loops", shapes, str(ROOT))
    ref = peak_memory_mb("torch", "cdist", shapes, str(ROOT))
    rows.append(
        Row(
            "a1",
            "no-loop distances 2000x1000 (peak memory)",
            mine,
            "torch.cdist",
            ref,
            "MB",
            note="a (num_train, num_test, D) intermediate would need 23,000 MB",
        )
    )
    t0 = time.perf_counter()
    result = grade(ROOT, "a1_knn", device="cpu", hidden=True)
    wall = time.perf_counter() - t0
    sb = result.sandbox
    overhead = sb["start_seconds"] + sb["io_seconds"]
    rows.append(
        Row(
            "a1",
            "grading A1, public + hidden (wall)",
            wall,
            "",
            None,
            "s",
            note=f"{len(result.checks)} checks, score {result.score:g}",
        )
    )
    rows.append(
        Row(
            "a1",
            "  share: starting + feeding the sandbox",
            overhead,
            "grading A1 (wall)",
            wall,
            "s",
            note=f"{sb['worker_starts']} worker start(s), {sb['requests']} requests",
        )
    )
    rows += slowest_checks("a1", result, wall)
    return rows
