import torch

from zeroseg.config import EncoderConfig
from zeroseg.models.build import build_encoder
from zeroseg.models.encoder import random_masking


def tiny_encoder():
    cfg = EncoderConfig("vit_tiny_patch16_224", 32, 8, 32, 2, 2)
    return build_encoder(cfg).eval()


def test_masking_keeps_exactly_the_expected_tokens():
    ids_keep, ids_restore, mask = random_masking(3, 196, 0.6, torch.device("cpu"))
    assert ids_keep.shape == (3, 78)  # int(196 * 0.4), MAE's rule
    assert mask.sum(1).tolist() == [118.0] * 3
    for b in range(3):
        kept = set(ids_keep[b].tolist())
        assert len(kept) == 78
        assert kept == set(torch.nonzero(mask[b] == 0).flatten().tolist())
        shuffle = torch.argsort(ids_restore[b])
        assert torch.equal(shuffle[:78], ids_keep[b])


def test_encoder_outputs_visible_tokens_only():
    encoder = tiny_encoder()
    images = torch.rand(2, 3, 32, 32)
    out = encoder(images, mask_ratio=0.75)
    assert out.patch_tokens.shape == (2, 4, 32)  # 16 patches, keep 4
    assert out.mask.shape == (2, 16) and out.mask.sum().item() == 24
    assert out.grid == (4, 4)


def test_matches_timm_forward_features_without_masking():
    encoder = tiny_encoder()
    images = torch.rand(2, 3, 32, 32)
    ours = encoder(images, mask_ratio=0.0)
    timm_tokens = encoder.vit.forward_features(encoder.normalize(images))
    assert torch.allclose(ours.patch_tokens, timm_tokens[:, 1:], atol=1e-5)
    assert torch.allclose(ours.cls_token, timm_tokens[:, 0], atol=1e-5)


def test_any_input_size_resamples_positions_as_timm_does():
    encoder = tiny_encoder()
    images = torch.rand(1, 3, 48, 80)
    out = encoder(images)
    assert out.grid == (6, 10) and out.patch_tokens.shape == (1, 60, 32)
    timm_tokens = encoder.vit.forward_features(encoder.normalize(images))  # its own resampling
    assert torch.allclose(out.patch_tokens, timm_tokens[:, 1:], atol=1e-5)
    assert torch.allclose(out.cls_token, timm_tokens[:, 0], atol=1e-5)
    square = encoder(images[..., :48])  # another size gives other positions, not a crop of these
    assert not torch.allclose(
        square.patch_tokens,
        out.patch_tokens.view(1, 6, 10, 32)[:, :, :6].reshape(1, 36, 32),
        atol=1e-3,
    )
