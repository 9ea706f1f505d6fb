"""The refill engine's KV allocator: allocation, growth, merging and the preemption window, against
brute force (an occupancy map, every chunk-aligned window)."""

from __future__ import annotations

import pytest
import torch

from rlpipe.eval.extents import Extents


def test_extents_allocate_free_and_merge_like_an_occupancy_map() -> None:
    """Random allocations, extensions and frees against a plain map of which rows are taken."""
    rng = torch.Generator().manual_seed(5)
    pool = Extents(1000, 8)  # 992 rows
    taken = [False] * pool.size
    live: dict[int, int] = {}
    for _ in range(2000):
        op = int(torch.randint(3, (1,), generator=rng))
        rows = 8 * int(torch.randint(1, 12, (1,), generator=rng))
        if op == 0 or not live:
            start = pool.alloc(rows)
            first_fit = next(
                (a for a in range(0, pool.size - rows + 1, 8) if not any(taken[a : a + rows])), None
            )
            assert start == first_fit
            if start is not None:
                taken[start : start + rows] = [True] * rows
                live[start] = rows
        else:
            start = sorted(live)[int(torch.randint(len(live), (1,), generator=rng))]
            old = live[start]
            if op == 1:
                fits = start + old + rows <= pool.size and not any(taken[start + old : start + old + rows])
                assert pool.extend(start, old, old + rows) == fits
                if fits:
                    taken[start + old : start + old + rows] = [True] * rows
                    live[start] = old + rows
            else:
                pool.free(start, old)
                taken[start : start + old] = [False] * old
                del live[start]
        assert pool.free_rows == taken.count(False)
        assert all(b - a > 0 for a, b in pool.holes)  # no empty holes
        assert all(pool.holes[i][1] < pool.holes[i + 1][0] for i in range(len(pool.holes) - 1))  # merged
    with pytest.raises(AssertionError, match="already"):
        start = next(iter(live))
        pool.free(start, live[start])
        pool.free(start, live[start])


def test_cheapest_window_preempts_the_least_work_outside_the_growing_row() -> None:
    pool = Extents(64, 8)
    live = {0: (0, 16, 50), 1: (16, 8, 1), 2: (24, 8, 2), 3: (40, 16, 100), 4: (56, 8, 3)}
    assert [pool.alloc(n) for n in (16, 8, 8, 8, 16, 8)] == [0, 16, 24, 32, 40, 56]
    pool.free(32, 8)  # free: [32, 40)
    # 16 rows outside row 0's extent: [24, 40) holds row 2 and the free rows (cost 2).
    assert pool.cheapest_window(16, live, keep=0) == [2]
    # Growing row 2 itself: the cheapest window elsewhere is row 0's (50), not one with row 3 (100).
    assert pool.cheapest_window(16, live, keep=2) == [0]
    # 24 rows: rows 1 and 2 with the free rows (cost 3).
    assert sorted(pool.cheapest_window(24, live, keep=0)) == [1, 2]
    with pytest.raises(RuntimeError, match="no window"):
        pool.cheapest_window(64, live, keep=1)


def test_cheapest_window_costs_no_more_than_any_window() -> None:
    """Random layouts: the window found costs what the cheapest of all chunk-aligned windows costs."""
    rng = torch.Generator().manual_seed(11)
    for _ in range(200):
        pool = Extents(256, 4)
        live: dict[int, tuple[int, int, int]] = {}
        for r in range(int(torch.randint(2, 30, (1,), generator=rng))):
            rows = 4 * int(torch.randint(1, 6, (1,), generator=rng))
            start = pool.alloc(rows)
            if start is not None:
                live[r] = (start, rows, int(torch.randint(0, 50, (1,), generator=rng)))
        for r in [r for r in live if torch.rand(1, generator=rng) < 0.3]:  # holes between extents
            pool.free(*live.pop(r)[:2])
        if not live:
            continue
        keep = next(iter(live))
        ks, kn, _ = live[keep]
        need = 4 * int(torch.randint(1, 20, (1,), generator=rng))

        windows = [w for w in range(0, pool.size - need + 1, 4) if not (w < ks + kn and ks < w + need)]
        costs = [sum(c for a, n, c in live.values() if a < w + need and w < a + n) for w in windows]
        if not windows:
            with pytest.raises(RuntimeError):
                pool.cheapest_window(need, live, keep)
            continue
        victims = pool.cheapest_window(need, live, keep)
        assert keep not in victims
        assert sum(live[v][2] for v in victims) == min(costs)
        for v in victims:  # freeing the victims leaves a free run of ``need`` rows
            pool.free(*live[v][:2])
        assert pool.alloc(need) is not None
