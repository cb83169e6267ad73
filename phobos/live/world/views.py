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
    demo_team: str | None = None
    """The team ``phobos demo`` flies by default for this task (None: ``trained`` where it
    exists, else ``greedy``): one that shows an audience what the task is about."""

    def episode(self, env: Any) -> dict[str, Any]:
        """Static tables of the episode just reset."""
        return {"kind": self.kind}

    def record(self, env: Any, executed: dict[str, int]) -> None:
        """Note the actions the environment carried out this step."""

    def state(self, env: Any, observations: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """The environment's state for a telemetry update."""
        return {}

    def activity(self, action_name: str) -> str:
        """The activity an action is one of (its colour in the timeline's legend).

        By default the action's name up to its first space (``image 3`` is ``image``);
        views group further (every science instrument is ``observe``).
        """
        return action_name.split(" ", 1)[0]

    def activities(self, env: Any) -> dict[str, Any]:
        """The timeline's legend: ``{"names": [activity, ...], "of": {agent: [index, ...]}}``.

        ``of[agent][a]`` is the index in ``names`` of the activity of ``agent``'s action
        ``a``, so one colour means one activity on every row.
        """
        names: list[str] = []
        of = {}
        for agent in env.possible_agents:
            indices = []
            for action_name in env.action_names(agent):
                activity = self.activity(str(action_name))
                if activity not in names:
                    names.append(activity)
                indices.append(names.index(activity))
            of[agent] = indices
        return {"names": names, "of": of}


class OrbitView(TelemetryView):
    """The orbit-scheduling task: orbits, Earth's direction and links; battery and storage."""

    kind = "orbit"
    instruments = frozenset(
        ("mars_camera", "phobos_survey", "spectrometers", "plasma", "magnetometer", "camera")
    )
    """Actions that are one of the spacecraft's science observations."""

    def activity(self, action_name: str) -> str:
        """Every science instrument is ``observe``; the other actions are their own."""
        return "observe" if action_name in self.instruments else action_name

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
    demo_team = "cautious"
    """The cautious lander sends its data to Earth and waits for the science team's advice,
    so an audience sees messages cross the light time both ways; the trained lander (and the
    greedy one) decide onboard and never send."""

    def activity(self, action_name: str) -> str:
        """The lander's ``wait`` and the team's ``no_advice`` are one activity: idle."""
        first = action_name.split(" ", 1)[0]
        return "idle" if first in ("wait", "no_advice") else first

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
            **self.sky(env),
        }

    @staticmethod
    def sky(env: Any) -> dict[str, Any]:
        """The sky over the site this episode, from the env's own tables (astropy-based).

        ``sun_elevation_deg`` and ``earth_elevation_deg`` per step start (``T + 1``), and per
        step ``contact`` (a link to Earth exists), ``station_sees_mars`` (``[T, S]``, the
        stations named in ``stations``) and the one-way ``light_time_s`` of the link; the
        site's latitude and east longitude, and the Sun elevation the cameras need.
        """
        surface, config = env.sky.surface, env.config
        return {
            "sun_elevation_deg": np.round(surface.sun_elevation_deg, 2).tolist(),
            "earth_elevation_deg": np.round(surface.earth_elevation_deg, 2).tolist(),
            "contact": surface.contact.astype(int).tolist(),
            "station_sees_mars": surface.station_sees_mars.astype(int).tolist(),
            "stations": list(config.stations),
            "site_deg": [float(config.site_lat_deg), float(config.site_lon_deg)],
            "image_min_sun_deg": float(config.lander.image_min_sun_deg),
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
