"""What the world server tells a dashboard about each environment: static tables and state.

A view turns an environment into plain data for telemetry (numbers, strings, lists and dicts,
so that the dashboard can hand it to a browser as JSON):

- :meth:`~TelemetryView.episode`: the tables of an episode, sent once per episode and again
  every second for late subscribers: orbits and Earth's direction per step, station links;
  the landing site's grid.
- :meth:`~TelemetryView.record`: called after every step with the executed actions (cheap:
  the world's hot path); the sampling view keeps the cells imaged, analysed and sampled.
- :meth:`~TelemetryView.state`: the state at a telemetry update: battery, storage, contact.

:func:`view_for` picks the view of an environment: the one its task spec names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phobos.envs.physics.constants import MARS_RADIUS_KM


class TelemetryView:
    """Telemetry of an environment that has no dedicated view: actions and rewards only.

    Hooks (all optional; the base class does nothing): :meth:`episode`, :meth:`record`,
    :meth:`state`.
    """

    kind = "generic"

    def episode(self, env: Any) -> dict[str, Any]:
        """Static tables of the episode just reset."""
        return {"kind": self.kind}

    def record(self, env: Any, executed: dict[str, int]) -> None:
        """Note the actions the environment carried out this step."""

    def state(self, env: Any, observations: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """The environment's state for a telemetry update."""
        return {}


class OrbitView(TelemetryView):
    """The orbit-scheduling task: orbits, Earth's direction and links; battery and storage."""

    kind = "orbit"

    def episode(self, env: Any) -> dict[str, Any]:
        """Tracks in Mars radii (x, y of the planning frame), Earth and links per step."""
        from phobos.envs.orbit_scheduling.config import SPACECRAFT

        plan = env.plan
        positions = plan.positions[0, :, :, :2] / MARS_RADIUS_KM
        earth = plan.earth_direction[0, :, :2]
        earth = earth / np.maximum(np.linalg.norm(earth, axis=1, keepdims=True), 1e-9)
        agents = list(env.possible_agents)
        stations = [agent for agent in agents if agent not in SPACECRAFT]
        craft = [agents.index(name) for name in SPACECRAFT]
        # links[t] lists (station, spacecraft) pairs whose intent link is open at step t.
        open_ = plan.link_open[0]
        links = [
            [
                [s, c]
                for s, station in enumerate(stations)
                for c, k in enumerate(craft)
                if open_[t, agents.index(station), k] or open_[t, k, agents.index(station)]
            ]
            for t in range(open_.shape[0])
        ]
        return {
            "kind": self.kind,
            "bodies": ["phobos", *SPACECRAFT],
            "tracks": np.round(positions.transpose(1, 0, 2), 3).tolist(),
            "earth": np.round(earth, 3).tolist(),
            "stations": stations,
            "station_sees_mars": plan.station_sees_mars[0].astype(int).tolist(),
            "links": links,
            "light_time_s": np.round(plan.light_time_s[0], 1).tolist(),
        }

    def state(self, env: Any, observations: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """Battery and storage fractions of each spacecraft, from its own observation."""
        from phobos.envs.orbit_scheduling.config import SPACECRAFT
        from phobos.envs.orbit_scheduling.layout import BATTERY, STORAGE

        layout = env.layout
        craft = {}
        for name in SPACECRAFT:
            vector = observations.get(name, {}).get("observations")
            if vector is not None:
                craft[name] = {
                    "battery": round(float(vector[layout.own_field(BATTERY)]), 3),
                    "storage": round(float(vector[layout.own_field(STORAGE)]), 3),
                }
        return {"craft": craft}


class SamplingView(TelemetryView):
    """The sampling task: the site map with imaged, analysed and sampled cells."""

    kind = "site"

    def __init__(self) -> None:
        self.imaged: set[int] = set()
        self.analysed: set[int] = set()
        self.sampled: set[int] = set()

    def episode(self, env: Any) -> dict[str, Any]:
        """The site's grid: material and reach of every cell, and the image areas."""
        from phobos.envs.sampling.config import MATERIALS
        from phobos.envs.sampling.site import area_cells, reachable_cells

        site_config = env.config.site
        self.imaged, self.analysed, self.sampled = set(), set(), set()
        self._areas = [cells.tolist() for cells in area_cells(site_config)]
        return {
            "kind": self.kind,
            "rows": site_config.rows,
            "cols": site_config.cols,
            "materials": list(MATERIALS),
            "material": env.site.material.astype(int).tolist(),
            "reachable": reachable_cells(site_config).astype(int).tolist(),
            "light_time_s": np.round(env.sky.link_delay_s.max(axis=(1, 2)), 1).tolist(),
        }

    def record(self, env: Any, executed: dict[str, int]) -> None:
        """Mark the cells of an imaging, spectrometer or sampling action the lander started."""
        from phobos.envs.sampling.config import LANDER

        action = executed.get(LANDER, 0)
        if action:
            kind, target = env.layout.decode(action)
            if kind == "image":
                self.imaged.update(self._areas[target])
            elif kind == "spectrometer":
                self.analysed.add(target)
            elif kind == "sample":
                self.sampled.add(target)

    def state(self, env: Any, observations: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """Lander battery and container, contact with Earth, and the cells worked on."""
        from phobos.envs.sampling.config import LANDER
        from phobos.envs.sampling.layout import BATTERY, CONTACT, CONTAINER

        vector = observations.get(LANDER, {}).get("observations")
        craft = {}
        contact = False
        if vector is not None:
            layout = env.layout
            craft[LANDER] = {
                "battery": round(float(vector[layout.own_field(BATTERY)]), 3),
                "storage": round(float(vector[layout.own_field(CONTAINER)]), 3),
            }
            contact = bool(vector[CONTACT] > 0.5)
        return {
            "craft": craft,
            "contact": contact,
            "imaged": sorted(self.imaged),
            "analysed": sorted(self.analysed),
            "sampled": sorted(self.sampled),
        }


def view_for(env: Any) -> TelemetryView:
    """The telemetry view of ``env``: its task spec's ``telemetry_view``, else the generic one."""
    from phobos.envs import task_of

    task = task_of(env)
    if task is None or task.telemetry_view is None:
        return TelemetryView()
    return task.load("telemetry_view")()
