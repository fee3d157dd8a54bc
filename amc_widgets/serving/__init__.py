"""The serving program: SageMaker's hosting contract for a trained detector (``container/train serve``)."""
