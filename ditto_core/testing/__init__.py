"""Test scaffolding shipped for the tests, the benchmarks and anyone checking a build without the real weights.

Nothing in the product imports this package.

* :mod:`.weight_rule`: the deterministic weight rule of the golden data (fills any network from a salt);
* :mod:`.standins`: small ONNX stand-ins of the aux models with the official inputs and outputs (needs ``onnx``,
  the ``dev`` extra);
* :mod:`.kit`: the synthetic model kit, every release file in the official layout with rule weights
  (``python -m ditto_core.synthetic DIR``).
"""
