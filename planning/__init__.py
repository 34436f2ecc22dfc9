"""Network planning from traffic forecasts: demand cubes, BS deployment and RRU sleep-control MILPs, replay.

    demand.py    Demand cubes (cells x slots, users or traffic) from a forecaster, POI, residents, or
                 the real series; unit conversion and hourly aggregation
    params.py    DeployParams / SleepParams, validated once (no solver import)
    deploy.py    BS deployment (paper Eq. 12, defensible form): full MILP, compact MILP, exact greedy
    sleep.py     RRU sleep control (paper Eq. 13, defensible form): MILP per cell/BS, exact DP, baselines
    solve.py     solver choice (bundled CBC, HiGHS) and the true status of a solve (time limits, gaps)
    replay.py    scores of any plan on real demand; never imports the solver
    errors.py    PlanningError and its subclasses (InputError, InfeasibleError, SolverError)

Flow: demand -> build model -> solve -> write back (plain-array plans) -> replay -> statistics.
"""
