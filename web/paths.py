"""Routes the error middleware and the views both need (the middleware must not import a view)."""

PREDICT_PATH = "/predict"
# Shed by the error middleware before the body is read or the view dispatched: under overload a 429
# must stay cheap, or the rejections eat the event loop the admitted requests need. (The slot itself
# is taken after parsing, in web/predict.py, so slow uploads cannot hold slots.)
SHED_EARLY = frozenset({("POST", PREDICT_PATH)})
