"""UoMo: a universal model of mobile traffic forecasting (KDD'25), with the data layer and baselines.

Modules, in pipeline order:

    data/            `City` and its loaders (npz, release JSON, long tables, synthetic), `load_city`,
                     the synthetic prior (families of cities, `load_cities`), the per-city scaler,
                     64-step windows, geometry
    masks.py         the tasks' masks (short/long horizon, generation, random) as boolean arrays
    encoding.py      windows + masks -> model tensors (per-cell scaling, lag channel, context hiding)
    model.py         the network only (tokeniser, DiT blocks with adaLN, context encoders); presets
    diffusion.py     noise schedule, loss and samplers (DDPM, DDIM); never imports model.py
    checkpoint.py    save / safe load / resolve (shipped names) of checkpoints, the weights they hold, the
                     deployable float16 export
    augment.py       training-time augmentation of window batches (grid symmetries)
    train_config.py  what a run is: `TrainConfig` and its checks, the learning-rate schedule, resume rules
    train_pool.py    the training pool: cities' windows, their batch shares, batches with task masks
    train.py         one loop for pre-training and fine-tuning; resume; DDP (`uomo-train`)
    validation.py    validation during training: MAE of sampled forecasts per city (or family) x task
    inference.py     batched, seeded sampling of a network on windows (`SamplingConfig`, the device)
    tiling.py        any grid as overlapping 4 x 4 tiles: positions, cutting windows, blending samples
    forecast.py      a checkpoint -> samples / mean / quantiles, tidy frames (`load_forecaster`)
    forward.py       forecasts past the end of the data (or back-tests from any step): rolled sample
                     paths, timestamped tidy frames (`forecast`, `forward_forecast`)
    exog.py          covariates known for the horizon: users shown only when declared futr; futr_df values
    calibration/     calibrated quantile bands of a forecaster's samples: tables.py (the tables and their
                     use, the calibrated forecaster), fit.py (fitting on val regions, own or pooled tables)
    registry.py      the one place a forecaster is made from its name (baselines, checkpoints)
    interface.py     the `Forecaster` contract every model follows (`Prediction`, hiding)
    baselines/       the reference forecasters behind the same interface: per-cell (horizon), spatial
                     (generation), library-backed (AutoARIMA, PatchTST)
    metrics.py       error, distribution and probabilistic scores (MAE, JSD, fair CRPS)
    evaluate.py      metrics on masked entries and the forecast benchmark (`uomo-bench`)
    records.py       the benchmark's records: merged into forecast.json, the Markdown table, ratios to the
                     best baseline
    cli_common.py    what every command line shares (parser defaults, --version, progress bars)
"""

__version__ = "0.1.0"
