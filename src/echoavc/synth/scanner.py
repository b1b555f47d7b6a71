"""Image formation: a fast convolution-based ultrasound simulator.

Follows the classic recipe of convolution simulators (Bamber and Dickinson
1980; Gao et al. 2009, IEEE TUFFC): random scatterers on a polar (beam) grid
whose amplitudes follow an echogenicity map, convolution with a point-spread
function (axial: Gaussian-windowed RF pulse at the probe frequency; lateral:
Gaussian beam whose width grows away from the focus), envelope detection
(analytic signal), depth attenuation and time-gain compensation, electronic
noise (thermal noise at the receiver input, which TGC amplifies with depth, and
a noise floor after the TGC amplifier, which keeps the whole sector faintly
grey as on real scanners), log compression to a dynamic range, gain, a grey map, and scan conversion to the
sector. Strong attenuators (calcium) shadow everything behind them along the
beam because attenuation is integrated along each line.

Pure numpy in, numpy out. Randomness comes only from the ``np.random.Generator``
passed in. Units: millimetres, MHz, microseconds, dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

#: Speed of sound in soft tissue, mm per microsecond.
SOUND_SPEED_MM_US = 1.54
#: Nominal soft-tissue attenuation, dB per mm per MHz (one way).
TISSUE_ATTEN_DB_MM_MHZ = 0.05


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings for one clip."""

    depth_mm: float = 160.0  #: deepest imaged range
    sector_deg: float = 80.0  #: full opening angle of the sector
    freq_mhz: float = 2.5  #: centre frequency of the pulse
    pulse_sigma_cycles: float = 1.2  #: Gaussian window of the pulse, in carrier cycles (std)
    focus_mm: float = 80.0  #: transmit focus depth
    aperture_mm: float = 16.0  #: active aperture (sets the beam width at the focus)
    beam_widening: float = 1.0  #: extra growth of the beam away from the focus (1 = Gaussian beam)
    n_lines: int = 200  #: scan lines across the sector
    gain_db: float = 0.0  #: overall gain
    dynamic_range_db: float = 55.0  #: displayed dynamic range
    tissue_level_db: float = 20.0  #: where unit echogenicity sits above black before gain
    grey_gamma: float = 1.3  #: grey map exponent (>1 darkens low levels)
    noise_db: float = -48.0  #: electronic noise relative to unit-echogenicity signal at the skin
    #: receiver noise floor after the TGC amplifier (digitiser, beamformer), relative to unit
    #: echogenicity with attenuation compensated: constant over depth, it keeps the whole sector
    #: at a faint, flickering grey where there is no echo
    floor_db: float = -30.0
    tgc_error_db: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)  #: TGC mismatch at knots spread over depth
    axial_decimation: int = 4  #: envelope kept every this many RF samples (lambda/2)
    frame_correlation: float = 0.5  #: scatterer correlation between consecutive frames of a clip


@dataclass
class PolarGrid:
    """Sample positions of the RF lines."""

    r_mm: np.ndarray  #: (n_r,) range of each RF sample
    th_rad: np.ndarray  #: (n_lines,) steering angle of each line (0 = straight down)

    @property
    def dr(self) -> float:
        return float(self.r_mm[1] - self.r_mm[0])

    @property
    def dth(self) -> float:
        return float(self.th_rad[1] - self.th_rad[0])


def wavelength_mm(freq_mhz: float) -> float:
    return SOUND_SPEED_MM_US / freq_mhz


def envelope_ranges(grid: PolarGrid, acq: Acquisition) -> np.ndarray:
    """Range of each sample of the (decimated) envelope that :func:`beamform` returns."""
    d = acq.axial_decimation
    return grid.r_mm[d // 2::d]


def polar_grid(acq: Acquisition) -> PolarGrid:
    """RF grid: lambda/8 axial sampling (4 samples per period of the echo carrier)."""
    dr = wavelength_mm(acq.freq_mhz) / 8.0
    n_r = int(math.ceil(acq.depth_mm / dr))
    n_r += (-n_r) % acq.axial_decimation
    half = math.radians(acq.sector_deg) / 2.0
    return PolarGrid(
        r_mm=(np.arange(n_r, dtype=np.float32) + 0.5) * dr,
        th_rad=np.linspace(-half, half, acq.n_lines, dtype=np.float32),
    )


def sample_polar(image: np.ndarray, grid: PolarGrid, x0_mm: float, z0_mm: float, res_mm: float,
                 nearest: bool = False, r_mm: np.ndarray | None = None) -> np.ndarray:
    """Sample a Cartesian scene map (rows = depth z, cols = lateral x) on the polar grid.

    Returns (n_r, n_lines). Outside the map: 0.
    """
    r = grid.r_mm if r_mm is None else r_mm
    s, c = np.sin(grid.th_rad), np.cos(grid.th_rad)
    map_x = ((r[:, None] * s[None, :]) - x0_mm) / res_mm - 0.5
    map_y = ((r[:, None] * c[None, :]) - z0_mm) / res_mm - 0.5
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                     cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def axial_pulse_spectrum(n: int, dr_mm: float, acq: Acquisition) -> np.ndarray:
    """FFT (length n, along range) of the analytic RF pulse.

    The RF pulse in range units is ``exp(-r^2 / 2 s^2) cos(4 pi r / lambda)``
    (round trip: one carrier period spans lambda/2 of range). Multiplying the
    spectrum by 2 on positive and 0 on negative frequencies gives the analytic
    signal, whose magnitude is the envelope (Hilbert-transform detection).
    """
    lam = wavelength_mm(acq.freq_mhz)
    s = acq.pulse_sigma_cycles * lam / 2.0  # window std in range units
    k = np.arange(n)
    k = np.where(k <= n // 2, k, k - n).astype(np.float64)
    r = k * dr_mm
    pulse = np.exp(-0.5 * (r / s) ** 2) * np.cos(4.0 * np.pi * r / lam)
    pulse /= np.sqrt(np.sum(pulse**2))  # unit energy: RF variance = echogenicity
    spec = np.fft.fft(pulse)
    freqs = np.fft.fftfreq(n)
    spec = spec * np.where(freqs > 0, 2.0, np.where(freqs == 0, 1.0, 0.0))
    return spec.astype(np.complex64)


def beam_fwhm_mm(r_mm: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Lateral beam width (FWHM) against range: narrowest at the focus, growing away from it."""
    lam = wavelength_mm(acq.freq_mhz)
    w0 = 1.02 * lam * acq.focus_mm / acq.aperture_mm  # diffraction-limited width at the focus
    zr = np.pi * (w0 / 2.0) ** 2 / lam * 2.0  # depth of field of the Gaussian beam
    return w0 * np.sqrt(1.0 + (acq.beam_widening * (r_mm - acq.focus_mm) / zr) ** 2)


def lateral_blur(field: np.ndarray, grid: PolarGrid, acq: Acquisition, bands: int = 8) -> np.ndarray:
    """Convolve each range with the lateral beam profile (Gaussian, width from ``beam_fwhm_mm``).

    The width varies with range, so the array is blurred once per band of
    ranges and neighbouring bands are blended linearly.
    """
    n_r = field.shape[0]
    edges = np.linspace(0, n_r, bands + 1).astype(int)
    centres = (edges[:-1] + edges[1:]) / 2.0
    out = np.zeros_like(field)
    idx = np.arange(n_r, dtype=np.float64)
    dth = grid.dth
    for b, c in enumerate(centres):
        r = max(float(grid.r_mm[int(c)]), 5.0)
        sigma_lines = float(beam_fwhm_mm(np.array([r]), acq)[0]) / 2.355 / (r * dth)
        # weight: triangle around the band centre (flat beyond the outer centres)
        if b == 0:
            w = np.clip(1.0 - (idx - c) / (centres[1] - c), 0, 1) if bands > 1 else np.ones(n_r)
            w[idx < c] = 1.0
        elif b == bands - 1:
            w = np.clip(1.0 - (c - idx) / (c - centres[b - 1]), 0, 1)
            w[idx > c] = 1.0
        else:
            w = np.where(idx < c, (idx - centres[b - 1]) / (c - centres[b - 1]),
                         (centres[b + 1] - idx) / (centres[b + 1] - c))
            w = np.clip(w, 0, 1)
        rows = np.nonzero(w > 0)[0]
        if rows.size == 0:
            continue
        lo, hi = rows[0], rows[-1] + 1
        part = field[lo:hi]
        if sigma_lines > 0.3:
            k = int(2 * math.ceil(3 * sigma_lines) + 1)
            part = cv2.GaussianBlur(part, (k, 1), sigmaX=sigma_lines, sigmaY=0,
                                    borderType=cv2.BORDER_CONSTANT)
        out[lo:hi] += part * w[lo:hi, None].astype(field.dtype)
    return out


def speckle_field(shape: tuple[int, int], rng: np.random.Generator,
                  previous: np.ndarray | None = None, correlation: float = 0.0) -> np.ndarray:
    """Random scatterer amplitudes (zero-mean Gaussian, one scatterer per RF sample).

    Many scatterers per resolution cell with random phase: the classic
    condition for fully developed speckle (Rayleigh envelope). With
    ``previous`` the field is partly kept (tissue moves little between frames).
    """
    new = rng.standard_normal(shape, dtype=np.float32)
    if previous is None or correlation <= 0:
        return new
    return (correlation * previous + math.sqrt(1.0 - correlation**2) * new).astype(np.float32)


@dataclass
class BeamResult:
    envelope: np.ndarray  #: (n_r/decimation, n_lines) envelope before log compression, relative units
    r_mm: np.ndarray  #: range of each envelope sample
    grid: PolarGrid
    scatterers: np.ndarray = field(repr=False)  #: the scatterer field used (for the next frame)


def beamform(echo_polar: np.ndarray, atten_polar: np.ndarray, grid: PolarGrid, acq: Acquisition,
             rng: np.random.Generator, scatterers: np.ndarray | None = None,
             tgc: bool = True) -> BeamResult:
    """Echogenicity and attenuation on the RF grid -> detected, TGC-corrected envelope.

    ``echo_polar``: backscatter power relative to myocardium (1.0).
    ``atten_polar``: attenuation coefficient, dB/mm/MHz (one way).
    ``scatterers``: a scatterer field to use as is (else drawn from ``rng``).
    The returned envelope is scaled so that unit echogenicity has RMS 1 where
    attenuation is exactly compensated.
    """
    n_r, n_l = echo_polar.shape
    if scatterers is None:
        scatterers = speckle_field((n_r, n_l), rng)
    # round-trip attenuation integrated along each beam (this makes the shadows)
    loss_db = 2.0 * acq.freq_mhz * np.cumsum(atten_polar, axis=0, dtype=np.float32) * grid.dr
    amp = scatterers * np.sqrt(np.maximum(echo_polar, 0.0)) * np.power(10.0, -loss_db / 20.0)
    amp = lateral_blur(amp.astype(np.float32), grid, acq)
    spec = axial_pulse_spectrum(n_r, grid.dr, acq)
    analytic = np.fft.ifft(np.fft.fft(amp, axis=0) * spec[:, None], axis=0)
    # lateral blur of a unit-variance field lowers its variance: restore unit RMS
    analytic *= _lateral_gain(grid, acq)[:, None]
    # electronic noise: constant in RF, so it dominates where the echo is attenuated
    noise_sigma = 10.0 ** (acq.noise_db / 20.0) / math.sqrt(2.0)
    analytic += noise_sigma * (rng.standard_normal((n_r, n_l), dtype=np.float32)
                               + 1j * rng.standard_normal((n_r, n_l), dtype=np.float32))
    if tgc:
        analytic *= np.power(10.0, tgc_db(grid.r_mm, acq) / 20.0).astype(np.float32)[:, None]
    # receiver noise after the (analog) TGC amplifier: the same at every depth, so the emptiest
    # parts of the sector (lung, blood, the near-field sides) sit at a low grey, not black
    # (per quadrature component: the detected noise then has RMS 10^(floor_db/20) like unit echo)
    # The receiver's band is the pulse's band: filter the noise with it (white noise would make the
    # grain finer than on any real scanner), then restore its RMS.
    floor_sigma = 10.0 ** (acq.floor_db / 20.0)
    floor = (rng.standard_normal((n_r, n_l), dtype=np.float32)
             + 1j * rng.standard_normal((n_r, n_l), dtype=np.float32))
    floor = np.fft.ifft(np.fft.fft(floor, axis=0) * spec[:, None], axis=0)
    analytic += floor * (floor_sigma / math.sqrt(float(np.mean(np.abs(spec) ** 2)) + 1e-12))
    env = np.abs(analytic).astype(np.float32) / math.sqrt(2.0)  # unit echogenicity -> RMS 1
    # keep every d-th sample: the envelope is band-limited by the pulse, and subsampling
    # (unlike averaging) keeps its first-order statistics (Rayleigh, mean/std 1.91)
    d = acq.axial_decimation
    env_d = np.ascontiguousarray(env[d // 2::d])
    r_d = envelope_ranges(grid, acq)
    return BeamResult(envelope=env_d, r_mm=r_d, grid=grid, scatterers=scatterers)


def _lateral_gain(grid: PolarGrid, acq: Acquisition) -> np.ndarray:
    """1/sqrt(sum of squared lateral kernel) per range, so speckle RMS does not depend on beam width."""
    r = np.maximum(grid.r_mm, 5.0)
    sigma = beam_fwhm_mm(r, acq) / 2.355 / (r * grid.dth)
    sigma = np.maximum(sigma, 0.3)
    energy = 1.0 / (2.0 * np.sqrt(np.pi) * sigma)  # sum of g^2 for a unit-sum Gaussian
    return (1.0 / np.sqrt(energy)).astype(np.float32)


def tgc_db(r_mm: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Time-gain compensation: nominal tissue loss plus the operator's mismatch."""
    nominal = 2.0 * TISSUE_ATTEN_DB_MM_MHZ * acq.freq_mhz * r_mm
    knots = np.asarray(acq.tgc_error_db, dtype=np.float64)
    error = np.interp(r_mm, np.linspace(0, acq.depth_mm, len(knots)), knots)
    return (nominal + error).astype(np.float32)


def log_compress(envelope: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Envelope -> display grey level (float32, 0-255): dB, gain, dynamic range, grey map."""
    db = 20.0 * np.log10(np.maximum(envelope, 1e-6))
    x = (db + acq.tissue_level_db + acq.gain_db) / acq.dynamic_range_db
    x = np.clip(x, 0.0, 1.0)
    return (255.0 * np.power(x, acq.grey_gamma)).astype(np.float32)


@dataclass(frozen=True)
class Display:
    """Where the sector lands on screen."""

    width: int  #: output image size (pixels)
    height: int
    apex_x: float  #: position of the probe (polar origin), may be outside the image (zoom)
    apex_y: float
    px_per_mm: float
    r_min_mm: float  #: displayed range window
    r_max_mm: float
    half_angle_deg: float
    clip_box: tuple[int, int, int, int] | None = None  #: x1, y1, x2, y2: zoomed acquisitions end at a box


class ScanConverter:
    """Polar image (n_r, n_lines) -> sector image on screen. The maps are computed once per clip."""

    def __init__(self, r_mm: np.ndarray, th_rad: np.ndarray, disp: Display):
        yy, xx = np.mgrid[0:disp.height, 0:disp.width].astype(np.float32)
        dx = (xx + 0.5 - disp.apex_x) / disp.px_per_mm
        dz = (yy + 0.5 - disp.apex_y) / disp.px_per_mm
        r = np.sqrt(dx * dx + dz * dz)
        th = np.arctan2(dx, dz)
        dr = float(r_mm[1] - r_mm[0])
        self.map_r = ((r - float(r_mm[0])) / dr).astype(np.float32)
        self.map_t = ((th - float(th_rad[0])) / float(th_rad[1] - th_rad[0])).astype(np.float32)
        mask = (r >= disp.r_min_mm) & (r <= disp.r_max_mm) & (np.abs(th) <= math.radians(disp.half_angle_deg))
        if disp.clip_box is not None:
            x1, y1, x2, y2 = disp.clip_box
            box = np.zeros_like(mask)
            box[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
            mask &= box
        self.mask = mask

    def __call__(self, polar: np.ndarray, nearest: bool = False) -> np.ndarray:
        img = cv2.remap(polar.astype(np.float32), self.map_t, self.map_r,
                        cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        img[~self.mask] = 0
        return img


def scan_convert(polar: np.ndarray, r_mm: np.ndarray, th_rad: np.ndarray, disp: Display,
                 nearest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Polar image (n_r, n_lines) -> (height, width) sector image and its boolean cone mask."""
    conv = ScanConverter(r_mm, th_rad, disp)
    return conv(polar, nearest), conv.mask
