"""The verification library: models, onnxruntime runner, ezkl circuits, tolerance, dApp checks."""
