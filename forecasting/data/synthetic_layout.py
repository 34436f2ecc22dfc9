"""Layout of a synthetic city: vocabulary and tables, then density, river, hubs, zones, people and POI.

The static geography of `forecasting.data.synthetic` (steps 1-5 of its model): `make_layout(config)`
returns a `CityLayout` on the full (rows, cols) grid, and depends only on the seed, the grid size and
the layout fields (cell_size, water_fraction, n_poi_categories, level_sigma, hotspot_share,
hotspot_tail) of the config.

Cells i = (row, col) of side `cell_size` metres (area A = cell_size^2, in km^2 below).

1. Density. A polycentric envelope with smooth log-normal texture, scaled to (0, 1]:

       D_i ~ max_m  omega_m exp(-|x_i - c_m| / L_m) * exp(0.3 G0_i),   D_i <- 0.03 + 0.97 D_i / max D

   c_0 is the main centre (L_0 = S/4, S = max(rows, cols)), c_1.. sub-centres (L_m = 0.12 S, omega_m
   in [0.4, 0.7]). G^(.) are independent standardised Gaussian random fields: white noise filtered with
   a Gaussian kernel of length l = clip(S/8, 1, 3) cells, so zones are spatially coherent.

2. Land use, one of LAND_USES. A meandering river (bands of the |signed distance| to a sinusoidal
   line, exactly `water_fraction` of the cells) is water; transport hubs are ~1 per 80 land cells,
   sampled with probability ~ D^2 at least max(2, S/10) cells apart; every other cell takes

       lu_i = argmax_z  a_z + b_z D_i + c_z D_i^2 + s_z Gz_i

   (offices and commerce win at high density, residential/mixed at middle density, low-density at the
   fringe, parks anywhere by their own field), where the intercepts a_z are calibrated so that the
   zone shares match ZONE_SHARES.

3. Heavy-tailed intensity. M_i = exp(s (1.3 G^h_i + 0.8 e_i) / 1.53) * H_i, e_i ~ N(0, 1), with rare
   hotspots H_i ~ 1 + Pareto(alpha) (capped at 20) in a share f of the cells (config level_sigma s = 1,
   hotspot_tail alpha = 1.5, hotspot_share f = 3% by default). Regions therefore differ by
   orders of magnitude (dense office/commercial cores vs. parks and the fringe).

4. People. Five population components k in COMPONENTS (home, work, visit, transit, leisure) with
   stocks (people attached to the cell):

       S_ik = A * B[lu_i, k] * (0.1 + 0.9 D_i)^gamma_k * M_i^mu_k * exp(0.3 u_ik),   u_ik ~ N(0, 1)

   B (per km^2, STOCKS_PER_KM2) holds e.g. 20 000 residents/km^2 in residential zones, 30 000 jobs
   /km^2 in offices, 40 000 passengers/km^2 at hubs. Residents = round(S_i,home). Water has no people.

5. POI counts per category c (POI_CATEGORIES, the paper's Table 7 list) are negative binomial:

       P_ic ~ Poisson(lambda_ic g_ic),  g_ic ~ Gamma(3, 1/3),
       lambda_ic = A * R[lu_i, c] * (0.1 + 0.9 D_i) * M_i^0.5 * exp(0.3 u_i,k(c))

   R (POI_RATES_PER_KM2) is the land-use-dependent rate and k(c) the component a category attracts
   (shopping -> visit, enterprise -> work, ...), so POI are informative, noisy proxies of the people.

The same layout also draws each cell's volume factor q_i ~ LogNormal(0, 0.35) used by step 7.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .synthetic_config import SyntheticCityConfig

# ----------------------------------------------------------------------------------------------------
# Vocabulary and tables
# ----------------------------------------------------------------------------------------------------

LAND_USES = ("residential", "office", "commercial", "transport", "park", "mixed", "low_density", "water")
RESIDENTIAL, OFFICE, COMMERCIAL, TRANSPORT, PARK, MIXED, LOW_DENSITY, WATER = range(len(LAND_USES))
# zones competing in the argmax of step 2 (transport and water are placed before)
ZONES = (RESIDENTIAL, OFFICE, COMMERCIAL, PARK, MIXED, LOW_DENSITY)
ZONE_SHARES = np.array([0.38, 0.09, 0.11, 0.08, 0.15, 0.19])
# score = a + b D + c D^2 + s G   (a calibrated); b, c, s per zone
_ZONE_SLOPE = np.array([2.0, 5.0, 4.0, 0.0, 2.4, -5.0])
_ZONE_CURVE = np.array([-1.8, 0.0, 0.0, 0.0, -0.9, 0.0])
_ZONE_NOISE = np.array([0.5, 0.5, 0.5, 0.9, 0.5, 0.5])

COMPONENTS = ("home", "work", "visit", "transit", "leisure")
HOME, WORK, VISIT, TRANSIT, LEISURE = range(len(COMPONENTS))

# people attached to a cell at density D = 1, per km^2 (rows: LAND_USES, columns: COMPONENTS)
STOCKS_PER_KM2 = np.array(
    [
        [20000, 1500, 1500, 500, 300],  # residential
        [1500, 30000, 3000, 1000, 200],  # office
        [3000, 8000, 20000, 1500, 500],  # commercial
        [500, 3000, 3000, 40000, 100],  # transport hub
        [200, 200, 800, 200, 8000],  # park
        [12000, 6000, 5000, 800, 300],  # mixed
        [2500, 600, 300, 200, 300],  # low density / suburban
        [0, 0, 0, 0, 0],  # water
    ],
    dtype=float,
)
_DENSITY_EXPONENT = np.array([1.0, 1.5, 1.5, 1.0, 0.5])  # gamma_k
_TAIL_EXPONENT = np.array([0.6, 1.0, 1.0, 0.8, 0.5])  # mu_k

# the paper's Table 7 POI categories, with the component each attracts
POI_CATEGORIES = (
    "shopping",
    "enterprise",
    "restaurant",
    "local living",
    "transportation",
    "public health",
    "automobile",
    "physical facilities",
    "accommodation",
    "finance",
    "government organs",
    "education",
    "business",
    "public facilities",
    "scenic spot",
)
_POI_COMPONENT = np.array(
    [VISIT, WORK, VISIT, HOME, TRANSIT, HOME, WORK, LEISURE, VISIT, WORK, WORK, HOME, WORK, LEISURE, LEISURE]
)
# POI per km^2 at density 1 (rows: LAND_USES, columns: POI_CATEGORIES)
POI_RATES_PER_KM2 = np.array(
    [
        [20, 8, 25, 40, 6, 4, 3, 4, 2, 3, 1, 5, 6, 5, 0.3],  # residential
        [15, 80, 30, 10, 8, 2, 2, 2, 6, 20, 6, 2, 40, 3, 0.2],  # office
        [120, 25, 90, 25, 10, 4, 3, 6, 15, 15, 2, 2, 30, 4, 1.0],  # commercial
        [30, 8, 40, 10, 40, 2, 3, 1, 12, 4, 1, 1, 8, 6, 0.5],  # transport hub
        [2, 1, 4, 2, 3, 0.5, 0.2, 10, 1, 0.2, 0.2, 0.5, 0.5, 8, 6.0],  # park
        [50, 20, 50, 30, 8, 4, 4, 4, 6, 8, 3, 4, 15, 5, 0.5],  # mixed
        [5, 6, 5, 8, 3, 1, 6, 2, 1, 1, 1, 2, 3, 2, 0.5],  # low density
        [0] * 15,  # water
    ],
    dtype=float,
)
_POI_DISPERSION = 3.0  # negative-binomial shape (variance = mean + mean^2 / 3)

# defaults of the config's level_sigma (log-std of the intensity M) and hotspot_share (cells with a
# Pareto hotspot multiplier of index hotspot_tail)
INTENSITY_SIGMA = SyntheticCityConfig.level_sigma
HOTSPOT_SHARE = SyntheticCityConfig.hotspot_share


# ----------------------------------------------------------------------------------------------------
# Layout: density, river, hubs, zones, people, POI
# ----------------------------------------------------------------------------------------------------


@dataclass
class CityLayout:
    """Static geography of a synthetic city on its full (rows, cols) grid."""

    land_use: np.ndarray  # (rows, cols) int8 index into LAND_USES
    density: np.ndarray  # (rows, cols) D in (0, 1]
    intensity: np.ndarray  # (rows, cols) heavy-tailed multiplier M
    stocks: np.ndarray  # (rows, cols, K) people per component
    residents: np.ndarray  # (rows, cols) integer counts (float)
    poi: np.ndarray  # (C, rows, cols) integer counts (float)
    poi_categories: list[str] = field(default_factory=list)
    volume_factor: np.ndarray | None = None  # (rows, cols) q_i


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], length: float) -> np.ndarray:
    """A standardised Gaussian random field: white noise convolved with exp(-d^2 / (2 length^2)).

    Filtered in Fourier space on a grid padded by 3 length (so it does not wrap around), then
    rescaled to mean 0 and standard deviation 1.
    """
    pad = int(np.ceil(3 * length))
    H, W = shape[0] + 2 * pad, shape[1] + 2 * pad
    noise = rng.standard_normal((H, W))
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.rfftfreq(W)[None, :]
    kernel = np.exp(-2 * (np.pi * length) ** 2 * (fy**2 + fx**2))  # Fourier transform of the Gaussian
    f = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(H, W))[pad : pad + shape[0], pad : pad + shape[1]]
    sd = f.std()
    return (f - f.mean()) / (sd if sd > 0 else 1.0)


def _cell_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float), indexing="ij")


def _density(rng: np.random.Generator, shape: tuple[int, int], length: float) -> np.ndarray:
    """Polycentric density D in (0, 1] (step 1 of the module docstring)."""
    rows, cols = shape
    S = max(rows, cols)
    yy, xx = _cell_coords(shape)
    centre = np.array([rows, cols]) * rng.uniform(0.3, 0.7, size=2)
    env = np.exp(-np.hypot(yy - centre[0], xx - centre[1]) / max(2.0, S / 4))
    n_sub = rng.poisson(S / 16) + (1 if S >= 12 else 0)
    for _ in range(n_sub):
        c = np.array([rows, cols]) * rng.uniform(0.1, 0.9, size=2)
        w = rng.uniform(0.4, 0.7)
        env = np.maximum(env, w * np.exp(-np.hypot(yy - c[0], xx - c[1]) / max(1.5, 0.12 * S)))
    d = env * np.exp(0.3 * smooth_field(rng, shape, length))
    return 0.03 + 0.97 * d / d.max()


def _river(rng: np.random.Generator, shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Boolean mask of a meandering river band covering round(fraction * cells) cells."""
    n_water = int(round(fraction * shape[0] * shape[1]))
    if n_water == 0:
        return np.zeros(shape, dtype=bool)
    S = max(shape)
    yy, xx = _cell_coords(shape)
    theta = rng.uniform(0, np.pi)
    tangent, normal = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    p = np.array(shape) / 2 + normal * rng.normal(0, 0.2 * S)
    along = (yy - p[0]) * tangent[0] + (xx - p[1]) * tangent[1]
    across = (yy - p[0]) * normal[0] + (xx - p[1]) * normal[1]
    wave = 0.08 * S * np.sin(2 * np.pi * along / (rng.uniform(0.6, 1.2) * S) + rng.uniform(0, 2 * np.pi))
    dist = np.abs(across - wave) + 1e-6 * rng.random(shape)  # tiny jitter breaks ties
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[np.argsort(dist, axis=None)[:n_water]] = True
    return mask.reshape(shape)


def _transport_hubs(rng: np.random.Generator, density: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Boolean mask of hub cells: ~1 per 80 free cells, drawn ~ D^2, at least max(2, S/10) apart."""
    n_free = int(free.sum())
    n_hubs = max(1, int(round(n_free / 80))) if n_free else 0
    min_gap = max(2.0, max(density.shape) / 10)
    yy, xx = _cell_coords(density.shape)
    weight = np.where(free, density**2, 0.0).ravel()
    hubs = np.zeros(density.shape, dtype=bool)
    for _ in range(n_hubs):
        if weight.sum() <= 0:
            break
        k = rng.choice(weight.size, p=weight / weight.sum())
        r, c = divmod(k, density.shape[1])
        hubs[r, c] = True
        weight[(np.hypot(yy - r, xx - c) < min_gap).ravel()] = 0.0
    return hubs


def _zones(rng: np.random.Generator, density: np.ndarray, free: np.ndarray, length: float) -> np.ndarray:
    """Zone of every cell by the calibrated argmax of step 2 (values index LAND_USES)."""
    fields_ = np.stack([smooth_field(rng, density.shape, length) for _ in ZONES])  # (Z, rows, cols)
    base = (
        _ZONE_SLOPE[:, None, None] * density
        + _ZONE_CURVE[:, None, None] * density**2
        + _ZONE_NOISE[:, None, None] * fields_
    )[:, free]  # (Z, n_free)
    n = max(base.shape[1], 1)
    intercept = np.zeros(len(ZONES))
    best, best_err = intercept, np.inf
    for i in range(120):  # damped fixed point: raise the score of zones below their target share
        pick = np.argmax(base + intercept[:, None], axis=0)
        share = np.bincount(pick, minlength=len(ZONES)) / n
        err = np.abs(share - ZONE_SHARES).sum()
        if err < best_err:
            best, best_err = intercept.copy(), err
        step = np.clip(np.log(ZONE_SHARES) - np.log(np.maximum(share, 0.5 / n)), -1.0, 1.0)
        intercept = intercept + 0.5 * 0.97**i * step
    zone = np.full(density.shape, RESIDENTIAL, dtype=np.int8)
    zone[free] = np.asarray(ZONES, dtype=np.int8)[np.argmax(base + best[:, None], axis=0)]
    return zone


def _poi_table(n_categories: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, rates (LAND_USES x C) and attracted component of the first n categories (generic extras)."""
    names = list(POI_CATEGORIES[:n_categories])
    rates = POI_RATES_PER_KM2[:, :n_categories]
    comp = _POI_COMPONENT[:n_categories]
    extra = n_categories - len(POI_CATEGORIES)
    if extra > 0:  # generic categories: random mixtures of the land-use profiles of the named ones
        mix = rng.dirichlet(np.full(len(POI_CATEGORIES), 0.3), size=extra)  # (extra, 15)
        rates = np.concatenate([rates, POI_RATES_PER_KM2 @ mix.T], axis=1)
        comp = np.concatenate([comp, rng.integers(0, len(COMPONENTS), size=extra)])
        names += [f"other {i + 1}" for i in range(extra)]
    return names, rates, comp


def make_layout(config: SyntheticCityConfig) -> CityLayout:
    """Land use, density, intensity, people and POI of the full grid (steps 1-5 of the docstring)."""
    shape = (config.rows, config.cols)
    S = max(shape)
    length = float(np.clip(S / 8, 1.0, 3.0))
    seeds = np.random.SeedSequence([config.seed, 1]).spawn(6)
    rng_dens, rng_river, rng_hubs, rng_zone, rng_people, rng_poi = (np.random.default_rng(s) for s in seeds)

    density = _density(rng_dens, shape, length)
    water = _river(rng_river, shape, config.water_fraction)
    hubs = _transport_hubs(rng_hubs, density, ~water)
    land_use = _zones(rng_zone, density, ~water & ~hubs, length)
    land_use[hubs] = TRANSPORT
    land_use[water] = WATER

    # heavy-tailed intensity M (step 3)
    smooth, white = smooth_field(rng_people, shape, length), rng_people.standard_normal(shape)
    z = (1.3 * smooth + 0.8 * white) / np.hypot(1.3, 0.8)  # standard normal, spatially coherent
    hot = rng_people.random(shape) < config.hotspot_share
    pareto = np.minimum(1 + rng_people.pareto(config.hotspot_tail, size=shape), 20.0)
    intensity = np.exp(config.level_sigma * z) * np.where(hot, pareto, 1.0)

    # people (step 4)
    area = (config.cell_size / 1000.0) ** 2
    u = rng_people.standard_normal(shape + (len(COMPONENTS),))
    stocks = (
        area
        * STOCKS_PER_KM2[land_use]
        * (0.1 + 0.9 * density[..., None]) ** _DENSITY_EXPONENT
        * intensity[..., None] ** _TAIL_EXPONENT
        * np.exp(0.3 * u)
    )
    residents = np.round(stocks[..., HOME])
    volume_factor = np.exp(0.35 * rng_people.standard_normal(shape) - 0.35**2 / 2)

    # POI (step 5)
    names, rates, comp = _poi_table(config.n_poi_categories, rng_poi)
    lam = (
        area
        * rates[land_use]  # (rows, cols, C)
        * (0.1 + 0.9 * density[..., None])
        * np.sqrt(intensity)[..., None]
        * np.exp(0.3 * u[..., comp])
    )
    gamma = rng_poi.gamma(_POI_DISPERSION, 1 / _POI_DISPERSION, size=lam.shape)
    poi = rng_poi.poisson(lam * gamma).astype(float).transpose(2, 0, 1)
    return CityLayout(land_use, density, intensity, stocks, residents, poi, names, volume_factor)
