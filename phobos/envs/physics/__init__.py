"""Mission physics: ephemeris tables, Kepler orbits, visibility geometry (numpy only)."""
