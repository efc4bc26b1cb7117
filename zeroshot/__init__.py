"""zeroshot: hardware-aware neural-architecture screening (zero-shot proxies, cost models, funnel)."""
__version__ = "0.1.0"
