"""Data quality: the contract of a model's daily partitions and its validation with GX.

- :mod:`include.quality.contract`: the effective rule list derived from a spec (no heavy imports).
- :mod:`include.quality.validate`: run the rules as a Great Expectations suite over one partition.
- :mod:`include.quality.infer`: propose a contract from sample data (like TFX SchemaGen).
"""

from __future__ import annotations

from include.quality.contract import Rule, rules_for

__all__ = ["Rule", "rules_for"]
