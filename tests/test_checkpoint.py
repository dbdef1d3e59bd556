import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from s2s.api import DecodeOptions, Translator
from s2s.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def copy_of(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "ckpt")


def test_save_then_load_reproduces_identical_outputs(tiny_checkpoint, tmp_path):
    first = Translator.load(tiny_checkpoint, device="cpu")
    save_checkpoint(tmp_path / "again", first.model, first.source, first.target)
    second = Translator.load(tmp_path / "again", device="cpu")
    for text in ["A man rides a bike.", "Two dogs play."]:
        a = first.translate(text, DecodeOptions(method="beam", beam_size=3))
        b = second.translate(text, DecodeOptions(method="beam", beam_size=3))
        assert a.target_pieces == b.target_pieces and a.attention == b.attention


def test_half_precision_storage_loads_back_to_float32(tiny_checkpoint, tmp_path):
    t = Translator.load(tiny_checkpoint, device="cpu")
    save_checkpoint(tmp_path / "half", t.model, t.source, t.target, half=True)
    assert all(v.dtype == torch.float16 for v in load_file(str(tmp_path / "half" / "model.safetensors")).values())
    model, _, _ = load_checkpoint(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert Translator(model, t.source, t.target).translate("A dog.").translation


def test_overwriting_is_atomic_and_keeps_the_card(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "README.md").write_text("my card")
    t = Translator.load(folder, device="cpu")
    save_checkpoint(folder, t.model, t.source, t.target)
    assert (folder / "README.md").read_text() == "my card"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("change, message", [
    (lambda w: w.pop("bridge_h.bias"), "missing weights: bridge_h.bias"),
    (lambda w: w.__setitem__("extra.weight", torch.zeros(2)), "unexpected weights: extra.weight"),
    (lambda w: w.__setitem__("bridge_h.bias", torch.zeros(3)), "wrong shape: bridge_h.bias"),
])
def test_mismatched_weights_fail_with_a_clear_message(tiny_checkpoint, tmp_path, change, message):
    folder = copy_of(tiny_checkpoint, tmp_path)
    w = weights(folder)
    change(w)
    save_file(w, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_missing_tokenizer_fails_clearly(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "target.model").unlink()
    with pytest.raises(CheckpointError, match="missing target.model"):
        load_checkpoint(folder)


def test_corrupt_tokenizer_and_weights_fail_clearly(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "source.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(CheckpointError, match="tokenizer model cannot be read"):
        load_checkpoint(folder)
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "c2")
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(folder)


def test_pickle_weights_are_refused(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="only pickle weights"):
        load_checkpoint(folder)


def test_bad_config_and_missing_folder(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="is not a folder"):
        load_checkpoint(tmp_path / "nowhere")
