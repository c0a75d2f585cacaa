"""CPU and memory of processes, measured from outside: a sampling thread plus the kernel's peak RSS.

CPU seconds over a time window are interpolated between samples taken every ``interval`` seconds
(user + system time of each process, summed over a group such as "system" or "broker"). Peak RSS is the
kernel's high-water mark ``VmHWM`` (exact, not sampled), read before a process is stopped.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (``VmHWM``) in MB, or None when it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def current_rss_mb() -> float | None:
    """This process's resident set size now (``VmRSS``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def own_peak_rss_mb() -> float | None:
    return peak_rss_mb(psutil.Process().pid)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def quietest_stretch(
    cpu_at: Callable[[float], float], start: float, end: float, length: float, step: float = 0.1
) -> float:
    """The least CPU seconds any ``length``-second stretch between ``start`` and ``end`` took (``cpu_at``: the
    cumulative CPU at a moment). A wait of known length somewhere in that range took at least this much."""
    if end - start <= length:
        return max(0.0, cpu_at(end) - cpu_at(start))
    stretches = int((end - start - length) / step) + 1
    moments = [start + i * step for i in range(stretches)] + [end - length]
    return max(0.0, min(cpu_at(t + length) - cpu_at(t) for t in moments))


class Sampler:
    """Samples (wall time, CPU seconds, RSS) of groups of processes until stopped."""

    def __init__(self, groups: dict[str, list[int]], interval: float = 0.1) -> None:
        self._groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self._interval = interval
        self._times: list[float] = []
        self._cpu: dict[str, list[float]] = {name: [] for name in groups}
        self._rss: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        now = time.time()
        for name, processes in self._groups.items():
            total, rss = 0.0, 0.0
            for process in processes:
                key = (name, process.pid)
                try:
                    with process.oneshot():
                        cpu = _cpu_seconds(process)
                        rss += process.memory_info().rss
                except psutil.Error:
                    cpu = self._last.get(key, 0.0)  # gone: its CPU stops growing
                self._last[key] = cpu
                total += cpu
            self._cpu[name].append(total)
            self._rss[name] = max(self._rss[name], rss / 2**20)
        self._times.append(now)

    def cpu_at(self, group: str, moment: float) -> float:
        """The group's cumulative CPU seconds at a wall-clock moment (linear between samples)."""
        times, values = self._times, self._cpu[group]
        i = bisect.bisect_left(times, moment)
        if i <= 0:
            return values[0]
        if i >= len(times):
            return values[-1]
        t0, t1 = times[i - 1], times[i]
        share = (moment - t0) / (t1 - t0) if t1 > t0 else 1.0
        return values[i - 1] + share * (values[i] - values[i - 1])

    def cpu_between(self, group: str, start: float, end: float) -> float:
        return max(0.0, self.cpu_at(group, end) - self.cpu_at(group, start))

    def sampled_peak_rss_mb(self, group: str) -> float:
        """The largest summed RSS seen in the group's samples (``VmHWM`` per process is exact; this is not)."""
        return round(self._rss[group], 1)
