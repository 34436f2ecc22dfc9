"""Planning scenarios as YAML: the schema, loading with overrides, and the schema's documentation.

    fields.py    field types: paths relative to the scenario file, scalars-or-lists with one clear error
    schema.py    the pydantic schema (`Scenario`: city, area, forecaster, horizon, deployment, sleep, ...)
    loading.py   YAML -> overrides -> validation (`load_scenario`, `scenario_from_dict`, `with_overrides`)
    docs.py      the field table of scenarios/README.md (`schema_markdown`)
    modes.py     `mode: backtest | plan`: what plan mode (forecast past the end) cannot honour

Running a loaded scenario (load -> forecast -> plan -> replay) is `planning.pipeline.run_scenario`; one in
plan mode (forecast past the end -> plan) is `planning.plan_mode.run_plan`.
"""
