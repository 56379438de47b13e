"""Model registry: MLflow registration of challengers, aliases, promotion gate and ledger.

``include.registry.mlflow_registry`` registers a trained challenger (ONNX, lineage tags,
``challenger`` alias), reads alias versions and fetches a version's ONNX bytes (never a pickle).
Import the submodules directly: this package module stays empty so importing one of them
never loads the others.
"""
