"""`s2s` as a torchrun worker, with what the distributed tests need to watch (tests/test_distributed.py):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py AUDIT_DIR train --config …

- every file or folder this rank creates, renames or opens for writing is listed in AUDIT_DIR/writes.<rank>
  (a Python audit hook), so a test can check that rank 0 alone writes;
- at the end each rank writes AUDIT_DIR/state.<rank>.json: its step and a fingerprint of its weights and
  Adam moments, so a test can check that every rank holds the same state (after a resume, too);
- S2S_TEST_FAIL_RANK=r and S2S_TEST_FAIL_STEP=n: rank r raises an error at its n-th update.
"""
import json
import os
import sys
from pathlib import Path

audit_dir = Path(sys.argv.pop(1))
rank = int(os.environ["RANK"])
log = open(audit_dir / f"writes.{rank}", "a", encoding="utf-8")
watched = str(audit_dir.parent)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def audit(event, args):
    if event == "open" and args[0] is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = args
        writing = (mode and any(c in str(mode) for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing and str(path).startswith(watched) and not str(path).startswith(str(audit_dir)):
            log.write(f"open {path}\n")
    elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove", "shutil.rmtree"):
        if str(args[0]).startswith(watched) and not str(args[0]).startswith(str(audit_dir)):
            log.write(f"{event} {args[0]}\n")


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

import s2s.train as train  # noqa: E402
from s2s import cli  # noqa: E402

fail_rank, fail_step = os.environ.get("S2S_TEST_FAIL_RANK"), int(os.environ.get("S2S_TEST_FAIL_STEP", "0"))
step_once, run_once = train.Trainer._train_step, train.Trainer.run


def train_step(self, examples):
    if str(rank) == fail_rank and self.state.step + 1 >= fail_step:
        raise RuntimeError(f"injected failure on rank {rank} at update {self.state.step + 1}")
    return step_once(self, examples)


def run(self):
    state = run_once(self)
    adam = [v for s in self.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
    (audit_dir / f"state.{rank}.json").write_text(json.dumps(dict(
        step=state.step, weights=sum(float(p.detach().double().sum()) for p in self.model.parameters()),
        adam=sum(float(v.double().abs().sum()) for v in adam))))
    return state


train.Trainer._train_step, train.Trainer.run = train_step, run
sys.addaudithook(audit)
code = cli.main(sys.argv[1:])
log.close()
sys.exit(code)
