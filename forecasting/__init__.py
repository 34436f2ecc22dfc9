"""UoMo: a universal model of mobile traffic forecasting (KDD'25), with the data layer and baselines."""

__version__ = "0.1.0"
