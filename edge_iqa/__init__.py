"""edge-iqa: image quality assessment models from PyTorch to cameras and servers.

Light on purpose: ``import edge_iqa`` pulls in neither torch nor a backend. The runtime wrapper a
camera integrator uses is ``edge_iqa.runtime`` (numpy + Pillow + one backend); the PyTorch side is
``edge_iqa.models``, ``edge_iqa.train``, ``edge_iqa.export`` and ``edge_iqa.bench``.
"""

__version__ = "0.1.0"
