"""customer-ai: calibrated propensity scores with per-profile reasons, from an event log and a goal."""

__version__ = "0.1.0"
