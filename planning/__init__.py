"""Network planning from traffic forecasts: demand cubes, BS deployment and RRU sleep-control MILPs, replay.

Modules, in pipeline order:

    demand.py      Demand cubes (cells x slots, or scenarios x cells x slots, users or traffic); the real
                   series; unit conversion and hourly aggregation
    proxy_demand.py  Demand from static proxies: POI and residents, calibrated on the training regions
    forecast_demand.py   Demand cubes from a forecaster (windows tiled over the period, samples as scenarios)
    params.py      DeployParams / SleepParams, validated once (no solver import)
    capacity.py    RRU capacity c0: as given, or sized per cell from the load before the planned period
    errors.py      PlanningError and its subclasses; the CLI's exit codes and `exit_code(exc)`
    milp/          deploy.py (Eq. 12) with greedy.py (its pre-checks and exact greedy) and deploy_plan.py,
                   sleep.py (Eq. 13), solve.py (`SolverOptions`, true solve status)
    rolling.py     rolling-horizon sleep control (re-forecast and re-plan every R slots; a policy, not a MILP)
    replay.py      scores of any plan on real demand; never imports the solver
    results.py     what a scenario run returns (ScenarioResult, ProblemRun, StrategyRun, ForecastRun)
    geo.py         per-cell GeoDataFrames of plans (cell squares, decisions, real and forecast demand)
    figures.py     deployment map, forecast bands and calibration, sleep capacity (Agg figures)
    report.py      KPI tables, summary.json, report.md and the report folder, from results only
    output.py      the output folder: checked first, locked, swapped in atomically
    scenario/      the YAML schema (pydantic), loading with overrides, the schema's documentation
    scenario_city.py  a scenario's city: loading (errors in YAML keys), --check's data check, the planned
                   regions (a one-region city whole), warnings when they are where strategies were fitted
    pipeline.py    run_scenario: load the city -> forecast -> plan -> replay
    plan_mode.py   run_plan (mode: plan): forecast past the end of the data -> plan; no replay
    plan_output.py the files of a plan-mode run (BS plan, RRU schedule, GeoJSON, forecast bands)
    cli.py         plan-bs-deploy / plan-rru-sleep: parse, run the pipeline, write the report
    sweep.py       many scenarios or a parameter grid, in parallel

Flow: demand -> build model -> solve -> write back (plain-array plans) -> replay -> statistics.
Nothing in the library imports the CLI.
"""
