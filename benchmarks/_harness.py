"""What the benchmark scripts share: timing, A/B rounds, threads, peak
memory, markdown tables, config paths and the common arguments.

The ``bench_*.py`` scripts beside this file import it as ``_harness`` (Python
puts a script's folder first on ``sys.path``). Nothing here imports torch at
module level, so a script that does not need torch (and ``--help``) stays
fast.

Timing
    :func:`time_callable` runs ``warmup`` untimed calls, then ``repeats``
    timed ones (``time.perf_counter``, seconds) and returns a
    :class:`Timing` (all times, median, min, last output).
    :func:`interleaved` times several callables in rounds: every round calls
    each callable once, so a load change on a shared machine hits them all
    alike; it returns an :class:`Interleaved` with each callable's
    :class:`Timing` and per-round ratios to the first (baseline) callable.
    Compare ratios, not absolute times across runs.

Peak memory (two different measures; say which one a table shows)
    :func:`peak_tensor_mib`: peak of live tensor bytes allocated during one
    call, above what was live before. CUDA: ``torch.cuda``'s allocator
    counters (``max_memory_allocated``). CPU: the torch profiler's memory
    records (every allocation and free of the CPU allocator, in time order;
    the running sum's maximum). Counts tensor storage only: not Python
    objects, not memory that libraries (oneDNN / MKL scratch, OpenMP) take
    outside torch's allocator, not freed pages the process keeps.
    :func:`peak_rss_mib`: how far the process's resident set rose during
    one call above its size at the start (Linux: the high-water mark
    ``VmHWM`` is reset through ``/proc/self/clear_refs`` first; elsewhere
    the growth of ``ru_maxrss``). Counts everything the process touched
    (tensors, Python objects, library scratch), but memory freed earlier
    and kept by an allocator is reused without counting, so
    :func:`peak_rss_in_subprocess` runs the step in a fresh spawned process
    (after a ``prepare`` step that builds what is not to count).
    ``ru_maxrss`` alone is not used on Linux: a child inherits the high-water
    mark of the process that started it.

    (``tracemalloc`` would count only Python's own allocations, not the
    memory of torch tensors, so it is not used.)
"""
import argparse
import contextlib
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

#: The repository's root (the folder above ``benchmarks/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall times (seconds) of the timed calls of one callable.

    Attributes:
        times (list[float]): one entry per timed call, in call order.
        output: what the last call returned (``None`` if never called).
    """
    times: List[float] = field(default_factory=list)
    output: Any = None

    @property
    def median(self) -> float:
        """Median time in seconds (``nan`` if nothing was timed)."""
        return statistics.median(self.times) if self.times else math.nan

    @property
    def min(self) -> float:
        """Shortest time in seconds (``nan`` if nothing was timed)."""
        return min(self.times) if self.times else math.nan

    @property
    def median_ms(self) -> float:
        """Median time in milliseconds."""
        return self.median * 1e3


def _check_count(name, value, lowest):
    if not isinstance(value, int) or isinstance(value, bool) \
            or value < lowest:
        raise ValueError(f'{name} must be an integer >= {lowest}, '
                         f'got {value!r}')


def time_callable(fn: Callable[..., Any],
                  repeats: int = 5,
                  warmup: int = 1,
                  setup: Optional[Callable[[], Any]] = None,
                  sync: Optional[Callable[[], None]] = None,
                  clock: Callable[[], float] = time.perf_counter
                  ) -> Timing:
    """Time ``fn``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Args:
        fn: the callable; called as ``fn()`` or, with ``setup``, as
            ``fn(setup())``.
        repeats: timed calls (>= 1).
        warmup: untimed calls before them (>= 0).
        setup: optional; called before every call (warm-up included)
            outside the timed region, its result passed to ``fn`` (e.g. a
            fresh input that ``fn`` consumes).
        sync: optional; called right before starting and right before
            stopping the clock (``torch.cuda.synchronize`` on a GPU, see
            :func:`device_sync`).
        clock: the clock in seconds (tests pass a fake one).

    Returns:
        Timing: the ``repeats`` times and the last call's output.
    """
    _check_count('repeats', repeats, 1)
    _check_count('warmup', warmup, 0)
    timing = Timing()
    for i in range(warmup + repeats):
        arg = () if setup is None else (setup(), )
        if sync is not None:
            sync()
        t0 = clock()
        out = fn(*arg)
        if sync is not None:
            sync()
        t1 = clock()
        if i >= warmup:
            timing.times.append(t1 - t0)
        timing.output = out
    return timing


@dataclass
class Interleaved:
    """Result of :func:`interleaved`: one :class:`Timing` per callable, in
    the order given; the first name is the baseline of the ratios."""
    timings: Dict[str, Timing]

    @property
    def baseline(self) -> str:
        return next(iter(self.timings))

    @property
    def medians(self) -> Dict[str, float]:
        """Median seconds per callable."""
        return {k: t.median for k, t in self.timings.items()}

    @property
    def medians_ms(self) -> Dict[str, float]:
        """Median milliseconds per callable."""
        return {k: t.median_ms for k, t in self.timings.items()}

    def round_ratios(self, name: str, base: Optional[str] = None
                     ) -> List[float]:
        """Per-round ratios ``time[name] / time[base]`` (base: the first
        callable); one entry per round, both measured in that round."""
        base = self.baseline if base is None else base
        return [a / b for a, b in zip(self.timings[name].times,
                                      self.timings[base].times)]

    def median_ratio(self, name: str, base: Optional[str] = None) -> float:
        """Median of :meth:`round_ratios` (less sensitive to a slow round
        than the ratio of the medians)."""
        return statistics.median(self.round_ratios(name, base))


def interleaved(fns: Mapping[str, Callable[[], Any]],
                rounds: int = 5,
                warmup: int = 1,
                alternate: bool = False,
                sync: Optional[Callable[[], None]] = None,
                clock: Callable[[], float] = time.perf_counter
                ) -> Interleaved:
    """Time several callables (A/B/C...) in interleaved rounds.

    ``warmup`` untimed rounds, then ``rounds`` timed rounds; every round
    calls each callable once, in the mapping's order (with ``alternate``,
    odd rounds -- counted over warm-up and timed rounds together -- go in
    reverse order, so that no callable always runs first).

    Args:
        fns: name -> callable without arguments; the first is the baseline.
        rounds: timed rounds (>= 1).
        warmup: untimed rounds first (>= 0).
        alternate: reverse the order every other round.
        sync: as in :func:`time_callable`.
        clock: the clock in seconds (tests pass a fake one).
    """
    if not fns:
        raise ValueError('interleaved needs at least one callable')
    _check_count('rounds', rounds, 1)
    _check_count('warmup', warmup, 0)
    names = list(fns)
    result = Interleaved({name: Timing() for name in names})
    for r in range(warmup + rounds):
        order = names[::-1] if alternate and r % 2 else names
        for name in order:
            if sync is not None:
                sync()
            t0 = clock()
            out = fns[name]()
            if sync is not None:
                sync()
            t1 = clock()
            if r >= warmup:
                result.timings[name].times.append(t1 - t0)
            result.timings[name].output = out
    return result


def device_sync(device) -> Optional[Callable[[], None]]:
    """``torch.cuda.synchronize`` for a CUDA device, else ``None`` (CPU ops
    are synchronous)."""
    import torch
    device = torch.device(device)
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return None


# --------------------------------------------------------------- threads


@contextlib.contextmanager
def torch_threads(num_threads: Optional[int]):
    """Run the block with ``torch.set_num_threads(num_threads)`` and restore
    the previous count after it (also on error). ``None`` leaves torch's
    setting (e.g. from ``OMP_NUM_THREADS``) alone. Yields the count in
    effect (``None`` when left alone)."""
    if num_threads is None:
        yield None
        return
    _check_count('num_threads', num_threads, 1)
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- memory


def peak_tensor_mib(fn: Callable[[], Any], device='cpu') -> float:
    """Peak MiB of live tensor memory allocated during one call ``fn()``,
    above what was live before it (see the module docstring for what is
    counted).

    CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus
    ``memory_allocated`` before. CPU: the torch profiler's memory records
    (allocations positive, frees negative, in time order); their running
    sum's maximum. Each allocation is counted once (the profiler's
    per-operator ``cpu_memory_usage`` includes nested operators', so summing
    it would count an allocation once per enclosing operator). The
    profiler does not see frees of memory allocated before the call (torch
    warns "Memory block of unknown size..."): memory a call frees and
    allocates again, such as gradients set to None and recomputed, counts
    in full, as on a first step.
    """
    import torch
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    records = _memory_records(prof)
    live = peak = 0
    for _, nbytes in sorted(records, key=lambda r: r[0]):
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def _memory_records(prof):
    """(time, bytes) of every allocation (+) and free (-) the profiler saw.
    Read from the raw kineto events where this torch exposes them; else
    from each operator's self (exclusive) usage, which misses a peak inside
    one operator that frees what it allocated."""
    try:
        events = prof.profiler.kineto_results.events()
        return [(e.start_ns(), e.nbytes()) for e in events
                if e.name() == '[memory]']
    except AttributeError:
        return [(e.time_range.start, e.self_cpu_memory_usage)
                for e in prof.events() if e.self_cpu_memory_usage]


def _proc_status_mib(key):
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status``, MiB
    (``None`` where there is no such file)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _reset_rss_peak():
    """Reset this process's RSS high-water mark (``VmHWM``) to its current
    RSS (Linux >= 4.0: write ``5`` to ``/proc/self/clear_refs``); False where
    that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def rss_high_water_mib() -> float:
    """``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux,
    bytes on macOS). On Linux it is the larger of this process's own
    high-water mark and the one it inherited at ``exec`` from the process
    that started it, so a child of a large process starts high."""
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == 'darwin' else rss / 1024.0


def peak_rss_mib(fn: Callable[[], Any]):
    """Run ``fn()`` in this process; return ``(its result, peak MiB)``: how
    far the resident set rose above its size at the start of the call.

    Linux: the high-water mark is reset before the call (``clear_refs``)
    and ``VmHWM - VmRSS(start)`` is read. Elsewhere (or where ``/proc`` is
    not writable): the growth of ``ru_maxrss``, which misses what stays
    below an earlier peak. Either way memory that the process freed earlier
    but kept (allocator caches) is reused without counting: use
    :func:`peak_rss_in_subprocess` for a figure that earlier work does not
    change.
    """
    base = _proc_status_mib('VmRSS')
    if base is not None and _reset_rss_peak():
        out = fn()
        return out, _proc_status_mib('VmHWM') - base
    base = rss_high_water_mib()
    out = fn()
    return out, rss_high_water_mib() - base


def _rss_child(conn, prepare, args, kwargs, quiet):
    """Body of the process :func:`peak_rss_in_subprocess` starts."""
    try:
        if quiet:  # the parent's output stays as it was without the child
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
        out, peak = peak_rss_mib(prepare(*args, **kwargs))
        conn.send(('ok', out, peak))
    except BaseException as e:  # report, do not hang the parent
        import traceback
        conn.send(('error', f'{type(e).__name__}: {e}\n'
                   f'{traceback.format_exc()}', None))
    finally:
        conn.close()


def peak_rss_in_subprocess(prepare: Callable[..., Callable[[], Any]],
                           *args,
                           quiet: bool = True,
                           **kwargs):
    """Run ``step = prepare(*args, **kwargs); step()`` in a fresh spawned
    process and return ``(step's result, peak MiB)``: how far the child's
    resident set rose during ``step()`` above its size after ``prepare``
    (which builds models and inputs that are not to count), as
    :func:`peak_rss_mib` measures it.

    ``prepare`` must be importable by the child (a module-level function;
    in a script run as ``__main__`` that needs the usual
    ``if __name__ == '__main__'`` guard) and the result picklable. The child
    sets nothing: ``prepare`` sets torch threads, seeds etc. itself. With
    ``quiet`` the child's stdout / stderr go to ``/dev/null``.

    Raises:
        RuntimeError: the child failed (its traceback in the message).
    """
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_rss_child,
                       args=(child, prepare, args, kwargs, quiet))
    proc.start()
    child.close()
    try:
        status, out, peak = parent.recv()
    except EOFError:
        status, out, peak = 'error', 'the child exited without a result', None
    proc.join()
    if status != 'ok':
        name = getattr(prepare, '__name__', repr(prepare))
        raise RuntimeError(f'peak_rss_in_subprocess({name}) failed in the '
                           f'child (exit code {proc.exitcode}): {out}')
    return out, peak


# ---------------------------------------------------------------- tables


def table_row(cells: Sequence[Any]) -> str:
    """One markdown table line: ``| c1 | c2 |`` (``str()`` of each cell)."""
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def table_header(headers: Sequence[Any], align: Optional[str] = None) -> str:
    """The title line and the rule of a markdown table (print the rows
    with :func:`table_row` as they come, for a long run).

    Args:
        headers: the column titles.
        align: optional, one letter per column: ``l`` (``---``), ``r``
            (``---:``) or ``c`` (``:---:``); default ``---`` everywhere.
    """
    n = len(headers)
    rules = {'l': '---', 'r': '---:', 'c': ':---:'}
    if align is None:
        align = 'l' * n
    if len(align) != n or set(align) - set(rules):
        raise ValueError(f'align must be {n} letters of l/r/c (one per '
                         f'column), got {align!r}')
    return table_row(headers) + '\n|' + '|'.join(rules[a]
                                                 for a in align) + '|'


def markdown_table(headers: Sequence[Any],
                   rows: Sequence[Sequence[Any]],
                   align: Optional[str] = None) -> str:
    """A whole markdown table: :func:`table_header` then one
    :func:`table_row` per row (cells already formatted); every row must
    have one cell per column."""
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f'row {i} has {len(row)} cells, the table '
                             f'{len(headers)} columns: {list(row)!r}')
    return '\n'.join([table_header(headers, align)] +
                     [table_row(r) for r in rows])


def print_table(headers, rows, align=None):
    """Print :func:`markdown_table` (flushed, so that it shows at once)."""
    print(markdown_table(headers, rows, align), flush=True)


# ------------------------------------------------------------- arguments


def _int_at_least(lowest):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not an integer: {text!r}')
        if value < lowest:
            raise argparse.ArgumentTypeError(
                f'must be >= {lowest}, got {value}')
        return value

    parse.__name__ = f'int>={lowest}'
    return parse


def common_parser(repeats: int = 5,
                  warmup: int = 1,
                  threads: Optional[int] = None,
                  repeats_aliases: Sequence[str] = (),
                  threads_arg: bool = True) -> argparse.ArgumentParser:
    """A parent parser (``add_help=False``) with the arguments every
    benchmark takes; each script gives its own defaults.

    ``--repeats N`` (timed calls / rounds, >= 1; ``repeats_aliases`` keep a
    script's older spelling, e.g. ``--rounds``), ``--warmup N`` (untimed
    calls first, >= 0), ``--threads N`` (torch threads; default ``threads``,
    ``None``: leave torch's setting), ``--json PATH`` (also write the
    results there). ``threads_arg=False`` leaves ``--threads`` out (for a
    script that runs no torch code).
    """
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group('common benchmark arguments')
    g.add_argument('--repeats', *repeats_aliases, dest='repeats',
                   type=_int_at_least(1), default=repeats,
                   help='timed calls (rounds where callables alternate) '
                   f'per measurement; the median is reported (default '
                   f'{repeats})')
    g.add_argument('--warmup', type=_int_at_least(0), default=warmup,
                   help=f'untimed calls before timing (default {warmup})')
    if threads_arg:
        g.add_argument('--threads', type=_int_at_least(1), default=threads,
                       help='torch threads (default ' +
                       ('torch\'s own: OMP_NUM_THREADS or the cores'
                        if threads is None else str(threads)) + ')')
    g.add_argument('--json', metavar='PATH',
                   help='also write the results to this JSON file')
    return p


def script_parser(doc: str, **common) -> argparse.ArgumentParser:
    """The parser of a benchmark script: its whole docstring as the
    description (``--help`` shows the commands in it), plus
    :func:`common_parser` (``common``: its keyword arguments)."""
    return argparse.ArgumentParser(
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser(**common)])


def write_json(path: Optional[str], obj) -> None:
    """Write ``obj`` as JSON to ``path`` (nothing when ``path`` is None).
    numpy scalars / arrays become numbers / lists; tuple keys become
    strings joined by ``/``."""

    def plain(o):
        if isinstance(o, dict):
            return {('/'.join(map(str, k)) if isinstance(k, tuple) else k):
                    plain(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        if hasattr(o, 'tolist'):  # numpy / torch scalars and arrays
            return o.tolist()
        return o

    if path:
        with open(path, 'w') as f:
            json.dump(plain(obj), f, indent=1)


# --------------------------------------------------------------- configs


def config_path(path: str) -> str:
    """Absolute path of a config: ``mmpose::REL`` is mmpose's config shipped
    in its package (what mmengine resolves ``mmpose::`` to); a relative
    path that does not exist from the working directory is taken from the
    repository root."""
    if path.startswith('mmpose::'):
        import mmpose
        return osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs',
                        path[len('mmpose::'):])
    if not osp.isabs(path) and not osp.exists(path):
        return osp.join(REPO_ROOT, path)
    return osp.abspath(path)
