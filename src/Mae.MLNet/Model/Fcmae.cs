using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// The fully convolutional masked autoencoder of ConvNeXt V2 (official <c>models/fcmae.py</c>, <c>FCMAE</c>), with
/// the same computation and, for the encoder, timm's parameter names: random masking of
/// <see cref="ConvNextV2Config.MaskPatchSize"/>-px patches drawn at the last stage's resolution and upsampled to every
/// stage; the encoder run densely with the mask applied as the sparse encoder sees it (zeros at removed pixels before
/// each spatial mixing — depthwise conv, GRN, downsampling — and after each block; GRN over the visible pixels of the
/// batch, as <c>MinkowskiGRN</c>); <c>proj</c> (1×1 conv) → removed cells replaced by <c>mask_token</c> → one
/// ConvNeXt V2 block (<c>decoder.0</c>) → <c>pred</c> (1×1 conv to p²·C) → MSE on the (normalised) pixels of the
/// removed patches only. Names: <c>encoder.*</c> (timm's, no head), <c>proj</c>, <c>mask_token</c>, <c>decoder.k.*</c>,
/// <c>pred</c>.
/// </summary>
public sealed class Fcmae : nn.Module
{
    public ConvNextV2Config Config { get; }
    /// <summary>The encoder: a ConvNeXt V2 without head.</summary>
    public ConvNextV2 Encoder => encoder;
    internal readonly ConvNextV2 encoder;
    internal readonly Conv2d proj;
    public Parameter mask_token { get => get_parameter("mask_token")!; private set => ConditionallyRegisterParameter("mask_token", value); }
    internal readonly ModuleList<ConvNextBlock> decoder;
    internal readonly Conv2d pred;

    /// <summary>A fresh FCMAE: every conv and pointwise weight trunc-normal std 0.02, biases 0, LayerNorm 1, 0, GRN 0, 0
    /// (timm's <c>_init_weights</c>, which the official sparse encoder's matches); <c>mask_token</c> normal std 0.02 as
    /// the official. (The official FCMAE's own <c>apply</c> redraws every dense <c>nn.Conv2d</c> — stem, decoder, proj,
    /// pred — from a unit-std truncated normal and leaves the decoder's Linear layers at PyTorch's default; not copied.)</summary>
    public Fcmae(ConvNextV2Config config) : base(TorchBackend.Checked(nameof(Fcmae)))
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config.Validate();
        encoder = new ConvNextV2(config, 0, 0, withHead: false);
        proj = nn.Conv2d(config.NumFeatures, config.DecoderEmbedDim, kernel_size: 1, bias: true);
        var token = new Parameter(zeros(1, config.DecoderEmbedDim, 1, 1));
        decoder = new ModuleList<ConvNextBlock>(Enumerable.Range(0, config.DecoderDepth)
            .Select(_ => new ConvNextBlock(config.DecoderEmbedDim, 4, convMlp: false, config.LayerNormEps)).ToArray());
        pred = nn.Conv2d(config.DecoderEmbedDim, config.PatchDim, kernel_size: 1, bias: true);
        register_module("encoder", encoder);
        register_module("proj", proj);
        register_parameter("mask_token", token);
        register_module("decoder", decoder);
        register_module("pred", pred);
        ConvNextV2.InitializeLikeTimm(this);
        using (no_grad()) nn.init.normal_(token, 0, 0.02);
    }

    /// <summary>Compute precision of the convolutions and pointwise layers, encoder and decoder (see
    /// <see cref="ConvNextV2.ComputeDType"/>); the loss is fp32.</summary>
    public ScalarType? ComputeDType
    {
        get => encoder.ComputeDType;
        set { encoder.ComputeDType = value; foreach (var b in decoder) b.ComputeDType = encoder.ComputeDType; }
    }

    /// <summary>Masked cells per image: (H/32)·(W/32) at <see cref="ConvNextV2Config.ImageSize"/>.</summary>
    public int NumPatches => Config.MaskGridSize * Config.MaskGridSize;

    /// <summary>The official <c>gen_random_mask</c>: <c>len_keep = int(L·(1 − ratio))</c>; the cells with the smallest
    /// noise are kept; returns [N, L] with 1 = removed. <paramref name="noise"/> [N, L] replays a draw (the official
    /// code draws <c>torch.randn</c>; only the order matters).</summary>
    public Tensor RandomMask(long batch, double maskRatio, Tensor? noise = null, Device? device = null)
    {
        MaeInputs.CheckMaskRatio(maskRatio, nameof(maskRatio));
        MaeInputs.CheckNoise(noise, batch, NumPatches, nameof(noise));
        using var scope = NewDisposeScope();
        long l = NumPatches, lenKeep = MaskedAutoencoder.LenKeep(l, maskRatio);
        var u = noise is null ? randn(batch, l, device: device) : noise.to(device ?? noise.device);
        var idsRestore = u.argsort(1).argsort(1);
        var ordered = cat(new[] { zeros(batch, lenKeep, device: u.device), ones(batch, l - lenKeep, device: u.device) }, 1);
        return ordered.gather(1, idsRestore).MoveToOuterDisposeScope();
    }

    /// <summary>[N, C, H, W] → [N, L, p²·C] with p = 32, each patch as (row, column, channel), as the official
    /// <c>patchify</c> (whose literal 3 is the channel count here).</summary>
    public Tensor Patchify(Tensor images)
    {
        CheckImages(images);
        return PatchLayout.ToPatches(images, Config.InChannels, Config.MaskGridSize, Config.MaskPatchSize);
    }

    /// <summary>The inverse of <see cref="Patchify"/> (the official <c>unpatchify</c>): [N, L, p²·C] → [N, C, H, W].</summary>
    internal Tensor Unpatchify(Tensor patches)
    {
        MaeInputs.CheckShape(patches, nameof(patches), "per-cell patches", patches.shape.Length > 0 ? patches.shape[0] : -1, NumPatches, Config.PatchDim);
        return PatchLayout.ToImages(patches, Config.InChannels, Config.MaskGridSize, Config.MaskPatchSize);
    }

    /// <summary>The decoder's output [N, p²·C, h, w] as [N, L, p²·C] in <see cref="Patchify"/>'s layout (the official
    /// <c>forward_loss</c>'s <c>ncl → nlc</c>).</summary>
    internal Tensor PredictionPatches(Tensor prediction)
    {
        using var x = prediction.reshape(prediction.shape[0], Config.PatchDim, -1);
        return x.permute(0, 2, 1);
    }

    /// <summary>The decoder on the encoder's last map [N, C₄, h, w] and the mask [N, L]: [N, p²·C, h, w].</summary>
    public Tensor ForwardDecoder(Tensor latent, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(latent);
        MaeInputs.CheckShape(latent, nameof(latent), "the encoder's last map", latent.shape.Length > 0 ? latent.shape[0] : -1, Config.NumFeatures, Config.MaskGridSize, Config.MaskGridSize);
        MaeInputs.CheckShape(mask, nameof(mask), "a cell mask", latent.shape[0], NumPatches);
        using var scope = NewDisposeScope();
        var x = MixedPrecision.Conv2d(proj, latent, 1, ComputeDType).to(float32);
        var m = mask.reshape(-1, 1, x.shape[2], x.shape[3]).to(x.dtype);
        x = (x * m.OneMinus()).Plus(mask_token * m);
        foreach (var block in decoder) x = block.Forward(x, null);
        return MixedPrecision.Conv2d(pred, x, 1, ComputeDType).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>The official <c>forward_loss</c>: MSE per patch against the (with <see cref="ConvNextV2Config.NormPixLoss"/>,
    /// per-patch standardised) pixels, averaged over the removed patches.</summary>
    public Tensor ForwardLoss(Tensor images, Tensor prediction, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        using var scope = NewDisposeScope();
        long n = images.shape[0];
        var p = PredictionPatches(prediction);
        var target = Patchify(images).to(p.dtype);
        if (Config.NormPixLoss) target = MaskedAutoencoder.NormalizePatches(target);
        var perPatch = (p - target).Squared().mean(new long[] { -1 });
        return ((perPatch * mask).sum() / mask.sum()).MoveToOuterDisposeScope();
    }

    /// <summary>Masking, masked encoding, decoding and loss: (loss, prediction [N, p²·C, h, w], mask [N, L], 1 = removed).</summary>
    public (Tensor loss, Tensor pred, Tensor mask) Forward(Tensor images, double maskRatio = 0.6, Tensor? noise = null)
    {
        CheckImages(images);
        using var scope = NewDisposeScope();
        var mask = RandomMask(images.shape[0], maskRatio, noise, images.device);
        var latent = encoder.ForwardMasked(images, mask);
        var prediction = ForwardDecoder(latent, mask);
        var loss = ForwardLoss(images, prediction, mask);
        return (loss.MoveToOuterDisposeScope(), prediction.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>A ConvNeXt V2 with head (<c>head.norm</c> at 1, 0, as timm loads fcmae weights; <paramref name="numClasses"/>
    /// a fresh <c>head.fc</c>) holding a copy of this encoder's weights: the featurizer or the start of fine-tuning.</summary>
    public ConvNextV2 ToEncoder(int numClasses = 0)
    {
        var model = new ConvNextV2(Config, numClasses);
        var target = model.state_dict();
        using (no_grad())
            foreach (var (name, value) in encoder.state_dict()) target[name].copy_(value);
        return model;
    }

    void CheckImages(Tensor images)
    {
        ConvNextV2.CheckImages(images, Config, nameof(images));
        MaeInputs.CheckShape(images, nameof(images), "an image batch", images.shape[0], Config.InChannels, Config.ImageSize, Config.ImageSize);
    }
}
