"""Configuration of the Phobos sampling task: the site's priors, the lander, time, messaging.

Numbers marked "assumption" have no public source for Phobos-Grunt's lander; they are sized so
that time, energy, the container and the hazards all bind within an episode, and are
overridable (``make("phobos-sampling-v0", horizon_steps=48, lander={"container_g": 150.0})``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from phobos.envs.episode_config import EpisodeConfig
from phobos.envs.physics.surface import PHOBOS_GRUNT_SITE_DEG

MATERIALS = ("fine_regolith", "coarse", "rock")
"""Surface materials a cell can be made of, in the order of every per-material tuple."""

LANDER, SCIENCE_TEAM = "phobos_grunt", "science_team"
AGENTS = (LANDER, SCIENCE_TEAM)


@dataclass(frozen=True)
class SiteConfig:
    """Priors of the procedural landing site in front of the lander.

    Tuples of three follow :data:`MATERIALS`; so do the rows of ``composition_prior``, whose
    columns follow ``compositions``.

    The composition classes stand for the hypotheses Phobos's soil was to test: a captured
    primitive body (carbonaceous, hydrated material), rock like the ordinary anhydrous
    silicates seen in its spectra, and ejecta thrown up from Mars (predicted at a few hundred
    ppm of the regolith, Ramsley & Head 2013, concentrated here into rare cells so that they
    can be found). Frequencies and values are assumptions; the ranking of values is the
    mission's stated science priority (origin of Phobos first, Martian material next).
    """

    rows: int = 6
    """Cells from the lander outwards."""
    cols: int = 6
    """Cells across."""
    cell_m: float = 0.2
    """Side of a cell; the grid is the workspace the cameras cover."""
    area_cells: int = 3
    """An image covers one square area of this many cells a side; rows and cols divide by it."""
    arm_reach_m: float = 1.2
    """The arm (and the spectrometer on it) reaches cells whose centre lies within this
    distance of its base, at the middle of the near edge (assumption)."""
    material_prior: tuple[float, ...] = (0.55, 0.30, 0.15)
    """Probability of each material in a cell (assumption: regolith-covered surface)."""
    patchiness: float = 0.6
    """Spatial correlation of materials: weight of the neighbours in the smoothing kernel (0:
    independent cells)."""
    slope_mean_deg: tuple[float, ...] = (4.0, 9.0, 18.0)
    """Mean local slope per material (assumption; rock faces are steepest)."""
    slope_sd_deg: tuple[float, ...] = (3.0, 5.0, 8.0)
    """Spread of the slope per material."""
    compositions: tuple[str, ...] = (
        "weathered_dust",
        "carbonaceous",
        "anhydrous_silicate",
        "mars_ejecta",
    )
    """Hidden composition classes."""
    composition_prior: tuple[tuple[float, ...], ...] = (
        (0.64, 0.17, 0.16, 0.03),
        (0.30, 0.22, 0.40, 0.08),
        (0.12, 0.20, 0.55, 0.13),
    )
    """Probability of each class given the material (one row per material). With the default
    material prior a quarter of the cells hold the target classes, as about 24% of Curiosity's
    targets held the wanted material without onboard selection."""
    composition_value: tuple[float, ...] = (1.0, 4.0, 2.0, 6.0)
    """Science value of a nominal sample of each class."""
    target_compositions: tuple[str, ...] = ("carbonaceous", "mars_ejecta")
    """The wanted material, for the episode's target rate (AEGIS picked it over 93% of the
    time on Curiosity, against about 24% without onboard selection)."""
    value_spread: float = 0.25
    """Log-normal spread of a cell's value around its class's."""
    failure_base: tuple[float, ...] = (0.02, 0.06, 0.20)
    """Probability that sampling a flat cell of each material fails (jams, slips)."""
    failure_per_deg: float = 0.02
    """Added failure probability per degree of slope above ``safe_slope_deg``."""
    safe_slope_deg: float = 15.0
    """Slope below which the slope adds no risk."""
    max_failure: float = 0.9
    """Cap of the failure probability."""
    damage_given_failure: float = 0.15
    """Probability that a failure damages the sampler for good (the episode ends)."""
    sample_mass_g: tuple[float, ...] = (40.0, 30.0, 12.0)
    """Mass one scoop takes of each material (assumption: rock gives chips only)."""
    mass_spread: float = 0.2
    """Relative spread of a sample's mass (uniform, plus or minus)."""

    @property
    def cells(self) -> int:
        """Number of cells."""
        return self.rows * self.cols

    @property
    def areas(self) -> int:
        """Number of image areas."""
        return (self.rows // self.area_cells) * (self.cols // self.area_cells)


@dataclass(frozen=True)
class LanderConfig:
    """Phobos-Grunt on the surface: power, container, instruments and action costs."""

    container_g: float = 200.0
    """Capacity of the return capsule's soil container (MISSION_FACTS: about 200 g)."""
    min_sample_g: float = 5.0
    """Sampling needs at least this much room left; below it the container is sealed."""
    solar_peak_w: float = 600.0
    """Output of the lander's arrays with the Sun overhead at Mars's mean distance
    (assumption: the flight stage's arrays, about 1 kW sun-pointed, lie fixed on the surface)."""
    battery_wh: float = 900.0
    """Usable battery energy (assumption)."""
    start_battery: tuple[float, float] = (0.5, 0.9)
    """The battery's charge at landing is drawn uniformly between these fractions."""
    base_load_w: float = 110.0
    """Heaters, computer and receiver, always on (assumption)."""
    send_load_w: float = 180.0
    """Extra load while transmitting to Earth (assumption)."""
    image_load_w: float = 40.0
    """Extra load while imaging."""
    spectrometer_load_w: float = 90.0
    """Extra load while running the spectrometer."""
    sample_load_w: float = 160.0
    """Extra load while the arm digs and stows."""
    send_steps: int = 1
    """Steps a transmission takes."""
    image_steps: int = 1
    """Steps an image of one area takes."""
    spectrometer_steps: int = 2
    """Steps a spectrum of one cell takes."""
    sample_steps: int = 3
    """Steps the arm takes to dig one cell and stow the sample."""
    image_min_sun_deg: float = 5.0
    """The cameras need the Sun at least this high."""
    earth_mask_deg: float = 5.0
    """The lander's antenna reaches Earth above this elevation."""
    material_accuracy: float = 0.85
    """Chance that an image shows a cell's material correctly."""
    onboard_accuracy: float = 0.45
    """Chance that the onboard classifier names a cell's composition correctly from one image
    (a wrong answer is any other class, uniformly)."""
    ground_accuracy: float = 0.8
    """Chance that the science team's classifier does, from the same image."""
    spectrometer_accuracy: float = 0.95
    """Chance that a spectrum names the composition correctly."""
    slope_noise_deg: float = 2.0
    """Standard deviation of a slope measured from one image."""


@dataclass(frozen=True)
class SamplingConfig(EpisodeConfig):
    """Arguments of ``phobos-sampling-v0`` (the shared ones documented in the base class)."""

    start: str = "2013-02-01T00:00:00"
    """Earliest landing: the 2011 plan put Phobos-Grunt on Phobos in February 2013."""
    start_window_days: float = 30.0
    step_seconds: float = 600.0
    horizon_steps: int = 96
    """Steps until the return launch window closes the campaign (96 ten-minute steps: 16 h,
    about two Phobos days; assumption)."""
    substeps: int = 4
    """Samples of the Sun per step for solar energy."""
    message_buffer: int = 16
    site_lat_deg: float = PHOBOS_GRUNT_SITE_DEG[0]
    """Landing site latitude on Phobos."""
    site_lon_deg: float = PHOBOS_GRUNT_SITE_DEG[1]
    """Landing site east longitude, from the sub-Mars point."""
    solar_conjunction_deg: float = 2.0
    """No link while the Sun is closer than this to Mars in Earth's sky."""
    advice_length: int = 5
    """Cells an advice message ranks: the advised cell first, then the ground's next best."""
    failure_penalty: float = 2.0
    """Penalty per failed sampling attempt."""
    diversity_bonus: float = 1.0
    """Bonus for each composition class the first time it is stowed."""
    energy_violation_penalty: float = 2.0
    """Penalty for each step that ends with the battery flat."""
    site: SiteConfig = field(default_factory=SiteConfig)
    """Priors of the landing site."""
    lander: LanderConfig = field(default_factory=LanderConfig)
    """The lander's power, container and instruments."""

    @property
    def agents(self) -> tuple[str, ...]:
        """Agent ids: the lander, then the science team."""
        return AGENTS

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot work."""
        super().validate()
        _positive("advice_length", self.advice_length)
        for name in ("failure_penalty", "diversity_bonus", "energy_violation_penalty"):
            _at_least(name, getattr(self, name), 0.0)
        if not -90.0 <= self.site_lat_deg <= 90.0:
            raise ValueError(f"site_lat_deg must lie in [-90, 90], got {self.site_lat_deg}")
        _validate_site(self.site)
        _validate_lander(self.lander)


def _validate_site(site: SiteConfig) -> None:
    materials, classes = len(MATERIALS), len(site.compositions)
    for name in ("rows", "cols", "area_cells"):
        _positive(f"site.{name}", getattr(site, name))
    if site.rows % site.area_cells or site.cols % site.area_cells:
        raise ValueError(
            f"site.area_cells: {site.area_cells} must divide rows ({site.rows}) and cols "
            f"({site.cols})"
        )
    for name in ("cell_m", "arm_reach_m"):
        _positive(f"site.{name}", getattr(site, name))
    if classes < 2 or len(set(site.compositions)) != classes:
        raise ValueError(f"site.compositions: need two or more distinct names, got {classes}")
    _probabilities("site.material_prior", site.material_prior, materials)
    if len(site.composition_prior) != materials:
        raise ValueError(
            f"site.composition_prior needs one row per material {MATERIALS}, "
            f"got {len(site.composition_prior)}"
        )
    for m, row in enumerate(site.composition_prior):
        _probabilities(f"site.composition_prior[{m}] ({MATERIALS[m]})", row, classes)
    for name in ("slope_mean_deg", "slope_sd_deg", "failure_base", "sample_mass_g"):
        values = getattr(site, name)
        if len(values) != materials:
            raise ValueError(f"site.{name} needs one value per material {MATERIALS}")
        for value in values:
            _at_least(f"site.{name}", value, 0.0)
    for value in site.sample_mass_g:
        _positive("site.sample_mass_g", value)
    if len(site.composition_value) != classes:
        raise ValueError(f"site.composition_value needs one value per class {site.compositions}")
    for value in site.composition_value:
        _at_least("site.composition_value", value, 0.0)
    unknown = set(site.target_compositions) - set(site.compositions)
    if unknown:
        raise ValueError(
            f"site.target_compositions: unknown class {sorted(unknown)[0]!r}; "
            f"choose from {', '.join(site.compositions)}"
        )
    for name in ("failure_base", "damage_given_failure", "max_failure", "patchiness"):
        values = getattr(site, name)
        for value in values if isinstance(values, tuple) else (values,):
            _unit_interval(f"site.{name}", value)
    for name in ("value_spread", "failure_per_deg", "safe_slope_deg"):
        _at_least(f"site.{name}", getattr(site, name), 0.0)
    if not 0.0 <= site.mass_spread < 1.0:
        raise ValueError(f"site.mass_spread must lie in [0, 1), got {site.mass_spread}")


def _validate_lander(lander: LanderConfig) -> None:
    for name in ("container_g", "min_sample_g", "battery_wh"):
        _positive(f"lander.{name}", getattr(lander, name))
    if lander.min_sample_g > lander.container_g:
        raise ValueError(
            f"lander.min_sample_g ({lander.min_sample_g}) exceeds lander.container_g "
            f"({lander.container_g})"
        )
    low, high = lander.start_battery
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(
            f"lander.start_battery must satisfy 0 <= low <= high <= 1, got {low, high}"
        )
    for name in ("solar_peak_w", "base_load_w", "send_load_w", "image_load_w"):
        _at_least(f"lander.{name}", getattr(lander, name), 0.0)
    for name in ("spectrometer_load_w", "sample_load_w", "slope_noise_deg"):
        _at_least(f"lander.{name}", getattr(lander, name), 0.0)
    for name in ("send_steps", "image_steps", "spectrometer_steps", "sample_steps"):
        _positive(f"lander.{name}", getattr(lander, name))
    for name in ("material_accuracy", "onboard_accuracy", "ground_accuracy"):
        _unit_interval(f"lander.{name}", getattr(lander, name))
    _unit_interval("lander.spectrometer_accuracy", lander.spectrometer_accuracy)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ValueError(f"{name} must be >= {low:g}, got {value}")


def _unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def _probabilities(name: str, values: tuple[float, ...], count: int) -> None:
    if len(values) != count:
        raise ValueError(f"{name} needs {count} probabilities, got {len(values)}")
    if any(not p >= 0.0 for p in values):
        raise ValueError(f"{name}: probabilities must be >= 0, got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name}: probabilities must sum to one, got {sum(values):g}")
