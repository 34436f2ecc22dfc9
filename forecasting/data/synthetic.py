"""Seeded synthetic cities: land use, POI, residents, connected users and traffic on a metric grid.

The embedded default city of the toolkit (README demo, unit tests, extra pre-training data, planning
benchmarks). `make_city(config)` returns a `forecasting.data.City`; the same seed always gives the
same city, and the *layout* (land use, POI, residents) depends only on the seed, the grid size and
the layout fields (cell_size, water_fraction, n_poi_categories), so cities that differ only in `days`,
`slots_per_day`, `noise` or `event_rate` share one geography.

Model
-----
Cells i = (row, col) of side `cell_size` metres (area A = cell_size^2, in km^2 below); time t in slots
of Dt minutes; h(t) the hour of day in [0, 24); w(t) the day of week of t - 4 h (a night belongs to
the day before, so profiles switch type at 04:00, when every profile is near its floor).

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

3. Heavy-tailed intensity. M_i = exp(1.0 (1.3 G^h_i + 0.8 e_i) / 1.53) * H_i, e_i ~ N(0, 1), with rare
   hotspots H_i ~ 1 + Pareto(1.5) (capped at 20) in 3% of the cells. Regions therefore differ by
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

6. Daily and weekly cycles, in continuous hours: presence profiles p_k(h, w) (fraction of the stock
   present: residents leave on weekday working hours, workers fill offices 09-18 on weekdays only,
   visitors peak at lunch and in the evening with a weekend uplift, transit has commuting double
   peaks, parks fill on weekend daytime and weekday evenings), a common activity a(h) (share of the
   present people using the network: night floor ~0.14) and a per-user volume v_k(h) (home evening
   streaming). See `component_profiles`. A slot's value is the mean over sub-samples every <= 5 min
   within the slot, so every `slots_per_day` gives the same shape (a 1 h slot = the mean of its six
   10 min slots).

7. Users and traffic. With phi = USERS_PER_PERSON connected users per present person, kappa =
   VOLUME_PER_USER_MINUTE and a per-cell volume factor q_i ~ LogNormal(0, 0.35) (device mix, 5G
   share; users and traffic are correlated but not proportional):

       U_i(t) = phi * sum_k S_ik p_k(t) a(t) + E_i(t)
       X_i(t) = Dt kappa q_i [ phi * sum_k S_ik p_k(t) a(t) v_k(t) + 1.4 E_i(t) ]

   Traffic is a volume per slot (proportional to Dt); users are a mean count per slot.

8. Events. N_e ~ Poisson(event_rate * R * days / 7) localised bursts (concerts, matches, markets):
   a centre cell drawn with weight S_visit + S_leisure + 0.5 S_transit in a uniformly chosen region,
   start at 09:00-20:00 of a random day, duration 1.5-4.5 h with 15 min ramps, a Gaussian footprint of
   0.5-1.2 cells (not on water), and peak extra users E = m (mean users of the centre + 5),
   m ~ LogNormal(log 2.5, 0.5). The list is kept in `city.meta["events"]`.

9. Noise, multiplicative and temporally correlated. zeta, eta are independent stationary AR(1)
   processes with unit variance (discretised Ornstein-Uhlenbeck: rho = exp(-Dt / tau) for any
   granularity; tau = 3 h for the people present, 2 h for the volume per user); delta are N(0, 1)
   day factors (days start at 04:00) of the city d, of each region rd and of each cell id; eps is
   white N(0, 1) noise:

       n_people   = 0.5 sigma zeta_i(t) + 0.3 sigma (delta_d + delta_rd + delta_id)
       sigma_v,i  = sigma min(sqrt(1 + U0 / mean_t U_i), 5)            (U0 = FEW_USERS)
       s^2_i(t)   = theta / (U_i(t) + theta)  (~ log(1 + theta / U))  (theta = COUNT_DISPERSION)
       U <- U exp(n_people - v_p / 2) exp(s eps - s^2 / 2)
       X <- X exp(n_people - v_p / 2) exp(sigma_v eta_i(t) - sigma_v^2 / 2)

   with sigma = `noise` and v_p = 0.52 sigma^2 the variance of n_people (each factor has mean 1).
   Users and traffic share the people noise; traffic also carries the per-user volume noise, which
   is burstier in quiet cells (as in the real data, where the log-residual spread of traffic falls
   from ~1 in the quietest cells to ~0.25 in the busiest), and users a counting noise of variance
   ~ theta U. Everything is >= 0, float32.

Geometry and regions: the grid is cut into `region_size` blocks (regions, row-major); rows/cols that
are not multiples of the region size are cropped (the trailing partial band of cells is dropped; the
full land-use map stays in `meta["land_use"]`). Regions carry their top-left corner in a UTM CRS
(EPSG:32650) and tile the city; splits assign regions to train/val/test at random (seeded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .city import City, DataError

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

INTENSITY_SIGMA = 1.0  # log-std of the heavy-tailed intensity M
HOTSPOT_SHARE = 0.03  # share of cells with a Pareto hotspot multiplier
USERS_PER_PERSON = 0.01  # phi: connected users (this operator, per slot) per present active person
VOLUME_PER_USER_MINUTE = 5.0  # kappa: traffic units (nominally MB) per connected user per minute
EVENT_VOLUME = 1.4  # per-user volume of event attendees (photos, video)
PEOPLE_TAU_HOURS = 3.0  # correlation time of the AR(1) noise of the people present
VOLUME_TAU_HOURS = 2.0  # correlation time of the AR(1) noise of the volume per user
FEW_USERS = 5.0  # U0: the volume noise grows as sqrt(1 + U0 / mean users) in quiet cells
COUNT_DISPERSION = 0.3  # theta: variance of the users' counting noise = theta * expected users
DAY_BOUNDARY_HOURS = 4.0  # profiles and day factors switch day at 04:00
SUBSAMPLE_MINUTES = 5.0  # a slot averages its profile every <= 5 minutes

CRS = "EPSG:32650"  # UTM zone 50N (eastern China), metres
GRID_ORIGIN = (405000.0, 3170000.0)  # x, y of the city's top-left corner in CRS
START_DATE = np.datetime64("2024-01-01T00:00")  # a Monday; shifted by start_day_of_week


# ----------------------------------------------------------------------------------------------------
# Configuration and presets
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticCityConfig:
    """Everything that defines a synthetic city; validated on construction (ValueError says what to fix)."""

    name: str = "synthetic"
    rows: int = 16  # grid cells; cropped to whole regions (see module docstring)
    cols: int = 16
    region_size: tuple[int, int] = (4, 4)  # cells per region (the real data's 4 x 4 patches)
    days: int = 14
    slots_per_day: int = 48  # must divide 1440 minutes: 144 (10 min), 96, 48, 24, ...
    start_day_of_week: int = 0  # 0 = Monday
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # regions -> train/val/test
    n_poi_categories: int = 15  # the first n of POI_CATEGORIES; more adds generic categories
    event_rate: float = 0.5  # expected events per region per week
    noise: float = 0.25  # sigma: scale of the multiplicative log-noise (step 9); 0 = noise-free
    seed: int = 0
    cell_size: float = 500.0  # metres
    water_fraction: float = 0.08  # share of cells under the river (no people, zero traffic)

    def __post_init__(self) -> None:
        integers = ("rows", "cols", "days", "slots_per_day", "start_day_of_week", "n_poi_categories", "seed")
        for name in integers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        object.__setattr__(self, "region_size", tuple(int(v) for v in self.region_size))
        object.__setattr__(self, "split_fractions", tuple(float(v) for v in self.split_fractions))
        rh_rw = self.region_size
        if len(rh_rw) != 2 or min(rh_rw) < 1:
            raise ValueError(f"region_size must be two positive ints (rows, cols), got {self.region_size}")
        rh, rw = rh_rw
        if self.rows < rh or self.cols < rw:
            raise ValueError(
                f"grid {self.rows}x{self.cols} is smaller than one region {rh}x{rw}: "
                "raise rows/cols or lower region_size"
            )
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if self.slots_per_day < 1 or 1440 % self.slots_per_day:
            raise ValueError(
                f"slots_per_day={self.slots_per_day} must divide 1440 minutes "
                "(e.g. 144 = 10 min, 96 = 15 min, 48 = 30 min, 24 = 1 h)"
            )
        if not 0 <= self.start_day_of_week <= 6:
            raise ValueError(f"start_day_of_week must be 0 (Monday) .. 6, got {self.start_day_of_week}")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or fr[0] <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(
                f"split_fractions {fr} must be three non-negative (train, val, test) shares summing to 1 "
                "with train > 0"
            )
        if self.n_poi_categories < 1:
            raise ValueError(f"n_poi_categories must be >= 1, got {self.n_poi_categories}")
        if self.event_rate < 0 or self.noise < 0:
            raise ValueError(f"event_rate and noise must be >= 0, got {self.event_rate}, {self.noise}")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be > 0 metres, got {self.cell_size}")
        if not 0 <= self.water_fraction <= 0.5:
            raise ValueError(f"water_fraction must lie in [0, 0.5], got {self.water_fraction}")

    @property
    def n_region_rows(self) -> int:
        return self.rows // self.region_size[0]

    @property
    def n_region_cols(self) -> int:
        return self.cols // self.region_size[1]

    @property
    def n_regions(self) -> int:
        return self.n_region_rows * self.n_region_cols


SYNTHETIC_PRESETS: dict[str, SyntheticCityConfig] = {
    "synthetic": SyntheticCityConfig(name="synthetic"),
    "synthetic-small": SyntheticCityConfig(name="synthetic-small", rows=8, cols=8, slots_per_day=24),
    "synthetic-15min": SyntheticCityConfig(name="synthetic-15min", slots_per_day=96),
    "synthetic-10min": SyntheticCityConfig(name="synthetic-10min", slots_per_day=144),
    "synthetic-large": SyntheticCityConfig(name="synthetic-large", rows=64, cols=64),
}


def city_from_name(name: str, seed: int | None = None) -> City:
    """The preset city `name` (a key of SYNTHETIC_PRESETS), optionally with another seed."""
    if name not in SYNTHETIC_PRESETS:
        raise ValueError(f"unknown synthetic city {name!r}: choose one of {sorted(SYNTHETIC_PRESETS)}")
    config = SYNTHETIC_PRESETS[name]
    return make_city(config if seed is None else replace(config, seed=int(seed)))


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
    hot = rng_people.random(shape) < HOTSPOT_SHARE
    pareto = np.minimum(1 + rng_people.pareto(1.5, size=shape), 20.0)
    intensity = np.exp(INTENSITY_SIGMA * z) * np.where(hot, pareto, 1.0)

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


# ----------------------------------------------------------------------------------------------------
# Profiles in continuous time of day
# ----------------------------------------------------------------------------------------------------


def _bump(h: np.ndarray, centre: float, width: float) -> np.ndarray:
    """exp(-d^2 / (2 width^2)) with d the circular distance in hours between h and centre."""
    d = (h - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _plateau(h: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """Smooth periodic indicator of [start, end] hours: logistic ramps of scale `ramp` hours."""

    def once(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(x - start) / ramp)) / (1 + np.exp(-(end - x) / ramp))

    return once(h) + once(h + 24.0) + once(h - 24.0)


# per-component day-of-week level (Monday..Sunday): Friday evening out, quieter Sunday errands
_DOW_LEVEL = np.array(
    [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.02, 1.04],  # home
        [1.0, 1.0, 1.0, 1.0, 0.97, 1.0, 1.0],  # work
        [0.95, 0.95, 0.97, 1.0, 1.1, 1.0, 0.92],  # visit
        [1.02, 1.0, 1.0, 1.0, 1.05, 1.0, 0.95],  # transit
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # leisure
    ]
)


def activity(h: np.ndarray) -> np.ndarray:
    """a(h): share of present people using the network (night floor 0.14, lunch bump)."""
    return 0.14 + 0.86 * _plateau(h, 6.9, 23.8, 0.7) + 0.12 * _bump(h, 12.5, 1.0)


def component_profiles(h: np.ndarray, day_of_week: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Presence p_k(h, w) (fraction of stock present) and per-user volume v_k(h), each (K, n).

    `h` hours in [0, 24); `day_of_week` 0..6 of the profile day (already shifted to 04:00 boundaries).
    """
    h = np.asarray(h, dtype=float)
    w = np.asarray(day_of_week)
    we = np.isin(w, (5, 6))
    pl, bu = _plateau, _bump
    home = np.where(we, 0.95 - 0.30 * pl(h, 10.0, 19.0, 1.0), 0.95 - 0.50 * pl(h, 8.3, 17.6, 0.6))
    work = np.where(
        we,
        0.04 + 0.18 * pl(h, 9.5, 17.5, 0.8),
        0.04 + 0.92 * pl(h, 8.6, 18.2, 0.5) - 0.15 * bu(h, 12.3, 0.5) + 0.08 * pl(h, 18.2, 21.0, 0.6),
    )
    visit = np.where(
        we,
        0.04 + 0.50 * pl(h, 10.0, 22.0, 0.7) + 0.30 * bu(h, 12.5, 1.0) + 0.55 * bu(h, 19.0, 1.8),
        0.03 + 0.25 * pl(h, 9.5, 22.0, 0.6) + 0.35 * bu(h, 12.3, 0.9) + 0.55 * bu(h, 19.3, 1.6),
    )
    transit = np.where(
        we,
        0.03 + 0.35 * pl(h, 8.0, 22.0, 1.0) + 0.25 * bu(h, 15.0, 3.0),
        0.03 + 0.30 * pl(h, 6.5, 22.5, 0.6) + 0.80 * bu(h, 8.0, 0.7) + 0.70 * bu(h, 18.0, 0.9),
    )
    leisure = np.where(
        we,
        0.03 + 0.70 * pl(h, 9.0, 18.0, 1.0) + 0.35 * bu(h, 19.8, 1.2) + 0.15 * bu(h, 7.0, 0.8),
        0.02 + 0.25 * bu(h, 6.8, 0.8) + 0.45 * bu(h, 19.8, 1.2) + 0.10 * pl(h, 9.0, 17.0, 1.0),
    )
    presence = np.stack([home, work, visit, transit, leisure]) * _DOW_LEVEL[:, w]
    ones = np.ones_like(h)
    volume = np.stack(
        [1.0 + 0.35 * bu(h, 21.8, 1.6), 0.75 * ones, 0.9 + 0.2 * bu(h, 20.0, 2.0), 0.8 * ones, 0.7 * ones]
    )
    return presence, volume


def _subsamples(slot_minutes: float) -> np.ndarray:
    """Offsets (fractions of a slot) of the sub-samples averaged within one slot."""
    n = max(1, int(np.ceil(slot_minutes / SUBSAMPLE_MINUTES)))
    return (np.arange(n) + 0.5) / n


def weekly_rates(slots_per_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot-averaged user rate p_k a and traffic rate p_k a v_k for each weekday slot: (7, spd, K) each.

    Slot s of day w averages the continuous profiles over its sub-samples; the profile day is that of
    the time minus DAY_BOUNDARY_HOURS.
    """
    slot_h = 24.0 / slots_per_day
    offs = _subsamples(slot_h * 60)
    w = np.arange(7)[:, None, None]
    s = np.arange(slots_per_day)[None, :, None]
    hours_of_week = 24.0 * w + slot_h * (s + offs[None, None, :])  # (7, spd, n_sub)
    h = hours_of_week % 24.0
    profile_day = np.floor((hours_of_week - DAY_BOUNDARY_HOURS) / 24.0).astype(int) % 7
    presence, volume = component_profiles(h.ravel(), profile_day.ravel())  # (K, n)
    users_rate = presence * activity(h.ravel())[None, :]
    traffic_rate = users_rate * volume
    shape = (len(COMPONENTS), 7, slots_per_day, offs.size)
    return (
        users_rate.reshape(shape).mean(-1).transpose(1, 2, 0),
        traffic_rate.reshape(shape).mean(-1).transpose(1, 2, 0),
    )


# ----------------------------------------------------------------------------------------------------
# Noise and events
# ----------------------------------------------------------------------------------------------------


def ar1_noise(rng: np.random.Generator, n_steps: int, n_series: int, rho: float) -> np.ndarray:
    """Stationary AR(1) x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t with unit variance: (n_steps, n_series)."""
    e = rng.standard_normal((n_steps, n_series), dtype=np.float32)
    c = np.float32(np.sqrt(1 - rho**2))
    r = np.float32(rho)
    for t in range(1, n_steps):
        e[t] *= c
        e[t] += r * e[t - 1]
    return e


def _ramped_box(hours: np.ndarray, start: float, end: float, ramp: float = 0.06) -> np.ndarray:
    """Smooth indicator of [start, end] on absolute hours: logistic ramps (10-90 % in ~15 min)."""
    return 1 / (1 + np.exp(-(hours - start) / ramp)) / (1 + np.exp(-(end - hours) / ramp))


def _add_events(
    rng: np.random.Generator,
    config: SyntheticCityConfig,
    layout: CityLayout,
    users: np.ndarray,
    traffic: np.ndarray,
    volume: np.ndarray,
) -> list[dict]:
    """Add event bursts (step 8) in place to users/traffic (T, rows, cols); return their records."""
    T, rows, cols = users.shape
    rh, rw = config.region_size
    n_events = rng.poisson(config.event_rate * config.n_regions * config.days / 7)
    slot_h = 24.0 / config.slots_per_day
    offs = _subsamples(slot_h * 60)
    stocks = layout.stocks[:rows, :cols]
    weight = stocks[..., VISIT] + stocks[..., LEISURE] + 0.5 * stocks[..., TRANSIT]
    land = layout.land_use[:rows, :cols] != WATER
    mean_users = users.mean(axis=0)
    yy, xx = _cell_coords((rows, cols))
    records = []
    for _ in range(n_events):
        region = int(rng.integers(config.n_regions))
        r0, c0 = (region // config.n_region_cols) * rh, (region % config.n_region_cols) * rw
        wr = weight[r0 : r0 + rh, c0 : c0 + rw].ravel()
        if wr.sum() <= 0:
            continue
        k = rng.choice(wr.size, p=wr / wr.sum())
        row, col = r0 + k // rw, c0 + k % rw
        start = 24.0 * rng.integers(config.days) + rng.uniform(9.0, 20.0)
        duration = rng.uniform(1.5, 4.5)
        radius = rng.uniform(0.5, 1.2)
        peak = float(rng.lognormal(np.log(2.5), 0.5) * (mean_users[row, col] + 5.0))
        t0 = max(0, int(np.floor((start - 1.0) / slot_h)))
        t1 = min(T, int(np.ceil((start + duration + 1.0) / slot_h)) + 1)
        if t0 >= t1:
            continue
        hours = slot_h * (np.arange(t0, t1)[:, None] + offs[None, :])  # sub-samples of each slot
        envelope = _ramped_box(hours, start, start + duration).mean(1)  # (t,)
        # footprint in a box of +-4 cells (it is < 0.02 beyond 3.4 radius)
        ra, rb, ca, cb = max(0, row - 4), min(rows, row + 5), max(0, col - 4), min(cols, col + 5)
        d2 = (yy[ra:rb, ca:cb] - row) ** 2 + (xx[ra:rb, ca:cb] - col) ** 2
        footprint = np.exp(-0.5 * d2 / radius**2) * land[ra:rb, ca:cb]
        footprint[footprint < 0.02] = 0.0
        extra = (peak * envelope[:, None, None] * footprint[None]).astype(np.float32)  # (t, box)
        users[t0:t1, ra:rb, ca:cb] += extra
        traffic[t0:t1, ra:rb, ca:cb] += extra * volume[None, ra:rb, ca:cb]
        records.append(
            {
                "row": int(row),
                "col": int(col),
                "region": region,
                "start_hour": float(start),  # hours since the first slot (day = start_hour // 24)
                "start_step": int(start // slot_h),
                "duration_hours": float(duration),
                "radius_cells": float(radius),
                "peak_users": peak,
            }
        )
    return records


def _assign_splits(
    rng: np.random.Generator, n_regions: int, fractions: tuple[float, float, float]
) -> np.ndarray:
    """Random train/val/test labels: >= 1 val and >= 1 test (if their share > 0) once R >= 3.

    With 2 regions: one train and one test (or val if test has no share); with 1: train.
    """
    _, f_val, f_test = fractions
    if n_regions >= 3:
        n_val = max(1, int(round(f_val * n_regions))) if f_val > 0 else 0
        n_test = max(1, int(round(f_test * n_regions))) if f_test > 0 else 0
        while n_val + n_test > n_regions - 1:  # keep at least one training region
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            else:
                n_test -= 1
    elif n_regions == 2:
        n_val, n_test = (0, 1) if f_test > 0 else ((1, 0) if f_val > 0 else (0, 0))
    else:
        n_val = n_test = 0
    labels = np.array(["train"] * (n_regions - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
    return labels[rng.permutation(n_regions)]


# ----------------------------------------------------------------------------------------------------
# The city
# ----------------------------------------------------------------------------------------------------


def _to_regions(a: np.ndarray, config: SyntheticCityConfig) -> np.ndarray:
    """(..., rows_kept, cols_kept) -> (R, ..., rh, rw) with regions in row-major order."""
    rh, rw = config.region_size
    nr, nc = config.n_region_rows, config.n_region_cols
    lead = a.shape[:-2]
    b = a.reshape(lead + (nr, rh, nc, rw))
    k = len(lead)
    order = (k, k + 2) + tuple(range(k)) + (k + 1, k + 3)
    return b.transpose(order).reshape((nr * nc,) + lead + (rh, rw))


def _region_of_cell(config: SyntheticCityConfig) -> np.ndarray:
    """Region index of every kept cell, flattened row-major: (N,)."""
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    return ((np.arange(rows)[:, None] // rh) * config.n_region_cols + np.arange(cols)[None, :] // rw).ravel()


def expected_series(
    config: SyntheticCityConfig, layout: CityLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise- and event-free users and traffic of the kept cells (step 7): (T, N) float32 each.

    Returns users, traffic, per-user volume per slot Dt kappa q_i (N,), day_of_week (T,), slot (T,).
    """
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    spd = config.slots_per_day
    t = np.arange(config.days * spd)
    dow = (config.start_day_of_week + t // spd) % 7
    slot = t % spd
    users_rate, traffic_rate = weekly_rates(spd)  # (7, spd, K)
    stocks = layout.stocks[:rows, :cols].reshape(rows * cols, -1)  # (N, K)
    users = (USERS_PER_PERSON * users_rate[dow, slot] @ stocks.T).astype(np.float32)  # (T, N)
    traffic = (USERS_PER_PERSON * traffic_rate[dow, slot] @ stocks.T).astype(np.float32)
    per_user = (24.0 * 60.0 / spd * VOLUME_PER_USER_MINUTE) * layout.volume_factor[:rows, :cols].ravel()
    traffic *= per_user.astype(np.float32)[None, :]
    return users, traffic, per_user, dow, slot


def _apply_noise(
    rng_noise: np.random.Generator,
    rng_day: np.random.Generator,
    config: SyntheticCityConfig,
    users: np.ndarray,
    traffic: np.ndarray,
) -> None:
    """Multiply users and traffic (T, N) in place by the noise of step 9."""
    sigma = float(config.noise)
    if sigma == 0:
        return
    T, N = users.shape
    slot_h = 24.0 / config.slots_per_day
    s = np.float32(sigma)
    # counting noise of the users, from the expected users: variance ~ theta U (white, log-normal)
    s2 = COUNT_DISPERSION / (users + np.float32(COUNT_DISPERSION))  # log-variance, <= 1
    counting = rng_noise.standard_normal((T, N), dtype=np.float32)
    counting *= np.sqrt(s2)
    counting -= s2 / 2
    del s2
    # the people present: AR(1) plus day factors of city, region and cell (days start at 04:00)
    day = np.floor((np.arange(T) * slot_h - DAY_BOUNDARY_HOURS) / 24.0).astype(int) + 1  # 0 .. days
    d_city = rng_day.standard_normal(config.days + 1, dtype=np.float32)
    d_region = rng_day.standard_normal((config.days + 1, config.n_regions), dtype=np.float32)
    d_cell = rng_day.standard_normal((config.days + 1, N), dtype=np.float32)
    log_people = d_region[day][:, _region_of_cell(config)]  # (T, N)
    log_people += d_city[day][:, None]
    log_people += d_cell[day]
    log_people *= 0.3 * s
    log_people += (0.5 * s) * ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / PEOPLE_TAU_HOURS)))
    log_people -= np.float32(sigma**2 * (0.25 + 3 * 0.09) / 2)  # each factor has mean 1
    people = np.exp(log_people)
    del log_people
    # per-user volume: burstier where few users share the cell
    mean_users = users.mean(axis=0)  # (N,)
    sigma_v = sigma * np.minimum(np.sqrt(1 + FEW_USERS / np.maximum(mean_users, 1e-6)), 5.0)
    log_volume = ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / VOLUME_TAU_HOURS)))
    log_volume *= sigma_v.astype(np.float32)
    log_volume -= (sigma_v**2 / 2).astype(np.float32)
    users *= people
    users *= np.exp(counting)
    traffic *= people
    traffic *= np.exp(log_volume)


def make_city(config: SyntheticCityConfig | None = None, **overrides) -> City:
    """Generate the synthetic city of `config` (default SyntheticCityConfig()) with field `overrides`.

    >>> city = make_city(rows=8, cols=8, slots_per_day=24, seed=3)
    >>> city.traffic.shape
    (4, 336, 4, 4)
    """
    config = config or SyntheticCityConfig()
    if overrides:
        known = {f.name for f in fields(SyntheticCityConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticCityConfig fields {unknown}: use {sorted(known)}")
        config = replace(config, **overrides)

    layout = make_layout(config)
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw  # cropped to whole regions
    spd = config.slots_per_day
    T = config.days * spd
    seeds = np.random.SeedSequence([config.seed, 2]).spawn(4)
    rng_noise, rng_day, rng_events, rng_split = (np.random.default_rng(s) for s in seeds)

    users, traffic, per_user, dow, slot = expected_series(config, layout)  # (T, N)
    events = _add_events(
        rng_events,
        config,
        layout,
        users.reshape(T, rows, cols),
        traffic.reshape(T, rows, cols),
        EVENT_VOLUME * per_user.reshape(rows, cols),
    )
    _apply_noise(rng_noise, rng_day, config, users, traffic)

    # regions, geometry, splits
    R = config.n_regions
    traffic_r = _to_regions(traffic.reshape(T, rows, cols), config)  # (R, T, rh, rw)
    users_r = _to_regions(users.reshape(T, rows, cols), config)
    poi_r = _to_regions(layout.poi[:, :rows, :cols], config)  # (R, C, rh, rw)
    residents_r = _to_regions(layout.residents[:rows, :cols], config)  # (R, rh, rw)
    region = np.arange(R)
    region_rc = np.stack([region // config.n_region_cols * rh, region % config.n_region_cols * rw], axis=1)
    x0, y0 = GRID_ORIGIN
    region_origin = np.stack(
        [x0 + region_rc[:, 1] * config.cell_size, y0 - region_rc[:, 0] * config.cell_size], axis=1
    )
    start = START_DATE + np.timedelta64(config.start_day_of_week, "D")
    meta = {
        "generator": "forecasting.data.synthetic",
        "config": asdict(config),
        "land_use": layout.land_use.copy(),  # (rows, cols) full grid, index into land_use_names
        "land_use_names": list(LAND_USES),
        "grid_shape": (config.rows, config.cols),
        "kept_shape": (rows, cols),
        "grid_origin": GRID_ORIGIN,
        "events": events,
    }
    return City(
        name=config.name,
        traffic=np.maximum(traffic_r, 0.0),
        users=np.maximum(users_r, 0.0),
        poi=poi_r,
        residents=residents_r,
        day_of_week=np.broadcast_to(dow, (R, T)).copy(),
        slot_of_day=np.broadcast_to(slot, (R, T)).copy(),
        slots_per_day=spd,
        split=_assign_splits(rng_split, R, config.split_fractions),
        cell_size=float(config.cell_size),
        region_origin=region_origin,
        crs=CRS,
        poi_categories=layout.poi_categories,
        start_time=np.full(R, start),
        meta=meta,
    )


def region_land_use(city: City) -> np.ndarray:
    """Land use (indices into LAND_USES) of each cell of each region: (R, H, W).

    Read from `city.meta["land_use"]` through `region_origin`, so it stays right after `city.subset`.
    """
    if "land_use" not in city.meta or city.region_origin is None:
        raise DataError(f"{city.name}: no land-use map in meta (only synthetic cities carry one)")
    lu = np.asarray(city.meta["land_use"])
    x0, y0 = city.meta.get("grid_origin", GRID_ORIGIN)
    cols0 = np.rint((city.region_origin[:, 0] - x0) / city.cell_size).astype(int)
    rows0 = np.rint((y0 - city.region_origin[:, 1]) / city.cell_size).astype(int)
    H, W = city.grid
    return np.stack([lu[r : r + H, c : c + W] for r, c in zip(rows0, cols0)])
