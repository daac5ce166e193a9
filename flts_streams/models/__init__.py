"""Models at serving time: the registry (lifecycle), the predictor (inference), micro-batching, promotion, the serving rule, answers."""
