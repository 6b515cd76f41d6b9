"""The paper profile's training path on a CPU: the network (ResNet-50 + SSCA at 256 x 256), the
optimiser, the loaders and one training step at batch 2, on a few synthetic HO3D-style frames at
the dataset's own size (640 x 480 images, 256 x 256 crops). Only the batch size and the number
of epochs depart from the profile (64 images per GPU for 80 epochs would not fit this test's
time); everything else, the loaders' 8 workers included, is ``paper.yaml``'s."""
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from handssca.data import synth
from handssca.engine import trainer
from handssca.engine.checkpoint import load_weights
from handssca.engine.factory import parameter_count
from handssca.engine.profiles import training_config
from handssca.models import export_hands3c
from handssca.models.info import parameter_table

# the profile's 8 loader workers on a 2-core machine: torch warns, and the test keeps them
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

TSV = Path(__file__).parent / "data" / "hands3c-checkpoint-keys.tsv"


def _authors_keys():
    """{key: shape} of the authors' released HandS3C checkpoint (tests/data)."""
    rows = TSV.read_text().splitlines()[1:]
    return {k: tuple(json.loads(s.replace("(", "[").replace(")", "]").replace(",]", "]")))
            for k, s in (r.split("\t") for r in rows)}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    """One step of the paper profile on 2 synthetic HO3D-style training frames."""
    tmp = tmp_path_factory.mktemp("paper-smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("HANDSSCA_HOME", str(tmp))  # nothing lands in the checkout
    data = tmp / "HO3D_v2"
    # 4 frames in sequences of 2: one sequence (2 frames, one step) to train on, one held out
    synth.generate("ho3d", data, n=4, frames_per_sequence=2, seed=0, show_progress=False)
    initial = {}
    build = trainer.build_model

    def recording_build(**kw):  # the network as train() built it, before any step
        model = build(**kw)
        initial.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    mp.setattr(trainer, "build_model", recording_build)
    losses = []
    try:
        summary = trainer.train("ho3d", data, "paper", attention="ssca", out=tmp / "run", seed=0,
                                device="cpu", overrides={"batch_size": 2, "epochs": 1}, verbose=False,
                                tensorboard=False,
                                callback=lambda r: r["kind"] == "step" and losses.append(r))
    finally:
        mp.undo()
    return {"summary": summary, "losses": losses, "initial": initial, "data": data,
            "run": tmp / "run"}


def test_the_data_has_the_datasets_shapes(paper_run):
    frame = next((paper_run["data"] / "train").rglob("rgb/*.png"))
    assert Image.open(frame).size == (640, 480)  # HO-3D's camera images


def test_the_step_gives_a_finite_loss(paper_run):
    losses = [r["loss"] for r in paper_run["losses"]]
    assert len(losses) == 1 and all(torch.isfinite(torch.tensor(losses)))
    assert paper_run["summary"]["status"] == "complete"


def test_the_step_changed_the_parameters(paper_run):
    run = trainer.read_run(paper_run["run"])
    from handssca.models import build_model

    model = build_model(**run["config"]["network"])
    load_weights(model, paper_run["run"], "last")
    after = model.state_dict()
    changed = [k for k, v in paper_run["initial"].items()
               if v.is_floating_point() and not torch.equal(v, after[k])]
    # the first convolution, the SSCA block's state matrices and the MANO head all moved
    for key in ("backbone.resnet.conv1.weight", "attention.ss2d.spatial.s6.A_log",
                "mano_head.pose.weight"):
        assert key in changed, key


def test_the_network_is_the_papers(paper_run):
    run = trainer.read_run(paper_run["run"])
    cfg = run["config"]
    want = training_config("paper", "ho3d")
    assert cfg["train"]["optimizer"] == want["optimizer"]  # Adam, lr 1e-4, as the paper
    assert cfg["train"]["lr_step"] == want["lr_step"]
    assert cfg["train"]["loss_weights"] == want["loss_weights"]
    assert (cfg["train"]["batch_size"], cfg["train"]["epochs"]) == (2, 1)  # the departures
    from handssca.models import build_model

    model = build_model(**cfg["network"])
    load_weights(model, paper_run["run"], "last")
    net = model.config
    assert (net.backbone["kind"], net.C, net.input_size, net.attention) == ("resnet50", 256, 256,
                                                                             "ssca")
    # the package's own count of the authors' configuration (python -m handssca info)
    assert parameter_count(model)["total"] == parameter_table(attention="ssca",
                                                              input_size=256)[-1]["parameters"]
    # and every weight where the authors' released checkpoint has it, with its shape
    got = {k[len("module."):]: tuple(v.shape) for k, v in export_hands3c(model).items()}
    assert got == _authors_keys()
