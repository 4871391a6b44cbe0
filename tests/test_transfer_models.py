"""Every backbone in the registry: builds for 10 classes, trains one step at its minimum input size
(random weights), has stages that cover every parameter, and handles inception's auxiliary output."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data.dataset import DataBundle
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError
from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.backbones import TransferModel, stages_by_resolution
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.inference import predict_logits
from cnnlab.train.trainer import Trainer

BACKBONES = ["vgg16", "vgg16_bn", "resnet18", "resnet50", "inception_v3", "mobilenet_v2", "mobilenet_v3_small",
             "mobilenet_v3_large", "efficientnet_b0", "xception", "efficientnet_lite0"]


def tiny_bundle(size: int, n_train: int = 2, n_val: int = 2, classes: int = 10, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % classes
    names = [f"x/{i}.png" for i in range(n)]
    pool = ImageSet(images, labels, names, [f"c{i}" for i in range(classes)])
    return DataBundle(pool.subset(list(range(n_train))), pool.subset(list(range(n_train, n))), None, [], "synthetic")


def test_registry_has_every_backbone_next_to_ahe_cnn():
    assert set(BACKBONES) | {"ahe_cnn"} <= set(list_models())
    for name in BACKBONES:
        info = model_info(name)
        assert info.mean is not None and info.std is not None  # the weights' own normalisation
        assert info.min_image_size <= info.default_image_size


@pytest.mark.filterwarnings("ignore:Encountered `nan` values")  # 2 validation images: classes without support
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_one_step_at_its_minimum_size(name, tmp_path):
    size = model_info(name).min_image_size
    cfg = TrainConfig(model=name, image_size=size, epochs=1, batch_size=2, optimizer="sgd", momentum=0.0, lr=0.01,
                      augment="none", output=str(tmp_path / "run"), seed=1, weight_decay=0.0)
    trainer = Trainer(cfg, data=tiny_bundle(size))
    model = trainer.model
    assert isinstance(model, TransferModel)
    assert model.head[-1].out_features == 10
    assert len(model.stages) >= 5 and all(p.requires_grad for p in model.parameters())
    # validate() reports the model's own numbers: accuracy and loss of eval-mode logits computed here
    # independently (before the step: one step on two images at random init leaves BatchNorm running
    # statistics that overflow some backbones' eval-mode outputs).
    val = trainer.data.val
    logits = predict_logits(model, val.images, trainer.norm, torch.device("cpu"))
    metrics = trainer.validate()
    assert metrics["accuracy"] == (logits.argmax(1) == val.labels).float().mean().item()
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, val.labels).item(), rel=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    trainer.train_epoch()  # one optimiser step (2 images, batch 2); fit's checkpoints are tested elsewhere
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("head.") for k in changed) and any(k.startswith("body.") for k in changed)
    assert all(torch.isfinite(after[k]).all() for k in before)
    del trainer, model, before, after
    gc.collect()


def test_stages_follow_the_resolution_levels():
    m = create_model("mobilenet_v2", 10)
    assert [s for s, _ in m.stages] == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    # MobileNetV2's features: stride 2 at blocks 0, 2, 4, 7, 14.
    assert [paths[0] for _, paths in m.stages] == ["features.0", "features.2", "features.4", "features.7", "features.14"]
    r = create_model("resnet18", 10)
    assert [p for _, p in r.stages][1:] == [["maxpool", "layer1"], ["layer2"], ["layer3"], ["layer4"]]
    v = create_model("vgg16", 10)
    assert v.stages[-1] == ("pre_logits", ["classifier.0", "classifier.3"])
    with torch.device("meta"):  # timm's feature_info: levels read at act2, block2.rep.0, block3.rep.0, block12.rep.0, act4
        x = create_model("xception", 10)
    assert [s for s, _ in x.stages] == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert [p for _, p in x.stages][1:3] == [["block1"], ["block2"]]
    assert x.stages[3][1] == [f"block{i}" for i in range(3, 12)] and x.stages[4][1][:2] == ["block12", "conv3"]
    # each group's parameters are disjoint and cover the model (checked at construction) -- and
    # a stage without parameters joins its neighbour:
    seq = torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 3, 1), torch.nn.MaxPool2d(2))
    assert stages_by_resolution(seq, ["0", "1", "2"]) == [("stage1", ["0", "1", "2"])]


def test_inception_aux_logits_add_to_the_training_loss(tmp_path):
    size = model_info("inception_v3").min_image_size
    cfg = TrainConfig(model="inception_v3", image_size=size, epochs=1, batch_size=2, augment="none",
                      output=str(tmp_path / "run"), seed=2)
    trainer = Trainer(cfg, data=tiny_bundle(size))
    x, y = torch.randn(2, 3, size, size), torch.tensor([1, 2])
    trainer.net.train()
    losses = {}
    for weight in (0.0, 0.4):
        trainer.cfg.aux_weight = weight
        torch.manual_seed(0)
        logits, losses[weight] = trainer.forward_loss(x, y)
        assert logits.shape == (2, 10)
    torch.manual_seed(0)
    out = trainer.net(x)
    assert out.aux_logits.shape == (2, 10)
    aux_loss = trainer.criterion(out.aux_logits, y)
    assert losses[0.4].item() == pytest.approx(losses[0.0].item() + 0.4 * aux_loss.item(), rel=1e-4)
    trainer.model.eval()
    assert isinstance(trainer.model(x), torch.Tensor)  # no aux output at inference
    no_aux = create_model("inception_v3", 10, aux_logits=False).train()
    assert isinstance(no_aux(x), torch.Tensor)


def test_head_options_and_bad_options():
    m = create_model("resnet18", 7, dropout=0.3, hidden=64)
    assert [type(x).__name__ for x in m.head] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert m.head[1].out_features == 64 and m.head[-1].out_features == 7 and m.head[0].p == 0.3
    with pytest.raises(UserError, match="does not accept options"):
        create_model("resnet18", 7, pooling="avg")
    with pytest.raises(UserError, match="--dropout must be in"):
        create_model("resnet18", 7, dropout=1.5)


def test_image_size_below_the_minimum_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="too small for inception_v3: use at least 75"):
        Trainer(TrainConfig(model="inception_v3", image_size=64, output=str(tmp_path / "r")), data=tiny_bundle(64))
