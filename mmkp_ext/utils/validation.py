"""Argument validators shared by mmkp_ext's components: each returns the
value in a plain Python type or raises naming the argument, what it must be
and what it got (``raise``-based, so configs fail at build time with a clear
message instead of deep inside a training run)."""
import math
from numbers import Integral, Real
from typing import Optional, Sequence, Tuple

__all__ = ['check_int', 'check_real', 'check_int_seq', 'check_size']


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(name: str, value, minimum: Optional[int] = 1) -> int:
    """``value`` as an ``int`` >= ``minimum`` (no bound with ``None``);
    ``bool`` is refused.

    Raises:
        ValueError: ``"<name> must be an int >= <minimum>, got <value>"``.
    """
    if not _is_int(value) or (minimum is not None and value < minimum):
        bound = '' if minimum is None else f' >= {minimum}'
        raise ValueError(f'{name} must be an int{bound}, got {value!r}')
    return int(value)


def check_real(name: str,
               value,
               low: Optional[float] = None,
               high: Optional[float] = None,
               low_open: bool = False,
               high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval given by ``low`` /
    ``high`` (``None``: unbounded; ``*_open``: bound excluded).

    Raises:
        ValueError: ``"<name> must be a finite number in <interval>, got
            <value>"``.
    """
    ok = (isinstance(value, Real) and not isinstance(value, bool)
          and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = '-inf' if low is None else f'{low}'
        hi = 'inf' if high is None else f'{high}'
        interval = (('(' if low_open or low is None else '[') + f'{lo}, {hi}'
                    + (')' if high_open or high is None else ']'))
        raise ValueError(f'{name} must be a finite number in {interval}, '
                         f'got {value!r}')
    return float(value)


def check_int_seq(name: str,
                  value,
                  length: Optional[int] = None,
                  minimum: Optional[int] = 1) -> Tuple[int, ...]:
    """``value`` as a tuple of ints >= ``minimum`` (of ``length`` entries
    when given).

    Raises:
        TypeError: not a sequence (a string is not one here).
        ValueError: wrong length or an entry that is not such an int.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f'{name} must be a sequence of ints, got '
                        f'{type(value).__name__}')
    if length is not None and len(value) != length:
        raise ValueError(f'{name} must have {length} entries, got '
                         f'{len(value)}: {list(value)}')
    for v in value:
        if not _is_int(v) or (minimum is not None and v < minimum):
            bound = '' if minimum is None else f' >= {minimum}'
            raise ValueError(f'{name} entries must be ints{bound}, got '
                             f'{list(value)}')
    return tuple(int(v) for v in value)


def check_size(name: str, value) -> Tuple[int, int]:
    """``value`` as a ``(width, height)`` pair of ints >= 1 (mmpose's
    ``input_size`` / ``heatmap_size`` order)."""
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
            or len(value) != 2 or not all(_is_int(v) and v >= 1
                                          for v in value)):
        raise ValueError(f'{name} must be (width, height) positive ints, got '
                         f'{value!r}')
    return int(value[0]), int(value[1])
