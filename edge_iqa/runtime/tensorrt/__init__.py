"""Everything TensorRT in one package; only ``builder`` (its lower half), ``backend`` and
``cuda_memory`` import ``tensorrt`` / ``cuda-python``, and only when called, so
``edge_iqa.runtime`` stays importable without them (and without torch).

- ``versions``     which TensorRT releases a bundle is made for (weakly vs strongly typed builds)
- ``recipe``       the build recipe (``build_recipe.json``) and its trtexec line
- ``cache``        per-device engine cache: keys, paths, metadata, timing caches
- ``builder``      the engine build with the TensorRT Python API
- ``backend``      inference through the I/O tensor API
- ``cuda_memory``  device buffers and streams over cuda-python
- ``static_check`` the ONNX graph check against a TensorRT version's parser (``ops.toml``)
"""
