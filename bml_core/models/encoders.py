"""Per-modality encoders: MLP for vectors, a small CNN for [C,H,W] or [F,T] inputs, and
ResNet-18 as in the OGM-GE / T-PAMI code (1-channel spectrogram audio; visual frames encoded
one by one and averaged over time). Each has `out_dim`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bml_core.plugins import encoder_specs as _encoder_specs
from bml_core.plugins import get_encoder, unknown_message
from bml_core.schema import ConfigError, EncoderConfig

EncoderBuilder = Callable[[tuple[int, ...], EncoderConfig, int], nn.Module]


class MLPEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int, layers: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        blocks: list[nn.Module] = [nn.Flatten()]
        width = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.ReLU(inplace=True)]
            if dropout:
                blocks.append(nn.Dropout(dropout))
            width = hidden_dim
        blocks += [nn.Linear(width, out_dim), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*blocks)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Three conv blocks and global average pooling; [F,T] inputs get a channel axis."""

    def __init__(self, in_channels: int, channels: int, out_dim: int, dropout: float = 0.0):
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(
            *block(in_channels, channels, True),
            *block(channels, channels * 2, True),
            *block(channels * 2, channels * 4, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout) if dropout else nn.Identity(), nn.Linear(channels * 4, out_dim)
        )
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return torch.relu(self.head(self.features(x)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.down(x))


class ResNet18(nn.Module):
    """ResNet-18 trunk with global average pooling: [B, C, H, W] -> [B, 512]."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = 512
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.pool(self.layers(self.stem(x)))


class FramePooled(nn.Module):
    """Encodes [B, T, C, H, W] frame by frame and averages the features over T (as the
    papers' visual stream does)."""

    def __init__(self, frame_encoder: nn.Module):
        super().__init__()
        self.frame_encoder = frame_encoder
        self.out_dim: int = frame_encoder.out_dim  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feats = self.frame_encoder(x.reshape(b * t, *x.shape[2:]))
        return feats.reshape(b, t, -1).mean(1)


def _image_channels(shape: tuple[int, ...]) -> int:
    return 1 if len(shape) == 2 else shape[-3]


def _maybe_frames(shape: tuple[int, ...], make: Callable[[int], nn.Module]) -> nn.Module:
    if len(shape) == 4:
        return FramePooled(make(shape[1]))
    if len(shape) in (2, 3):
        return make(_image_channels(shape))
    raise ValueError(f"a convolutional encoder needs [F,T], [C,H,W] or [T,C,H,W] inputs, got {list(shape)}")


def build_mlp(shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int) -> nn.Module:
    in_dim = 1
    for s in shape:
        in_dim *= s
    return MLPEncoder(in_dim, cfg.hidden_dim, cfg.layers, feature_dim, cfg.dropout)


def build_cnn(shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int) -> nn.Module:
    return _maybe_frames(shape, lambda c: SmallCNN(c, cfg.channels, feature_dim, cfg.dropout))


def build_resnet18(shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int) -> nn.Module:
    return _maybe_frames(shape, ResNet18)


def default_encoder_name(shape: tuple[int, ...], sequence: bool = False) -> str:
    """mlp for vectors, cnn for [F,T], [C,H,W] and frame stacks; transformer for [T, D]
    sequences that come with lengths."""
    if sequence and len(shape) == 2:
        return "transformer"
    return "mlp" if len(shape) <= 1 else "cnn"


def build_encoder(
    shape: tuple[int, ...],
    cfg: EncoderConfig | None,
    feature_dim: int,
    modality: str = "",
    sequence: bool = False,
) -> nn.Module:
    """The encoder of one modality from its registered spec (built-in or plug-in; the
    implementation is imported here). A name no spec declares, an input rank the encoder
    does not accept, or an implementation this process cannot import: ConfigError naming
    `model.encoders.<modality>`."""
    if cfg is None:
        cfg = EncoderConfig(name=default_encoder_name(shape, sequence))
    where = f"model.encoders.{modality or '<modality>'}"
    spec = get_encoder(cfg.name)
    if spec is None:
        raise ConfigError([(f"{where}.name", unknown_message("encoder", cfg.name, list(_encoder_specs())))])
    if len(shape) not in spec.ranks:
        raise ConfigError(
            [
                (
                    f"{where}.name",
                    f"encoder {spec.name} takes per-sample inputs of rank {list(spec.ranks)}, but "
                    f"{modality or 'this modality'} has shape {list(shape)}; choose another encoder",
                )
            ]
        )
    try:
        builder = spec.load_impl()
    except ImportError as exc:
        raise ConfigError([(f"{where}.name", str(exc))]) from None
    if sequence and spec.sequence:
        return builder(shape, cfg, feature_dim, masked=True)
    return builder(shape, cfg, feature_dim)
