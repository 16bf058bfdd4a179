"""Target drawing of the grouped-CenterNet codec: CenterNet's Gaussian
radius and max-merged Gaussian splats (numpy)."""
import numpy as np

__all__ = ['gaussian_radius', 'draw_gaussians']


def gaussian_radius(height, width, min_overlap: float = 0.7) -> np.ndarray:
    """CenterNet's Gaussian radius for boxes of the given size.

    The smallest of CenterNet's three roots (``utils/image.py``, kept exactly
    as in its code, which trained models expect)::

        r1 = (b1 + sqrt(b1^2 - 4 a1 c1)) / 2,  a1 = 1, b1 = h + w,
             c1 = w h (1 - m) / (1 + m)
        r2 = (b2 + sqrt(b2^2 - 4 a2 c2)) / 2,  a2 = 4, b2 = 2 (h + w),
             c2 = (1 - m) w h
        r3 = (b3 + sqrt(b3^2 - 4 a3 c3)) / 2,  a3 = 4 m, b3 = -2 m (h + w),
             c3 = (m - 1) w h

    Args:
        height, width: box size(s) in output pixels (scalars or arrays).
        min_overlap (float): ``m``, the IoU a box shifted by the radius keeps.

    Returns:
        np.ndarray: float64 radius, broadcast shape of the inputs.
    """
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    m = float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def draw_gaussians(heatmaps: np.ndarray, channels: np.ndarray, xs: np.ndarray,
                   ys: np.ndarray, radii: np.ndarray) -> None:
    """Max-merge CenterNet Gaussians into ``heatmaps`` in place, all at once.

    Gaussian ``m`` lives on channel ``channels[m]``, centred on the integer
    cell ``(xs[m], ys[m])``, in a ``(2r+1) x (2r+1)`` window (``r =
    radii[m]``) with ``sigma = (2r+1)/6``: value ``exp(-(dx^2 + dy^2) /
    (2 sigma^2))`` at offset ``(dx, dy)``, 1 at the centre. Parts outside the
    map are cut off; overlaps keep the elementwise maximum. (CenterNet also
    zeroes values below ``eps * max``; inside the window they never are.)

    Args:
        heatmaps (np.ndarray): ``(C, H, W)`` float array, modified.
        channels, xs, ys, radii (np.ndarray): ``(M,)`` integers.
    """
    if len(channels) == 0:
        return
    C, H, W = heatmaps.shape
    radii = np.asarray(radii, dtype=np.int64)
    sizes = 2 * radii + 1
    counts = sizes * sizes
    # Ragged windows flattened into one array: element e belongs to
    # Gaussian owner[e] and is its local[e]-th window cell.
    owner = np.repeat(np.arange(len(radii)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    size_e = sizes[owner]
    r_e = radii[owner]
    dy = local // size_e - r_e
    dx = local % size_e - r_e
    x = np.asarray(xs, dtype=np.int64)[owner] + dx
    y = np.asarray(ys, dtype=np.int64)[owner] + dy
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    sigma = size_e[inside] / 6.0
    d2 = (dx[inside]**2 + dy[inside]**2).astype(np.float64)
    values = np.exp(-d2 / (2 * sigma * sigma)).astype(heatmaps.dtype)
    flat = (np.asarray(channels, dtype=np.int64)[owner][inside] * H +
            y[inside]) * W + x[inside]
    np.maximum.at(heatmaps.reshape(-1), flat, values)
