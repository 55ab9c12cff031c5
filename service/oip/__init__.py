"""The Open Inference Protocol (KServe V2) and Triton's binary tensor extension, on the inference core.

The service's second protocol beside its own REST API, sharing its batchers, limits and metrics:
- `parsing`: inference requests, a JSON header and binary tensors (orjson and numpy, no pydantic);
- `tensors`: datatypes, and inference responses in JSON or binary;
- `mapping`: a served model as a V2 model (its tensors) and the forward pass a request needs;
- `metadata`: server and model metadata, Triton's model configuration;
- `stats`: the statistics extension;
- `errors`: the protocol's `{"error": "..."}` replies and their status codes;
- `http`: what the V2 routes share (service/routes/v2.py, v2_extensions.py).
README, "Open Inference Protocol (KServe V2)", says what is supported and how.
"""
