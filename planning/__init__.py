"""Network planning from traffic forecasts: demand cubes, BS deployment and RRU sleep-control MILPs, replay."""
