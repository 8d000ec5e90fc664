"""The engine: generation with KV-cache reuse, steering at run time, the worker process and its
protocol.

Never imports Textual or the store. `engine.generate`, `engine.directions` and `engine.worker`
import torch and run in the worker process; the UI process uses `engine.client`,
`engine.protocol` and `engine.continuation`, which do not.
"""
