"""Batch scoring with ONNX: the serving contract, partition and shard scoring, shadow metrics.

Airflow-free; pyarrow, numpy and onnxruntime are imported inside the functions that use them.
"""

from include.scoring.contract import InputSchemaError, SignatureMismatchError, check_signature, split_scoreable
from include.scoring.score import ScoreReport, ScoringError, score_partition
from include.scoring.shadow import shadow_agreement, shadow_partition_agreement
from include.scoring.shards import MissingShardsError, plan_shards, publish_shards, score_shard

__all__ = [
    "InputSchemaError",
    "MissingShardsError",
    "ScoreReport",
    "ScoringError",
    "SignatureMismatchError",
    "check_signature",
    "plan_shards",
    "publish_shards",
    "score_partition",
    "score_shard",
    "shadow_agreement",
    "shadow_partition_agreement",
    "split_scoreable",
]
