"""Contiguous extents in a pool of cache rows: the refill engine's KV allocator (``kv_growth``).

Pure Python (no tensors): the engine asks it where a row's keys and values go, how to grow them and,
when the pool is full, which rows to preempt; the engine moves the bytes.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Extents:
    """First-fit allocator of contiguous extents in a pool of ``size`` cache rows (``kv_growth``).

    All sizes and starts are multiples of ``chunk``; free space is a sorted list of ``[start, end)``
    intervals, merged with its neighbours on every free, so a row that grows can often extend in place.
    """

    def __init__(self, size: int, chunk: int) -> None:
        self.size = size // chunk * chunk
        self.holes: list[list[int]] = [[0, self.size]] if self.size else []
        self.free_rows = self.size

    def alloc(self, rows: int) -> int | None:
        """The start of a free extent of ``rows`` (a multiple of ``chunk``), or None if none is that large."""
        for hole in self.holes:
            if hole[1] - hole[0] >= rows:
                start = hole[0]
                hole[0] += rows
                if hole[0] == hole[1]:
                    self.holes.remove(hole)
                self.free_rows -= rows
                return start
        return None

    def extend(self, start: int, rows: int, new_rows: int) -> bool:
        """Grow ``[start, start + rows)`` to ``new_rows`` rows in place, if the rows after it are free."""
        end = start + rows
        for hole in self.holes:
            if hole[0] == end and hole[1] - end >= new_rows - rows:
                hole[0] = start + new_rows
                if hole[0] == hole[1]:
                    self.holes.remove(hole)
                self.free_rows -= new_rows - rows
                return True
        return False

    def free(self, start: int, rows: int) -> None:
        end = start + rows
        i = next((i for i, h in enumerate(self.holes) if h[0] >= end), len(self.holes))
        if i > 0 and self.holes[i - 1][1] > start:
            raise AssertionError(f"extent [{start}, {end}) is already (partly) free")
        self.holes.insert(i, [start, end])
        self.free_rows += rows
        if i + 1 < len(self.holes) and self.holes[i + 1][0] == end:  # merge with the next hole
            self.holes[i][1] = self.holes.pop(i + 1)[1]
        if i > 0 and self.holes[i - 1][1] == start:  # and with the previous one
            self.holes[i - 1][1] = self.holes.pop(i)[1]

    def cheapest_window(self, rows: int, live: dict[int, tuple[int, int, int]], keep: int) -> list[int]:
        """The rows to preempt so that an extent of ``rows`` becomes free: those of the window that costs
        least (``live``: row id -> (start, size, cost); the window may not overlap row ``keep``'s extent).

        A cheapest window starts at 0 or where a live extent ends (sliding one left to such a point adds
        no extent to it). Ties go to the lowest start. Extents are disjoint, so sorted by start they are
        sorted by end too, and a window's extents are a run of them: O(n log n) with prefix sums.
        """
        ks, kn, _ = live[keep]
        ext = sorted((a, a + n, cost, r) for r, (a, n, cost) in live.items())
        starts, ends = [e[0] for e in ext], [e[1] for e in ext]
        prefix = [0]
        for e in ext:
            prefix.append(prefix[-1] + e[2])
        best: tuple[int, int, int] | None = None
        for w in sorted({0, *ends}):
            if w + rows > self.size or (w < ks + kn and ks < w + rows):
                continue
            i, j = bisect_right(ends, w), bisect_left(starts, w + rows)  # ends after w, starts before
            if best is None or prefix[j] - prefix[i] < best[0]:
                best = (prefix[j] - prefix[i], i, j)
        if best is None:
            raise RuntimeError(f"no window of {rows} cache rows outside the growing row's extent")
        return [e[3] for e in ext[best[1] : best[2]]]
