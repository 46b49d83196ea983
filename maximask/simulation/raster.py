"""Pixel-grid operations the recipes share: binary morphology, smoothing, FFT convolution,
point splatting, random fields and polygon filling, in NumPy only (no SciPy in the core).

All images are 2-D arrays (h, w); masks are bool arrays of the same shape.
"""
import numpy as np


def disk_half_widths(diameter):
    """Half-widths of the rows of a digital disk of `diameter` pixels: {dy: half_width}.

    The disk holds the offsets (dy, dx) with dx^2 + dy^2 <= (diameter / 2)^2: diameter 3 is
    the 3x3 square, 6 a radius-3 disk, 22 a radius-11 disk.
    """
    r = diameter / 2.0
    return {dy: int(np.floor(np.sqrt(r * r - dy * dy))) for dy in range(-int(r), int(r) + 1)}


def square_half_widths(side):
    """Rows of a `side` x `side` square structuring element (odd side), as for disks."""
    half = side // 2
    return {dy: half for dy in range(-half, half + 1)}


def _dilate_rows(mask, half_width):
    """Dilate each row of a bool mask by a centred segment of 2 * half_width + 1 pixels."""
    if half_width == 0:
        return mask
    h, w = mask.shape
    counts = np.zeros((h, w + 2 * half_width + 1), dtype=np.int32)
    np.cumsum(np.pad(mask, ((0, 0), (half_width, half_width))), axis=1, out=counts[:, 1:])
    return counts[:, 2 * half_width + 1:] > counts[:, :w]


def dilate(mask, rows):
    """Binary dilation of `mask` by the symmetric element given as {dy: half_width}."""
    mask = np.asarray(mask, dtype=bool)
    h = mask.shape[0]
    out = np.zeros_like(mask)
    by_width = {}
    for dy, half_width in rows.items():
        if half_width not in by_width:
            by_width[half_width] = _dilate_rows(mask, half_width)
        if abs(dy) < h:  # out[y] |= row-dilated mask[y - dy]
            out[max(dy, 0):h + min(dy, 0)] |= by_width[half_width][max(-dy, 0):h - max(dy, 0)]
    return out


def erode(mask, rows):
    """Binary erosion by a symmetric element; pixels outside the image count as set."""
    return ~dilate(~np.asarray(mask, dtype=bool), rows)


def disk_mean(image, diameter):
    """Mean of `image` over a disk (top-hat) of `diameter` pixels about each pixel.

    Near the edges the mean is over the part of the disk inside the image.
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    rows = disk_half_widths(diameter)
    r = max(rows)
    sums, weights = np.zeros_like(image), np.zeros_like(image)
    for plane, total in ((image, sums), (np.ones_like(image), weights)):
        cumulative = np.zeros((h + 2 * r, w + 2 * r + 1))
        np.cumsum(np.pad(plane, r), axis=1, out=cumulative[:, 1:])
        for dy, half_width in rows.items():  # the row segment of the disk, dy rows away
            band = cumulative[r + dy:r + dy + h]
            total += band[:, r + half_width + 1:r + half_width + 1 + w] - band[:, r - half_width:r - half_width + w]
    return sums / weights


def fft_convolve(image, kernel):
    """Linear ('same'-size, zero-padded) convolution of `image` with a centred odd `kernel`."""
    h, w = image.shape
    kh, kw = kernel.shape
    fh, fw = _fast_size(h + kh - 1), _fast_size(w + kw - 1)
    spectrum = np.fft.rfft2(image, (fh, fw)) * np.fft.rfft2(kernel, (fh, fw))
    full = np.fft.irfft2(spectrum, (fh, fw))
    return full[kh // 2:kh // 2 + h, kw // 2:kw // 2 + w]


def _fast_size(n):
    """The smallest 2^a 3^b 5^c >= n (sizes numpy's FFT handles quickly)."""
    best = 1 << int(np.ceil(np.log2(max(n, 1))))
    for f5 in (1, 5, 25):
        for f3 in (1, 3, 9, 27):
            base = f5 * f3
            if base >= n:
                best = min(best, base)
                continue
            p = base << int(np.ceil(np.log2(n / base)))
            best = min(best, p)
    return best


def splat(shape, y, x, values):
    """Deposit `values` at sub-pixel positions (y, x) by bilinear weights; returns (h, w).

    Pixel (i, j) covers [i - 0.5, i + 0.5) x [j - 0.5, j + 0.5); deposits falling off the
    image are dropped.
    """
    h, w = shape
    y, x, values = (np.asarray(a, dtype=np.float64).ravel() for a in (y, x, values))
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    out = np.zeros(h * w)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            iy, ix = y0 + dy, x0 + dx
            inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            np.add.at(out, iy[inside] * w + ix[inside], (values * wy * wx)[inside])
    return out.reshape(shape)


def moffat_kernel(fwhm, beta=3.0, radius=None):
    """A normalised circular Moffat PSF stamp (odd side), FWHM in pixels."""
    if radius is None:
        radius = int(np.ceil(3 * fwhm)) + 2
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    kernel = (1 + (xx * xx + yy * yy) / alpha ** 2) ** -beta
    return kernel / kernel.sum()


def gaussian_random_field(shape, rng, spectrum):
    """A zero-mean, unit-variance Gaussian random field with power ``spectrum(k)``.

    k is the spatial frequency in cycles per pixel (the k = 0 term is removed). The field is
    periodic over a grid a quarter larger than the image, of which the image's part is
    returned, so that opposite edges are not forced to match.
    """
    h, w = shape
    gh, gw = _fast_size(h + h // 4), _fast_size(w + w // 4)
    ky = np.fft.fftfreq(gh)[:, None]
    kx = np.fft.rfftfreq(gw)[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    amplitude = np.sqrt(spectrum(k))
    amplitude[0, 0] = 0.0
    noise = rng.normal(size=(gh, gw // 2 + 1)) + 1j * rng.normal(size=(gh, gw // 2 + 1))
    field = np.fft.irfft2(noise * amplitude, (gh, gw))[:h, :w]
    return (field - field.mean()) / field.std()


def convex_polygon(rng, box=20, vertices=(5, 6)):
    """A filled random convex polygon with 5 or 6 edges inside a `box` x `box` square (bool).

    The vertices are points of an ellipse inscribed in the box at sorted random angles, so
    the polygon is convex; it is rasterised by pixel centres against its edges' half-planes.
    """
    n = int(rng.choice(vertices))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    while np.max(np.diff(np.r_[angles, angles[0] + 2 * np.pi])) > np.pi:  # keep the centre inside
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    ry, rx = rng.uniform(0.3, 0.5, 2) * box
    cy = cx = (box - 1) / 2.0
    py, px = cy + ry * np.sin(angles), cx + rx * np.cos(angles)
    yy, xx = np.mgrid[0:box, 0:box]
    inside = np.ones((box, box), dtype=bool)
    for i in range(n):  # counter-clockwise vertices: the interior is left of every edge
        ay, ax, by, bx = py[i], px[i], py[(i + 1) % n], px[(i + 1) % n]
        inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
    return inside


def annular_pupil(diameter):
    """A normalised annular pupil image (30% central obstruction) of `diameter` px."""
    r = diameter / 2.0
    n = int(np.ceil(r)) + 1
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    rr = np.hypot(yy, xx)
    pupil = ((rr <= r) & (rr >= 0.3 * r)).astype(np.float64)
    if pupil.sum() == 0:
        pupil[n, n] = 1.0
    return pupil / pupil.sum()
