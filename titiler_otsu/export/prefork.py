"""The last module the export's fork server preloads: freezes what the imports built.

`gc.freeze()` moves every object alive now into the collector's permanent generation, as
the Python docs advise before `fork()`: forked workers share those pages instead of copying
them when their collections walk the objects, their own collections are shorter, and the
fork server's interpreter exits at once instead of collecting its imports (~0.3 s, which the
caller waits for when it reads the command's output to the end).

Only the fork server imports this (`export.cluster.FORKSERVER_PRELOAD`).

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import gc

gc.freeze()
