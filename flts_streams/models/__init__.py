"""Models at serving time: registry (lifecycle), predictor (inference), batching, promotion, serving rule, answers."""
