"""The engine: model loading, steering hooks, generation and the worker process.

Never imports Textual or the store. Only `engine.worker`, `engine.model`, `engine.generate`
and `engine.steering` import torch, and they run in the worker process; the UI process uses
`engine.client` and `engine.protocol`, which do not.
"""
