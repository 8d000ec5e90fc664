"""The Textual UI: the only package that imports Textual.

Talks to the engine only through `engine.client.EngineClient` and its protocol events, and
to the store through `store.Store`.

Sets Textual's frame cap (`TEXTUAL_FPS`, read once when Textual is imported) to 240 unless the
environment sets it. Textual paints on a fixed grid of 1/FPS and, after a paint that follows an
idle spell, skips to the grid point after the next one, so a key typed just after a paint waited
1-2 frames: 17-33 ms at Textual's default 60, while ghost text streamed in a token at a time
(seen with timestamps inside the app while `tinymorph bench` typed). At 240 it is 1-2 frames of
4 ms; a frame is only drawn when something changed, so an idle editor draws nothing more.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "240")
