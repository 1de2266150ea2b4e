"""Paired transforms (docs/method.md §4.5, §9): geometric augmentations move the image and its AU map
together (torchvision.transforms.v2 with the map as a Mask: nearest interpolation, then clipped to
[0, 1]); photometric ones and random erasing touch the image only. Sizes follow the paper's 224
recipe scaled to `image_size` (resize 256 -> round(image_size * 256 / 224))."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from aucues.preprocessing import PreprocessConfig

RESIZE_RATIO = 256 / 224     # §9: resize 256x256, then a 224 crop
ROTATION_DEG = 6.0
ROTATION_P = 0.5
CROP_SCALE = (0.8, 1.0)
HFLIP_P = 0.5
GRAY_P = 0.2
JITTER = (0.4, 0.4, 0.4, 0.1)
JITTER_P = 0.8
ERASE_P = 0.5


def _to_tensors(image: np.ndarray, amap: np.ndarray):
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    m = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(amap, dtype=np.float32))[None])
    return img, m


class EvalTransform:
    """Resize to image_size x image_size and normalise with the PreprocessConfig (§9 eval)."""

    train = False

    def __init__(self, preprocess: PreprocessConfig):
        self.preprocess = preprocess
        self.image_size = preprocess.image_size
        s = self.image_size
        self.geometric = v2.Resize((s, s), antialias=True)
        c = preprocess.channels
        # a grayscale model (channels 1) gets the luma of the (augmented) RGB image, normalised with
        # mean[0]/std[0] as PreprocessConfig.normalize does at serving time
        gray = [v2.Grayscale(num_output_channels=1)] if c == 1 else []
        self.to_unit = v2.Compose([*gray, v2.ToDtype(torch.float32, scale=True)])   # [0, 1] floats
        self.normalize = v2.Normalize(list(preprocess.mean[:c]), list(preprocess.std[:c]))
        self.to_float = v2.Compose([self.to_unit, self.normalize])

    def __call__(self, image: np.ndarray, amap: np.ndarray, map_is_final: bool = False):
        img, m = _to_tensors(image, amap)
        if map_is_final:   # the map was drawn at the output size already
            img = self.geometric(img)
        else:
            img, m = self.geometric(img, m)
        return self.to_float(img).contiguous(), m[0].clamp(0, 1).as_subclass(torch.Tensor).contiguous()


class TrainTransform(EvalTransform):
    """§9 train augmentation: resize, rotation +-6 deg (p .5), random resized crop (scale .8-1, square),
    horizontal flip (p .5) on image + map; grayscale (p .2), colour jitter (p .8), random erasing
    (p .5) on the image only."""

    train = True

    def __init__(self, preprocess: PreprocessConfig):
        super().__init__(preprocess)
        s = self.image_size
        big = int(round(s * RESIZE_RATIO))
        self.geometric = v2.Compose([
            v2.Resize((big, big), antialias=True),
            # §9 rotates the image bicubically (PIL); torchvision's tensor kernels offer nearest and
            # bilinear only, and bilinear is the closer one. The map (a Mask) is always nearest.
            v2.RandomApply([v2.RandomRotation(ROTATION_DEG, interpolation=v2.InterpolationMode.BILINEAR)],
                           p=ROTATION_P),
            v2.RandomResizedCrop(s, scale=CROP_SCALE, ratio=(1.0, 1.0), antialias=True),
            v2.RandomHorizontalFlip(HFLIP_P),
        ])
        self.photometric = v2.Compose([
            v2.RandomGrayscale(GRAY_P),
            v2.RandomApply([v2.ColorJitter(*JITTER)], p=JITTER_P),
        ])
        # §9: erased boxes are filled with random values BEFORE normalisation (on the [0, 1] image)
        self.erase = v2.RandomErasing(p=ERASE_P, value="random")

    def __call__(self, image: np.ndarray, amap: np.ndarray, map_is_final: bool = False):
        img, m = _to_tensors(image, amap)
        img, m = self.geometric(img, m)
        img = self.normalize(self.erase(self.to_unit(self.photometric(img))))
        return img.as_subclass(torch.Tensor).contiguous(), m[0].clamp(0, 1).as_subclass(torch.Tensor).contiguous()


def build_transform(preprocess: PreprocessConfig, train: bool):
    return TrainTransform(preprocess) if train else EvalTransform(preprocess)
