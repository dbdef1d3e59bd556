"""Memory and disk across fine-tunes from sessions that never close (issue 11, item 2), in one process:
each fine-tune (5 pairs, 1 epoch) comes from a new session, as API clients make them; after each, the
process's RSS, the models all sessions hold, and the size of their files.

    python bench/fine_tune_memory.py [--model en-de-multi30k] [--count 8] [--cap 2]

--cap sets the server-wide cap on fine-tuned models (s2s.service.retention.MAX_MODELS); a large one
(1000) shows the growth without it.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, proc_status_kb  # noqa: E402

sys.path.insert(0, str(REPO))
PAIRS = [("A man is riding a bicycle.", "Ein Mann fährt Fahrrad."),
         ("Two dogs play in the snow.", "Zwei Hunde spielen im Schnee."),
         ("A woman sits at a dark bar.", "Eine Frau sitzt an einer dunklen Bar."),
         ("A cat sleeps on a red sofa.", "Eine Katze schläft auf einem roten Sofa."),
         ("A girl is reading a book.", "Ein Mädchen liest ein Buch.")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="en-de-multi30k", help="a model of S2S_CHECKPOINTS (default checkpoints/)")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--cap", type=int, default=2)
    args = parser.parse_args(argv)
    from s2s import service
    from s2s.service import retention

    retention.MAX_MODELS = args.cap
    service.get_translator(args.model)  # loaded once, shared, before the first measurement
    text = "\n".join(f"{s}\t{t}" for s, t in PAIRS)
    sessions = []
    try:
        for i in range(1, args.count + 1):
            session = service.Session()
            sessions.append(session)
            start = time.perf_counter()
            list(service.fine_tune(args.model, text, None, 1, 1e-3, session))
            gc.collect()
            files = sum(p.stat().st_size for s in sessions if s.folder for p in s.folder.rglob("*") if p.is_file())
            print(f"cap {args.cap}: fine-tune {i} in {time.perf_counter() - start:.1f} s, "
                  f"RSS {(proc_status_kb('self', 'VmRSS') or 0) / 1024:.0f} MB, "
                  f"models held {sum(len(s.models) for s in sessions)}, session files {files / 1e6:.0f} MB",
                  flush=True)
    finally:
        for session in sessions:
            session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
