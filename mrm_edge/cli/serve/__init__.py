"""``mrm-edge serve``: the model on a real Triton Inference Server on this machine.

- ``server``: :class:`TritonServer`, the ``tritonserver`` bundled in nvidia-pytriton run
  on a model repository (backend directory, ports, bounded start-up, clean stop).
- ``run``: :func:`serve_model`, a model directory → its repository
  (:mod:`mrm_edge.export.triton_repo`, the models this server can load) → a running server.
"""
